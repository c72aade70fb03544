"""``Predictor``: ranked labels with confidences and macros for a batch of interactions.

Thread-safe for serving: it holds only read-only fitted state, and ``predict`` keeps nothing
between calls, so one instance serves concurrent requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model.assist.adjust import adjust_probabilities, decisions_for
from model.assist.comments import comment_required, rules_apply
from model.assist.slots import SlotFiller, fill_template
from model.conversation.record import Interaction, interaction_from_dict
from model.errors import InputError
from model.storage.bundle import Bundle, load_bundle


class Predictor:
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
    ) -> list[dict[str, Any]]:
        """For each interaction: ``predictions`` per task (ranked, ``top_k`` or all labels when
        ``None``), ``decisions`` per task (a label, its group, or ``None`` = abstain), ``domains``
        ranked, the ``macros`` ranked by confidence and (``comments``) whether the CRM's rules ask
        for a comment (``comment_required`` is ``None`` when not asked: batch relabelling skips it)."""
        items = [
            x if isinstance(x, Interaction) else interaction_from_dict(x, where=f"interactions[{i}]")
            for i, x in enumerate(interactions)
        ]
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        selected = self.check_tasks(tasks)
        if not items:
            return []
        task_probs, domain_probs, macro_raw = self.score(items, top_macros > 0)
        return self.postprocess(items, task_probs, domain_probs, macro_raw, selected, top_k, top_macros, comments)

    def score(self, items: list[Interaction], with_macros: bool = True):
        """``(task probabilities, domain probabilities, macro raw scores or None)`` for a batch; the
        model runs once for every task, the domain head and (when asked) the macro ranker."""
        task_probs, domain_probs = self.model.predict_proba(items, self.tasks)
        macro_raw = None
        if with_macros and hasattr(self.bundle.macros, "raw_scores"):
            macro_raw = self.bundle.macros.raw_scores(items)
        return task_probs, domain_probs, macro_raw

    def postprocess(
        self,
        items,
        task_probs,
        domain_probs,
        macro_raw,
        selected,
        top_k,
        top_macros,
        comments: bool = True,
        slot_values: list[dict] | None = None,
        comment_items: list[Interaction] | None = None,
    ) -> list[dict[str, Any]]:
        """Ranked labels, decisions, domains, macros and the comment rule from the scores."""
        task_probs = adjust_probabilities(self.taxonomy, self.bundle.decision, items, task_probs)  # priors, evidence
        macro_scores = None
        if top_macros > 0 and macro_raw is not None:
            macro_scores = (
                self.bundle.macros.macro_ids_,
                self.bundle.macros.rank(items, task_probs, domain_probs, self._domains, raw=macro_raw),
            )
        ranked = {task: self._ranked_batch(task, *task_probs[task], top_k) for task in selected}
        results = []
        for row in range(len(items)):
            predictions = {task: ranked[task][row] for task in selected}
            domains = []
            if domain_probs is not None:
                order = np.argsort(-domain_probs[1][row], kind="stable")
                domains = [{"label": domain_probs[0][j], "confidence": float(domain_probs[1][row][j])} for j in order]
            # content check, domain routing, then the thresholds (model/assist/adjust.py)
            decisions = decisions_for(
                self.taxonomy, self.bundle.decision, items[row], task_probs, row, selected, domain_probs
            )
            results.append(
                {
                    "predictions": predictions,
                    "decisions": decisions,
                    "domains": domains,
                    "macros": self._macros(
                        items[row],
                        macro_scores,
                        task_probs,
                        domain_probs,
                        row,
                        top_macros,
                        slot_values[row] if slot_values is not None else None,
                    ),
                    "comment_required": self._comment(
                        comment_items[row] if comment_items else items[row], task_probs, decisions, domains
                    )
                    if comments
                    else None,
                }
            )
        return results

    # ------------------------------------------------------------------------------ live
    def live_state(self, channel: str = "chat"):
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
    ) -> dict[str, Any]:
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
        result = self.postprocess(
            [interaction],
            task_probs,
            domain_probs,
            macro_raw,
            selected,
            top_k,
            top_macros,
            slot_values=[slots] if slots is not None else None,
            comment_items=[self._live_comment_window(slot_state, interaction)],
        )[0]
        hint = result.get("comment_required")
        top_domain = result["domains"][0]["label"] if result["domains"] else None
        if hint is not None and slot_state["comment_reasons"] and top_domain == self._domains.get("reason2"):
            seen = {r["rule"] for r in hint["reasons"]}
            hint["reasons"] += [r for r in slot_state["comment_reasons"] if r["rule"] not in seen]
            hint["required"] = bool(hint["reasons"])
        return result

    def _live_comment_window(self, slot_state: dict, interaction: Interaction) -> Interaction:
        """The comment rules read the same window as live slot filling; what the text of older turns
        triggered (their text rules) is kept in ``slot_state`` and added back to the hint."""
        older, recent = self._live_window(slot_state, "comment_upto", interaction)
        reasons = slot_state.setdefault("comment_reasons", [])
        if older is not None and rules_apply(self.taxonomy):
            known = {r["rule"] for r in reasons}
            for reason in comment_required(older, {}, None)["reasons"]:
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

    def _ranked_batch(self, task: str, classes: list[str], probs: np.ndarray, top_k: int | None) -> list[list[dict]]:
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
            [{"label": labels[j], "confidence": v} for j, v in zip(row_order, row_values)]
            for row_order, row_values in zip(order.tolist(), values)
        ]

    def _comment(self, item: Interaction, task_probs, decisions, domains) -> dict[str, Any] | None:
        if not rules_apply(self.taxonomy):  # the telecom rule book only runs on its own taxonomy
            return None
        labels = {task: d["label"] for task, d in decisions.items() if d.get("level") == "label"}
        return comment_required(item, labels, domains[0]["label"] if domains else None)

    def _macros(
        self,
        item: Interaction,
        macro_scores,
        task_probs,
        domain_probs,
        row: int,
        top_macros: int,
        values: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        if top_macros <= 0:
            return []
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
                {
                    "id": macro_id,
                    "title": macro.title,
                    "text": text,
                    "confidence": round(min(max(confidence, 0.0), 1.0), 6),
                    "filled_slots": filled,
                    "missing_slots": missing,
                }
            )
        return out
