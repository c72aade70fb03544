"""``podskazka evaluate``: per-task metrics of a bundle on labelled data, as JSON and a table."""

from __future__ import annotations

from typing import Any

from model.bundle import Bundle
from model.record import Interaction
from training.metrics import task_metrics


def evaluate_model(bundle: Bundle, interactions: list[Interaction], tasks: list[str] | None = None) -> dict[str, Any]:
    model = bundle.model
    report: dict[str, Any] = {"model_id": bundle.manifest.get("model_id"), "tasks": {}}
    for task in tasks or model.tasks:
        rows = [x for x in interactions if task in x.labels]
        if not rows:
            continue
        probs, _ = model.predict_proba(rows, [task])
        classes, p = probs[task]
        labels = list(bundle.taxonomy.tasks[task].labels)
        report["tasks"][task] = task_metrics([x.labels[task] for x in rows], classes, p, labels)
    return report
