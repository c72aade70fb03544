"""Cross-validation grouped by scenario: every row is predicted by a model that never saw its group."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from model.taxonomy import load_taxonomy
from training.config import TrainConfig
from training.data import load_data
from training.metrics import task_metrics
from training.train import fit_bundle

log = logging.getLogger(__name__)


def cross_validate(data_paths: list[str], config: TrainConfig, folds: int = 5) -> dict[str, Any]:
    taxonomy = load_taxonomy(config.taxonomy)
    data = load_data(data_paths, taxonomy, column_map=config.column_map, group_by=config.split.group_by)
    groups = np.array([r.group for r in data.rows])
    tasks = config.tasks or list(taxonomy.task_names)
    oof: dict[str, dict[int, np.ndarray]] = {t: {} for t in tasks}
    classes_of: dict[str, list[str]] = {t: list(taxonomy.tasks[t].labels) for t in tasks}
    splitter = GroupKFold(n_splits=folds)
    for k, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(groups)), groups=groups), 1):
        log.info("fold %d/%d: %d train rows, %d test rows", k, folds, len(train_idx), len(test_idx))
        bundle = fit_bundle(data, config, taxonomy, sorted(train_idx.tolist()))
        test_rows = [int(i) for i in test_idx]
        probs, _ = bundle.model.predict_proba([data.rows[i].interaction for i in test_rows], bundle.model.tasks)
        for task, (classes, p) in probs.items():
            index = {c: j for j, c in enumerate(classes)}
            for row_pos, i in enumerate(test_rows):
                if task in data.rows[i].interaction.labels:
                    full = np.zeros(len(classes_of[task]))
                    for j, label in enumerate(classes_of[task]):
                        if label in index:
                            full[j] = p[row_pos, index[label]]
                    oof[task][i] = full
    report: dict[str, Any] = {"folds": folds, "group_by": config.split.group_by, "tasks": {}}
    for task in tasks:
        rows = sorted(oof[task])
        if not rows:
            continue
        y = [data.rows[i].interaction.labels[task] for i in rows]
        report["tasks"][task] = task_metrics(y, classes_of[task], np.stack([oof[task][i] for i in rows]),
                                             classes_of[task])
    return report
