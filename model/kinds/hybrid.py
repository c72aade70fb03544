"""The hybrid model: the TF-IDF model's n-gram features joined with multilingual sentence embeddings,
one calibrated linear head per task and a domain head (all inherited from :mod:`model.kinds.tfidf`).

TF-IDF learns the words the training data used; the sentence encoder (``encoder: use | e5``, see
:mod:`model.kinds.embeddings`) carries meaning to wordings nobody wrote down. A conversation is embedded
segment by segment and pooled, never truncated:

- ``segmentation: turn`` — every turn is a segment; a turn longer than ``max_words`` words is cut
  into consecutive windows of ``max_words`` words;
- ``segmentation: window`` — consecutive turns are packed into windows of up to ``max_words`` words
  (fewer, longer segments: cheaper for the slower e5 encoder).

The embedding features are ``[mean of the client's segments, mean of all segments]``, each
L2-normalised (a conversation without client words gets zeros in the first block) and scaled by
``embedding_weight`` against the TF-IDF blocks, whose rows have unit norm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from model.arrays import Float32Array
from model.conversation.record import Interaction
from model.errors import BundleError, ConfigError, NotFittedError
from model.kinds.compiled import Reader
from model.kinds.embeddings import E5_PREFIXES, ENCODERS, MemoEncoder, shared_encoder
from model.kinds.tfidf import TfidfConfig, TfidfMultiTask
from model.text.normalize import mask_personal_data

log = logging.getLogger(__name__)

SEGMENTATIONS = ("turn", "window")
# Embedded at save time and again at load time: a bundle is refused when the installed encoder
# no longer reproduces the vectors its heads were trained on.
PROBE_TEXTS = ("у меня списали деньги с баланса", "где мой заказ, он не приходит уже неделю")
PROBE_TOLERANCE = 1e-3


@dataclass
class HybridConfig(TfidfConfig):
    """The TF-IDF parameters plus the sentence encoder's; validated when built."""

    encoder: str = "use"
    segmentation: str = "turn"
    max_words: int = 64
    embedding_weight: float = 1.0
    e5_prefix: str = "query"
    threads: int = 1  # the encoder's threads (USE: BLAS; e5: OpenMP)
    cache_size: int = 20_000  # texts whose embeddings are kept in memory (0: none)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder not in ENCODERS:
            raise ConfigError(f"model.encoder must be one of {list(ENCODERS)}, got {self.encoder!r}")
        if self.segmentation not in SEGMENTATIONS:
            raise ConfigError(f"model.segmentation must be one of {list(SEGMENTATIONS)}, got {self.segmentation!r}")
        if not 4 <= self.max_words <= 400:
            raise ConfigError(f"model.max_words must be between 4 and 400, got {self.max_words}")
        if not 0 < self.embedding_weight <= 100:
            raise ConfigError(f"model.embedding_weight must be in (0, 100], got {self.embedding_weight}")
        if self.e5_prefix not in E5_PREFIXES:
            raise ConfigError(f"model.e5_prefix must be one of {list(E5_PREFIXES)}, got {self.e5_prefix!r}")
        if not 1 <= self.threads <= 64:
            raise ConfigError(f"model.threads must be between 1 and 64, got {self.threads}")
        if self.cache_size < 0:
            raise ConfigError(f"model.cache_size must be >= 0, got {self.cache_size}")


# ------------------------------------------------------------------ segmentation and pooling
def embedding_text(text: str) -> str:
    """What an encoder sees of one utterance: personal data masked, case and punctuation kept."""
    return mask_personal_data(text)


def _windows(words: list[str], max_words: int) -> list[str]:
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def segment(interaction: Interaction, segmentation: str = "turn", max_words: int = 64) -> tuple[list[str], list[str]]:
    """``(all segments, client segments)`` of a conversation; together they hold every word."""
    turns = [(t.role, embedding_text(t.text).split()) for t in interaction.turns]
    turns = [(role, words) for role, words in turns if words]
    if segmentation == "turn":
        every = [(role, w) for role, words in turns for w in _windows(words, max_words)]
        return [w for _, w in every], [w for role, w in every if role == "client"]
    return (
        _packed([words for _, words in turns], max_words),
        _packed([words for role, words in turns if role == "client"], max_words),
    )


def _packed(turns: list[list[str]], max_words: int) -> list[str]:
    """Consecutive turns packed into windows of at most ``max_words`` words (long turns split)."""
    windows: list[list[str]] = []
    current: list[str] = []
    for words in turns:
        if current and len(current) + len(words) > max_words:
            windows.append(current)
            current = []
        current = current + words
        while len(current) > max_words:
            windows.append(current[:max_words])
            current = current[max_words:]
    if current:
        windows.append(current)
    return [" ".join(w) for w in windows]


def _unit(matrix: Float32Array) -> Float32Array:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Float32Array = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def pool_embeddings(
    encoder: MemoEncoder, interactions: list[Interaction], segmentation: str = "turn", max_words: int = 64
) -> Float32Array:
    """``(n, 2 * dim)``: per conversation the normalised mean of its client segments' embeddings and
    of all its segments' embeddings. Every segment of the batch is embedded in one call."""
    texts: list[str] = []
    spans: list[tuple[int, int, int]] = []  # per interaction: (start, n_all, n_client) into texts
    for x in interactions:
        every, client = segment(x, segmentation, max_words)
        spans.append((len(texts), len(every), len(client)))
        texts.extend(every)
        texts.extend(client)
    vectors = encoder.encode(texts)
    out = np.zeros((len(interactions), 2 * encoder.dim), dtype=np.float32)
    for row, (start, n_all, n_client) in enumerate(spans):
        if n_client:
            out[row, : encoder.dim] = vectors[start + n_all : start + n_all + n_client].mean(axis=0)
        if n_all:
            out[row, encoder.dim :] = vectors[start : start + n_all].mean(axis=0)
    return np.hstack([_unit(out[:, : encoder.dim]), _unit(out[:, encoder.dim :])])


# ------------------------------------------------------------------------------ the model
class HybridMultiTask(TfidfMultiTask):
    """TF-IDF n-grams + pooled sentence embeddings, one calibrated linear head per task."""

    kind = "hybrid"
    config_class = HybridConfig
    config: HybridConfig
    encoder_: MemoEncoder  # set by fit or load

    def __init__(self, config: HybridConfig | None = None) -> None:
        self.config = config or HybridConfig()

    def _encoder(self) -> MemoEncoder:
        cfg = self.config
        return shared_encoder(cfg.encoder, threads=cfg.threads, e5_prefix=cfg.e5_prefix, cache_size=cfg.cache_size)

    def _fit_features(self, interactions: list[Interaction]) -> None:
        super()._fit_features(interactions)
        self.encoder_ = self._encoder()
        log.info("embedding %d conversations with %s %s", len(interactions), self.encoder_.name, self.encoder_.version)

    def _check_fitted(self) -> None:
        if not hasattr(self, "linear_") or not hasattr(self, "encoder_"):
            raise NotFittedError("this HybridMultiTask is not trained yet; call fit() or load a bundle")

    def _dense_width(self) -> int:
        return 2 * self.encoder_.dim

    def embed(self, interactions: list[Interaction]) -> Float32Array:
        """The pooled embedding block of the features, ``(n, 2 * dim)``, before weighting."""
        if not hasattr(self, "encoder_"):
            raise NotFittedError("this HybridMultiTask is not trained yet; call fit() or load a bundle")
        return pool_embeddings(self.encoder_, interactions, self.config.segmentation, self.config.max_words)

    def transform(self, interactions: list[Interaction]) -> sp.csr_matrix:
        """The n-gram features of every view, then the weighted embedding block."""
        ngrams = super().transform(interactions)
        dense = self.embed(interactions) * np.float32(self.config.embedding_weight)
        features: sp.csr_matrix = sp.hstack([ngrams, sp.csr_matrix(dense)], format="csr")
        return features

    # ------------------------------------------------------------ persistence
    def save(self, folder: Path) -> dict[str, Any]:
        """The TF-IDF model's files, the encoder's drift probe (``encoder_probe.npy``) and its description."""
        info = super().save(folder)
        np.save(folder / "encoder_probe.npy", self.encoder_.encode(list(PROBE_TEXTS)), allow_pickle=False)
        info["encoder"] = self.encoder_.describe()
        return info

    def _prepare_load(self, read: Reader, info: dict[str, Any]) -> None:
        """Load the encoder and refuse a bundle whose encoder embeds differently now (drift probe)."""
        recorded = info.get("encoder") or {}
        encoder = self._encoder()
        if recorded.get("name") != encoder.name or recorded.get("dim") != encoder.dim:
            raise BundleError(
                f"trained with the encoder {recorded.get('name')!r} ({recorded.get('dim')} dimensions), "
                f"the configuration loads {encoder.name!r} ({encoder.dim}); the bundle is inconsistent: retrain it"
            )
        try:
            probe = np.load(read("encoder_probe.npy"), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"the encoder probe cannot be read ({exc}); retrain the model") from exc
        drift = (
            float(np.abs(encoder.encode(list(PROBE_TEXTS)) - probe).max())
            if probe.shape == (len(PROBE_TEXTS), encoder.dim)
            else np.inf
        )
        if drift > PROBE_TOLERANCE:
            raise BundleError(
                f"the installed {encoder.package} {encoder.version} embeds differently from the "
                f"{recorded.get('package')} {recorded.get('version')} the model was trained with (max difference "
                f"{drift:.2g}); install that version or retrain the model"
            )
        if recorded.get("version") != encoder.version:
            log.warning(
                "trained with %s %s, running %s; its embeddings still match",
                encoder.package,
                recorded.get("version"),
                encoder.version,
            )
        self.encoder_ = encoder
