"""``Predictor``: ranked labels with confidences and macros for a batch of interactions.

Like a Hugging Face pipeline, prediction runs in three public steps: :meth:`Predictor.prepare`
(inputs → checked :class:`Interaction` records), :meth:`Predictor.score` (the model, once per batch →
:class:`Scores`) and :meth:`Predictor.postprocess` (priors, ranking, decisions, macros, the comment
rule → one :class:`~model.suggestion.Suggestion` per interaction); :meth:`Predictor.predict` chains them.

Thread-safe for serving: it holds only read-only fitted state, and ``predict`` keeps nothing
between calls, so one instance serves concurrent requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.arrays import Float64Array, FloatArray
from model.assist.adjust import adjust_probabilities, decisions_for
from model.assist.comments import comment_required
from model.assist.decision import Decision
from model.assist.macros import MacroRanker
from model.assist.slots import SlotFiller, fill_template
from model.conversation.record import DEFAULT_CHANNEL, Interaction, interaction_from_dict
from model.errors import InputError
from model.kinds.registry import DomainProbs, IncrementalModel, TaskProbs
from model.storage.bundle import Bundle, load_bundle
from model.suggestion import CommentHint, CommentReason, Macro, RankedLabel, Suggestion

if TYPE_CHECKING:
    from model.kinds.incremental import IncrementalScorer, LiveState


@dataclass(frozen=True)
class Scores:
    """What :meth:`Predictor.score` gives :meth:`Predictor.postprocess` for a batch: per task
    ``(classes, probabilities [n, k])``, the domain head's ``(domains, probabilities)`` (``None``
    without one) and the macro ranker's raw scores (``None`` when macros are not asked or the bundle
    has no ranker)."""

    task_probs: TaskProbs
    domain_probs: DomainProbs
    macro_raw: Float64Array | None = None


@dataclass
class LiveConversation:
    """What :meth:`Predictor.predict_live` keeps for one live conversation between updates (made by
    :meth:`Predictor.live_state`, opaque to the caller): the model's and the macro ranker's running sums,
    and what the turns that left the slot and comment windows held."""

    model: LiveState
    macros: LiveState | None  # None: the bundle has no macro ranker
    slot_values: dict[str, str] = field(default_factory=dict)  # read from turns that left the window; first wins
    slots_upto: int = 0  # the turns before this one were read for slots once
    comment_reasons: list[CommentReason] = field(default_factory=list)  # what older turns' text triggered
    comments_upto: int = 0  # the turns before this one were read for the comment rules once


@dataclass(frozen=True)
class _LiveScorers:
    """The running-sum scorers of a model kind that has them, and of the bundle's macro ranker (if any)."""

    model: IncrementalModel
    model_scorer: IncrementalScorer
    macro_scorer: IncrementalScorer | None


class Predictor:
    """Suggestions from one loaded bundle: :meth:`predict` for a batch, :meth:`predict_live` for a live call."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.taxonomy = bundle.taxonomy
        self.model = bundle.model
        self._domains = bundle.domains
        self.slot_filler = SlotFiller()
        self._live_scorers = self._make_live_scorers()

    def _make_live_scorers(self) -> _LiveScorers | None:
        """The running-sum scorers, or ``None`` when the model kind has none (a live update is then a full
        prediction)."""
        if not isinstance(self.model, IncrementalModel):
            return None
        scorer = self.model.incremental_scorer()
        if scorer is None:
            return None
        macros = self.bundle.macros
        return _LiveScorers(
            self.model, scorer, macros.incremental_scorer() if isinstance(macros, MacroRanker) else None
        )

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """A predictor over the bundle at ``path`` (verified before anything is read)."""
        return cls(load_bundle(path))

    @property
    def model_version(self) -> str:
        """The bundle's model id, reported with every suggestion."""
        return self.bundle.model_id

    @property
    def tasks(self) -> list[str]:
        """Every task the model predicts, in the model's order."""
        return self.model.tasks

    def check_tasks(self, tasks: Iterable[str] | None) -> list[str]:
        """The tasks a request asks for, checked and without repeats (``None``: every task);
        :class:`InputError` names unknown ones."""
        if tasks is None:
            return self.tasks
        tasks = list(tasks)
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise InputError(f"unknown task(s) {unknown}; this model predicts {self.tasks}")
        if not tasks:
            raise InputError(f"'tasks' is empty; leave it out for every task or name some of {self.tasks}")
        return list(dict.fromkeys(tasks))

    def predict(
        self,
        interactions: Iterable[Interaction | Mapping[str, Any]],
        *,
        tasks: Iterable[str] | None = None,
        top_k: int | None = 3,
        top_macros: int = 3,
        comments: bool = True,
    ) -> list[Suggestion]:
        """A :class:`Suggestion` per interaction: ``prepare`` → ``score`` → ``postprocess``.

        Ranked labels per task (``top_k``, or all labels when ``None``), a decision per task, the
        domains, the ``top_macros`` macros and (``comments``) whether the CRM's rules ask for a
        comment (``comment_required`` is ``None`` when not asked: batch relabelling skips it)."""
        items = self.prepare(interactions)
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        selected = self.check_tasks(tasks)
        if not items:
            return []
        scores = self.score(items, with_macros=top_macros > 0)
        return self.postprocess(items, scores, tasks=selected, top_k=top_k, top_macros=top_macros, comments=comments)

    def prepare(self, interactions: Iterable[Interaction | Mapping[str, Any]]) -> list[Interaction]:
        """The inputs as checked :class:`Interaction` records (a mapping is read as the API's request
        body; :class:`InputError` names the first bad one, ``interactions[i]``)."""
        return [
            x if isinstance(x, Interaction) else interaction_from_dict(x, where=f"interactions[{i}]")
            for i, x in enumerate(interactions)
        ]

    def score(self, items: list[Interaction], with_macros: bool = True) -> Scores:
        """The raw scores of a batch: the model runs once for every task and the domain head, and
        (``with_macros``) the macro ranker reads the text."""
        task_probs, domain_probs = self.model.predict_proba(items, self.tasks)
        macro_raw = None
        if with_macros and isinstance(self.bundle.macros, MacroRanker):
            macro_raw = self.bundle.macros.raw_scores(items)
        return Scores(task_probs=task_probs, domain_probs=domain_probs, macro_raw=macro_raw)

    def postprocess(
        self,
        items: list[Interaction],
        scores: Scores,
        *,
        tasks: list[str],
        top_k: int | None,
        top_macros: int,
        comments: bool = True,
        slot_values: list[dict[str, str]] | None = None,
        comment_items: list[Interaction] | None = None,
    ) -> list[Suggestion]:
        """From the scores of ``items``: priors and evidence, ranked labels, decisions, domains,
        macros and the comment rule. ``slot_values`` (per item) replace reading the slots from the
        text; ``comment_items`` are what the comment rules read instead of ``items``."""
        domain_probs = scores.domain_probs
        task_probs = adjust_probabilities(self.taxonomy, self.bundle.decision, items, scores.task_probs)
        macro_scores = None
        ranker = self.bundle.macros
        if top_macros > 0 and scores.macro_raw is not None and isinstance(ranker, MacroRanker):
            macro_scores = (
                ranker.macro_ids_,
                ranker.rank(items, task_probs, domain_probs, self._domains, raw=scores.macro_raw),
            )
        ranked = {task: self._ranked_batch(task, *task_probs[task], top_k) for task in tasks}
        results = []
        for row in range(len(items)):
            domains: tuple[RankedLabel, ...] = ()
            if domain_probs is not None:
                order = np.argsort(-domain_probs[1][row], kind="stable")
                domains = tuple(RankedLabel(domain_probs[0][j], float(domain_probs[1][row][j])) for j in order)
            # content check, domain routing, then the thresholds (model/assist/adjust.py)
            decisions = decisions_for(
                self.taxonomy, self.bundle.decision, items[row], task_probs, row, tasks, domain_probs
            )
            macros = self._macros(
                items[row],
                macro_scores,
                task_probs,
                domain_probs,
                row,
                top_macros,
                slot_values[row] if slot_values is not None else None,
            )
            hint = None
            if comments:
                hint = self._comment(comment_items[row] if comment_items else items[row], decisions, domains)
            results.append(
                Suggestion(
                    predictions={task: ranked[task][row] for task in tasks},
                    decisions=decisions,
                    domains=domains,
                    macros=macros,
                    comment_required=hint,
                )
            )
        return results

    # ------------------------------------------------------------------------------ live
    def live_state(self, channel: str = DEFAULT_CHANNEL) -> LiveConversation | None:
        """A state for :meth:`predict_live` (``None`` when this model kind cannot score incrementally)."""
        live = self._live_scorers
        if live is None:
            return None
        return LiveConversation(
            model=live.model_scorer.new_state(channel),
            macros=live.macro_scorer.new_state(channel) if live.macro_scorer else None,
        )

    def predict_live(
        self,
        state: LiveConversation | None,
        interaction: Interaction,
        *,
        tasks: Iterable[str] | None = None,
        top_k: int | None = 3,
        top_macros: int = 3,
    ) -> Suggestion:
        """:meth:`predict` for one live conversation, keeping running sums in ``state`` (from
        :meth:`live_state`) so that an update costs what its new turns cost, not the whole conversation."""
        selected = self.check_tasks(tasks)
        live = self._live_scorers
        if state is None or live is None:
            return self.predict([interaction], tasks=selected, top_k=top_k, top_macros=top_macros)[0]
        live.model_scorer.update(state.model, interaction.turns)
        task_probs, domain_probs = live.model.probabilities(live.model_scorer.scores(state.model), self.tasks)
        macro_raw = None
        if live.macro_scorer is not None and state.macros is not None and top_macros > 0:
            live.macro_scorer.update(state.macros, interaction.turns)
            macro_raw = live.macro_scorer.scores(state.macros)
        slots = self._live_slots(state, interaction) if top_macros > 0 else None
        [result] = self.postprocess(
            [interaction],
            Scores(task_probs=task_probs, domain_probs=domain_probs, macro_raw=macro_raw),
            tasks=selected,
            top_k=top_k,
            top_macros=top_macros,
            slot_values=[slots] if slots is not None else None,
            comment_items=[self._live_comment_window(state, interaction)],
        )
        hint, rules = result.comment_required, self.taxonomy.comment_rules
        in_domain = rules is not None and result.top_domain == rules.domain
        if hint is not None and in_domain and state.comment_reasons:
            result = replace(result, comment_required=hint.with_reasons(state.comment_reasons))
        return result

    def _live_comment_window(self, state: LiveConversation, interaction: Interaction) -> Interaction:
        """The comment rules read the same window as live slot filling; what the text of older turns
        triggered (their text rules) is kept in ``state`` and added back to the hint."""
        older, recent, state.comments_upto = self._live_window(state.comments_upto, interaction)
        reasons = state.comment_reasons
        rules = self.taxonomy.comment_rules
        if older is not None and rules is not None:
            known = {r.rule for r in reasons}
            for reason in comment_required(rules, older, {}, None)["reasons"]:
                if reason["rule"] not in known:
                    reasons.append(CommentReason.from_dict(reason))
                    known.add(reason["rule"])
        return recent

    @staticmethod
    def live_state_bytes(state: LiveConversation | None) -> int:
        """About how much memory a live state holds (for a byte budget over many sessions)."""
        if state is None:
            return 0
        total = 0
        for part in (state.model, state.macros):
            if part is None:
                continue
            for view in list(part.full.values()) + list(part.client.values()):
                total += 100 * len(view.counts) + sum(64 + 4 * p.terms.size for p in view.parts)
        return total

    LIVE_SLOT_WINDOW = 12

    def _live_slots(self, state: LiveConversation, interaction: Interaction) -> dict[str, str]:
        """Slot values of a live conversation at a cost that does not grow with it: the last
        ``LIVE_SLOT_WINDOW`` turns are read on every update (a partial turn may still change); a turn
        that leaves that window is read once more and what it held is kept (first value wins)."""
        older, recent, state.slots_upto = self._live_window(state.slots_upto, interaction)
        if older is not None:
            for slot, value in self.slot_filler.extract(older).items():
                state.slot_values.setdefault(slot, value)
        values = dict(state.slot_values)
        for slot, value in self.slot_filler.extract(recent).items():
            values.setdefault(slot, value)
        return values

    def _live_window(self, done: int, interaction: Interaction) -> tuple[Interaction | None, Interaction, int]:
        """``(the turns that left the last LIVE_SLOT_WINDOW since a reader that got to turn ``done``
        last updated, to read once, or None; the window itself; where the reader gets to now)``."""
        turns = interaction.turns
        settled = max(0, len(turns) - self.LIVE_SLOT_WINDOW)
        older = Interaction(turns=tuple(turns[done:settled]), channel=interaction.channel) if settled > done else None
        return older, Interaction(turns=tuple(turns[settled:]), channel=interaction.channel), settled

    def _ranked_batch(
        self, task: str, classes: list[str], probs: FloatArray, top_k: int | None
    ) -> list[tuple[RankedLabel, ...]]:
        """Every row's labels ranked (taxonomy order on ties; labels the head never saw: 0), vectorised."""
        labels = self.taxonomy.tasks[task].labels
        position = {label: k for k, label in enumerate(labels)}
        full = np.zeros((probs.shape[0], len(labels)))
        cols = [position[c] for c in classes]
        full[:, cols] = probs
        order = np.argsort(-full, axis=1, kind="stable")
        if top_k is not None:
            order = order[:, :top_k]
        values = np.round(np.take_along_axis(full, order, axis=1), 6).tolist()
        return [
            tuple(RankedLabel(labels[j], v) for j, v in zip(row_order, row_values))
            for row_order, row_values in zip(order.tolist(), values)
        ]

    def _comment(
        self, item: Interaction, decisions: dict[str, Decision], domains: tuple[RankedLabel, ...]
    ) -> CommentHint | None:
        """The comment rule on the decided labels (``None`` when the rule book does not apply)."""
        rules = self.taxonomy.comment_rules
        if rules is None:  # a taxonomy without comment_rules: no hint, never another centre's rules
            return None
        labels = {task: d.label for task, d in decisions.items() if d.level == "label"}
        return CommentHint.from_dict(comment_required(rules, item, labels, domains[0].label if domains else None))

    def _macros(
        self,
        item: Interaction,
        macro_scores: tuple[list[str], Float64Array] | None,
        task_probs: TaskProbs,
        domain_probs: DomainProbs,
        row: int,
        top_macros: int,
        values: dict[str, str] | None = None,
    ) -> tuple[Macro, ...]:
        """The ``top_macros`` best macros, their templates filled from ``values`` (else the text)."""
        if top_macros <= 0:
            return ()
        scores: dict[str, float]
        if macro_scores is not None:
            scores = dict(zip(macro_scores[0], macro_scores[1][row].tolist()))
        else:
            scores = self.bundle.macros.score(task_probs, domain_probs, self._domains, row)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_macros]
        if values is None:
            values = self.slot_filler.extract(item) if ranked else {}
        out = []
        for macro_id, confidence in ranked:
            macro = self.taxonomy.macros.get(macro_id)
            if macro is None:
                continue
            text, filled, missing = fill_template(macro.text, values)
            out.append(
                Macro(
                    id=macro_id,
                    title=macro.title,
                    text=text,
                    confidence=round(min(max(confidence, 0.0), 1.0), 6),
                    filled_slots=filled,
                    missing_slots=tuple(missing),
                )
            )
        return tuple(out)
