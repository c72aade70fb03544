"""What the heads' probabilities become before they are ranked and decided, and the reasons a task
gets no decision at all. Everything here is driven by data (the taxonomy and the bundle's decision
section), never by label names in code.

- **Priors** (``policy.priors[task]``, a :class:`PriorEntry` of ``train`` and ``target`` label mixes): the heads
  were fitted under the training label mix (class-balanced: uniform); a contact centre's traffic is
  not. ``p_adj ∝ p · target / train``, renormalised (Saerens, Latinne & Decaestecker 2002).
- **Evidence** (``needs`` in the taxonomy): a label defined by what the operator or the call did
  cannot lead a conversation that shows no such evidence; its probability is renormalised away.
- **Content** (``content_check.filler_words`` in the taxonomy): a conversation whose client words are
  all greetings and fillers gets no decision at any level (``reason: "no_content"``).
- **Domain**: the request's ``domain``, or else the domain head's leader; tasks of another domain get
  no decision (``reason: "other_domain"``).
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from model.arrays import Float64Array, FloatArray
from model.assist.decision import Decision, DecisionPolicy, PriorEntry, Reason, decide
from model.conversation.record import Interaction
from model.conversation.taxonomy import Task, Taxonomy
from model.errors import InputError
from model.kinds.registry import DomainProbs, TaskProbs
from model.text.normalize import normalize_text

_WORD = re.compile(r"\w+")


# ------------------------------------------------------------------------------ content
def client_words(interaction: Interaction) -> list[str]:
    """The client's words (normalised text, every client turn in order): what the content check reads."""
    return [w for t in interaction.turns if t.role == "client" for w in _WORD.findall(normalize_text(t.text))]


def has_content(interaction: Interaction, taxonomy: Taxonomy) -> bool:
    """False when every word the client said is in the taxonomy's filler lexicon (or the client said
    nothing); True when the taxonomy has no lexicon."""
    if not taxonomy.filler_words:
        return True
    lexicon = taxonomy.filler_words
    return any(w not in lexicon and _squeezed(w) not in lexicon for w in client_words(interaction))


_REPEAT = re.compile(r"(\w)\1+")


def _squeezed(word: str) -> str:
    """Drawn-out fillers read as the word: «ааа» → «а», «аллло» → «ало», «спасибооо» → «спасибо»."""
    return _REPEAT.sub(r"\1", word)


# ----------------------------------------------------------------------------- evidence
def evidence_ok(alternatives: tuple[dict[str, tuple[str, ...]], ...], interaction: Interaction) -> bool:
    """Any alternative holds: each is ``{"channel": (...), "roles": (...)}`` whose keys must all hold."""
    for need in alternatives:
        if "channel" in need and interaction.channel not in need["channel"]:
            continue
        if "roles" in need and not any(t.role in need["roles"] and t.text.strip() for t in interaction.turns):
            continue
        return True
    return False


def allowed_mask(task: Task, classes: list[str], interaction: Interaction) -> npt.NDArray[np.bool_]:
    """Which of ``classes`` this conversation has the evidence for."""
    return np.array([label not in task.needs or evidence_ok(task.needs[label], interaction) for label in classes])


# ------------------------------------------------------------------------------- priors
def prior_ratio(classes: list[str], entry: PriorEntry | None) -> Float64Array | None:
    """``target / train`` per class, or None without priors."""
    if entry is None or not entry.target:
        return None
    target, train = entry.target, entry.train
    k = len(classes)
    ratio = np.array([float(target.get(c, 0.0)) / max(float(train.get(c, 1.0 / k)), 1e-12) for c in classes])
    return ratio if np.isfinite(ratio).all() and ratio.sum() > 0 else None


def with_priors(probs: FloatArray, ratio: Float64Array | None) -> FloatArray:
    """``probs`` reweighted by the prior ``ratio`` and renormalised per row (a row whose weights all
    vanish keeps its probabilities); unchanged without a ratio."""
    if ratio is None:
        return probs
    out = probs * ratio
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), probs)


def adjust_task(
    taxonomy: Taxonomy,
    task: str,
    classes: list[str],
    probs: FloatArray,
    items: list[Interaction],
    policy: DecisionPolicy | None,
) -> FloatArray:
    """Priors (``policy.priors``; none when ``policy`` is None), then the evidence rule, renormalised;
    rows keep their shape ``[n, len(classes)]``."""
    probs = np.asarray(probs, dtype=float)
    ratio = prior_ratio(classes, policy.priors.get(task) if policy is not None else None)
    out = with_priors(probs, ratio)
    spec = taxonomy.tasks.get(task)
    if spec is not None and spec.needs:
        out = out.copy()
        for row, item in enumerate(items):
            mask = allowed_mask(spec, classes, item)
            if mask.all() or not mask.any():
                continue
            kept = out[row] * mask
            total = kept.sum()
            if total > 0:
                out[row] = kept / total
    return out


def adjust_probabilities(
    taxonomy: Taxonomy,
    policy: DecisionPolicy | None,
    items: list[Interaction],
    task_probs: TaskProbs,
) -> TaskProbs:
    """``{task: (classes, probabilities)}`` after priors and evidence."""
    return {
        task: (classes, adjust_task(taxonomy, task, classes, probs, items, policy))
        for task, (classes, probs) in task_probs.items()
    }


# ------------------------------------------------------------------------------- domain
def domains_of(taxonomy: Taxonomy) -> dict[str, str]:
    """Each task's domain (a task without one is its own domain)."""
    return {name: task.domain or name for name, task in taxonomy.tasks.items()}


def routed_domain(taxonomy: Taxonomy, item: Interaction, domain_probs: DomainProbs, row: int) -> str | None:
    """The request's domain when given (checked against the taxonomy), else the domain head's leader."""
    known = sorted(set(domains_of(taxonomy).values()))
    given = item.domain
    if given:
        if given not in known:
            raise InputError(f"domain is {given!r}; this model knows the domains {known}")
        return given
    if domain_probs is None:
        return None
    classes, probs = domain_probs
    return classes[int(np.argmax(probs[row]))] if len(classes) else None


def decisions_for(
    taxonomy: Taxonomy,
    policy: DecisionPolicy,
    item: Interaction,
    task_probs: TaskProbs,
    row: int,
    tasks: list[str],
    domain_probs: DomainProbs = None,
) -> dict[str, Decision]:
    """The decision of every task in ``tasks`` for one row, with the reason when a task is not
    decided for a reason other than confidence (``no_content``, ``other_domain``)."""
    content = has_content(item, taxonomy)
    domain = routed_domain(taxonomy, item, domain_probs, row)
    task_domain = domains_of(taxonomy)
    out: dict[str, Decision] = {}
    for task in tasks:
        classes, probs = task_probs[task]
        p = probs[row]
        if not content:  # first: a greeting has no domain either
            out[task] = _undecided(p, "no_content")
        elif domain is not None and task_domain.get(task) != domain:
            out[task] = _undecided(p, "other_domain")
        else:
            out[task] = decide(taxonomy.tasks[task], classes, p, policy)
    return out


def _undecided(probs: FloatArray, reason: Reason) -> Decision:
    """No decision whatever the confidence, with the reason (the top confidence is still given)."""
    return Decision(
        label=None, confidence=round(float(np.max(probs)), 6) if len(probs) else 0.0, level=None, reason=reason
    )
