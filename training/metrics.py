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
    p, r, f, s = precision_recall_fscore_support(
        y_true_arr, y_pred, labels=present, zero_division=0
    )
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


def format_table(report: dict[str, Any]) -> str:
    """A readable text table of the per-task summary and per-class figures."""
    lines = []
    for task, m in report["tasks"].items():
        lines.append(
            f"== {task}: n={m['n']}  accuracy={m['accuracy']:.3f}  macro-F1={m['macro_f1']:.3f}  "
            f"top-3={m['top3_accuracy']:.3f}  ECE={m['ece']:.3f}"
            + (f" (before calibration {m['ece_uncalibrated']:.3f})" if "ece_uncalibrated" in m else "")
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
    return "\n".join(lines)
