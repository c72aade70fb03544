"""``podskazka audit``: likely mislabelled rows in operator-labelled history, for a person to review.

Confident learning (cleanlab's ``find_label_issues``) on out-of-fold probabilities: a row is suspect
when a model that never saw it is confident in another label than the one given. The result is a
ranked list; the data is never changed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from training.evaluation.crossval import configured_data, out_of_fold
from training.evaluation.evaluate import readable_text
from training.fitting.config import TrainConfig

log = logging.getLogger(__name__)


def find_suspects(
    data_paths: list[str], config: TrainConfig, folds: int = 5, limit: int | None = None
) -> list[dict[str, Any]]:
    """Read the data with the config, fit ``folds`` cross-validation models and return the rows whose given
    label the unseen model doubts, most doubtful first (at most ``limit``; each with task, source, id, given
    and suggested label, their confidences and a shortened text). Raises TaxonomyError or DataError when the
    taxonomy or the data cannot be read."""
    taxonomy, data = configured_data(data_paths, config)
    oof = out_of_fold(data, config, taxonomy, folds)
    suspects = suspects_from_oof(data, oof)
    return suspects[:limit] if limit else suspects


def suspects_from_oof(data, oof) -> list[dict[str, Any]]:
    """Ranked suspects from out-of-fold probabilities (``training.evaluation.crossval.out_of_fold``)."""
    from cleanlab.filter import find_label_issues

    suspects = []
    for task, rows in oof.rows.items():
        classes = oof.classes[task]
        present = sorted({data.rows[i].interaction.labels[task] for i in rows}, key=classes.index)
        cols = [classes.index(c) for c in present]
        probs = oof.probs[task][:, cols]
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        labels = np.array([present.index(data.rows[i].interaction.labels[task]) for i in rows])
        issues = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
        for pos in issues:
            i = rows[int(pos)]
            row = data.rows[i]
            suggested = int(np.argmax(probs[pos]))
            suspects.append(
                {
                    "task": task,
                    "source": row.source,
                    "id": row.interaction.id,
                    "given": present[labels[pos]],
                    "suggested": present[suggested],
                    "self_confidence": round(float(probs[pos, labels[pos]]), 4),
                    "suggested_confidence": round(float(probs[pos, suggested]), 4),
                    "text": readable_text(row.interaction, 300),
                }
            )
    suspects.sort(key=lambda s: s["self_confidence"])
    return suspects
