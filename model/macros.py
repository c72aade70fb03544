"""Macro ranking: which comment templates fit a conversation.

Three signals, fitted at training time and stored in the bundle (JSON + NumPy, no pickle):

- history (:class:`MacroRanker`): a one-vs-rest logistic regression per macro on TF-IDF character
  n-grams of the conversation, learned from the macro ids operators inserted in the training rows;
- labels (:class:`MacroStats`): what operators inserted for conversations with the same labels;
- the ``when`` rule: similarity between the conversation and each macro's ``when`` text and title.

The by-label statistics, on their own, are what bundles written before the ranker hold.

For each task and label the training rows give ``P(macro | label)`` (Laplace-smoothed, from rows
that say which macros were used). A conversation's macro confidence is the expected value under the
model's label distribution, weighted by the domain the conversation belongs to:

    P(m | x) = sum_d P(d | x) * mean_{t in d} sum_l P_t(l | x) * P(m | t, l)

"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.errors import BundleError, ConfigError, NotFittedError
from model.normalize import normalize_text, render_interaction
from model.persist import load_vectorizer, save_vectorizer, write_json
from model.record import Interaction
from model.taxonomy import Taxonomy


MACROS_JSON = "macros.json"


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

    def save(self, folder: Path) -> None:
        write_json(folder / MACROS_JSON, self.to_dict())

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


@dataclass
class RankerConfig:
    """How the three signals are mixed and how the history model is fitted; validated when built."""

    w_history: float = 0.6
    w_labels: float = 0.3
    w_when: float = 0.1
    C: float = 4.0
    max_features: int = 60_000
    min_rows: int = 2  # a macro used in fewer training rows gets no history model (its score is 0)

    def __post_init__(self) -> None:
        for name in ("w_history", "w_labels", "w_when"):
            if getattr(self, name) < 0:
                raise ConfigError(f"macros.{name} must be >= 0, got {getattr(self, name)}")
        if self.w_history + self.w_labels + self.w_when <= 0:
            raise ConfigError("macros weights w_history + w_labels + w_when must be > 0")
        if self.C <= 0:
            raise ConfigError(f"macros.C must be > 0, got {self.C}")


class MacroRanker:
    """Ranks the macro library for each conversation from history, predicted labels and ``when`` rules.

    Learned state: ``stats_`` (by label), ``vectorizer_`` (character n-grams), ``coef_`` and
    ``intercept_`` (one logistic model per macro in ``macro_ids_``), ``when_`` (the macros' ``when``
    texts in the same feature space).
    """

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()

    # ----------------------------------------------------------------------------- fit
    def fit(self, interactions: list[Interaction], tasks: list[str], taxonomy: Taxonomy) -> "MacroRanker":
        from sklearn.linear_model import LogisticRegression

        self.stats_ = MacroStats.fit(interactions, tasks, taxonomy)
        self.macro_ids_ = list(taxonomy.macros)
        rows = [x for x in interactions if x.macros is not None]
        self.vectorizer_ = _new_vectorizer(self.config.max_features, min_df=2 if len(interactions) >= 50 else 1)
        self.vectorizer_.fit([render_interaction(x) for x in interactions] or ["__empty__"])
        X = self.vectorizer_.transform([render_interaction(x) for x in rows]) if rows else None
        n_features = len(self.vectorizer_.vocabulary_)
        self.coef_ = np.zeros((len(self.macro_ids_), n_features), dtype=np.float32)
        self.intercept_ = np.full(len(self.macro_ids_), -20.0, dtype=np.float32)  # never used → ~0
        for k, macro_id in enumerate(self.macro_ids_):
            y = np.array([macro_id in x.macros for x in rows], dtype=int)
            if X is None or y.sum() < self.config.min_rows or y.sum() == len(y):
                continue
            head = LogisticRegression(C=self.config.C, class_weight=None, max_iter=2000, solver="liblinear")
            head.fit(X, y)
            self.coef_[k] = head.coef_[0]
            self.intercept_[k] = head.intercept_[0]
        self.when_ = self._when_vectors(taxonomy)
        return self

    def _when_vectors(self, taxonomy: Taxonomy):
        texts = [f"{m.title}. {m.when}" if (m := taxonomy.macros.get(i)) else "" for i in self.macro_ids_]
        if not texts:  # a taxonomy without a macro library
            import scipy.sparse as sp

            return sp.csr_matrix((0, len(self.vectorizer_.vocabulary_)), dtype=np.float32)
        return self.vectorizer_.transform([normalize_text(t) for t in texts])

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this MacroRanker is not trained yet; call fit() or load a bundle")

    # ------------------------------------------------------------------------- scoring
    def signals(self, interactions: list[Interaction], task_probs, domain_probs, domains) -> dict[str, np.ndarray]:
        """``{"history", "labels", "when"}``, each ``[n_interactions, n_macros]`` in [0, 1]."""
        self._check_fitted()
        X = self.vectorizer_.transform([render_interaction(x) for x in interactions])
        history = 1.0 / (1.0 + np.exp(-(X @ self.coef_.T + self.intercept_)))
        labels = np.zeros_like(history)
        for row in range(len(interactions)):
            scores = self.stats_.score(task_probs, domain_probs, domains, row) if task_probs else {}
            labels[row] = [scores.get(m, 0.0) for m in self.macro_ids_]
        when = np.asarray((X @ self.when_.T).todense())
        if when.shape[1] == 0:  # no macro library
            return {"history": np.asarray(history), "labels": labels, "when": when}
        top = when.max(axis=1, keepdims=True)
        when = np.divide(when, top, out=np.zeros_like(when), where=top > 0)
        return {"history": np.asarray(history), "labels": labels, "when": when}

    def rank(self, interactions: list[Interaction], task_probs, domain_probs, domains) -> np.ndarray:
        """Macro confidences ``[n_interactions, n_macros]`` (columns in ``macro_ids_`` order)."""
        s = self.signals(interactions, task_probs, domain_probs, domains)
        cfg = self.config
        total = cfg.w_history + cfg.w_labels + cfg.w_when
        mixed = (cfg.w_history * s["history"] + cfg.w_labels * s["labels"] + cfg.w_when * s["when"]) / total
        return np.clip(mixed, 0.0, 1.0)

    def score(self, task_probs, domain_probs, domains, row: int) -> dict[str, float]:
        """The by-label scores alone (what bundles before the ranker returned)."""
        return self.stats_.score(task_probs, domain_probs, domains, row)

    # --------------------------------------------------------------------- persistence
    def save(self, folder: Path) -> None:
        """``macros.json`` (by-label table, config, macro ids) and ``macros/`` (vectorizer, weights)."""
        self._check_fitted()
        raw = self.stats_.to_dict()
        raw["ranker"] = {"config": asdict(self.config), "macro_ids": self.macro_ids_, "folder": RANKER_DIR}
        write_json(folder / MACROS_JSON, raw)
        (folder / RANKER_DIR).mkdir()
        save_vectorizer(self.vectorizer_, folder / RANKER_DIR, "char")
        np.save(folder / RANKER_DIR / "coef.npy", self.coef_, allow_pickle=False)
        np.save(folder / RANKER_DIR / "intercept.npy", self.intercept_, allow_pickle=False)

    @classmethod
    def from_files(cls, folder: Path, raw: dict, taxonomy: Taxonomy) -> "MacroRanker":
        meta = raw["ranker"]
        ranker = cls(RankerConfig(**meta.get("config", {})))
        ranker.stats_ = MacroStats.from_dict(raw)
        ranker.macro_ids_ = list(meta["macro_ids"])
        ranker.vectorizer_ = load_vectorizer(folder / RANKER_DIR, "char")
        try:
            ranker.coef_ = np.load(folder / RANKER_DIR / "coef.npy", allow_pickle=False)
            ranker.intercept_ = np.load(folder / RANKER_DIR / "intercept.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{folder / RANKER_DIR}: macro weights cannot be read ({exc}); retrain the model") from exc
        expected = (len(ranker.macro_ids_), len(ranker.vectorizer_.vocabulary_))
        if ranker.coef_.shape != expected or ranker.intercept_.shape != expected[:1]:
            raise BundleError(f"{folder / RANKER_DIR}: macro weights have shape {ranker.coef_.shape}, expected "
                              f"{expected}; the bundle is inconsistent: retrain the model")
        ranker.when_ = ranker._when_vectors(taxonomy)
        return ranker


RANKER_DIR = "macros"


def load_macros(folder: Path, taxonomy: Taxonomy) -> MacroStats | MacroRanker:
    """The bundle's macro model: a :class:`MacroRanker`, or the by-label :class:`MacroStats` of a
    bundle written before the ranker."""
    try:
        raw = json.loads((folder / MACROS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{folder / MACROS_JSON} cannot be read as JSON ({exc}); retrain the model") from exc
    if "ranker" in raw:
        return MacroRanker.from_files(folder, raw, taxonomy)
    return MacroStats.from_dict(raw)


def _new_vectorizer(max_features: int, min_df: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=min_df,
                           max_features=max_features, dtype=np.float32)
