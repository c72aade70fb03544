"""Choosing the decision policy on validation data: per-class thresholds that reach a target
precision, group thresholds for the hierarchy fall-back, and the coverage they give.

The policy (:class:`~model.assist.decision.DecisionPolicy`) is stored in the bundle (the manifest's
``decision``) and applied by ``model.assist.decision.decide``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.assist.decision import DecisionPolicy, TaskPolicy, decide
from model.conversation.taxonomy import Task

MIN_SUPPORT = 5  # fewer validation predictions of a label than this: use the task-level threshold


def precision_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, min_support: int = MIN_SUPPORT
) -> float | None:
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
) -> TaskPolicy:
    """Per-label and per-group thresholds for one task from validation probabilities (``None``: no
    threshold reaches ``target_precision``, that label or group is never decided)."""
    probs = np.asarray(probs)
    y = np.asarray(y_true, dtype=object)
    top = probs.argmax(axis=1)
    pred = np.asarray(classes, dtype=object)[top]
    conf = probs.max(axis=1)
    correct = pred == y
    found = precision_threshold(conf, correct, target_precision, min_support=1)
    task_threshold = round(found, 6) if found is not None else None  # None: never reached, abstain
    thresholds: dict[str, float | None] = {}
    for label in classes:
        mask = pred == label
        t = precision_threshold(conf[mask], correct[mask], target_precision)
        thresholds[label] = round(t, 6) if t is not None else task_threshold
    group_thresholds: dict[str, float | None] = {}
    if task.groups:
        # the group fall-back only sees rows whose leaf was not decided: fit it on those
        label_policy = DecisionPolicy(
            tasks={
                task.name: TaskPolicy(
                    threshold=task_threshold, thresholds=thresholds, group_threshold=None, margin=margin
                )
            }
        )
        undecided = np.array([not decide(task, classes, row, label_policy).decided for row in probs])
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
            mask = (gpred == group) & undecided
            t = precision_threshold(gconf[mask], gpred[mask] == gtrue[mask], target_precision)
            group_thresholds[group] = round(t, 6) if t is not None else None
    return TaskPolicy(
        threshold=task_threshold,
        thresholds=thresholds,
        group_threshold=None,  # a group without its own threshold is never decided
        group_thresholds=group_thresholds,
        margin=margin,
    )


def coverage_report(
    task: Task, classes: list[str], probs: np.ndarray, y_true: list[str], policy: DecisionPolicy
) -> dict[str, Any]:
    """What the policy decides on labelled data: the share decided at label and group level and the
    precision of each (the number a contact centre cares about: how much it can auto-fill)."""
    n = len(y_true)
    label_hits = label_n = group_hits = group_n = 0
    for row, truth in zip(np.asarray(probs), y_true):
        d = decide(task, classes, row, policy)
        if d.level == "label":
            label_n += 1
            label_hits += d.label == truth
        elif d.level == "group":
            group_n += 1
            group_hits += d.label == task.group_of(truth)
    return {
        "n": n,
        "label_coverage": label_n / n if n else 0.0,
        "label_precision": label_hits / label_n if label_n else None,
        "group_coverage": group_n / n if n else 0.0,
        "group_precision": group_hits / group_n if group_n else None,
        "abstained": (n - label_n - group_n) / n if n else 0.0,
    }


def coverage_curve(
    probs: np.ndarray, y_true: list[str], classes: list[str], points: int = 50
) -> dict[str, list[float]]:
    """Accuracy of the decided rows against the share decided, sweeping one global threshold."""
    probs = np.asarray(probs)
    conf = probs.max(axis=1)
    correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(y_true, dtype=object)
    order = np.argsort(-conf, kind="stable")
    cum = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    idx = np.unique(np.linspace(0, len(order) - 1, num=min(points, len(order))).astype(int))
    return {
        "coverage": ((idx + 1) / len(order)).tolist(),
        "accuracy": cum[idx].tolist(),
        "threshold": conf[order][idx].tolist(),
    }


def cross_fitted_coverage(
    task: Task,
    classes: list[str],
    probs: np.ndarray,
    y_true: list[str],
    groups: list[str],
    *,
    target_precision: float = 0.9,
    margin: float = 0.0,
) -> dict[str, Any]:
    """Coverage measured honestly: thresholds chosen on one half of the groups are applied to the
    other half and the other way round; the two halves' counts are pooled."""
    probs = np.asarray(probs)
    unique = sorted(set(groups))
    half = {g: i % 2 for i, g in enumerate(np.random.default_rng(0).permutation(unique).tolist())}
    side = np.array([half[g] for g in groups])
    totals = {"n": 0, "label": 0, "label_hits": 0.0, "group": 0, "group_hits": 0.0}
    for fit_side in (0, 1):
        fit_idx, eval_idx = np.where(side == fit_side)[0], np.where(side != fit_side)[0]
        if len(fit_idx) == 0 or len(eval_idx) == 0:
            continue
        policy = fit_policy(
            task,
            classes,
            probs[fit_idx],
            [y_true[i] for i in fit_idx],
            target_precision=target_precision,
            margin=margin,
        )
        rep = coverage_report(
            task, classes, probs[eval_idx], [y_true[i] for i in eval_idx], DecisionPolicy(tasks={task.name: policy})
        )
        n = rep["n"]
        totals["n"] += n
        totals["label"] += rep["label_coverage"] * n
        totals["label_hits"] += (rep["label_precision"] or 0.0) * rep["label_coverage"] * n
        totals["group"] += rep["group_coverage"] * n
        totals["group_hits"] += (rep["group_precision"] or 0.0) * rep["group_coverage"] * n
    n = totals["n"] or 1
    return {
        "n": totals["n"],
        "label_coverage": totals["label"] / n,
        "label_precision": totals["label_hits"] / totals["label"] if totals["label"] else None,
        "group_coverage": totals["group"] / n,
        "group_precision": totals["group_hits"] / totals["group"] if totals["group"] else None,
        "abstained": 1 - (totals["label"] + totals["group"]) / n,
        "method": "thresholds fitted on one half of the groups, measured on the other (both ways)",
    }
