"""Choosing the decision policy on validation data: per-class thresholds that reach a target
precision, group thresholds for the hierarchy fall-back, and the coverage they give.

The policy is stored in the bundle (``manifest["decision"]``) and applied by ``model.decision.decide``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.decision import decide
from model.taxonomy import Task

MIN_SUPPORT = 5  # fewer validation predictions of a label than this: use the task-level threshold


def precision_threshold(confidence: np.ndarray, correct: np.ndarray, target: float, min_support: int = MIN_SUPPORT) -> float | None:
    """The lowest confidence t such that predictions with confidence >= t reach ``target`` precision
    (with at least ``min_support`` of them); ``None`` when no t does."""
    if len(confidence) < min_support:
        return None
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], correct[order].astype(float)
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    best = None
    for k in range(min_support - 1, len(conf)):
        # only cut between distinct confidences
        if k + 1 < len(conf) and conf[k + 1] == conf[k]:
            continue
        if precision[k] >= target:
            best = float(conf[k])
    return best


def fit_policy(
    task: Task,
    classes: list[str],
    probs: np.ndarray,
    y_true: list[str],
    *,
    target_precision: float = 0.9,
    margin: float = 0.0,
) -> dict[str, Any]:
    """Per-label and per-group thresholds for one task from validation probabilities."""
    probs = np.asarray(probs)
    y = np.asarray(y_true, dtype=object)
    top = probs.argmax(axis=1)
    pred = np.asarray(classes, dtype=object)[top]
    conf = probs.max(axis=1)
    correct = pred == y
    task_threshold = precision_threshold(conf, correct, target_precision, min_support=1)
    task_threshold = 1.01 if task_threshold is None else task_threshold  # never reaches: abstain
    thresholds = {}
    for label in classes:
        mask = pred == label
        t = precision_threshold(conf[mask], correct[mask], target_precision)
        thresholds[label] = round(t, 6) if t is not None else round(task_threshold, 6)
    group_thresholds = {}
    if task.groups:
        group_of = {label: task.group_of(label) for label in classes}
        gscores: dict[str, np.ndarray] = {}
        for group in task.groups:
            cols = [j for j, c in enumerate(classes) if group_of[c] == group]
            if cols:
                gscores[group] = probs[:, cols].sum(axis=1)
        names = list(gscores)
        matrix = np.stack([gscores[g] for g in names], axis=1)
        gpred = np.asarray(names, dtype=object)[matrix.argmax(axis=1)]
        gconf = matrix.max(axis=1)
        gtrue = np.asarray([group_of.get(label) for label in y], dtype=object)
        for group in names:
            mask = gpred == group
            t = precision_threshold(gconf[mask], gpred[mask] == gtrue[mask], target_precision)
            group_thresholds[group] = round(t, 6) if t is not None else 1.01
    return {
        "threshold": round(task_threshold, 6),
        "thresholds": thresholds,
        "group_threshold": 1.01,
        "group_thresholds": group_thresholds,
        "margin": margin,
    }


def coverage_report(task: Task, classes: list[str], probs: np.ndarray, y_true: list[str], policy: dict[str, Any]) -> dict[str, Any]:
    """What the policy decides on labelled data: the share decided at label and group level and the
    precision of each (the number a contact centre cares about: how much it can auto-fill)."""
    n = len(y_true)
    label_hits = label_n = group_hits = group_n = 0
    for row, truth in zip(np.asarray(probs), y_true):
        d = decide(task, classes, row, policy)
        if d["level"] == "label":
            label_n += 1
            label_hits += d["label"] == truth
        elif d["level"] == "group":
            group_n += 1
            group_hits += d["label"] == task.group_of(truth)
    return {
        "n": n,
        "label_coverage": label_n / n if n else 0.0,
        "label_precision": label_hits / label_n if label_n else None,
        "group_coverage": group_n / n if n else 0.0,
        "group_precision": group_hits / group_n if group_n else None,
        "abstained": (n - label_n - group_n) / n if n else 0.0,
    }


def coverage_curve(probs: np.ndarray, y_true: list[str], classes: list[str], points: int = 50) -> dict[str, list[float]]:
    """Accuracy of the decided rows against the share decided, sweeping one global threshold."""
    probs = np.asarray(probs)
    conf = probs.max(axis=1)
    correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(y_true, dtype=object)
    order = np.argsort(-conf, kind="stable")
    cum = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    idx = np.unique(np.linspace(0, len(order) - 1, num=min(points, len(order))).astype(int))
    return {"coverage": ((idx + 1) / len(order)).tolist(), "accuracy": cum[idx].tolist(),
            "threshold": conf[order][idx].tolist()}
