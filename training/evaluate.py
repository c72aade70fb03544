"""``podskazka evaluate``: per-task metrics of a bundle on labelled data: accuracy, macro-F1, top-3,
calibration error before and after calibration, coverage of the decision policy, worst errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.bundle import Bundle
from model.normalize import render_interaction
from model.record import Interaction
from model.adjust import adjust_task
from training.decision import coverage_curve, coverage_report
from training.metrics import expected_calibration_error, task_metrics

WORST_ERRORS = 20


def evaluate_model(bundle: Bundle, interactions: list[Interaction], tasks: list[str] | None = None,
                   *, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    model = bundle.model
    policy = bundle.decision if policy is None else policy
    report: dict[str, Any] = {"model_id": bundle.manifest.get("model_id"), "tasks": {}}
    for task in tasks or model.tasks:
        rows = [x for x in interactions if task in x.labels]
        if not rows:
            continue
        probs, _ = model.predict_proba(rows, [task])
        classes, p = probs[task]
        p = adjust_task(bundle.taxonomy, task, classes, p, rows, policy)  # priors and evidence, as served
        labels = list(bundle.taxonomy.tasks[task].labels)
        y = [x.labels[task] for x in rows]
        metrics = task_metrics(y, classes, p, labels)
        if hasattr(model, "predict_proba_uncalibrated"):
            raw_classes, raw = model.predict_proba_uncalibrated(rows, [task])[task]
            correct = np.asarray(raw_classes, dtype=object)[raw.argmax(axis=1)] == np.asarray(y, dtype=object)
            metrics["ece_uncalibrated"] = expected_calibration_error(raw.max(axis=1), correct)
        spec = bundle.taxonomy.tasks[task]
        metrics["coverage"] = coverage_report(spec, classes, p, y, policy or {})
        metrics["coverage_curve"] = coverage_curve(p, y, classes)
        metrics["reliability"] = reliability_bins(p, y, classes)
        metrics["worst_errors"] = worst_errors(rows, y, classes, p)
        report["tasks"][task] = metrics
    return report


def reliability_bins(probs: np.ndarray, y: list[str], classes: list[str], n_bins: int = 10) -> dict[str, list]:
    conf = probs.max(axis=1)
    correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(y, dtype=object)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    out = {"bin_lower": edges[:-1].round(3).tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        mask = bins == b
        out["count"].append(int(mask.sum()))
        out["confidence"].append(float(conf[mask].mean()) if mask.any() else None)
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else None)
    return out


def worst_errors(rows: list[Interaction], y: list[str], classes: list[str], probs: np.ndarray, k: int = WORST_ERRORS) -> list[dict]:
    """The most confident wrong predictions, for a person to read."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = [i for i in range(len(y)) if classes[pred[i]] != y[i]]
    wrong.sort(key=lambda i: -conf[i])
    return [
        {"id": rows[i].id, "true": y[i], "predicted": classes[pred[i]], "confidence": round(float(conf[i]), 4),
         "text": render_interaction(rows[i])[:400]}
        for i in wrong[:k]
    ]
