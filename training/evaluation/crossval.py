"""Cross-validation grouped by scenario (or client_id; the report says which): every row is predicted by a
model that never saw its group. The report has the pooled out-of-fold figures and per-fold mean ± std."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from model.conversation.taxonomy import Taxonomy, load_taxonomy
from training.data.load import LoadedData, load_data
from training.evaluation.metrics import expected_calibration_error, flag_calibration, fold_summary, task_metrics
from training.fitting.config import TrainConfig
from training.fitting.decision import cross_fitted_coverage
from training.fitting.train import fit_bundle

log = logging.getLogger(__name__)


@dataclass
class OutOfFold:
    """Per task: the rows that carry its label, the taxonomy's classes, and out-of-fold probabilities."""

    rows: dict[str, list[int]]
    classes: dict[str, list[str]]
    probs: dict[str, np.ndarray]
    uncalibrated: dict[str, np.ndarray] | None = None
    per_fold: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # fold -> task -> metrics
    folds: int = 0


def out_of_fold(data: LoadedData, config: TrainConfig, taxonomy: Taxonomy, folds: int = 5) -> OutOfFold:
    """Fit one model per fold of a GroupKFold over the rows' groups and collect each row's probabilities
    from the model that never saw its group, plus per-fold metrics. With fewer groups than folds, uses one
    fold per group (at least 2) and logs a warning."""
    groups = np.array([r.group for r in data.rows])
    n_groups = len(set(groups.tolist()))
    if n_groups < folds:
        log.warning("%d groups for %d folds: using %d folds", n_groups, folds, max(2, n_groups))
        folds = max(2, n_groups)
    log.info(
        "%d-fold cross-validation %s",
        folds,
        f"grouped by {data.group_key!r} ({n_groups} groups)"
        if getattr(data, "group_key", None)
        else "ROW BY ROW (no group column)",
    )
    per_fold: list[dict[str, dict[str, Any]]] = []
    tasks = config.tasks or list(taxonomy.task_names)
    classes_of = {t: list(taxonomy.tasks[t].labels) for t in tasks}
    oof: dict[str, dict[int, np.ndarray]] = {t: {} for t in tasks}
    raw: dict[str, dict[int, np.ndarray]] = {t: {} for t in tasks}
    for k, (train_idx, test_idx) in enumerate(
        GroupKFold(n_splits=folds).split(np.zeros(len(groups)), groups=groups), 1
    ):
        log.info("fold %d/%d: %d train rows, %d test rows", k, folds, len(train_idx), len(test_idx))
        bundle = fit_bundle(data, config, taxonomy, sorted(train_idx.tolist()))
        test_rows = [int(i) for i in test_idx]
        test_interactions = [data.rows[i].interaction for i in test_rows]
        probs, _ = bundle.model.predict_proba(test_interactions, bundle.model.tasks)
        uncal = (
            bundle.model.predict_proba_uncalibrated(test_interactions, bundle.model.tasks)
            if hasattr(bundle.model, "predict_proba_uncalibrated")
            else {}
        )
        fold_metrics = {}
        for task, (classes, p) in probs.items():
            keep = [pos for pos, i in enumerate(test_rows) if task in data.rows[i].interaction.labels]
            if task in classes_of and keep:
                y = [data.rows[test_rows[pos]].interaction.labels[task] for pos in keep]
                m = task_metrics(y, list(classes), p[keep], classes_of[task])
                fold_metrics[task] = {k: m[k] for k in ("n", "accuracy", "macro_f1", "top3_accuracy", "ece")}
        per_fold.append(fold_metrics)
        for target, source in ((oof, probs), (raw, uncal)):
            for task, (classes, p) in source.items():
                if task not in target:
                    continue
                cols = [classes_of[task].index(c) for c in classes]
                for pos, i in enumerate(test_rows):
                    if task in data.rows[i].interaction.labels:
                        full = np.zeros(len(classes_of[task]))
                        full[cols] = p[pos]
                        target[task][i] = full
    rows = {t: sorted(v) for t, v in oof.items() if v}
    return OutOfFold(
        rows=rows,
        classes={t: classes_of[t] for t in rows},
        probs={t: np.stack([oof[t][i] for i in rows[t]]) for t in rows},
        uncalibrated={t: np.stack([raw[t][i] for i in rows[t]]) for t in rows if len(raw[t]) == len(rows[t])},
        per_fold=per_fold,
        folds=folds,
    )


def configured_data(data_paths: list[str], config: TrainConfig) -> tuple[Taxonomy, LoadedData]:
    """The config's taxonomy and the labelled rows read with its column map and split key."""
    taxonomy = load_taxonomy(config.taxonomy)
    data = load_data(
        data_paths,
        taxonomy,
        column_map=config.column_map,
        group_by=config.split.group_by,
        taxonomy_source=config.taxonomy,
    )
    return taxonomy, data


def cross_validate(data_paths: list[str], config: TrainConfig, folds: int = 5) -> dict[str, Any]:
    """``podskazka crossval``: read the data with the config and return the report: per task the pooled
    out-of-fold metrics (calibration before and after, cross-fitted coverage), the per-fold figures with
    mean ± std, the split it was grouped by, and the data and calibration warnings."""
    taxonomy, data = configured_data(data_paths, config)
    oof = out_of_fold(data, config, taxonomy, folds)
    split = data.split_info()
    report: dict[str, Any] = {
        "folds": oof.folds,
        "group_by": split["group_by"],
        "split": split,
        "rows": len(data.rows),
        "tasks": {},
    }
    for task, rows in oof.rows.items():
        y = [data.rows[i].interaction.labels[task] for i in rows]
        report["tasks"][task] = task_metrics(y, oof.classes[task], oof.probs[task], oof.classes[task])
        if oof.uncalibrated and task in oof.uncalibrated:
            u = oof.uncalibrated[task]
            correct = np.asarray(oof.classes[task], dtype=object)[u.argmax(axis=1)] == np.asarray(y, dtype=object)
            report["tasks"][task]["ece_uncalibrated"] = expected_calibration_error(u.max(axis=1), correct)
        report["tasks"][task]["coverage"] = cross_fitted_coverage(
            taxonomy.tasks[task],
            oof.classes[task],
            oof.probs[task],
            y,
            [data.rows[i].group for i in rows],
            target_precision=config.decision.target_precision,
            margin=config.decision.margin,
        )
    report["per_fold"] = oof.per_fold
    report["per_fold_summary"] = fold_summary(oof.per_fold)
    report["warnings"] = list(data.warnings) + flag_calibration(report)
    return report
