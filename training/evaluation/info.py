"""``podskazka info BUNDLE``: a model card read from the bundle's ``manifest.json`` alone.

No model is loaded and nothing heavy is imported: the card is for a person deciding whether a bundle
fits their traffic (what it was trained on, how it scored on held-out groups, which labels it knows,
when it decides, what it is for and where it is weak).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.errors import BundleError
from model.storage.manifest import Manifest

WEAK_F1 = 0.5  # labels below this held-out F1 are listed under the limits
FEW_ROWS = 20  # held-out support under this makes a per-class figure a rough one


def read_card_manifest(bundle: str | Path) -> Manifest:
    """The bundle's manifest alone (its format checked; no model file is read)."""
    path = Path(bundle)
    manifest = path / "manifest.json"
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder; give the folder that `podskazka train --out` wrote")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is not a model bundle: manifest.json is missing") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest} cannot be read as JSON: {exc}") from None
    return Manifest.from_dict(data, where=str(manifest))


def model_card(manifest: Manifest) -> dict[str, Any]:
    """The card as data (``--json``): each section from the manifest, plus the limits it implies. A
    threshold no confidence reaches (the level never decides) is ``None``."""
    holdout = (manifest.metrics or {}).get("holdout") or {}
    split = holdout.get("split") or {}
    tasks = manifest.tasks
    decision = manifest.decision
    config = manifest.config or {}
    metrics = {}
    limits: list[str] = list(manifest.warnings or [])
    for task, m in (holdout.get("tasks") or {}).items():
        cov = m.get("coverage") or {}
        metrics[task] = {k: m.get(k) for k in ("n", "accuracy", "macro_f1", "top3_accuracy", "ece", "ece_uncalibrated")}
        metrics[task].update(
            {f"decided_{k}": cov.get(k) for k in ("label_coverage", "label_precision", "group_coverage", "abstained")}
        )
        weak = sorted((c["f1"], label) for label, c in (m.get("per_class") or {}).items() if c.get("f1", 1) < WEAK_F1)
        if weak:
            limits.append(
                f"{task}: weak on "
                + ", ".join(f"{label!r} (F1 {f1:.2f})" for f1, label in weak[:8])
                + (f" and {len(weak) - 8} more" if len(weak) > 8 else "")
            )
        few = [label for label, c in (m.get("per_class") or {}).items() if c.get("support", FEW_ROWS) < FEW_ROWS]
        if few:
            limits.append(f"{task}: {len(few)} label(s) had under {FEW_ROWS} held-out rows; their figures are rough")
        if (
            m.get("ece_uncalibrated") is not None
            and m.get("ece") is not None
            and m["ece"] > m["ece_uncalibrated"] + 0.01
        ):
            text = f"{task}: calibration made the ECE worse ({m['ece_uncalibrated']:.3f} -> {m['ece']:.3f})"
            if not any(text.split(" (")[0] in w and "calibration" in w for w in limits):
                limits.append(text)
    if split.get("group_by") == "row" and not any("ONE BY ONE" in w for w in limits):
        limits.append("the held-out rows were split one by one (no group column): the metrics are optimistic")
    if not holdout:
        limits.append("no held-out metrics (split.test_size 0 or under 10 rows): evaluate it on labelled data first")
    dropped = manifest.weights.get("dropped_labels") or {}
    for task, labels in dropped.items():
        if labels:
            limits.append(f"{task}: labels without training rows are never predicted: {labels}")
    thresholds = {}
    for task, policy in decision.tasks.items():
        reached = [t for t in policy.thresholds.values() if t is not None]
        thresholds[task] = {
            "task_threshold": policy.threshold,
            "label_thresholds": len(policy.thresholds),
            "label_threshold_range": [min(reached), max(reached)] if reached else None,
            "labels_never_decided": len(policy.thresholds) - len(reached),
            "group_threshold": policy.group_threshold,
            "groups_with_own_threshold": sum(t is not None for t in policy.group_thresholds.values()),
        }
    data = manifest.training_data or {}
    return {
        "model_id": manifest.model_id,
        "kind": manifest.model_kind,
        "created_at": manifest.created_at,
        "git_revision": manifest.git_revision,
        "libraries": manifest.libraries,
        "data": {
            "rows": data.get("rows"),
            "files": [{"path": f.get("path"), "rows": f.get("rows")} for f in data.get("files") or []],
            "sha256": data.get("sha256"),
            "split": split,
        },
        "metrics": metrics,
        "taxonomy": {
            **(manifest.taxonomy.to_dict() if manifest.taxonomy is not None else {}),
            "source": config.get("taxonomy"),
            "tasks": {t: len(labels) for t, labels in tasks.items()},
        },
        "labels": tasks,
        "thresholds": {
            "target_precision": decision.target_precision,
            "margin": decision.margin,
            "tasks": thresholds,
        },
        "intended_use": (
            "Ranked label suggestions with calibrated confidences for a person handling a contact-centre "
            f"conversation (tasks: {', '.join(tasks) or '—'}); a decision is made only when the confidence "
            f"reaches the threshold fitted for precision {decision.target_precision or '—'} on held-out "
            "groups, otherwise the model abstains. Also batch re-labelling of history for review."
        ),
        "not_for": (
            "Unreviewed automatic actions on a customer; text unlike the training data (other domains, other "
            "languages) without evaluating on it first (`podskazka evaluate`); labels outside its taxonomy."
        ),
        "limits": limits,
    }


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _threshold(value: float | None) -> str:
    """A threshold, or "never" for one no confidence reaches."""
    return "never" if value is None else _f(value)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"


def format_card(card: dict[str, Any]) -> str:
    """The model card of ``model_card`` as the Markdown ``podskazka info`` prints: data and split, held-out
    metrics per task, taxonomy, thresholds, intended use and limits."""
    d = card["data"]
    split = d["split"]
    lines = [
        f"# Model card: {card['model_id']}",
        "",
        f"kind {card['kind']}; created {card['created_at']}; git {card['git_revision']}",
        "libraries: " + ", ".join(f"{k} {v}" for k, v in (card.get("libraries") or {}).items()),
        "",
        "## Data",
        f"{d['rows']} training rows from {len(d['files'])} file(s) (fingerprint {str(d['sha256'])[:12]}…)",
    ]
    lines += [f"- {f['path']}: {f['rows']} rows" for f in d["files"][:10]]
    if len(d["files"]) > 10:
        lines.append(f"- … and {len(d['files']) - 10} more files")
    if split:
        by = split.get("group_by")
        lines.append(
            f"held-out split: {split.get('train_rows')} fitting rows, {split.get('test_rows')} held-out rows, "
            + ("ROW BY ROW (no group column)" if by == "row" else f"grouped by {by!r}")
            + (f" ({split['groups']} groups)" if split.get("groups") else "")
        )
    lines += ["", "## Metrics (held-out groups, before the final refit on all rows)"]
    if card["metrics"]:
        lines += [
            "| task | n | accuracy | macro-F1 | top-3 | ECE (before calibration) | decided at label (precision) | abstained |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for task, m in card["metrics"].items():
            lines.append(
                f"| {task} | {m['n']} | {_f(m['accuracy'])} | {_f(m['macro_f1'])} | {_f(m['top3_accuracy'])} | "
                f"{_f(m['ece'])} ({_f(m['ece_uncalibrated'])}) | {_pct(m['decided_label_coverage'])} "
                f"({_f(m['decided_label_precision'])}) | {_pct(m['decided_abstained'])} |"
            )
    else:
        lines.append("none recorded")
    t = card["taxonomy"]
    lines += [
        "",
        "## Taxonomy",
        f"version {t.get('version')} (sha256 {str(t.get('sha256'))[:12]}…), from {t.get('source')}",
    ]
    for task, labels in card["labels"].items():
        shown = ", ".join(labels[:12]) + (f", … ({len(labels) - 12} more)" if len(labels) > 12 else "")
        lines.append(f"- {task} ({len(labels)} labels): {shown}")
    th = card["thresholds"]
    lines += ["", "## Thresholds", f"target precision {th['target_precision']}, near-tie margin {th['margin']}"]
    for task, p in th["tasks"].items():
        rng = p["label_threshold_range"]
        never = p.get("labels_never_decided")
        lines.append(
            f"- {task}: task threshold {_threshold(p['task_threshold'])}; {p['label_thresholds']} label thresholds"
            + (f" from {_f(rng[0])} to {_f(rng[1])}" if rng else "")
            + (f" ({never} never decided)" if never else "")
            + f"; group threshold {_threshold(p['group_threshold'])}"
            + (
                f" ({p['groups_with_own_threshold']} group(s) with their own)"
                if p.get("groups_with_own_threshold")
                else ""
            )
        )
    lines += ["", "## Intended use", card["intended_use"], "", "## Not for", card["not_for"], "", "## Limits"]
    lines += [f"- {text}" for text in card["limits"]] or ["- none recorded"]
    return "\n".join(lines) + "\n"
