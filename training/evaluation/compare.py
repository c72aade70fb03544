"""``podskazka compare A B --data``: the same metrics for two bundles, side by side, with paired
bootstrap confidence intervals on the difference (B − A), so a retrain is promoted on evidence."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from model.conversation.record import Interaction
from model.storage.bundle import Bundle
from training.evaluation.metrics import expected_calibration_error


def _per_row(bundle: Bundle, rows: list[Interaction], task: str):
    classes, p = bundle.model.predict_proba(rows, [task])[0][task]
    order = np.argsort(-p, axis=1)
    ranked = np.asarray(classes, dtype=object)[order]
    return ranked[:, 0], ranked[:, :3], p.max(axis=1)


def _metrics(y, pred, top3, conf, idx, labels) -> dict[str, float]:
    yt, yp = y[idx], pred[idx]
    correct = yp == yt
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        "top3_accuracy": float(np.mean([t in r for t, r in zip(yt, top3[idx])])),
        "ece": expected_calibration_error(conf[idx], correct),
    }


def compare_models(
    a: Bundle, b: Bundle, interactions: list[Interaction], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"a": a.model_id, "b": b.model_id, "n_boot": n_boot, "tasks": {}}
    for task in [t for t in a.model.tasks if t in b.model.tasks]:
        rows = [x for x in interactions if task in x.labels]
        if not rows:
            continue
        y = np.asarray([x.labels[task] for x in rows], dtype=object)
        labels = sorted(set(y.tolist()))
        pa, ta, ca = _per_row(a, rows, task)
        pb, tb, cb = _per_row(b, rows, task)
        full = np.arange(len(rows))
        ma, mb = _metrics(y, pa, ta, ca, full, labels), _metrics(y, pb, tb, cb, full, labels)
        diffs = {k: [] for k in ma}
        for _ in range(n_boot):
            idx = rng.integers(0, len(rows), size=len(rows))
            da, db = _metrics(y, pa, ta, ca, idx, labels), _metrics(y, pb, tb, cb, idx, labels)
            for k in diffs:
                diffs[k].append(db[k] - da[k])
        task_report = {}
        for k in ma:
            lo, hi = np.percentile(diffs[k], [2.5, 97.5])
            better = (lo > 0) if k != "ece" else (hi < 0)
            worse = (hi < 0) if k != "ece" else (lo > 0)
            task_report[k] = {
                "a": ma[k],
                "b": mb[k],
                "diff": mb[k] - ma[k],
                "ci95": [float(lo), float(hi)],
                "verdict": "B better" if better else "B worse" if worse else "no significant difference",
            }
        report["tasks"][task] = {"n": len(rows), "metrics": task_report}
    return report


def format_comparison(report: dict[str, Any]) -> str:
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
