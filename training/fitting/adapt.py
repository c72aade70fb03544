"""``podskazka adapt``: a bundle adapted to a contact centre's own labelled traffic.

    podskazka adapt --model models/default --data labelled_real.csv --column text=body --column reason2=category --out models/adapted

1. **Audit** the centre's rows first (confident learning on out-of-fold probabilities, as ``podskazka
   audit``): likely label noise is reported (and written with ``--audit-out``), never changed.
2. **Cross-fitted before/after**: the real rows are split into folds by group (``client_id``, else
   ``id``); for each fold a model is trained on the corpus plus the other folds' real rows (repeated
   ``--weight`` times: a sample weight by repetition), priors are the other folds' label mix, and the
   fold is scored by the source bundle (before) and the adapted model (after). Only the tasks the real
   rows carry are fitted here.
3. **The adapted bundle**: the corpus plus every real row (weighted), priors from the real rows' label
   mix, decision thresholds fitted under those priors on the cross-fitted (out-of-fold) probabilities of
   the real rows; the report goes into the manifest (``adaptation``).

The feedback export (``GET /v1/feedback/export``) is labelled history in the record format, so
``export → adapt → serve`` is the operators' loop.
"""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from model.assist.adjust import adjust_task
from model.assist.decision import DecisionPolicy, PriorEntry
from model.conversation.taxonomy import load_taxonomy
from model.errors import DataError
from model.storage.bundle import Bundle, load_bundle, save_bundle
from model.storage.manifest import Manifest
from training.data.load import LoadedData, load_data
from training.evaluation.metrics import task_metrics
from training.fitting.config import TrainConfig
from training.fitting.decision import cross_fitted_coverage, fit_policy
from training.fitting.priors import label_frequencies, train_prior_of
from training.fitting.train import fit_bundle

log = logging.getLogger(__name__)

DEFAULT_CORPUS = "datasets/corpus"


def _weighted(corpus: LoadedData, real: LoadedData, real_rows: list[int], weight: int) -> LoadedData:
    rows = list(corpus.rows)
    for i in real_rows:
        rows += [real.rows[i]] * max(1, int(weight))
    return LoadedData(rows=rows, files=corpus.files + real.files)


def _probs(bundle, interactions, task: str, priors: PriorEntry | None) -> tuple[list[str], np.ndarray]:
    """The head's probabilities after the evidence rule and (when given) ``priors``."""
    classes, probs = bundle.model.predict_proba(interactions, [task])[0][task]
    policy = DecisionPolicy(priors={task: priors}) if priors is not None else None
    return classes, adjust_task(bundle.taxonomy, task, classes, probs, interactions, policy)


def _full(classes: list[str], probs: np.ndarray, labels: list[str]) -> np.ndarray:
    out = np.zeros((probs.shape[0], len(labels)))
    for j, c in enumerate(classes):
        out[:, labels.index(c)] = probs[:, j]
    return out


def cross_fitted(
    bundle,
    config: TrainConfig,
    corpus: LoadedData,
    real: LoadedData,
    *,
    folds: int = 5,
    weight: int = 3,
    seed: int = 13,
) -> dict[str, Any]:
    """Before/after on held-out real rows, and the out-of-fold adapted probabilities per task."""
    taxonomy = bundle.taxonomy
    tasks = [t for t in bundle.model.tasks if any(t in r.interaction.labels for r in real.rows)]
    if not tasks:
        raise DataError(f"the real rows carry no label of the model's tasks {bundle.model.tasks}")
    groups = np.array([r.group for r in real.rows])
    n_groups = len(set(groups.tolist()))
    folds = max(2, min(folds, n_groups))
    # shuffle the groups so that folds do not follow the file's order
    rng = np.random.default_rng(seed)
    perm = {g: k for k, g in enumerate(rng.permutation(sorted(set(groups.tolist()))))}
    keyed = np.array([perm[g] for g in groups])
    fold_config = copy.deepcopy(config)
    fold_config.tasks = tasks
    labels = {t: list(taxonomy.tasks[t].labels) for t in tasks}
    oof = {t: np.zeros((len(real.rows), len(labels[t]))) for t in tasks}
    before = {t: np.zeros((len(real.rows), len(labels[t]))) for t in tasks}
    fold_of = np.zeros(len(real.rows), dtype=int)
    for k, (train_idx, test_idx) in enumerate(GroupKFold(n_splits=folds).split(np.zeros(len(groups)), groups=keyed), 1):
        log.info(
            "adapt fold %d/%d: corpus + %d real rows (x%d), scoring %d", k, folds, len(train_idx), weight, len(test_idx)
        )
        fold_of[test_idx] = k
        adapted = fit_bundle(_weighted(corpus, real, train_idx.tolist(), weight), fold_config, taxonomy)
        for t in tasks:
            train_labels = [
                real.rows[i].interaction.labels[t] for i in train_idx if t in real.rows[i].interaction.labels
            ]
            test = [int(i) for i in test_idx if t in real.rows[i].interaction.labels]
            if not test:
                continue
            xs = [real.rows[i].interaction for i in test]
            classes = adapted.model.task_classes[t]
            priors = (
                PriorEntry(train=uniform_or(adapted, t, classes), target=label_frequencies(train_labels, classes))
                if train_labels
                else None
            )
            c, p = _probs(adapted, xs, t, priors)
            oof[t][test] = _full(c, p, labels[t])
            c0, p0 = _probs(bundle, xs, t, bundle.decision.priors.get(t))
            before[t][test] = _full(c0, p0, labels[t])
    report: dict[str, Any] = {"folds": folds, "weight": weight, "real_rows": len(real.rows), "tasks": {}}
    for t in tasks:
        idx = [i for i, r in enumerate(real.rows) if t in r.interaction.labels]
        y = [real.rows[i].interaction.labels[t] for i in idx]
        m0 = task_metrics(y, labels[t], before[t][idx], labels[t])
        m1 = task_metrics(y, labels[t], oof[t][idx], labels[t])
        keys = ("accuracy", "macro_f1", "top3_accuracy", "ece", "n")
        cov = cross_fitted_coverage(
            taxonomy.tasks[t],
            labels[t],
            oof[t][idx],
            y,
            [str(fold_of[i]) for i in idx],
            target_precision=config.decision.target_precision,
            margin=config.decision.margin,
        )
        report["tasks"][t] = {
            "before": {k: m0[k] for k in keys},
            "after": {k: m1[k] for k in keys},
            "after_coverage": cov,
        }
    return {"report": report, "oof": oof, "labels": labels, "tasks": tasks}


def uniform_or(bundle: Bundle, task: str, classes: list[str]) -> dict[str, float]:
    """The prior the adapted bundle's head for ``task`` was trained under: the one training recorded, else
    uniform over ``classes``."""
    return train_prior_of(bundle, task, classes)


def adapt(
    model: str | Path,
    data_paths: list[str],
    out: str | Path | None,
    *,
    corpus_paths: list[str] | None = None,
    column_map: dict[str, str] | None = None,
    weight: int = 3,
    folds: int = 5,
    audit: bool = True,
    audit_out: str | Path | None = None,
    config_overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Audit, cross-fitted before/after, and (with ``out``) the adapted bundle. Returns the report."""
    bundle = load_bundle(model)
    taxonomy_path = Path(model) / "taxonomy.yaml"
    taxonomy = load_taxonomy(taxonomy_path)
    raw_config = dict(bundle.manifest.config or {})
    raw_config["taxonomy"] = str(taxonomy_path)
    raw_config["column_map"] = {}
    config = TrainConfig.from_dict(raw_config)
    if config_overrides:
        from training.fitting.config import apply_override

        d = config.to_dict()
        for item in config_overrides:
            apply_override(d, item)
        config = TrainConfig.from_dict(d)
    real = load_data(data_paths, taxonomy, column_map=column_map or {}, group_by="client_id")
    corpus = load_data(corpus_paths or [DEFAULT_CORPUS], taxonomy, group_by=config.split.group_by)
    report: dict[str, Any] = {"model": str(model), "source_model_id": bundle.model_id, "real_rows": len(real.rows)}
    if audit:
        report["audit"] = audit_rows(real, config, folds, audit_out)
    cf = cross_fitted(bundle, config, corpus, real, folds=folds, weight=weight)
    report["cross_fitted"] = cf["report"]
    if out is None:
        return report
    log.info(
        "fitting the adapted bundle: corpus (%d rows) + %d real rows x%d", len(corpus.rows), len(real.rows), weight
    )
    adapted = fit_bundle(_weighted(corpus, real, list(range(len(real.rows))), weight), config, taxonomy)
    train_priors = {t: train_prior_of(adapted, t, adapted.model.task_classes[t]) for t in adapted.model.tasks}
    priors = dict(bundle.decision.priors)
    policies = dict(bundle.decision.tasks)
    for t in cf["tasks"]:
        classes = adapted.model.task_classes[t]
        rows = [r for r in real.rows if t in r.interaction.labels]
        target = label_frequencies([r.interaction.labels[t] for r in rows], classes)
        priors[t] = PriorEntry(
            train=train_priors[t], target=target, source=f"label frequencies of {len(rows)} real rows (adapt)"
        )
        idx = [i for i, r in enumerate(real.rows) if t in r.interaction.labels]
        policies[t] = fit_policy(
            taxonomy.tasks[t],
            cf["labels"][t],
            cf["oof"][t][idx],
            [real.rows[i].interaction.labels[t] for i in idx],
            target_precision=config.decision.target_precision,
            margin=config.decision.margin,
        )
    adapted.decision = replace(bundle.decision, tasks=policies, train_priors=train_priors, priors=priors)
    created = datetime.now(UTC)
    adapted.manifest = Manifest(
        model_id=f"podskazka-{config.model.kind}-adapted-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        created_at=created.isoformat(timespec="seconds"),
        derived_from=bundle.model_id,
        config=config.to_dict(),
        training_data={
            "files": corpus.files + real.files,
            "rows": len(corpus.rows) + len(real.rows),
            "real_rows_weight": weight,
        },
        metrics=bundle.manifest.metrics or {},
        adaptation={k: v for k, v in report.items() if k != "audit"} | {"audit_suspects": len(report.get("audit", []))},
    )
    save_bundle(adapted, out, taxonomy_path)
    report["out"] = str(out)
    report["model_id"] = adapted.model_id
    return report


def audit_rows(real: LoadedData, config: TrainConfig, folds: int, audit_out: str | Path | None) -> list[dict[str, Any]]:
    """Likely label issues among the real rows (out-of-fold on the real rows alone); never changes them."""
    import json

    from training.evaluation.audit import suspects_from_oof
    from training.evaluation.crossval import out_of_fold

    tasks = [
        t
        for t in (config.tasks or list(load_taxonomy(config.taxonomy).task_names))
        if any(t in r.interaction.labels for r in real.rows)
    ]
    cfg = copy.deepcopy(config)
    cfg.tasks = tasks
    taxonomy = load_taxonomy(config.taxonomy)
    try:
        oof = out_of_fold(real, cfg, taxonomy, folds)
        suspects = suspects_from_oof(real, oof)
    except Exception as exc:  # too few rows per label for folds: the audit is advice, not a gate
        log.warning("audit skipped: %s", exc)
        return []
    if audit_out:
        Path(audit_out).parent.mkdir(parents=True, exist_ok=True)
        Path(audit_out).write_text(
            "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in suspects), encoding="utf-8"
        )
    return suspects
