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

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from model.arrays import Float64Array, FloatArray
from model.conversation.record import Interaction
from model.conversation.taxonomy import Taxonomy
from model.errors import BundleError, ConfigError, NotFittedError
from model.kinds.compiled import NgramFeaturizer, Reader, as_reader, load_array, load_json
from model.kinds.registry import DomainProbs, TaskProbs
from model.storage.files import write_json
from model.text.normalize import normalize_text, render_interaction

if TYPE_CHECKING:
    from model.kinds.incremental import IncrementalScorer

MACROS_JSON = "macros.json"


class MacroTableJSON(TypedDict):
    """The by-label part of ``macros.json``: ``P(macro | task = label)`` and the rows behind each label."""

    table: dict[str, dict[str, dict[str, float]]]
    support: dict[str, dict[str, int]]


@dataclass
class MacroStats:
    """``table[task][label][macro_id] = P(macro | task = label)``."""

    table: dict[str, dict[str, dict[str, float]]]
    support: dict[str, dict[str, int]]

    @classmethod
    def fit(
        cls, interactions: list[Interaction], tasks: list[str], taxonomy: Taxonomy, alpha: float = 0.5
    ) -> MacroStats:
        """``P(macro | task = label)`` from the rows that say which macros operators used (Laplace ``alpha``)."""
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
        table: dict[str, dict[str, dict[str, float]]] = {}
        for task, per_label in support.items():
            table[task] = {}
            for label, n in per_label.items():
                probs = {m: (counts[task][label][m] + alpha / len(macro_ids)) / (n + alpha) for m in macro_ids}
                table[task][label] = {m: round(p, 6) for m, p in probs.items() if p > 1e-4}
        return cls(table=table, support={t: dict(v) for t, v in support.items()})

    def to_dict(self) -> MacroTableJSON:
        """The table and its support as ``macros.json`` holds them."""
        return {"table": self.table, "support": self.support}

    def save(self, folder: Path) -> None:
        """Write ``macros.json`` (the by-label table alone) into the bundle folder ``folder``."""
        write_json(folder / MACROS_JSON, self.to_dict())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MacroStats:
        """The statistics from a parsed ``macros.json`` (its ``table`` and ``support``)."""
        return cls(table=raw["table"], support=raw["support"])

    def score(
        self,
        task_probs: TaskProbs,
        domain_probs: DomainProbs,
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

    stats_: MacroStats
    macro_ids_: list[str]
    vectorizer_: NgramFeaturizer
    coef_: FloatArray  # [n_macros, n_features], float32
    intercept_: FloatArray  # [n_macros], float32
    matrix_: Float64Array  # [n_features, 2 * n_macros]
    bias_: Float64Array  # [2 * n_macros]
    label_tables_: dict[str, tuple[list[str], Float64Array]]  # task -> (labels, P(macro | label) [labels, macros])

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()

    # ----------------------------------------------------------------------------- fit
    def fit(self, interactions: list[Interaction], tasks: list[str], taxonomy: Taxonomy) -> MacroRanker:
        """Learn the three signals from labelled rows (the rows that name their macros teach the history model)."""
        from sklearn.linear_model import LogisticRegression

        self.stats_ = MacroStats.fit(interactions, tasks, taxonomy)
        self.macro_ids_ = list(taxonomy.macros)
        used = [(x, x.macros) for x in interactions if x.macros is not None]
        rows = [x for x, _ in used]
        vectorizer = _new_vectorizer(self.config.max_features, min_df=2 if len(interactions) >= 50 else 1)
        vectorizer.fit([render_interaction(x) for x in interactions] or ["__empty__"])
        self.vectorizer_ = NgramFeaturizer.from_sklearn(vectorizer)
        X = self.vectorizer_.transform([render_interaction(x) for x in rows]) if rows else None
        n_features = self.vectorizer_.n_features
        self.coef_ = np.zeros((len(self.macro_ids_), n_features), dtype=np.float32)
        self.intercept_ = np.full(len(self.macro_ids_), -20.0, dtype=np.float32)  # never used → ~0
        for k, macro_id in enumerate(self.macro_ids_):
            y = np.array([macro_id in macros for _, macros in used], dtype=np.int_)
            if X is None or y.sum() < self.config.min_rows or y.sum() == len(y):
                continue
            head = LogisticRegression(C=self.config.C, class_weight=None, max_iter=2000, solver="liblinear")
            head.fit(X, y)
            self.coef_[k] = head.coef_[0]
            self.intercept_[k] = head.intercept_[0]
        self._compile(taxonomy)
        return self

    def _compile(self, taxonomy: Taxonomy) -> None:
        """One matrix ``[n_features, 2 * n_macros]``: the history models' weights, then the ``when``
        texts' TF-IDF vectors (their dot product with a conversation is the ``when`` similarity); and
        the by-label table as one matrix per task."""
        texts = [f"{m.title}. {m.when}" if (m := taxonomy.macros.get(i)) else "" for i in self.macro_ids_]
        when = self.vectorizer_.transform([normalize_text(t) for t in texts]).toarray().astype(np.float64)
        self.matrix_ = np.ascontiguousarray(np.hstack([self.coef_.T.astype(np.float64), when.T]))
        self.bias_ = np.concatenate([self.intercept_.astype(np.float64), np.zeros(len(self.macro_ids_))])
        self.label_tables_ = {
            task: (list(table), np.array([[table[label].get(m, 0.0) for m in self.macro_ids_] for label in table]))
            for task, table in self.stats_.table.items()
        }

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this MacroRanker is not trained yet; call fit() or load a bundle")

    # ------------------------------------------------------------------------- scoring
    def signals(
        self, interactions: list[Interaction], task_probs: TaskProbs, domain_probs: DomainProbs, domains: dict[str, str]
    ) -> dict[str, Float64Array]:
        """``{"history", "labels", "when"}``, each ``[n_interactions, n_macros]`` in [0, 1]."""
        return self.signals_from(self.raw_scores(interactions), task_probs, domain_probs, domains)

    def signals_from(
        self, raw: Float64Array, task_probs: TaskProbs, domain_probs: DomainProbs, domains: dict[str, str]
    ) -> dict[str, Float64Array]:
        """The three signals from the raw scores ``X @ matrix_ + bias_`` (see :meth:`signals`)."""
        m = len(self.macro_ids_)
        history = 1.0 / (1.0 + np.exp(-raw[:, :m]))
        when = np.maximum(raw[:, m:], 0.0)  # similarities are >= 0; running sums may leave -1e-17
        labels = self.label_signal(task_probs, domain_probs, domains, raw.shape[0])
        if m:
            top = when.max(axis=1, keepdims=True)
            # below 1e-9 a row shares nothing with any `when` text (what is left is rounding noise)
            when = np.divide(when, top, out=np.zeros_like(when), where=top > 1e-9)
        return {"history": history, "labels": labels, "when": when}

    def raw_scores(self, interactions: list[Interaction]) -> Float64Array:
        """``X @ matrix_ + bias_``: the history logits and the ``when`` similarities, ``[n, 2 * n_macros]``."""
        self._check_fitted()
        X = self.vectorizer_.transform([render_interaction(x) for x in interactions])
        raw: Float64Array = np.asarray(X @ self.matrix_) + self.bias_  # float32 features @ float64 matrix
        return raw

    def incremental_scorer(self) -> IncrementalScorer:
        """Running-sum scoring of :meth:`raw_scores` for live sessions (see :mod:`model.kinds.incremental`)."""
        from model.kinds.incremental import IncrementalScorer, IncrementalView

        self._check_fitted()
        return IncrementalScorer([IncrementalView("macro", self.vectorizer_, self.matrix_)], [], self.bias_)

    def label_signal(
        self, task_probs: TaskProbs, domain_probs: DomainProbs, domains: dict[str, str], n: int
    ) -> Float64Array:
        """``P(m | x) = sum_d P(d | x) * mean_{t in d} sum_l P_t(l | x) * P(m | t, l)`` for every row."""
        per_domain: dict[str, list[FloatArray]] = defaultdict(list)
        for task, (classes, probs) in (task_probs or {}).items():
            table = self.label_tables_.get(task)
            if table is None:
                continue
            labels, matrix = table
            position = {label: k for k, label in enumerate(labels)}
            cols = [(j, position[c]) for j, c in enumerate(classes) if c in position]
            if not cols:
                continue
            j, k = (np.array(v) for v in zip(*cols))
            per_domain[domains.get(task, task)].append(probs[:, j] @ matrix[k])
        out = np.zeros((n, len(self.macro_ids_)))
        if not per_domain:
            return out
        if domain_probs is not None:
            weights = {d: domain_probs[1][:, k] for k, d in enumerate(domain_probs[0])}
        else:
            weights = {d: np.full(n, 1.0 / len(per_domain)) for d in per_domain}
        for domain, scores in per_domain.items():
            w = weights.get(domain)
            if w is not None:
                out += w[:, None] * (sum(scores) / len(scores))
        return out

    def rank(
        self,
        interactions: list[Interaction],
        task_probs: TaskProbs,
        domain_probs: DomainProbs,
        domains: dict[str, str],
        *,
        raw: Float64Array | None = None,
    ) -> Float64Array:
        """Macro confidences ``[n_interactions, n_macros]`` (columns in ``macro_ids_`` order); ``raw``:
        :meth:`raw_scores` already computed (a live session's running sums)."""
        raw = self.raw_scores(interactions) if raw is None else raw
        s = self.signals_from(raw, task_probs, domain_probs, domains)
        cfg = self.config
        total = cfg.w_history + cfg.w_labels + cfg.w_when
        mixed = (cfg.w_history * s["history"] + cfg.w_labels * s["labels"] + cfg.w_when * s["when"]) / total
        return np.clip(mixed, 0.0, 1.0)

    def score(
        self, task_probs: TaskProbs, domain_probs: DomainProbs, domains: dict[str, str], row: int
    ) -> dict[str, float]:
        """The by-label scores alone (what bundles before the ranker returned)."""
        return self.stats_.score(task_probs, domain_probs, domains, row)

    # --------------------------------------------------------------------- persistence
    def save(self, folder: Path) -> None:
        """``macros.json`` (by-label table, config, macro ids) and ``macros/`` (n-gram view, weights)."""
        self._check_fitted()
        ranker = {"config": asdict(self.config), "macro_ids": self.macro_ids_, "folder": RANKER_DIR}
        write_json(folder / MACROS_JSON, {**self.stats_.to_dict(), "ranker": ranker})
        (folder / RANKER_DIR).mkdir()
        self.vectorizer_.save(folder / RANKER_DIR, "char")
        np.save(folder / RANKER_DIR / "coef.npy", self.coef_, allow_pickle=False)
        np.save(folder / RANKER_DIR / "intercept.npy", self.intercept_, allow_pickle=False)

    @classmethod
    def from_files(cls, read: Reader, raw: Mapping[str, Any], taxonomy: Taxonomy) -> MacroRanker:
        """Rebuild a ranker from a bundle's parsed ``macros.json`` and ``macros/`` files (checked for consistency)."""
        try:
            meta = raw["ranker"]
            ranker = cls(RankerConfig(**meta.get("config", {})))
            ranker.stats_ = MacroStats.from_dict(raw)
            ranker.macro_ids_ = [str(m) for m in meta["macro_ids"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{MACROS_JSON}: not a macro ranker ({exc}); retrain the model") from exc
        ranker.vectorizer_ = NgramFeaturizer.load(read, f"{RANKER_DIR}/char")
        ranker.coef_ = load_array(read, f"{RANKER_DIR}/coef.npy", ndim=2, dtype="f")
        ranker.intercept_ = load_array(read, f"{RANKER_DIR}/intercept.npy", ndim=1, dtype="f")
        expected = (len(ranker.macro_ids_), ranker.vectorizer_.n_features)
        if ranker.coef_.shape != expected or ranker.intercept_.shape != expected[:1]:
            raise BundleError(
                f"{RANKER_DIR}: macro weights have shape {ranker.coef_.shape}, expected "
                f"{expected}; the bundle is inconsistent: retrain the model"
            )
        ranker._compile(taxonomy)
        return ranker


RANKER_DIR = "macros"


def load_macros(read: Reader | Path, taxonomy: Taxonomy) -> MacroStats | MacroRanker:
    """The bundle's macro model: a :class:`MacroRanker`, or the by-label :class:`MacroStats` of a
    bundle written before the ranker."""
    read = as_reader(read)
    raw = load_json(read, MACROS_JSON)
    if not isinstance(raw, dict) or "table" not in raw:
        raise BundleError(f"{MACROS_JSON}: not a macro table; retrain the model")
    if "ranker" in raw:
        return MacroRanker.from_files(read, raw, taxonomy)
    return MacroStats.from_dict(raw)


def _new_vectorizer(max_features: int, min_df: int) -> Any:  # a TfidfVectorizer (scikit-learn ships no types)
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        sublinear_tf=True,
        min_df=min_df,
        max_features=max_features,
        dtype=np.float32,
    )
