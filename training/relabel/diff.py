"""The diff report of a re-labelling job: per task how many labels changed, and old → new counts,
as JSON (for tools) and Markdown (for the review of a taxonomy or model change before it is applied)."""

from __future__ import annotations

from typing import Any

MAX_PAIRS_SHOWN = 50
TASK_COUNTS = ("compared", "changed", "abstained")  # the counts of one task's stats, summed over chunks


def empty_task_stats() -> dict[str, Any]:
    """One task's stats before any row: the :data:`TASK_COUNTS` at 0, new labels and old → new pairs empty."""
    return {**dict.fromkeys(TASK_COUNTS, 0), "new": {}, "transitions": {}}


def diff_report(totals: dict[str, Any], *, model_version: str, tasks: list[str], output: str) -> dict[str, Any]:
    """The job's diff.json from the chunk counts summed over the job: rows read, labelled and rejected (by
    reason), and per task the rows compared, changed (and share), abstained, new labels, old → new pairs
    (most frequent first) and old labels the model's taxonomy lacks."""
    report = {
        "model_version": model_version,
        "output": output,
        "rows": totals.get("rows", 0),
        "labelled": totals.get("labelled", 0),
        "rejected": totals.get("rejected", 0),
        "rejected_by_reason": dict(sorted(totals.get("reasons", {}).items())),
        "tasks": {},
    }
    unknown_old = totals.get("unknown_old", {})
    for task in tasks:
        stats = totals.get("tasks", {}).get(task, empty_task_stats())
        pairs = [
            {"old": old, "new": new, "count": n}
            for old, news in stats["transitions"].items()
            for new, n in news.items()
        ]
        pairs.sort(key=lambda p: (-p["count"], p["old"], p["new"]))
        report["tasks"][task] = {
            "compared": stats["compared"],
            "changed": stats["changed"],
            "changed_share": round(stats["changed"] / stats["compared"], 4) if stats["compared"] else None,
            "abstained": stats["abstained"],
            "new_labels": dict(sorted(stats["new"].items(), key=lambda kv: (-kv[1], kv[0]))),
            "old_to_new": pairs,
            # old labels the model's taxonomy lacks (training would refuse them): rows, per label
            "unknown_old_labels": dict(sorted(unknown_old.get(task, {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    return report


def diff_markdown(report: dict[str, Any]) -> str:
    """``diff_report`` as the job's diff.md for a reviewer: the per-task summary table, the old labels
    outside the taxonomy, and per task the changed old → new pairs (at most :data:`MAX_PAIRS_SHOWN`)."""
    lines = [
        f"# Re-labelling diff — model `{report['model_version']}`",
        "",
        f"Rows read: {report['rows']:,}; labelled: {report['labelled']:,}; rejected: {report['rejected']:,}"
        + (
            " (" + ", ".join(f"{k}: {v:,}" for k, v in report["rejected_by_reason"].items()) + ")"
            if report["rejected_by_reason"]
            else ""
        ),
        "",
        "| task | rows with an old label | changed | share | abstained |",
        "|---|---:|---:|---:|---:|",
    ]
    for task, t in report["tasks"].items():
        share = "—" if t["changed_share"] is None else f"{t['changed_share']:.1%}"
        lines.append(f"| {task} | {t['compared']:,} | {t['changed']:,} | {share} | {t['abstained']:,} |")
    for task, t in report["tasks"].items():
        if t.get("unknown_old_labels"):
            lines += [
                "",
                f"**{task}: {sum(t['unknown_old_labels'].values()):,} rows carry old labels that are not in the "
                "model's taxonomy** (training would refuse them; they count as changed): "
                + ", ".join(f"{_cell(label)} ({n:,})" for label, n in t["unknown_old_labels"].items()),
            ]
    for task, t in report["tasks"].items():
        changed = [p for p in t["old_to_new"] if p["old"] != p["new"]]
        lines += ["", f"## {task}: old → new", ""]
        if not changed:
            lines.append("No label changed." if t["compared"] else "The input carries no old label for this task.")
            continue
        lines += ["| old | new | rows |", "|---|---|---:|"]
        lines += [f"| {_cell(p['old'])} | {_cell(p['new'])} | {p['count']:,} |" for p in changed[:MAX_PAIRS_SHOWN]]
        if len(changed) > MAX_PAIRS_SHOWN:
            lines.append(f"\n… and {len(changed) - MAX_PAIRS_SHOWN} more pairs in diff.json")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
