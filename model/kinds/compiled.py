"""The compiled inference path: fitted vectorizers and linear heads as plain arrays, no scikit-learn.

At save time every fitted part of a linear model is turned into data:

- :class:`NgramFeaturizer` — a TF-IDF view (word or ``char_wb`` n-grams): its vocabulary (a JSON list,
  index = position), its IDF (``.npy``) and the analyzer settings. It reproduces
  ``sklearn.feature_extraction.text.TfidfVectorizer.transform`` term for term; a word's character
  n-grams are looked up once and cached, so a long call costs one dictionary hit per repeated word;
- :class:`LinearHeads` — one stacked coefficient matrix ``[n_features, n_outputs]`` and intercepts for
  every head of a model (the task heads and the domain head), each head a column slice with its
  calibration (temperature, sigmoid or isotonic, as fitted), evaluated with one sparse-dense product.

Everything is stored as ``.npy`` (read with ``allow_pickle=False``) and JSON: a bundle holds nothing
that executes. Loading takes each file through :class:`model.storage.bundle.BundleFiles`, which admits only
files the manifest lists with a checksum, inside the bundle.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from model.arrays import Float32Array, FloatArray, Int32Array, Int64Array, IntArray
from model.errors import BundleError
from model.storage.files import read_json, write_json

ANALYZERS = ("word", "char_wb")
CALIBRATIONS = ("temperature", "sigmoid", "isotonic", "none")
_WHITE_SPACES = re.compile(r"\s\s+")
_DEFAULT_TOKEN = r"(?u)\b\w+\b"

try:  # the compiled featurizer (model/kinds/_ngrams.c, built by pip install); the Python path gives the same terms
    from model.kinds._ngrams import build_table, count_terms, hash_terms

    HAS_COMPILED = True
except ImportError:  # pragma: no cover - a source tree without a C compiler
    HAS_COMPILED = False
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def safe_name(name: str, what: str) -> str:
    """A file-name component from a manifest: letters, digits, ``_ . -``, no path separators."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise BundleError(f"the manifest names a {what} {name!r}; only plain names ([A-Za-z0-9_.-]) are allowed")
    return name


Reader = Callable[[str], Path]
"""Turns a bundle-relative file name into a verified path (see :meth:`model.storage.bundle.BundleFiles.path`)."""


def plain_reader(folder: Path) -> Reader:
    """A reader for a folder outside a bundle (tests, tools): names are still checked for traversal."""

    def read(rel: str) -> Path:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:
            raise BundleError(f"{rel!r}: only relative paths inside the folder are read")
        return folder / rel

    return read


def as_reader(source: Reader | Path) -> Reader:
    """A reader from a reader or a plain folder (tests and tools; bundles pass their verified reader)."""
    return plain_reader(Path(source)) if isinstance(source, (str, Path)) else source


RealArray = npt.NDArray[np.floating[Any] | np.integer[Any]]
"""What :func:`load_array` reads when no dtype kind is asked: a float or integer array."""


@overload
def load_array(read: Reader, rel: str, *, ndim: int, dtype: Literal["f"]) -> FloatArray: ...
@overload
def load_array(read: Reader, rel: str, *, ndim: int, dtype: None = None) -> RealArray: ...
def load_array(read: Reader, rel: str, *, ndim: int, dtype: Literal["f"] | None = None) -> RealArray:
    """An ``.npy`` file without pickles, of the expected rank (and kind of dtype)."""
    path = read(rel)
    try:
        array: RealArray = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{rel}: cannot be read as a plain array ({exc}); retrain the model") from exc
    if array.ndim != ndim or array.dtype.kind not in "fiu" or (dtype and array.dtype.kind != dtype):
        raise BundleError(
            f"{rel}: holds a {array.dtype} array of rank {array.ndim}, expected a numeric array "
            f"of rank {ndim}; the bundle is inconsistent: retrain the model"
        )
    return array


def load_json(read: Reader, rel: str) -> Any:
    """The JSON file ``rel`` of a bundle (:func:`model.storage.files.read_json`: a bad one is a BundleError)."""
    return read_json(read(rel))


# ------------------------------------------------------------------------------- features
@dataclass(frozen=True)
class NgramSpec:
    """How a view turns text into terms (the TfidfVectorizer parameters that matter at inference)."""

    analyzer: str = "word"
    ngram_range: tuple[int, int] = (1, 1)
    lowercase: bool = True
    sublinear_tf: bool = True
    norm: str | None = "l2"
    token_pattern: str = r"(?u)\b\w+\b"

    def __post_init__(self) -> None:
        lo, hi = self.ngram_range
        if self.analyzer not in ANALYZERS or not 1 <= lo <= hi <= 8 or self.norm not in ("l2", None):
            raise BundleError(f"unsupported n-gram view {self}; retrain the model with this version")


class NgramFeaturizer:
    """TF-IDF features of one view, equal to scikit-learn's ``TfidfVectorizer.transform``."""

    def __init__(self, spec: NgramSpec, vocabulary: Sequence[str], idf: FloatArray, cache_size: int = 200_000) -> None:
        if len(vocabulary) != idf.shape[0]:
            raise BundleError(
                f"vocabulary of {len(vocabulary)} terms but {idf.shape[0]} IDF weights; retrain the model"
            )
        self.spec = spec
        self.vocabulary = list(vocabulary)
        self.index = {term: i for i, term in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            raise BundleError("the vocabulary repeats a term; the bundle is inconsistent: retrain the model")
        self.idf = np.asarray(idf, dtype=np.float32)
        self._token = re.compile(spec.token_pattern)
        self._cache: OrderedDict[str, Int32Array] = OrderedDict()
        self._cache_size = cache_size
        self._empty = np.zeros(0, dtype=np.int32)
        self._table = self._hash_table()

    def _hash_table(self) -> tuple[npt.NDArray[np.uint64], Int32Array] | None:
        """``(hash-table keys, term ids)`` for the compiled featurizer, or ``None`` (Python path) when it
        is not built, the view is not one it reads, or two terms' hashes collide."""
        spec = self.spec
        if not HAS_COMPILED or (spec.analyzer == "word" and spec.token_pattern != _DEFAULT_TOKEN):
            return None
        try:
            keys, vals = build_table(hash_terms(self.vocabulary))
        except ValueError:  # two terms share a hash: read this view in Python
            return None
        return np.frombuffer(keys, dtype=np.uint64), np.frombuffer(vals, dtype=np.int32)

    @property
    def compiled(self) -> bool:
        """Whether this view's terms are counted by the C extension (else by the Python path)."""
        return self._table is not None

    def counts(self, texts: Sequence[str]) -> tuple[Int64Array, Int32Array, Int32Array]:
        """``(indptr, term ids, counts)`` of a batch: each text's unique ids, ascending."""
        lowered = [t.lower() for t in texts] if self.spec.lowercase else list(texts)
        if self._table is not None:
            lo, hi = self.spec.ngram_range
            ptr_bytes, idx_bytes, cnt_bytes = count_terms(
                lowered, 0 if self.spec.analyzer == "word" else 1, lo, hi, *self._table, self.n_features
            )
            # writable copies: scipy sorts a matrix's indices in place when an operation needs them sorted
            return (
                np.frombuffer(ptr_bytes, dtype=np.int64).copy(),
                np.frombuffer(idx_bytes, dtype=np.int32).copy(),
                np.frombuffer(cnt_bytes, dtype=np.int32).copy(),
            )
        indptr: list[int] = [0]
        ids: list[Int32Array] = []
        cnts: list[Int32Array] = []
        for text in lowered:
            idx, cnt = np.unique(self._terms_lowered(text), return_counts=True)
            ids.append(idx.astype(np.int32))
            cnts.append(cnt.astype(np.int32))
            indptr.append(indptr[-1] + idx.size)
        return (
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(ids) if ids else self._empty,
            np.concatenate(cnts) if cnts else self._empty,
        )

    def weights(self, indptr: IntArray, idx: IntArray, counts: IntArray) -> Float32Array:
        """TF-IDF values (sublinear TF, IDF, L2 per row) for :meth:`counts`, in float32 like scikit-learn."""
        values = counts.astype(np.float32)
        if self.spec.sublinear_tf:
            np.log(values, out=values)
            values += np.float32(1.0)
        values *= self.idf[idx]
        if self.spec.norm == "l2" and values.size:
            sq = values * values
            lengths = np.diff(indptr)
            row_sums = np.add.reduceat(sq, indptr[:-1][lengths > 0]) if np.any(lengths > 0) else sq[:0]
            norms = np.zeros(lengths.size, dtype=np.float32)
            norms[lengths > 0] = np.sqrt(row_sums)
            per_value = np.repeat(norms, lengths)
            np.divide(values, per_value, out=values, where=per_value > 0)
        return values

    @property
    def n_features(self) -> int:
        """The number of terms in the vocabulary (this view's columns)."""
        return len(self.vocabulary)

    # -- from and to scikit-learn / files
    @classmethod
    def from_sklearn(cls, vec: Any) -> NgramFeaturizer:  # a fitted TfidfVectorizer (scikit-learn ships no types)
        """Compile a fitted ``TfidfVectorizer`` (word or char_wb analyzer, default pre-processing)."""
        if (
            vec.analyzer not in ANALYZERS
            or vec.strip_accents is not None
            or vec.preprocessor is not None
            or vec.tokenizer is not None
            or not vec.use_idf
            or vec.binary
        ):
            raise BundleError(f"cannot compile a TfidfVectorizer with analyzer={vec.analyzer!r} and custom settings")
        spec = NgramSpec(
            analyzer=vec.analyzer,
            ngram_range=tuple(vec.ngram_range),
            lowercase=bool(vec.lowercase),
            sublinear_tf=bool(vec.sublinear_tf),
            norm=vec.norm,
            token_pattern=vec.token_pattern,
        )
        vocabulary = [""] * len(vec.vocabulary_)
        for term, i in vec.vocabulary_.items():
            vocabulary[i] = term
        return cls(spec, vocabulary, np.asarray(vec.idf_))

    def save(self, folder: Path, name: str) -> list[str]:
        """``<name>.json`` (spec + vocabulary) and ``<name>.idf.npy``; returns the file names written."""
        spec = asdict(self.spec)
        spec["ngram_range"] = list(self.spec.ngram_range)
        write_json(folder / f"{name}.json", {"spec": spec, "vocabulary": self.vocabulary})
        np.save(folder / f"{name}.idf.npy", self.idf, allow_pickle=False)
        return [f"{name}.json", f"{name}.idf.npy"]

    @classmethod
    def load(cls, read: Reader, prefix: str) -> NgramFeaturizer:
        """Read a view written by :meth:`save` (``<prefix>.json`` and ``<prefix>.idf.npy``)."""
        raw = load_json(read, f"{prefix}.json")
        try:
            spec_raw = dict(raw["spec"])
            spec_raw["ngram_range"] = tuple(spec_raw["ngram_range"])
            spec = NgramSpec(**spec_raw)
            vocabulary = raw["vocabulary"]
            if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
                raise TypeError("vocabulary is not a list of strings")
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{prefix}.json: not a compiled n-gram view ({exc}); retrain the model") from exc
        return cls(spec, vocabulary, load_array(read, f"{prefix}.idf.npy", ndim=1, dtype="f"))

    # -- analysis
    def _word_terms(self, text: str) -> list[int]:
        tokens = self._token.findall(text)
        lo, hi = self.spec.ngram_range
        index = self.index
        out: list[int] = []
        if lo == 1:
            out.extend(i for t in tokens if (i := index.get(t)) is not None)
            lo = 2
        for n in range(lo, min(hi, len(tokens)) + 1):
            for k in range(len(tokens) - n + 1):
                i = index.get(" ".join(tokens[k : k + n]))
                if i is not None:
                    out.append(i)
        return out

    def _char_word(self, word: str) -> Int32Array:
        """The vocabulary indices of one word's ``char_wb`` n-grams (with repeats), cached."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        lo, hi = self.spec.ngram_range
        w = f" {word} "
        index = self.index
        found: list[int] = []
        for n in range(lo, hi + 1):
            last = max(len(w) - n, 0)
            for offset in range(last + 1):
                i = index.get(w[offset : offset + n])
                if i is not None:
                    found.append(i)
            if last == 0:  # a short word is counted once (scikit-learn's rule)
                break
        terms = np.asarray(found, dtype=np.int32) if found else self._empty
        if self._cache_size and len(word) <= 64:  # long "words" are not kept: the cache stays small
            if len(self._cache) >= self._cache_size:
                self._cache.popitem(last=False)
            self._cache[word] = terms
        return terms

    def terms(self, text: str) -> Int32Array:
        """Vocabulary indices of every term occurrence in ``text`` (unsorted, with repeats)."""
        if self._table is not None:
            _, idx, counts = self.counts([text])
            return np.repeat(idx, counts)
        return self._terms_lowered(text.lower() if self.spec.lowercase else text)

    def _terms_lowered(self, text: str) -> Int32Array:
        if self.spec.analyzer == "word":
            return np.asarray(self._word_terms(text), dtype=np.int32)
        words = _WHITE_SPACES.sub(" ", text).split()
        if not words:
            return self._empty
        parts = [self._char_word(w) for w in words]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def transform_one(self, text: str) -> tuple[Int32Array, Float32Array]:
        """One text's ``(unique term ids, TF-IDF values)``."""
        indptr, idx, counts = self.counts([text])
        return idx, self.weights(indptr, idx, counts)

    def transform_parts(self, texts: Sequence[str]) -> tuple[Int64Array, Int32Array, Float32Array]:
        """A batch as CSR parts ``(indptr, indices, values)``."""
        indptr, idx, counts = self.counts(texts)
        return indptr, idx, self.weights(indptr, idx, counts)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """A batch's TF-IDF features as a CSR matrix ``[n, n_features]`` (float32)."""
        batch = list(texts)
        indptr, idx, values = self.transform_parts(batch)
        # ids come sorted within each row (scikit-learn's order: the same float32 sums, to the last bit)
        X = sp.csr_matrix((values, idx, indptr), shape=(len(batch), self.n_features))
        X.has_sorted_indices = True
        return X


# ------------------------------------------------------------------------------- heads
@dataclass
class HeadSpec:
    """One head's place in the stacked matrix and its calibration."""

    name: str
    classes: list[str]
    start: int
    stop: int
    calibration: str = "temperature"
    beta: float = 1.0  # temperature scaling: softmax(beta * logits)
    binary: bool = False  # a two-class head whose logits are (-z, z)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise BundleError(f"head {self.name}: unknown calibration {self.calibration!r}; retrain the model")
        width = 1 if self.binary else len(self.classes)
        if self.stop - self.start != width or (self.binary and len(self.classes) != 2):
            raise BundleError(
                f"head {self.name}: {len(self.classes)} classes do not fit columns "
                f"{self.start}:{self.stop}; the bundle is inconsistent: retrain the model"
            )


def softmax(z: FloatArray) -> FloatArray:
    """Row-wise softmax of scores ``[n, k]``, in their precision."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _expit(z: FloatArray) -> FloatArray:
    p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return p


class LinearHeads:
    """Every linear head of a model as one matrix: ``scores = X @ coef + intercept``, then each head's
    calibration on its column slice. ``coef`` is ``[n_features, n_columns]`` in the fitted precision."""

    def __init__(
        self,
        heads: list[HeadSpec],
        coef: FloatArray,
        intercept: FloatArray,
        calibrators: dict[str, dict[str, RealArray]] | None = None,
    ) -> None:
        self.heads = {h.name: h for h in heads}
        self.coef = np.ascontiguousarray(coef)
        self.intercept = np.asarray(intercept, dtype=self.coef.dtype)
        self.calibrators = calibrators or {}
        width = max((h.stop for h in heads), default=0)
        if self.coef.ndim != 2 or self.coef.shape[1] != width or self.intercept.shape != (width,):
            raise BundleError(
                f"stacked heads have shape {self.coef.shape} / {self.intercept.shape}, expected "
                f"[*, {width}]; the bundle is inconsistent: retrain the model"
            )
        for h in heads:
            if h.calibration in ("sigmoid", "isotonic"):
                need = ("a", "b") if h.calibration == "sigmoid" else ("x", "y", "offsets")
                if any(k not in self.calibrators.get(h.name, {}) for k in need):
                    raise BundleError(f"head {h.name}: its {h.calibration} calibration is missing; retrain the model")

    @property
    def n_features(self) -> int:
        """The number of input features (rows of ``coef``)."""
        return int(self.coef.shape[0])

    # -- from scikit-learn
    @classmethod
    def from_sklearn(cls, heads: dict[str, Any], n_features: int) -> LinearHeads:
        """Stack fitted ``CalibratedClassifierCV`` heads (``ensemble=False``, a linear estimator)."""
        specs: list[HeadSpec] = []
        blocks: list[FloatArray] = []
        biases: list[FloatArray] = []
        calibrators: dict[str, dict[str, RealArray]] = {}
        start = 0
        for name, head in heads.items():
            calibrated = head.calibrated_classifiers_
            if len(calibrated) != 1:
                raise BundleError(
                    f"head {name}: an ensemble of {len(calibrated)} calibrated models cannot be "
                    "compiled; train with ensemble=False"
                )
            estimator = calibrated[0].estimator
            coef = np.asarray(estimator.coef_)
            bias = np.asarray(estimator.intercept_).reshape(-1)
            if coef.shape[1] != n_features:
                raise BundleError(f"head {name}: {coef.shape[1]} features, the views give {n_features}")
            classes = [str(c) for c in head.classes_]
            binary = len(classes) == 2 and coef.shape[0] == 1
            method = head.method
            spec = HeadSpec(
                name=name, classes=classes, start=start, stop=start + coef.shape[0], calibration=method, binary=binary
            )
            cal = calibrated[0].calibrators
            if method == "temperature":
                spec.beta = float(cal[0].beta_)
            elif method == "sigmoid":
                calibrators[name] = {
                    "a": np.array([c.a_ for c in cal], dtype=np.float64),
                    "b": np.array([c.b_ for c in cal], dtype=np.float64),
                }
            elif method == "isotonic":
                xs = [np.asarray(c.X_thresholds_, dtype=np.float64) for c in cal]
                ys = [np.asarray(c.y_thresholds_, dtype=np.float64) for c in cal]
                offsets = np.cumsum([0] + [len(x) for x in xs])
                calibrators[name] = {"x": np.concatenate(xs), "y": np.concatenate(ys), "offsets": offsets}
            specs.append(spec)
            blocks.append(coef.T)
            biases.append(bias)
            start = spec.stop
        dtype = np.result_type(*blocks) if blocks else np.float32  # the fitted precision (float32 features)
        coef = np.hstack(blocks).astype(dtype) if blocks else np.zeros((n_features, 0), dtype)
        intercept = np.concatenate(biases).astype(dtype) if biases else np.zeros(0, dtype)
        return cls(specs, coef, intercept, calibrators)

    # -- evaluation
    def scores(self, X: sp.csr_matrix | FloatArray) -> FloatArray:
        """Raw scores ``[n, n_columns]`` of a sparse (or dense) feature matrix."""
        out = X @ self.coef
        return np.asarray(out) + self.intercept

    def proba(self, name: str, scores: FloatArray, *, calibrated: bool = True) -> FloatArray:
        """The calibrated probabilities of head ``name`` from the stacked raw scores (``calibrated=False``:
        the estimator's own probabilities, softmax of its scores; a logistic sigmoid for a binary head)."""
        h = self.heads[name]
        z = scores[:, h.start : h.stop]
        if not calibrated:
            if h.binary:
                p = _expit(z[:, 0])
                return np.column_stack([1.0 - p, p])
            return softmax(z.copy())
        if h.calibration == "temperature" or h.calibration == "none":
            logits = np.hstack([-z, z]) if h.binary else z.copy()
            beta = logits.dtype.type(h.beta if h.calibration == "temperature" else 1.0)
            return softmax(logits * beta)
        cal = self.calibrators[h.name]
        if h.calibration == "sigmoid":
            p = _expit(-(z * cal["a"] + cal["b"]))
        else:
            offsets = cal["offsets"]
            p = np.column_stack(
                [
                    np.interp(z[:, k], cal["x"][offsets[k] : offsets[k + 1]], cal["y"][offsets[k] : offsets[k + 1]])
                    for k in range(z.shape[1])
                ]
            )
        if h.binary:
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / p.shape[1])
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)

    # -- files
    def save(self, folder: Path, prefix: str = "heads") -> list[str]:
        """``<prefix>.json`` (head specs), the stacked arrays and each calibration's arrays; returns the file names."""
        written = [f"{prefix}.json", f"{prefix}.coef.npy", f"{prefix}.intercept.npy"]
        files: dict[str, dict[str, str]] = {}
        meta = {"heads": [asdict(h) for h in self.heads.values()], "calibrators": files}
        np.save(folder / f"{prefix}.coef.npy", self.coef, allow_pickle=False)
        np.save(folder / f"{prefix}.intercept.npy", self.intercept, allow_pickle=False)
        for name, arrays in self.calibrators.items():
            safe = safe_name(name, "head")
            files[name] = {}
            for key, array in arrays.items():
                rel = f"{prefix}.{safe}.{key}.npy"
                np.save(folder / rel, np.asarray(array), allow_pickle=False)
                files[name][key] = rel
                written.append(rel)
        write_json(folder / f"{prefix}.json", meta)
        return written

    @classmethod
    def load(cls, read: Reader, prefix: str = "heads") -> LinearHeads:
        """Read heads written by :meth:`save`; each file through ``read``."""
        meta = load_json(read, f"{prefix}.json")
        try:
            specs = [HeadSpec(**h) for h in meta["heads"]]
            calibrators = {
                name: {key: load_array(read, safe_name(rel, "calibration file"), ndim=1) for key, rel in arrays.items()}
                for name, arrays in meta.get("calibrators", {}).items()
            }
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{prefix}.json: not a compiled head file ({exc}); retrain the model") from exc
        coef = load_array(read, f"{prefix}.coef.npy", ndim=2, dtype="f")
        intercept = load_array(read, f"{prefix}.intercept.npy", ndim=1, dtype="f")
        return cls(specs, coef, intercept, calibrators)
