"""``podskazka evaluate``: per-task metrics of a bundle on labelled data: accuracy, macro-F1, top-3,
calibration error before and after calibration, coverage of the decision policy, worst errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from model.assist.adjust import adjust_task
from model.assist.decision import DecisionPolicy
from model.conversation.record import Interaction
from model.storage.bundle import Bundle
from model.text.normalize import mask_personal_data
from training.evaluation.metrics import expected_calibration_error, task_metrics
from training.fitting.decision import coverage_curve, coverage_report

WORST_ERRORS = 20


def evaluate_model(
    bundle: Bundle,
    interactions: list[Interaction],
    tasks: list[str] | None = None,
    *,
    policy: DecisionPolicy | None = None,
    sources: list[str] | None = None,
) -> dict[str, Any]:
    """Labels the model was not trained on (not in its taxonomy, or without training rows) are scored
    as errors, counted in ``unseen_labels`` and kept in macro-F1 (F1 0): the figure is what the
    model scores on this data, not on the part of it that suits the model. ``sources`` (file:line per
    interaction) name the rows of the worst errors."""
    model = bundle.model
    policy = bundle.decision if policy is None else policy
    report: dict[str, Any] = {"model_id": bundle.model_id or None, "tasks": {}}
    for task in tasks or model.tasks:
        idx = [k for k, x in enumerate(interactions) if task in x.labels]
        if not idx:
            continue
        rows = [interactions[k] for k in idx]
        probs, _ = model.predict_proba(rows, [task])
        classes, p = probs[task]
        p = adjust_task(bundle.taxonomy, task, classes, p, rows, policy)  # priors and evidence, as served
        y = [x.labels[task] for x in rows]
        unseen = Counter(label for label in y if label not in set(classes))
        labels = list(bundle.taxonomy.tasks[task].labels)
        labels += sorted(set(unseen) - set(labels))
        metrics = task_metrics(y, classes, p, labels)
        if unseen:
            metrics["unseen_labels"] = dict(sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0])))
        if hasattr(model, "predict_proba_uncalibrated"):
            raw_classes, raw = model.predict_proba_uncalibrated(rows, [task])[task]
            correct = np.asarray(raw_classes, dtype=object)[raw.argmax(axis=1)] == np.asarray(y, dtype=object)
            metrics["ece_uncalibrated"] = expected_calibration_error(raw.max(axis=1), correct)
        spec = bundle.taxonomy.tasks[task]
        metrics["coverage"] = coverage_report(spec, classes, p, y, policy)
        metrics["coverage_curve"] = coverage_curve(p, y, classes)
        metrics["reliability"] = reliability_bins(p, y, classes)
        metrics["worst_errors"] = worst_errors(
            rows, y, classes, p, sources=[sources[k] for k in idx] if sources else None
        )
        report["tasks"][task] = metrics
    return report


def reliability_bins(probs: np.ndarray, y: list[str], classes: list[str], n_bins: int = 10) -> dict[str, list]:
    """The reliability diagram's data: ``n_bins`` equal-width bins of top confidence, each with its lower
    edge, row count, mean confidence and accuracy (None for an empty bin)."""
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


def worst_errors(
    rows: list[Interaction],
    y: list[str],
    classes: list[str],
    probs: np.ndarray,
    k: int = WORST_ERRORS,
    *,
    sources: list[str] | None = None,
) -> list[dict]:
    """The most confident wrong predictions, for a person to read: the row's id (or, without one, where
    it is: file:line), where it is, and the conversation as written (personal numbers masked)."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = [i for i in range(len(y)) if classes[pred[i]] != y[i]]
    wrong.sort(key=lambda i: -conf[i])
    out = []
    for i in wrong[:k]:
        source = sources[i] if sources else None
        out.append(
            {
                "id": rows[i].id or source,
                "source": source,
                "true": y[i],
                "predicted": classes[pred[i]],
                "confidence": round(float(conf[i]), 4),
                "text": readable_text(rows[i]),
            }
        )
    return out


_MASK_WORDS = {
    "__email__": "[EMAIL]",
    "__url__": "[ССЫЛКА]",
    "__card__": "[КАРТА]",
    "__order__": "[ЗАКАЗ]",
    "__phone__": "[ТЕЛЕФОН]",
}


def readable_text(interaction: Interaction, limit: int = 400) -> str:
    """The conversation as a person reads it: ``role: text`` per turn, personal numbers masked, no
    model tokens."""
    lines = []
    for turn in interaction.turns:
        text = mask_personal_data(turn.text)
        for token, word in _MASK_WORDS.items():
            text = text.replace(token, word)
        lines.append(f"{turn.role}: {text}")
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
