"""Macro suggestions by label: what operators inserted for conversations with the same labels.

For each task and label the training rows give ``P(macro | label)`` (Laplace-smoothed, from rows
that say which macros were used). A conversation's macro confidence is the expected value under the
model's label distribution, weighted by the domain the conversation belongs to:

    P(m | x) = sum_d P(d | x) * mean_{t in d} sum_l P_t(l | x) * P(m | t, l)

Slot filling and ranking from the text itself come in a later stage; here slots stay ``{slot}``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from model.record import Interaction
from model.taxonomy import Taxonomy


@dataclass
class MacroStats:
    """``table[task][label][macro_id] = P(macro | task = label)``."""

    table: dict[str, dict[str, dict[str, float]]]
    support: dict[str, dict[str, int]]

    @classmethod
    def fit(cls, interactions: list[Interaction], tasks: list[str], taxonomy: Taxonomy, alpha: float = 0.5):
        macro_ids = list(taxonomy.macros)
        counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
        support: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for x in interactions:
            if x.macros is None:
                continue
            for task in tasks:
                label = x.labels.get(task)
                if label is None:
                    continue
                support[task][label] += 1
                for macro_id in x.macros:
                    if macro_id in taxonomy.macros:
                        counts[task][label][macro_id] += 1
        table = {}
        for task, per_label in support.items():
            table[task] = {}
            for label, n in per_label.items():
                probs = {m: (counts[task][label][m] + alpha / len(macro_ids)) / (n + alpha) for m in macro_ids}
                table[task][label] = {m: round(p, 6) for m, p in probs.items() if p > 1e-4}
        return cls(table=table, support={t: dict(v) for t, v in support.items()})

    def to_dict(self) -> dict:
        return {"table": self.table, "support": self.support}

    @classmethod
    def from_dict(cls, raw: dict) -> "MacroStats":
        return cls(table=raw["table"], support=raw["support"])

    def score(
        self,
        task_probs: dict[str, tuple[list[str], np.ndarray]],
        domain_probs: tuple[list[str], np.ndarray] | None,
        domains: dict[str, str],
        row: int,
    ) -> dict[str, float]:
        """Macro confidences for one row of the model's output."""
        per_domain: dict[str, list[dict[str, float]]] = defaultdict(list)
        for task, (classes, probs) in task_probs.items():
            table = self.table.get(task)
            if not table:
                continue
            scores: dict[str, float] = defaultdict(float)
            for label, p in zip(classes, probs[row]):
                for macro_id, p_macro in table.get(label, {}).items():
                    scores[macro_id] += float(p) * p_macro
            per_domain[domains.get(task, task)].append(scores)
        if domain_probs is not None:
            weights = dict(zip(domain_probs[0], (float(p) for p in domain_probs[1][row])))
        else:
            weights = {d: 1.0 / len(per_domain) for d in per_domain} if per_domain else {}
        total: dict[str, float] = defaultdict(float)
        for domain, score_list in per_domain.items():
            w = weights.get(domain, 0.0)
            for scores in score_list:
                for macro_id, s in scores.items():
                    total[macro_id] += w * s / len(score_list)
        return dict(total)
