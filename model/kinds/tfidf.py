"""The first model: TF-IDF word and character n-grams + a linear classifier, one head per task.

Follows scikit-learn's estimator contract: ``__init__`` stores parameters only, ``fit`` learns and
returns self, learned state ends in ``_``. Each head is trained on the rows that carry its label and
calibrated on held-out folds (``CalibratedClassifierCV``), so ``predict_proba`` gives confidences an
operator UI can act on. A small domain head tells which tasks a conversation belongs to (a telecom
call has no marketplace topic), learned from which labels the rows carry.

Fitting uses scikit-learn; the fitted vectorizers and heads are then compiled into arrays
(:mod:`model.kinds.compiled`), and every prediction — right after training and from a loaded bundle — runs
on those arrays. A bundle stores only the compiled form (``.npy`` + JSON), so loading never needs
scikit-learn and nothing in a bundle can execute.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from model.arrays import FloatArray
from model.conversation.record import Interaction
from model.errors import BundleError, ConfigError, DataError, NotFittedError
from model.kinds.compiled import LinearHeads, NgramFeaturizer, Reader, as_reader, safe_name
from model.kinds.registry import DomainProbs, TaskProbs
from model.text.normalize import client_text, render_interaction, render_turns

if TYPE_CHECKING:
    from model.kinds.incremental import IncrementalScorer, IncrementalView

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("temperature", "sigmoid", "isotonic")
DOMAIN = "_domain"  # the domain head's name among the stacked heads
DOMAIN_ONLY = "#domain-only"  # an id ending in it: a training row that teaches the domain head alone


def _domain_only(x: Interaction) -> bool:
    return (x.id or "").endswith(DOMAIN_ONLY)


VIEWS = ("word", "char", "client")
ESTIMATORS = ("linear_svc", "logreg")


@dataclass
class TfidfConfig:
    """Hyper-parameters of the TF-IDF model; validated when built."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    max_features_word: int = 200_000
    max_features_char: int = 300_000
    client_view: bool = True  # a third vectorizer over the client's words only
    channel_token: bool = True  # the channel (__call__/__chat__/__email__) as a token of the n-gram views
    estimator: str = "logreg"  # or "linear_svc": a little less accurate here, several times faster to fit
    C: float = 10.0
    solver: str = "saga"  # logreg only
    tol: float = 1e-3
    class_weight: str | None = "balanced"
    calibration: str = "temperature"
    calibration_folds: int = 3
    max_iter: int = 3000
    seed: int = 13
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(self, name)  # a pair, or a YAML list of two
            if not (1 <= lo <= hi <= 8):
                raise ConfigError(f"model.{name} must be [low, high] with 1 <= low <= high <= 8, got {[lo, hi]}")
        self.word_ngrams = (self.word_ngrams[0], self.word_ngrams[1])
        self.char_ngrams = (self.char_ngrams[0], self.char_ngrams[1])
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"model.estimator must be one of {list(ESTIMATORS)}, got {self.estimator!r}")
        if self.C <= 0:
            raise ConfigError(f"model.C must be > 0, got {self.C}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"model.calibration must be one of {list(CALIBRATION_METHODS)}, got {self.calibration!r}")
        if not 2 <= self.calibration_folds <= 10:
            raise ConfigError(f"model.calibration_folds must be between 2 and 10, got {self.calibration_folds}")
        if self.class_weight not in (None, "balanced"):
            raise ConfigError(f"model.class_weight must be null or 'balanced', got {self.class_weight!r}")


class TfidfMultiTask:
    """Shared TF-IDF features, one calibrated logistic-regression head per task."""

    kind = "tfidf"
    config_class: type[TfidfConfig] = TfidfConfig

    # learned state (set by fit or load); scikit-learn's fitted estimators are untyped, hence Any
    vectorizers_: dict[str, Any]  # view -> fitted TfidfVectorizer (training only)
    heads_: dict[str, Any]  # task -> fitted CalibratedClassifierCV (training only)
    domain_head_: Any  # the domain's CalibratedClassifierCV, or None (training only)
    features_: dict[str, NgramFeaturizer]
    linear_: LinearHeads
    dropped_labels_: dict[str, list[str]]

    def __init__(self, config: TfidfConfig | None = None) -> None:
        self.config = config or TfidfConfig()

    # ----------------------------------------------------------------- features
    def _new_vectorizers(self) -> dict[str, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer  # training only

        cfg = self.config
        vectorizers = {
            "word": TfidfVectorizer(
                analyzer="word",
                ngram_range=cfg.word_ngrams,
                sublinear_tf=True,
                min_df=1,
                max_features=cfg.max_features_word,
                token_pattern=r"(?u)\b\w+\b",
                dtype=np.float32,
            ),
            "char": TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=cfg.char_ngrams,
                sublinear_tf=True,
                min_df=2,
                max_features=cfg.max_features_char,
                dtype=np.float32,
            ),
        }
        if cfg.client_view:
            vectorizers["client"] = TfidfVectorizer(
                analyzer="word",
                ngram_range=(1, 2),
                sublinear_tf=True,
                min_df=1,
                max_features=cfg.max_features_word,
                token_pattern=r"(?u)\b\w+\b",
                dtype=np.float32,
            )
        return vectorizers

    def _views(self, interactions: list[Interaction]) -> dict[str, list[str]]:
        """The text each view reads: the rendered conversation (with the channel token unless
        ``channel_token: false``), and the client's words alone."""
        render = render_interaction if self.config.channel_token else (lambda x: render_turns(x.turns))
        full = [render(x) for x in interactions]
        return {"word": full, "char": full, "client": [client_text(x) or "__empty__" for x in interactions]}

    def transform(self, interactions: list[Interaction]) -> sp.csr_matrix:
        """The n-gram features of every view side by side, computed by the compiled featurizers."""
        if not hasattr(self, "features_"):
            raise NotFittedError(f"this {type(self).__name__} is not trained yet; call fit() or load a bundle")
        return self._ngram_matrix(interactions)

    def _ngram_matrix(self, interactions: list[Interaction]) -> sp.csr_matrix:
        """Every view of a batch, each computed in one pass (the compiled featurizer when built)."""
        views = self._views(interactions)
        blocks = [featurizer.transform(views[name]) for name, featurizer in self.features_.items()]
        return sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]

    # ---------------------------------------------------------------- training
    def fit(self, interactions: list[Interaction], tasks: list[str], domains: dict[str, str] | None = None) -> Self:
        """Fit the shared features on every row and each task's head on the rows with its label."""
        if not interactions:
            raise DataError("no training rows; give at least one labelled interaction per label")
        self._fit_features(interactions)
        X = self.transform(interactions)
        self.heads_ = {}
        self.dropped_labels_ = {}
        for task in tasks:
            rows = [i for i, x in enumerate(interactions) if task in x.labels and not _domain_only(x)]
            if not rows:
                log.warning("task %s: no rows carry its label; the task is left out of this model", task)
                continue
            y = np.array([interactions[i].labels[task] for i in rows], dtype=object)
            self.heads_[task] = self._fit_head(task, X[rows], y)
        if not self.heads_:
            raise DataError(f"none of the tasks {tasks} has labelled rows; label at least one task")
        self.domain_head_ = self._fit_domain_head(X, interactions, domains or {})
        self._compile(X.shape[1])
        return self

    def _compile(self, n_features: int) -> None:
        """Turn the fitted heads into one stacked matrix (:class:`model.kinds.compiled.LinearHeads`)."""
        heads = dict(self.heads_)
        if self.domain_head_ is not None:
            heads[DOMAIN] = self.domain_head_
        self.linear_ = LinearHeads.from_sklearn(heads, n_features)

    def _fit_features(self, interactions: list[Interaction]) -> None:
        """Fit the shared feature extractors (subclasses add their own features here)."""
        views = self._views(interactions)
        self.vectorizers_ = self._new_vectorizers()
        for name, vec in self.vectorizers_.items():
            vec.fit(views[name])
        self.features_ = {name: NgramFeaturizer.from_sklearn(vec) for name, vec in self.vectorizers_.items()}

    def _fit_head(self, task: str, X: sp.csr_matrix, y: npt.NDArray[np.object_]) -> Any:
        """A calibrated head fitted on the rows of ``X`` labelled ``y`` (labels with fewer than 2 rows left out)."""
        counts = Counter(y.tolist())
        rare = sorted(label for label, n in counts.items() if n < 2)
        if rare:
            log.warning("task %s: labels with fewer than 2 rows are left out: %s", task, rare)
            self.dropped_labels_[task] = rare
            keep = np.array([label not in rare for label in y])
            X, y = X[keep], y[keep]
            counts = Counter(y.tolist())
        if len(counts) < 2:
            raise DataError(
                f"task {task}: the training rows carry {len(counts)} distinct label(s); "
                "a head needs at least two labels with 2+ rows each"
            )
        folds = min(self.config.calibration_folds, min(counts.values()))
        return self._calibrated(folds).fit(X, y)

    def _calibrated(self, folds: int) -> Any:
        """An unfitted ``CalibratedClassifierCV`` around the configured linear estimator."""
        from sklearn.calibration import CalibratedClassifierCV  # training only
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        cfg = self.config
        if cfg.estimator == "logreg":
            base = LogisticRegression(
                C=cfg.C,
                class_weight=cfg.class_weight,
                max_iter=cfg.max_iter,
                random_state=cfg.seed,
                solver=cfg.solver,
                tol=cfg.tol,
            )
        else:  # a linear SVM: its scores are turned into probabilities by the calibration below
            base = LinearSVC(C=cfg.C, class_weight=cfg.class_weight, max_iter=cfg.max_iter, random_state=cfg.seed)
        return CalibratedClassifierCV(base, method=cfg.calibration, cv=folds, ensemble=False)

    def _fit_domain_head(self, X: sp.csr_matrix, interactions: list[Interaction], domains: dict[str, str]) -> Any:
        """The domain head, or ``None`` when fewer than two domains have two rows each."""
        labels: list[str | None] = []
        for x in interactions:
            found = {domains.get(task, task) for task in x.labels if task in self.heads_}
            labels.append(found.pop() if len(found) == 1 else None)
        keep = [i for i, d in enumerate(labels) if d is not None]
        counts = Counter(labels[i] for i in keep)
        if len(counts) < 2 or min(counts.values()) < 2:
            return None
        y = np.array([labels[i] for i in keep], dtype=object)
        return self._calibrated(min(self.config.calibration_folds, min(counts.values()))).fit(X[keep], y)

    # --------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "linear_"):
            raise NotFittedError(f"this {type(self).__name__} is not trained yet; call fit() or load a bundle")

    @property
    def tasks(self) -> list[str]:
        """The tasks this model predicts, in head order."""
        self._check_fitted()
        return [name for name in self.linear_.heads if name != DOMAIN]

    @property
    def task_classes(self) -> dict[str, list[str]]:
        """Each task's labels, in the order of its probability columns."""
        self._check_fitted()
        return {task: list(self.linear_.heads[task].classes) for task in self.tasks}

    @property
    def has_domain_head(self) -> bool:
        """Whether the model learned a domain head (two or more domains in its training data)."""
        return DOMAIN in self.linear_.heads

    def scores(self, interactions: list[Interaction]) -> FloatArray:
        """Raw stacked scores of every head, ``[n, n_columns]`` (one product for all heads)."""
        X = self.transform(interactions)
        return self.linear_.scores(X)

    def probabilities(
        self, scores: FloatArray, tasks: list[str] | None = None, *, calibrated: bool = True
    ) -> tuple[TaskProbs, DomainProbs]:
        """``({task: (classes, probabilities)}, domain or None)`` from :meth:`scores`."""
        out: TaskProbs = {}
        for task in tasks or self.tasks:
            if task not in self.linear_.heads or task == DOMAIN:
                raise NotFittedError(f"this model has no head for task {task!r}; it predicts {self.tasks}")
            out[task] = (
                list(self.linear_.heads[task].classes),
                self.linear_.proba(task, scores, calibrated=calibrated),
            )
        domain: DomainProbs = None
        if self.has_domain_head:
            domain = (
                list(self.linear_.heads[DOMAIN].classes),
                self.linear_.proba(DOMAIN, scores, calibrated=calibrated),
            )
        return out, domain

    def predict_proba(
        self, interactions: list[Interaction], tasks: list[str] | None = None
    ) -> tuple[TaskProbs, DomainProbs]:
        """Return ``({task: (classes, probabilities[n, k])}, domain (classes, probabilities) or None)``."""
        return self.probabilities(self.scores(interactions), tasks)

    def predict_proba_uncalibrated(self, interactions: list[Interaction], tasks: list[str] | None = None) -> TaskProbs:
        """The heads' probabilities before calibration (for reporting the calibration's effect)."""
        return self.probabilities(self.scores(interactions), tasks, calibrated=False)[0]

    # ------------------------------------------------------------ persistence
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the compiled state into ``folder`` (arrays + JSON); return what the manifest records."""
        self._check_fitted()
        folder.mkdir(parents=True)
        for name, featurizer in self.features_.items():
            featurizer.save(folder, f"view.{safe_name(name, 'view')}")
        self.linear_.save(folder, "heads")
        return {"views": list(self.features_), "dropped_labels": self.dropped_labels_, "params": asdict(self.config)}

    @classmethod
    def load(cls, read: Reader | Path, info: dict[str, Any]) -> Self:
        """Rebuild from compiled files; ``read`` admits only the bundle's verified files."""
        read = as_reader(read)
        try:
            model = cls(cls.config_class(**info.get("params", {})))
        except TypeError as exc:
            raise BundleError(f"the manifest's model parameters are not valid ({exc}); retrain the model") from exc
        views = info.get("views")
        if not isinstance(views, list) or not views or any(v not in VIEWS for v in views):
            raise BundleError(f"the manifest lists views {views!r}; expected some of {list(VIEWS)}")
        model._prepare_load(read, info)
        model.features_ = {name: NgramFeaturizer.load(read, f"view.{name}") for name in views}
        model.linear_ = LinearHeads.load(read, "heads")
        width = sum(f.n_features for f in model.features_.values()) + model._dense_width()
        if model.linear_.n_features != width:
            raise BundleError(
                f"the heads expect {model.linear_.n_features} features, the views give {width}; "
                "the bundle is inconsistent: retrain the model"
            )
        model.dropped_labels_ = info.get("dropped_labels", {})
        return model

    def incremental_scorer(self) -> IncrementalScorer | None:
        """An :class:`model.kinds.incremental.IncrementalScorer` over this model's views (live sessions), or
        ``None`` when the model has features that are not running sums (the hybrid's embeddings)."""
        from model.kinds.incremental import IncrementalScorer, IncrementalView

        self._check_fitted()
        if self._dense_width():
            return None
        full: list[IncrementalView] = []
        client: list[IncrementalView] = []
        offset = 0
        for name, featurizer in self.features_.items():
            rows = self.linear_.coef[offset : offset + featurizer.n_features]
            offset += featurizer.n_features
            try:
                view = IncrementalView(name, featurizer, rows)
            except ValueError:
                return None
            (client if name == "client" else full).append(view)
        return IncrementalScorer(full, client, self.linear_.intercept, channel_token=self.config.channel_token)

    def _dense_width(self) -> int:
        """Features beyond the n-gram views (the hybrid kind's embedding block)."""
        return 0

    def _prepare_load(self, read: Reader, info: dict[str, Any]) -> None:
        """A subclass's own checks and parts, before the views and heads are read."""
