"""``podskazka priors``: the label mix of a contact centre's own traffic, applied by the bundle at predict time.

The heads are trained class-balanced (the training prior is uniform); real traffic is not. Given
labelled history (or operators' feedback export) the new prior is the smoothed label frequency; given
unlabelled history it is estimated by EM (Saerens, Latinne & Decaestecker 2002, «Adjusting the outputs
of a classifier to new a priori probabilities»): alternate ``p_adj(y|x) ∝ p(y|x) · π(y) / π_train(y)``
and ``π(y) = mean_x p_adj(y|x)`` until ``π`` stops moving. The EM is refused (with the reason) when it
does not converge, when its likelihood goes down (a numerical divergence) or when the estimate collapses
onto a few labels (the classifier is too sure of itself on this traffic to trust its own counts).

The bundle keeps the priors in its manifest's decision section
(``DecisionPolicy.priors[task]``, a :class:`~model.assist.decision.PriorEntry` of ``train``,
``target`` and ``source``; stored as ``decision.priors[task] = {"train": ..., "target": ..., "source": ...}``, applied by
``model/assist/adjust.py``); with labelled rows the decision thresholds are re-fitted under them. A new bundle
folder is written (``--out``); the source bundle is never changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.assist.adjust import adjust_task
from model.assist.decision import DecisionPolicy, PriorEntry
from model.errors import PodskazkaError
from model.storage.bundle import MANIFEST, load_bundle, verify_bundle
from model.storage.files import write_json

log = logging.getLogger(__name__)

FLOOR = 0.01  # the share of a uniform prior mixed into every estimate: no label becomes unreachable
MIN_ROWS = 30  # fewer rows than this per task: no prior is estimated


class PriorsError(PodskazkaError):
    """No prior can be estimated or written: too few rows, an EM that diverges, does not converge or
    collapses, or an ``--out`` that is the source bundle."""

    code = "priors_refused"


# ------------------------------------------------------------------------------ estimates
def uniform(classes: list[str]) -> dict[str, float]:
    """The uniform prior over ``classes`` (what a class-balanced head is trained under)."""
    return {c: 1.0 / len(classes) for c in classes}


def _floored(pi: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    pi = (1 - floor) * pi + floor / len(pi)
    return pi / pi.sum()


def label_frequencies(
    labels: list[str], classes: list[str], smoothing: float = 1.0, floor: float = FLOOR
) -> dict[str, float]:
    """The smoothed label mix of labelled rows (labels outside ``classes`` are ignored)."""
    counts = np.array([sum(1 for y in labels if y == c) for c in classes], dtype=float) + smoothing
    return dict(zip(classes, _floored(counts / counts.sum(), floor).round(6).tolist()))


def em_priors(
    probs: np.ndarray,
    train_prior: np.ndarray | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-6,
    min_effective_labels: float | None = None,
    floor: float = FLOOR,
) -> tuple[np.ndarray, dict[str, Any]]:
    """EM estimate of the label prior of unlabelled rows from posteriors ``probs`` [n, k] computed under
    ``train_prior`` (uniform when None). Returns ``(prior, info)``; raises :class:`PriorsError` when the
    EM does not converge, its likelihood decreases, or the estimate collapses."""
    probs = np.asarray(probs, dtype=float)
    n, k = probs.shape
    if n == 0 or k < 2:
        raise PriorsError("no rows to estimate priors from")
    train = np.full(k, 1.0 / k) if train_prior is None else np.asarray(train_prior, dtype=float)
    base = probs / np.maximum(train, 1e-12)  # p(y|x) / π_train(y): the likelihood ratio up to a row factor
    pi = train.copy()
    last_ll = -np.inf
    history = []
    for it in range(1, max_iter + 1):
        joint = base * pi
        norm = joint.sum(axis=1, keepdims=True)
        if not np.all(np.isfinite(norm)) or np.any(norm <= 0):
            raise PriorsError(f"EM diverged at iteration {it}: a row's adjusted posterior vanished")
        ll = float(np.log(norm).sum())
        if ll < last_ll - 1e-7 * max(1.0, abs(last_ll)):
            raise PriorsError(f"EM diverged at iteration {it}: the likelihood went down ({last_ll:.4f} → {ll:.4f})")
        last_ll = ll
        new = (joint / norm).mean(axis=0)
        delta = float(np.abs(new - pi).max())
        history.append(delta)
        pi = new
        if delta < tol:
            break
    else:
        raise PriorsError(
            f"EM did not converge in {max_iter} iterations (last change {history[-1]:.2e}); "
            "give labelled rows instead, or more rows"
        )
    effective = float(np.exp(-(pi[pi > 0] * np.log(pi[pi > 0])).sum()))
    if min_effective_labels is None:
        min_effective_labels = min(2.0, 0.5 * k)  # exp(entropy): 26 labels collapsing onto under two is not a mix
    if effective < min_effective_labels:
        raise PriorsError(
            f"EM collapsed onto {effective:.2f} effective labels (of {k}): the classifier is too "
            "sure of itself on this traffic to estimate its label mix; give labelled rows instead"
        )
    return _floored(pi, floor), {"iterations": it, "log_likelihood": last_ll, "effective_labels": round(effective, 3)}


# ------------------------------------------------------------------------------- bundles
def train_prior_of(bundle, task: str, classes: list[str]) -> dict[str, float]:
    """The prior the head was trained under (recorded by training; uniform for class-balanced heads)."""
    recorded = bundle.decision.train_priors.get(task)
    return dict(recorded) if recorded else uniform(classes)


def model_probs(bundle, interactions, task: str, *, evidence: bool = True) -> tuple[list[str], np.ndarray]:
    """The head's probabilities with the evidence rule and without any prior (the EM's input)."""
    classes, probs = bundle.model.predict_proba(interactions, [task])[0][task]
    if evidence:
        probs = adjust_task(bundle.taxonomy, task, classes, probs, interactions, None)
    return classes, probs


def compute_priors(
    bundle,
    interactions,
    *,
    unlabelled: bool = False,
    tasks: list[str] | None = None,
    refit_thresholds: bool = True,
    target_precision: float | None = None,
    margin: float | None = None,
) -> dict[str, Any]:
    """``{"priors": {task: PriorEntry}, "thresholds": {task: TaskPolicy}, "report": {...}}`` for ``bundle``
    from rows."""
    from training.fitting.decision import fit_policy

    decision = bundle.decision
    if not target_precision:
        target_precision = 0.9 if decision.target_precision is None else decision.target_precision
    if margin is None:
        margin = 0.05 if decision.margin is None else decision.margin
    out: dict[str, Any] = {"priors": {}, "thresholds": {}, "report": {}}
    for task in tasks or bundle.model.tasks:
        classes = bundle.model.task_classes[task]
        train = train_prior_of(bundle, task, classes)
        if unlabelled:
            rows = [x for x in interactions if _in_domain(bundle, task, x)]
            if len(rows) < MIN_ROWS:
                log.warning("task %s: %d rows, under %d: no prior estimated", task, len(rows), MIN_ROWS)
                continue
            _, probs = model_probs(bundle, rows, task)
            pi, info = em_priors(probs, np.array([train[c] for c in classes]))
            target = dict(zip(classes, pi.round(6).tolist()))
            out["report"][task] = {"rows": len(rows), "method": "em", **info}
            source = f"EM on {len(rows)} unlabelled rows"
        else:
            rows = [x for x in interactions if task in x.labels]
            if len(rows) < MIN_ROWS:
                if rows:
                    log.warning("task %s: %d labelled rows, under %d: no prior", task, len(rows), MIN_ROWS)
                continue
            target = label_frequencies([x.labels[task] for x in rows], classes)
            out["report"][task] = {"rows": len(rows), "method": "labelled frequencies"}
            source = f"label frequencies of {len(rows)} labelled rows"
        entry = PriorEntry(train=train, target=target, source=source)
        out["priors"][task] = entry
        if not unlabelled and refit_thresholds:
            _, probs = model_probs(bundle, rows, task, evidence=False)
            probs = adjust_task(bundle.taxonomy, task, classes, probs, rows, DecisionPolicy(priors={task: entry}))
            out["thresholds"][task] = fit_policy(
                bundle.taxonomy.tasks[task],
                classes,
                probs,
                [x.labels[task] for x in rows],
                target_precision=target_precision,
                margin=margin,
            )
    return out


def _in_domain(bundle, task: str, x) -> bool:
    """An unlabelled row counts for a task when the caller's or the domain head's domain is the task's."""
    domain = bundle.taxonomy.tasks[task].domain or task
    if x.domain:
        return x.domain == domain
    if not getattr(bundle.model, "has_domain_head", False):
        return True
    _, dom = bundle.model.predict_proba([x], [task])
    if dom is None:
        return True
    classes, p = dom
    return classes[int(np.argmax(p[0]))] == domain


def write_with_decision(
    model: str | Path, out: str | Path, decision: DecisionPolicy, note: dict[str, Any], suffix: str = "priors"
) -> str:
    """Copy bundle ``model`` to ``out`` with a new decision section and model id (the files and their
    checksums are unchanged: the decision lives in the manifest)."""
    model, out = Path(model), Path(out)
    manifest = verify_bundle(model)
    if out.resolve() == model.resolve():
        raise PriorsError(f"--out {out} is the source bundle; write a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.rmtree(tmp)
        shutil.copytree(model, tmp, symlinks=False)
        now = datetime.now(UTC)
        created = now.isoformat(timespec="seconds")
        base_id = manifest.model_id.split("+")[0]
        manifest = replace(
            manifest,
            decision=decision,
            model_id=f"{base_id}+{suffix}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
            derived_from=manifest.model_id,
            created_at=created,
            history=[*(manifest.history or []), {"step": suffix, "at": created, **note}],
        )
        write_json(tmp / MANIFEST, manifest.to_dict())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    verify_bundle(out)
    return manifest.model_id


def priors_command(
    model: str | Path,
    data_paths: list[str],
    out: str | Path,
    *,
    unlabelled: bool = False,
    column_map: dict[str, str] | None = None,
    tasks: list[str] | None = None,
) -> dict[str, Any]:
    """``podskazka priors``: read rows (labelled, or with ``unlabelled`` not), estimate each task's prior,
    re-fit the thresholds where rows are labelled, and write the bundle with the new decision section to
    ``out``. Returns the new model id, the folder, the per-task report, the tasks whose thresholds were
    re-fitted and the priors. Raises PriorsError when no task has enough rows, the EM is refused or ``out``
    is the source bundle; DataError for unreadable rows."""
    from training.data.load import load_data

    bundle = load_bundle(model)
    loaded = load_data(data_paths, bundle.taxonomy, column_map=column_map or {}, require_label=not unlabelled)
    result = compute_priors(bundle, loaded.interactions, unlabelled=unlabelled, tasks=tasks)
    if not result["priors"]:
        raise PriorsError(f"no task has {MIN_ROWS}+ {'rows' if unlabelled else 'labelled rows'}; nothing to write")
    decision = replace(
        bundle.decision,
        priors={**bundle.decision.priors, **result["priors"]},
        tasks={**bundle.decision.tasks, **result["thresholds"]},
    )
    model_id = write_with_decision(
        model, out, decision, {"rows": len(loaded.rows), "unlabelled": unlabelled, "report": result["report"]}
    )
    return {
        "model_id": model_id,
        "out": str(out),
        "report": result["report"],
        "thresholds_refitted": sorted(result["thresholds"]),
        "priors": {t: e.target for t, e in result["priors"].items()},
    }
