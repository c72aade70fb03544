"""A fine-tuned transformer: one shared encoder, one classification head per task, a domain head.

The encoder is any Hugging Face checkpoint (a hub name or a local folder, e.g. the one written by
``podskazka pretrained build e5-small``). Each head is trained only on the rows that carry its label
(a masked loss: a telecom call adds nothing to the marketplace heads), and calibrated by temperature
scaling on held-out rows. Long conversations are cut into overlapping token windows; each window is
encoded and mean-pooled, and the windows are averaged, weighted by their length — never truncated.

torch and transformers are imported inside the methods, so this module (and its config) loads
without the ``transformer`` extra. Saved state: ``encoder.json`` (the encoder's config),
``weights.safetensors`` (encoder and heads), ``tokenizer.json`` — no pickle. CPU serving runs the
encoder's linear layers in int8 (dynamic quantisation) when ``runtime: int8``; temperatures are fitted
on that very runtime, so the confidences are calibrated for what is served.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from model.arrays import Float64Array, FloatArray, Int64Array
from model.conversation.record import Interaction
from model.errors import BundleError, ConfigError, DataError, NotFittedError
from model.kinds.compiled import Reader, as_reader
from model.kinds.registry import DomainProbs, TaskProbs
from model.text.normalize import mask_personal_data

if TYPE_CHECKING:  # torch and tokenizers come with the transformer extra; imported where they are used
    import torch
    from tokenizers import Tokenizer

    from model.kinds.transformer.torch_backend import SpecialIds

log = logging.getLogger(__name__)

RUNTIMES = ("float32", "int8")
SAVE_DTYPES = ("float16", "float32")
POOLINGS = ("mean", "cls")
DEVICES = ("cpu", "cuda", "auto")
ROLE_WORDS = {"client": "Клиент", "operator": "Оператор", "bot": "Бот"}
CHANNEL_WORDS = {"call": "Звонок", "chat": "Чат", "email": "Письмо"}
DOMAIN_HEAD = "_domain"
_SPACE = re.compile(r"\s+")


@dataclass
class TransformerConfig:
    """Hyper-parameters of the fine-tuned transformer; validated when built."""

    base_model: str = "models/pretrained/e5-small"  # a Hugging Face name or a local checkpoint folder
    text_prefix: str = "query: "  # e5 models expect a prefix; use "" for other encoders
    max_length: int = 256  # tokens per window, special tokens included
    window_overlap: int = 32  # tokens shared by consecutive windows
    max_windows: int = 8  # windows per conversation (the first ones: where the reason is said)
    pooling: str = "mean"
    freeze_embeddings: bool = True  # keep the (large, multilingual) word embeddings as pretrained
    train_layers: int | None = None  # fine-tune only the top N encoder layers (None: all)
    cache_frozen: bool = True  # with train_layers: encode the frozen layers below them once, not every step
    cache_max_mb: int = 4096  # ... unless their outputs (float16) would take more memory than this
    epochs: float = 3.0
    min_steps: int = 0  # train at least this many optimiser steps (a small data set needs more passes)
    max_steps: int | None = None  # stop after this many optimiser steps (quick runs)
    max_train_seconds: float | None = None  # stop after this much training time (quick runs)
    batch_size: int = 16
    length_bucketing: bool = True  # batch rows of similar length together (less padding per step)
    learning_rate: float = 5e-5  # encoder
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    head_dropout: float = 0.1
    calibration_fraction: float = 0.15  # rows held out for the temperatures (0: no calibration)
    runtime: str = "int8"  # how predict_proba runs the encoder on CPU
    save_dtype: str = "float16"
    predict_batch_size: int = 32  # windows per forward pass at inference
    threads: int | None = None  # torch threads while fitting (None: torch's default)
    device: str = "cpu"  # for fitting; inference always runs on CPU
    seed: int = 13
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.base_model, str) or not self.base_model.strip():
            raise ConfigError(f"model.base_model must be a Hugging Face name or a folder, got {self.base_model!r}")
        _check_int("max_length", self.max_length, 8, 8192)
        _check_int("window_overlap", self.window_overlap, 0, self.max_length - 3)
        _check_int("max_windows", self.max_windows, 1, 1000)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_int("predict_batch_size", self.predict_batch_size, 1, 4096)
        _check_int("min_steps", self.min_steps, 0, 10**9)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, 1, 10**9)
        if self.threads is not None:
            _check_int("threads", self.threads, 1, 1024)
        if self.train_layers is not None:
            _check_int("train_layers", self.train_layers, 0, 1000)
        _check_int("cache_max_mb", self.cache_max_mb, 0, 10**7)
        for name in ("freeze_embeddings", "cache_frozen", "length_bucketing"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        for name, choices in (
            ("pooling", POOLINGS),
            ("runtime", RUNTIMES),
            ("save_dtype", SAVE_DTYPES),
            ("device", DEVICES),
        ):
            if getattr(self, name) not in choices:
                raise ConfigError(f"model.{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        for name in (
            "epochs",
            "learning_rate",
            "head_learning_rate",
            "weight_decay",
            "warmup_fraction",
            "head_dropout",
            "calibration_fraction",
            "max_train_seconds",
        ):
            value = getattr(self, name)
            if (value is not None or name != "max_train_seconds") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ConfigError(f"model.{name} must be a number, got {value!r} (in YAML write 1.0e-4, not 1e-4)")
        if not 0 < self.epochs <= 1000:
            raise ConfigError(f"model.epochs must be in (0, 1000], got {self.epochs}")
        if self.max_train_seconds is not None and self.max_train_seconds <= 0:
            raise ConfigError(f"model.max_train_seconds must be > 0 or null, got {self.max_train_seconds}")
        for name in ("learning_rate", "head_learning_rate"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be in (0, 1), got {getattr(self, name)}")
        for name, high in (
            ("weight_decay", 1.0),
            ("warmup_fraction", 0.9),
            ("head_dropout", 0.9),
            ("calibration_fraction", 0.5),
        ):
            if not 0 <= getattr(self, name) <= high:
                raise ConfigError(f"model.{name} must be in [0, {high}], got {getattr(self, name)}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"model.{name} must be an integer in [{low}, {high}], got {value!r}")


def render_for_encoder(interaction: Interaction, prefix: str = "") -> str:
    """The conversation as the encoder reads it: natural words, role names, personal data masked."""
    turns = [
        f"{ROLE_WORDS[t.role]}: {_SPACE.sub(' ', mask_personal_data(t.text))}"
        for t in interaction.turns
        if t.text.strip()
    ]
    return f"{prefix}{CHANNEL_WORDS.get(interaction.channel, '')}. " + " ".join(turns)


class TransformerMultiTask:
    """A shared fine-tuned encoder with one softmax head per task and a domain head."""

    kind = "transformer"
    config_class = TransformerConfig

    # learned state (set by fit or load)
    classes_: dict[str, list[str]]
    domain_classes_: list[str] | None
    temperatures_: dict[str, float]
    special_ids_: SpecialIds
    tokenizer_: Tokenizer
    network_: torch.nn.ModuleDict
    train_report_: dict[str, Any]
    saved_state_: dict[str, torch.Tensor] | None  # the weights to save when the network runs in int8
    weights_file_: Path | None  # a loaded int8 model's weights file (its saved state)
    _last_logits: tuple[tuple[str, ...], dict[str, Float64Array]] | None

    def __init__(self, config: TransformerConfig | None = None) -> None:
        self.config = config or TransformerConfig()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- state
    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("this TransformerMultiTask is not trained yet; call fit() or load a bundle")

    @property
    def tasks(self) -> list[str]:
        """The tasks this model predicts."""
        self._check_fitted()
        return list(self.classes_)

    @property
    def heads_(self) -> dict[str, list[str]]:
        """Task -> classes (the Predictor checks task names against this mapping)."""
        return self.classes_

    @property
    def task_classes(self) -> dict[str, list[str]]:
        """Each task's labels, in the order of its probability columns."""
        return {task: list(classes) for task, classes in self.classes_.items()}

    # -------------------------------------------------------------- training
    def fit(self, interactions: list[Interaction], tasks: list[str], domains: dict[str, str] | None = None) -> Self:
        """Fine-tune the encoder and heads on the rows' labels, then fit the temperatures."""
        import torch

        from model.kinds.transformer import torch_backend as tt

        if not interactions:
            raise DataError("no training rows; give at least one labelled interaction per label")
        cfg = self.config
        self._last_logits = None
        self.classes_ = {}
        for task in tasks:
            labels = sorted({x.labels[task] for x in interactions if task in x.labels})
            if len(labels) >= 2:
                self.classes_[task] = labels
            elif labels:
                log.warning("task %s: one label only (%s); the task is left out of this model", task, labels)
            else:
                log.warning("task %s: no rows carry its label; the task is left out of this model", task)
        if not self.classes_:
            raise DataError(f"none of the tasks {tasks} has two or more labels in the rows; label at least one task")
        domain_of = domains or {}
        row_domains: list[str | None] = []
        for x in interactions:
            found = {domain_of.get(task, task) for task in x.labels if task in self.classes_}
            row_domains.append(found.pop() if len(found) == 1 else None)
        domain_counts = {d: row_domains.count(d) for d in row_domains if d is not None}
        self.domain_classes_ = sorted(domain_counts) if len(domain_counts) >= 2 else None
        targets = self._targets(interactions, row_domains)
        fit_rows, calib_rows = self._calibration_split(interactions, targets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            threads = torch.get_num_threads()
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            try:
                self.tokenizer_, self.special_ids_ = tt.load_tokenizer(cfg.base_model)
                self.network_ = tt.new_network(cfg, self._head_sizes())
                texts = [render_for_encoder(x, cfg.text_prefix) for x in interactions]
                windows = tt.windows_for(self, texts)
                self.train_report_ = tt.train(self, windows, targets, fit_rows)
                tt.finish_weights(self)
                self.temperatures_ = tt.fit_temperatures(
                    self, [windows[i] for i in calib_rows], {h: y[calib_rows] for h, y in targets.items()}
                )
            finally:
                torch.set_num_threads(threads)
        return self

    def _head_sizes(self) -> dict[str, int]:
        """Classes per head, the task heads then the domain head (the network's head order)."""
        sizes = {task: len(classes) for task, classes in self.classes_.items()}
        if self.domain_classes_:
            sizes[DOMAIN_HEAD] = len(self.domain_classes_)
        return sizes

    def _targets(self, interactions: list[Interaction], row_domains: list[str | None]) -> dict[str, Int64Array]:
        """Per head, the class index of every row, -1 where the row has no label (masked out)."""
        targets: dict[str, Int64Array] = {}
        for task, classes in self.classes_.items():
            index: dict[str | None, int] = {c: i for i, c in enumerate(classes)}
            targets[task] = np.array([index.get(x.labels.get(task), -1) for x in interactions], dtype=np.int64)
        if self.domain_classes_:
            index = {c: i for i, c in enumerate(self.domain_classes_)}
            targets[DOMAIN_HEAD] = np.array([index.get(d, -1) for d in row_domains], dtype=np.int64)
        return targets

    def _calibration_split(
        self, interactions: list[Interaction], targets: dict[str, Int64Array]
    ) -> tuple[Int64Array, Int64Array]:
        """Rows to fit on and rows to fit the temperatures on, grouped by client when known."""
        n, fraction = len(interactions), self.config.calibration_fraction
        everything = np.arange(n)
        if fraction == 0 or n < 20:
            if fraction:
                log.warning("only %d rows: no rows are held out, the temperatures stay 1", n)
            return everything, everything[:0]
        groups = np.array([x.client_id or x.id or str(i) for i, x in enumerate(interactions)], dtype=object)
        rng = np.random.default_rng(self.config.seed)
        unique = np.unique(groups)
        held = set(rng.choice(unique, size=max(1, int(round(len(unique) * fraction))), replace=False).tolist())
        calib = np.array([g in held for g in groups])
        for _task, y in targets.items():  # every class keeps rows to learn from
            for c in np.unique(y[y >= 0]):
                if not np.any((y == c) & ~calib):
                    calib[(y == c)] = False
        return everything[~calib], everything[calib]

    # -------------------------------------------------------------- inference
    def predict_proba(
        self, interactions: list[Interaction], tasks: list[str] | None = None
    ) -> tuple[TaskProbs, DomainProbs]:
        """Return ``({task: (classes, probabilities[n, k])}, domain (classes, probabilities) or None)``."""
        self._check_fitted()
        selected = tasks or list(self.classes_)
        unknown = [t for t in selected if t not in self.classes_]
        if unknown:
            raise DataError(f"this model has no head for {unknown}; it predicts {list(self.classes_)}")
        logits = self._logits(interactions)
        out: TaskProbs = {
            t: (list(self.classes_[t]), _softmax(logits[t] / self.temperatures_.get(t, 1.0))) for t in selected
        }
        domain: DomainProbs = None
        if self.domain_classes_:
            domain = (
                list(self.domain_classes_),
                _softmax(logits[DOMAIN_HEAD] / self.temperatures_.get(DOMAIN_HEAD, 1.0)),
            )
        return out, domain

    def predict_proba_uncalibrated(self, interactions: list[Interaction], tasks: list[str] | None = None) -> TaskProbs:
        """The heads' probabilities before temperature scaling (for calibration reports)."""
        self._check_fitted()
        logits = self._logits(interactions)
        return {t: (list(self.classes_[t]), _softmax(logits[t])) for t in tasks or self.classes_}

    def _logits(self, interactions: list[Interaction]) -> dict[str, Float64Array]:
        """Logits of every head; the last batch's are remembered, since evaluation asks once per task."""
        from model.kinds.transformer import torch_backend as tt

        texts = tuple(render_for_encoder(x, self.config.text_prefix) for x in interactions)
        with self._lock:
            cached: tuple[tuple[str, ...], dict[str, Float64Array]] | None = getattr(self, "_last_logits", None)
        if cached is not None and cached[0] == texts:
            return cached[1]
        logits = tt.predict_logits(self, tt.windows_for(self, list(texts)))
        with self._lock:
            self._last_logits = (texts, logits)
        return logits

    # ------------------------------------------------------------ persistence
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the encoder config, weights (safetensors) and tokenizer into ``folder``."""
        from model.kinds.transformer import torch_backend as tt

        self._check_fitted()
        folder.mkdir(parents=True)
        tt.save_weights(self, folder)
        return {
            "params": asdict(self.config),
            "classes": self.classes_,
            "domain_classes": self.domain_classes_,
            "temperatures": self.temperatures_,
            "special_ids": self.special_ids_,
            "train_report": getattr(self, "train_report_", {}),
        }

    @classmethod
    def load(cls, read: Reader | Path, info: dict[str, Any]) -> Self:
        """Rebuild from ``encoder.json``, ``weights.safetensors`` and ``tokenizer.json`` (read through ``read``)."""
        from model.kinds.transformer import torch_backend as tt

        # every file goes through the bundle's reader (listed, checksummed, inside the bundle)
        read = as_reader(read)
        folder = read(tt.ENCODER_CONFIG).parent
        for name in (tt.WEIGHTS, tt.TOKENIZER):
            read(name)

        try:
            model = cls(TransformerConfig(**info["params"]))
            model.classes_ = {task: list(info["classes"][task]) for task in info["tasks"]}
            model.domain_classes_ = info.get("domain_classes")
            model.temperatures_ = {k: float(v) for k, v in info["temperatures"].items()}
            special = info["special_ids"]
            model.special_ids_ = tt.SpecialIds(cls=special["cls"], sep=special["sep"], pad=special["pad"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise BundleError(
                f"{folder}: the transformer's manifest entry is incomplete ({exc}); retrain the model"
            ) from exc
        model.train_report_ = info.get("train_report", {})
        tt.load_weights(model, folder)
        return model


def _softmax(z: Float64Array) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p: FloatArray = e / e.sum(axis=1, keepdims=True)
    return p
