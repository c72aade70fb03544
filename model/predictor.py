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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from model.assist.adjust import adjust_probabilities, decisions_for
from model.assist.comments import comment_required
from model.assist.decision import Decision
from model.assist.slots import SlotFiller, fill_template
from model.conversation.record import DEFAULT_CHANNEL, Interaction, interaction_from_dict
from model.errors import InputError
from model.storage.bundle import Bundle, load_bundle
from model.suggestion import CommentHint, CommentReason, Macro, RankedLabel, Suggestion


@dataclass(frozen=True)
class Scores:
    """What :meth:`Predictor.score` gives :meth:`Predictor.postprocess` for a batch: per task
    ``(classes, probabilities [n, k])``, the domain head's ``(domains, probabilities)`` (``None``
    without one) and the macro ranker's raw scores (``None`` when macros are not asked)."""

    task_probs: dict[str, tuple[list[str], np.ndarray]]
    domain_probs: tuple[list[str], np.ndarray] | None
    macro_raw: Any = None


class Predictor:
    """Suggestions from one loaded bundle: :meth:`predict` for a batch, :meth:`predict_live` for a live call."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.taxonomy = bundle.taxonomy
        self.model = bundle.model
        self._domains = bundle.domains
        self.slot_filler = SlotFiller()
        self._live_scorers = self._make_live_scorers()

    def _make_live_scorers(self):
        make = getattr(self.model, "incremental_scorer", None)
        scorer = make() if make is not None else None
        if scorer is None:
            return None
        macros = self.bundle.macros
        return scorer, (macros.incremental_scorer() if hasattr(macros, "incremental_scorer") else None)

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        return cls(load_bundle(path))

    @property
    def model_version(self) -> str:
        return self.bundle.model_id

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    def check_tasks(self, tasks: Iterable[str] | None) -> list[str]:
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
        if with_macros and hasattr(self.bundle.macros, "raw_scores"):
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
        if top_macros > 0 and scores.macro_raw is not None:
            macro_scores = (
                self.bundle.macros.macro_ids_,
                self.bundle.macros.rank(items, task_probs, domain_probs, self._domains, raw=scores.macro_raw),
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
    def live_state(self, channel: str = DEFAULT_CHANNEL):
        """A state for :meth:`predict_live` (``None`` when this model kind cannot score incrementally)."""
        if self._live_scorers is None:
            return None
        model_scorer, macro_scorer = self._live_scorers
        return (
            model_scorer.new_state(channel),
            macro_scorer.new_state(channel) if macro_scorer else None,
            {"values": {}, "upto": 0},
        )

    def predict_live(
        self,
        state,
        interaction: Interaction,
        *,
        tasks: Iterable[str] | None = None,
        top_k: int | None = 3,
        top_macros: int = 3,
    ) -> Suggestion:
        """:meth:`predict` for one live conversation, keeping running sums in ``state`` (from
        :meth:`live_state`) so that an update costs what its new turns cost, not the whole conversation."""
        selected = self.check_tasks(tasks)
        if state is None or self._live_scorers is None:
            return self.predict([interaction], tasks=selected, top_k=top_k, top_macros=top_macros)[0]
        model_state, macro_state, slot_state = state
        model_scorer, macro_scorer = self._live_scorers
        model_scorer.update(model_state, interaction.turns)
        task_probs, domain_probs = self.model.probabilities(model_scorer.scores(model_state), self.tasks)
        macro_raw = None
        if macro_scorer is not None and top_macros > 0:
            macro_scorer.update(macro_state, interaction.turns)
            macro_raw = macro_scorer.scores(macro_state)
        slots = self._live_slots(slot_state, interaction) if top_macros > 0 else None
        [result] = self.postprocess(
            [interaction],
            Scores(task_probs=task_probs, domain_probs=domain_probs, macro_raw=macro_raw),
            tasks=selected,
            top_k=top_k,
            top_macros=top_macros,
            slot_values=[slots] if slots is not None else None,
            comment_items=[self._live_comment_window(slot_state, interaction)],
        )
        hint, rules = result.comment_required, self.taxonomy.comment_rules
        in_domain = rules is not None and result.top_domain == rules.domain
        if hint is not None and in_domain and slot_state["comment_reasons"]:
            older = (CommentReason.from_dict(r) for r in slot_state["comment_reasons"])
            result = replace(result, comment_required=hint.with_reasons(older))
        return result

    def _live_comment_window(self, slot_state: dict, interaction: Interaction) -> Interaction:
        """The comment rules read the same window as live slot filling; what the text of older turns
        triggered (their text rules) is kept in ``slot_state`` and added back to the hint."""
        older, recent = self._live_window(slot_state, "comment_upto", interaction)
        reasons = slot_state.setdefault("comment_reasons", [])
        rules = self.taxonomy.comment_rules
        if older is not None and rules is not None:
            known = {r["rule"] for r in reasons}
            for reason in comment_required(rules, older, {}, None)["reasons"]:
                if reason["rule"] not in known:
                    reasons.append(reason)
                    known.add(reason["rule"])
        return recent

    @staticmethod
    def live_state_bytes(state) -> int:
        """About how much memory a live state holds (for a byte budget over many sessions)."""
        if state is None:
            return 0
        total = 0
        for part in state[:2]:
            if part is None:
                continue
            for view in list(part.full.values()) + list(part.client.values()):
                total += 100 * len(view.counts) + sum(64 + 4 * p.terms.size for p in view.parts)
        return total

    LIVE_SLOT_WINDOW = 12

    def _live_slots(self, slot_state: dict, interaction: Interaction) -> dict[str, str]:
        """Slot values of a live conversation at a cost that does not grow with it: the last
        ``LIVE_SLOT_WINDOW`` turns are read on every update (a partial turn may still change); a turn
        that leaves that window is read once more and what it held is kept (first value wins)."""
        older, recent = self._live_window(slot_state, "upto", interaction)
        if older is not None:
            for slot, value in self.slot_filler.extract(older).items():
                slot_state["values"].setdefault(slot, value)
        values = dict(slot_state["values"])
        for slot, value in self.slot_filler.extract(recent).items():
            values.setdefault(slot, value)
        return values

    def _live_window(self, slot_state: dict, key: str, interaction: Interaction):
        """``(the turns that left the last LIVE_SLOT_WINDOW since this reader's last update, to read
        once, or None; the window itself)``; ``slot_state[key]`` remembers where the reader got to."""
        turns = interaction.turns
        settled = max(0, len(turns) - self.LIVE_SLOT_WINDOW)
        done = slot_state.get(key, 0)
        older = Interaction(turns=tuple(turns[done:settled]), channel=interaction.channel) if settled > done else None
        slot_state[key] = settled
        return older, Interaction(turns=tuple(turns[settled:]), channel=interaction.channel)

    def _ranked_batch(
        self, task: str, classes: list[str], probs: np.ndarray, top_k: int | None
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
        macro_scores,
        task_probs,
        domain_probs,
        row: int,
        top_macros: int,
        values: dict[str, str] | None = None,
    ) -> tuple[Macro, ...]:
        """The ``top_macros`` best macros, their templates filled from ``values`` (else the text)."""
        if top_macros <= 0:
            return ()
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
