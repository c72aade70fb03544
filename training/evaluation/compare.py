"""``podskazka compare A B --data``: the same metrics for two bundles, side by side, with paired
bootstrap confidence intervals on the difference (B − A), so a retrain is promoted on evidence."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import f1_score

from model.conversation.record import Interaction
from model.storage.bundle import Bundle
from training.evaluation.metrics import expected_calibration_error


class _Ranked(NamedTuple):
    """One bundle's answers on the rows of one task: top label, top three labels, top confidence."""

    top1: np.ndarray
    top3: np.ndarray
    confidence: np.ndarray


def _ranked(bundle: Bundle, rows: list[Interaction], task: str) -> _Ranked:
    classes, p = bundle.model.predict_proba(rows, [task])[0][task]
    order = np.argsort(-p, axis=1)
    ranked = np.asarray(classes, dtype=object)[order]
    return _Ranked(ranked[:, 0], ranked[:, :3], p.max(axis=1))


def _metrics(y: np.ndarray, answers: _Ranked, idx: np.ndarray, labels: list[str]) -> dict[str, float]:
    truth, predicted = y[idx], answers.top1[idx]
    correct = predicted == truth
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "top3_accuracy": float(np.mean([t in r for t, r in zip(truth, answers.top3[idx])])),
        "ece": expected_calibration_error(answers.confidence[idx], correct),
    }


def compare_models(
    a: Bundle, b: Bundle, interactions: list[Interaction], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Per task shared by both bundles: each one's metrics, B − A, and a paired bootstrap 95% CI with a verdict."""
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"a": a.model_id, "b": b.model_id, "n_boot": n_boot, "tasks": {}}
    for task in [t for t in a.model.tasks if t in b.model.tasks]:
        rows = [x for x in interactions if task in x.labels]
        if not rows:
            continue
        y = np.asarray([x.labels[task] for x in rows], dtype=object)
        labels = sorted(set(y.tolist()))
        answers_a, answers_b = _ranked(a, rows, task), _ranked(b, rows, task)
        every_row = np.arange(len(rows))
        metrics_a, metrics_b = _metrics(y, answers_a, every_row, labels), _metrics(y, answers_b, every_row, labels)
        diffs: dict[str, list[float]] = {k: [] for k in metrics_a}
        for _ in range(n_boot):
            sample = rng.integers(0, len(rows), size=len(rows))
            sample_a, sample_b = _metrics(y, answers_a, sample, labels), _metrics(y, answers_b, sample, labels)
            for k in diffs:
                diffs[k].append(sample_b[k] - sample_a[k])
        task_report = {}
        for k in metrics_a:
            lo, hi = np.percentile(diffs[k], [2.5, 97.5])
            better = (lo > 0) if k != "ece" else (hi < 0)
            worse = (hi < 0) if k != "ece" else (lo > 0)
            task_report[k] = {
                "a": metrics_a[k],
                "b": metrics_b[k],
                "diff": metrics_b[k] - metrics_a[k],
                "ci95": [float(lo), float(hi)],
                "verdict": "B better" if better else "B worse" if worse else "no significant difference",
            }
        report["tasks"][task] = {"n": len(rows), "metrics": task_report}
    return report


def format_comparison(report: dict[str, Any]) -> str:
    """The report of :func:`compare_models` as a table per task."""
    lines = [f"A = {report['a']}", f"B = {report['b']}", ""]
    for task, t in report["tasks"].items():
        lines.append(f"== {task} (n={t['n']})")
        lines.append(f"  {'metric':<14} {'A':>7} {'B':>7} {'B-A':>8}   95% CI            verdict")
        for k, m in t["metrics"].items():
            lines.append(
                f"  {k:<14} {m['a']:7.3f} {m['b']:7.3f} {m['diff']:+8.3f}   [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]  {m['verdict']}"
            )
        lines.append("")
    return "\n".join(lines)
