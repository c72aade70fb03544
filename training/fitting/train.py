"""``podskazka train``: grouped split, fit, evaluate on the held-out groups, refit, write the bundle."""

from __future__ import annotations

import logging
import subprocess
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from model.assist.adjust import adjust_task
from model.assist.decision import DecisionPolicy, TaskPolicy
from model.assist.macros import MacroRanker
from model.conversation.taxonomy import load_taxonomy
from model.errors import ConfigError
from model.kinds.registry import model_class
from model.storage.bundle import Bundle, save_bundle
from model.storage.manifest import Manifest
from training.data.augment import augment
from training.data.load import LoadedData, load_data
from training.evaluation.evaluate import evaluate_model
from training.evaluation.metrics import flag_calibration
from training.fitting.config import TrainConfig
from training.fitting.decision import cross_fitted_coverage, fit_policy

log = logging.getLogger(__name__)

# what a trained bundle's manifest records before save_bundle adds its contents, in this order
TRAINED_KEYS = ("model_id", "created_at", "git_revision", "config", "training_data", "metrics", "warnings")


def fit_bundle(data: LoadedData, config: TrainConfig, taxonomy, rows: list[int] | None = None) -> Bundle:
    """Fit a model and its macro statistics on the given rows (all when ``None``)."""
    interactions = data.interactions if rows is None else [data.rows[i].interaction for i in rows]
    interactions = augment(interactions, config.augment, taxonomy)
    tasks = _tasks(config, taxonomy)
    domains = {name: task.domain or name for name, task in taxonomy.tasks.items()}
    cls = model_class(config.model.kind)
    model = cls(cls.config_class(**config.model.params)).fit(interactions, tasks, domains)
    macros = MacroRanker().fit(interactions, model.tasks, taxonomy)
    return Bundle(model=model, macros=macros, taxonomy=taxonomy)


def grouped_split(data: LoadedData, test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """Sorted row indices ``(fit, held_out)``, whole groups on one side (about ``test_size`` of the groups
    held out, deterministic for ``seed``); no held-out rows when ``test_size`` is 0 or there are under 10 rows."""
    n = len(data.rows)
    if test_size <= 0 or n < 10:
        return list(range(n)), []
    groups = np.array([r.group for r in data.rows])
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros(n), groups=groups))
    return sorted(train.tolist()), sorted(test.tolist())


def train(data_paths: list[str], out_dir: str | Path, config: TrainConfig) -> Bundle:
    """``podskazka train``: read the data, fit on the split's fitting side, choose the thresholds and
    measure on the held-out groups, fit the final model (all rows with ``refit_full``), and write the bundle
    with its manifest to ``out_dir``. Returns the saved bundle; raises TaxonomyError, DataError or
    ConfigError when the taxonomy, the data or the config's tasks are unusable."""
    taxonomy_path = Path(config.taxonomy)
    taxonomy = load_taxonomy(taxonomy_path)
    data = load_data(
        data_paths,
        taxonomy,
        column_map=config.column_map,
        group_by=config.split.group_by,
        taxonomy_source=taxonomy_path,
    )
    log.info("read %d rows from %d file(s)", len(data.rows), len(data.files))
    warnings = list(data.warnings)
    train_rows, test_rows = grouped_split(data, config.split.test_size, config.split.seed)
    metrics: dict[str, Any] = {}
    decision = DecisionPolicy(target_precision=config.decision.target_precision, margin=config.decision.margin)
    if test_rows:
        log.info(
            "fitting on %d rows, evaluating on %d held-out rows (%s)",
            len(train_rows),
            len(test_rows),
            f"grouped by {data.group_key!r}, {data.n_groups} groups"
            if data.group_key
            else "split ROW BY ROW: no group column",
        )
        held_out = fit_bundle(data, config, taxonomy, train_rows)
        test_interactions = [data.rows[i].interaction for i in test_rows]
        decision = replace(decision, tasks=choose_policy(held_out, test_interactions, config))
        metrics = evaluate_model(held_out, test_interactions, policy=decision)
        test_groups = [data.rows[i].group for i in test_rows]
        for task, task_metrics in metrics["tasks"].items():
            task_metrics.pop("worst_errors", None)  # row texts do not belong in a manifest
            task_metrics.pop("coverage_curve", None)
            # the policy was chosen on these rows: report coverage cross-fitted instead
            idx = [k for k, x in enumerate(test_interactions) if task in x.labels]
            classes, probs = held_out.model.predict_proba([test_interactions[k] for k in idx], [task])[0][task]
            task_metrics["coverage"] = cross_fitted_coverage(
                taxonomy.tasks[task],
                classes,
                probs,
                [test_interactions[k].labels[task] for k in idx],
                [test_groups[k] for k in idx],
                target_precision=config.decision.target_precision,
                margin=config.decision.margin,
            )
        metrics["split"] = {"train_rows": len(train_rows), "test_rows": len(test_rows), **data.split_info()}
        warnings += flag_calibration(metrics)
        metrics["warnings"] = warnings
    final_rows = None if (config.refit_full or not test_rows) else train_rows
    log.info("fitting the final model on %d rows", len(data.rows) if final_rows is None else len(final_rows))
    bundle = fit_bundle(data, config, taxonomy, final_rows)
    bundle.decision = replace(decision, train_priors=training_priors(bundle, data, config, final_rows))
    created = datetime.now(UTC)
    bundle.manifest = Manifest(  # the provenance; save_bundle stamps what the saved files are
        model_id=f"podskazka-{config.model.kind}-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        created_at=created.isoformat(timespec="seconds"),
        git_revision=_git_revision(),
        config=config.to_dict(),
        training_data={"files": data.files, "rows": len(data.rows), "sha256": data.fingerprint()},
        metrics={"holdout": metrics} if metrics else {},
        warnings=warnings,
        key_order=TRAINED_KEYS,  # git_revision is written (null) outside a git checkout too
    )
    save_bundle(bundle, out_dir, taxonomy_path)
    log.info("wrote %s (%s)", out_dir, bundle.model_id)
    return bundle


def choose_policy(bundle: Bundle, interactions, config: TrainConfig) -> dict[str, TaskPolicy]:
    """Per-task thresholds reaching the target precision on held-out rows (see training/fitting/decision.py)."""
    policies = {}
    for task in bundle.model.tasks:
        rows = [x for x in interactions if task in x.labels]
        if not rows:
            continue
        classes, probs = bundle.model.predict_proba(rows, [task])[0][task]
        probs = adjust_task(bundle.taxonomy, task, classes, probs, rows, None)  # the evidence rule, as served
        policies[task] = fit_policy(
            bundle.taxonomy.tasks[task],
            classes,
            probs,
            [x.labels[task] for x in rows],
            target_precision=config.decision.target_precision,
            margin=config.decision.margin,
        )
    return policies


def training_priors(
    bundle: Bundle, data: LoadedData, config: TrainConfig, rows: list[int] | None
) -> dict[str, dict[str, float]]:
    """The label prior each head was fitted under: uniform for class-balanced heads, else the training
    label mix (``model/assist/adjust.py`` divides by it when a centre's own priors are applied)."""
    out = {}
    chosen = data.rows if rows is None else [data.rows[i] for i in rows]
    balanced = config.model.params.get("class_weight", "balanced") == "balanced"
    for task, classes in bundle.model.task_classes.items():
        if balanced:
            out[task] = {c: round(1.0 / len(classes), 6) for c in classes}
            continue
        labels = [r.interaction.labels[task] for r in chosen if task in r.interaction.labels]
        out[task] = {c: round(labels.count(c) / max(len(labels), 1), 6) for c in classes}
    return out


def _tasks(config: TrainConfig, taxonomy) -> list[str]:
    tasks = config.tasks or list(taxonomy.task_names)
    unknown = [t for t in tasks if t not in taxonomy.tasks]
    if unknown:
        raise ConfigError(f"config.tasks names unknown tasks {unknown}; the taxonomy has {list(taxonomy.task_names)}")
    return tasks


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
