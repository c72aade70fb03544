"""An evaluation report folder: metrics JSON, a Markdown summary, PNG plots and the worst errors.

report/
  metrics.json            everything evaluate computed
  summary.md              the readable table, coverage and calibration per task
  confusion_<task>.png    confusion matrix (row-normalised)
  reliability_<task>.png  reliability diagram (confidence vs accuracy)
  coverage_<task>.png     accuracy of decided rows vs share decided
  worst_errors.jsonl      the most confident mistakes, for a person to read
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation.metrics import format_table


def _slug(task: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in task)


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write an ``evaluate_model`` report as the folder described above (created if needed, files
    overwritten) and return the folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with open(out / "worst_errors.jsonl", "w", encoding="utf-8") as fh:
        for task, m in report["tasks"].items():
            for err in m.get("worst_errors", []):
                fh.write(json.dumps({"task": task, **err}, ensure_ascii=False) + "\n")
    lines = [f"# Evaluation of {report.get('model_id')}", "", "```", format_table(report), "```", ""]
    for task, m in report["tasks"].items():
        slug = _slug(task)
        _confusion_plot(plt, m, task, out / f"confusion_{slug}.png")
        if "reliability" in m:
            _reliability_plot(plt, m, task, out / f"reliability_{slug}.png")
        if "coverage_curve" in m:
            _coverage_plot(plt, m, task, out / f"coverage_{slug}.png")
        lines += [
            f"## {task}",
            "",
            f"![confusion](confusion_{slug}.png)",
            f"![reliability](reliability_{slug}.png)",
            f"![coverage](coverage_{slug}.png)",
            "",
        ]
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    return out


def _confusion_plot(plt, m, task, path):
    labels = m["confusion"]["labels"]
    matrix = np.asarray(m["confusion"]["matrix"], dtype=float)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 2, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{task}: confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reliability_plot(plt, m, task, path):
    rel = m["reliability"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    pts = [(c, a) for c, a in zip(rel["confidence"], rel["accuracy"]) if c is not None]
    if pts:
        ax.plot(*zip(*pts), "o-", label=f"model (ECE {m['ece']:.3f})")
    ax.set_xlabel("confidence of the top label")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{task}: reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _coverage_plot(plt, m, task, path):
    curve = m["coverage_curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(curve["coverage"], curve["accuracy"], "-", label="decided rows")
    cov = m.get("coverage") or {}
    if cov.get("label_precision") is not None:
        ax.plot([cov["label_coverage"]], [cov["label_precision"]], "o", color="red", label="policy")
    ax.set_xlabel("share of interactions decided")
    ax.set_ylabel("accuracy of decided")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{task}: coverage vs accuracy")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
