"""Classification metrics over ranked probabilities: plain functions over arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: the weighted mean |accuracy - confidence| over equal-width bins."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def task_metrics(y_true: list[str], classes: list[str], probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over labels present in y_true), top-3, ECE, per-class P/R/F1, confusion."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked = np.asarray(classes, dtype=object)[order]
    y_true_arr = np.asarray(y_true, dtype=object)
    y_pred = ranked[:, 0]
    correct = y_pred == y_true_arr
    top3 = np.array([t in r[:3] for t, r in zip(y_true_arr, ranked)])
    present = [label for label in labels if label in set(y_true)]
    p, r, f, s = precision_recall_fscore_support(y_true_arr, y_pred, labels=present, zero_division=0)
    per_class = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(present)
    }
    cm_labels = [label for label in labels if label in set(y_true) | set(y_pred.tolist())]
    cm = confusion_matrix(y_true_arr, y_pred, labels=cm_labels)
    return {
        "n": int(len(y_true)),
        "accuracy": float(correct.mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true_arr, y_pred, labels=present, average="macro", zero_division=0)),
        "top3_accuracy": float(top3.mean()) if len(y_true) else float("nan"),
        "ece": expected_calibration_error(probs.max(axis=1), correct),
        "per_class": per_class,
        "confusion": {"labels": cm_labels, "matrix": cm.tolist()},
    }


CALIBRATION_TOLERANCE = 0.01  # ECE may move this much by noise before calibration is called worse
FOLD_METRICS = ("accuracy", "macro_f1", "top3_accuracy", "ece")


def flag_calibration(report: dict[str, Any]) -> list[str]:
    """Mark tasks whose calibration made the expected calibration error worse (``calibration_worse``)
    and return a warning for each: calibration is meant to lower it."""
    warnings = []
    for task, m in report.get("tasks", {}).items():
        before, after = m.get("ece_uncalibrated"), m.get("ece")
        if before is None or after is None or before != before or after != after:
            continue
        m["calibration_worse"] = bool(after > before + CALIBRATION_TOLERANCE)
        if m["calibration_worse"]:
            warnings.append(
                f"{task}: calibration made the confidences worse (ECE {before:.3f} before, {after:.3f} after); "
                "the confidences and thresholds of this task are not to be trusted: the calibration folds are "
                "too small or unlike these rows (more rows per label, or model.params.calibration=sigmoid)"
            )
    return warnings


def fold_summary(per_fold: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per task and metric: mean, std (population) and the values, over the folds that had the task."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    tasks = dict.fromkeys(t for fold in per_fold for t in fold)
    for task in tasks:
        out[task] = {}
        for name in FOLD_METRICS:
            values = [
                fold[task][name] for fold in per_fold if task in fold and fold[task].get(name) == fold[task].get(name)
            ]
            if values:
                out[task][name] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "values": [round(float(v), 4) for v in values],
                }
    return out


def format_table(report: dict[str, Any]) -> str:
    """A readable text table of the per-task summary and per-class figures."""
    lines = []
    split = report.get("split")
    if split:
        by = split.get("group_by", "?")
        lines.append(
            f"split: {'ROW BY ROW (no group column)' if by == 'row' else f'grouped by {by!r}'}, "
            f"{split.get('groups', '?')} groups" + (f", {report['folds']} folds" if "folds" in report else "")
        )
    for task, m in report["tasks"].items():
        lines.append(
            f"== {task}: n={m['n']}  accuracy={m['accuracy']:.3f}  macro-F1={m['macro_f1']:.3f}  "
            f"top-3={m['top3_accuracy']:.3f}  ECE={m['ece']:.3f}"
            + (f" (before calibration {m['ece_uncalibrated']:.3f})" if "ece_uncalibrated" in m else "")
            + ("  << CALIBRATION MADE ECE WORSE" if m.get("calibration_worse") else "")
        )
        folds = (report.get("per_fold_summary") or {}).get(task)
        if folds:
            lines.append(
                "   per fold (mean ± std over "
                + str(len(next(iter(folds.values()))["values"]))
                + " folds): "
                + "  ".join(f"{name}={v['mean']:.3f} ± {v['std']:.3f}" for name, v in folds.items())
            )
        unseen = m.get("unseen_labels")
        if unseen:
            lines.append(
                f"   {sum(unseen.values())} rows carry {len(unseen)} label(s) the model was not trained on, "
                f"scored as errors: " + ", ".join(f"{label!r} ({n})" for label, n in unseen.items())
            )
        cov = m.get("coverage")
        if cov:
            lp = "-" if cov["label_precision"] is None else f"{cov['label_precision']:.3f}"
            gp = "-" if cov["group_precision"] is None else f"{cov['group_precision']:.3f}"
            lines.append(
                f"   decided: label {cov['label_coverage']:.1%} (precision {lp}), group {cov['group_coverage']:.1%} "
                f"(precision {gp}), abstained {cov['abstained']:.1%}"
            )
        width = max([len(label) for label in m["per_class"]] + [5])
        lines.append(f"  {'label'.ljust(width)}  prec   rec    f1     n")
        for label, c in m["per_class"].items():
            lines.append(
                f"  {label.ljust(width)}  {c['precision']:.3f}  {c['recall']:.3f}  {c['f1']:.3f}  {c['support']:>4}"
            )
        lines.append("")
    for text in report.get("warnings", []):
        lines.append(f"WARNING: {text}")
    return "\n".join(lines)
