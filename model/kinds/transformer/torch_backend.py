"""The torch side of :mod:`model.kinds.transformer.kind`: tokenizer, windows, network, training loop,
temperatures, int8 runtime and safetensors persistence. Imported only when a transformer is used."""

from __future__ import annotations

import logging
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import numpy as np
import torch
from tokenizers import Tokenizer

from model.arrays import Float64Array, Int64Array, IntArray
from model.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask
    from transformers import PretrainedConfig, PreTrainedModel

    from model.kinds.transformer.kind import TransformerConfig, TransformerMultiTask

log = logging.getLogger(__name__)

Device = torch.device | str
Window = list[int]  # token ids of one window, special tokens included
ItemWindows = list[Window]  # the windows of one conversation


class SpecialIds(TypedDict):
    """The special token ids a window is built with (``cls``/``sep``: ``None`` when the tokenizer has none)."""

    cls: int | None
    sep: int | None
    pad: int


ENCODER_CONFIG = "encoder.json"
WEIGHTS = "weights.safetensors"
TOKENIZER = "tokenizer.json"


# ------------------------------------------------------------------ tokenizer and windows
def load_tokenizer(base_model: str) -> tuple[Tokenizer, SpecialIds]:
    """The base checkpoint's fast tokenizer as a plain ``tokenizers.Tokenizer`` (no truncation or
    padding state, so concurrent calls never mutate it) and its special token ids."""
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(base_model, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"model.base_model {base_model!r}: no tokenizer could be loaded ({exc}); give a Hugging Face name "
            "or a checkpoint folder (offline: podskazka pretrained build e5-small --out models/pretrained/e5-small)"
        ) from exc
    if not getattr(hf, "is_fast", False):
        raise ConfigError(f"model.base_model {base_model!r} has no fast tokenizer (tokenizer.json); convert it first")
    tokenizer = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    first = hf.cls_token_id if hf.cls_token_id is not None else hf.bos_token_id
    last = hf.sep_token_id if hf.sep_token_id is not None else hf.eos_token_id
    return tokenizer, {"cls": first, "sep": last, "pad": hf.pad_token_id if hf.pad_token_id is not None else 0}


def windows_for(model: TransformerMultiTask, texts: list[str]) -> list[ItemWindows]:
    """Per text, its token windows (special tokens added), overlapping by ``window_overlap``."""
    cfg, special = model.config, model.special_ids_
    head = [special["cls"]] if special["cls"] is not None else []
    tail = [special["sep"]] if special["sep"] is not None else []
    width = cfg.max_length - len(head) - len(tail)
    stride = width - cfg.window_overlap
    out: list[ItemWindows] = []
    for encoding in model.tokenizer_.encode_batch(texts, add_special_tokens=False):
        ids = encoding.ids
        starts = list(range(0, max(len(ids) - cfg.window_overlap, 1), stride))[: cfg.max_windows]
        out.append([head + ids[s : s + width] + tail for s in starts])
    return out


# ------------------------------------------------------------------------------ network
def new_network(cfg: TransformerConfig, head_sizes: dict[str, int]) -> torch.nn.ModuleDict:
    """The pretrained encoder (frozen as configured) with a new linear head per entry of ``head_sizes``."""
    from transformers import AutoModel

    try:
        try:  # BERT-like encoders: no pooler (never used here; e5 checkpoints ship none)
            encoder = AutoModel.from_pretrained(cfg.base_model, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_pretrained(cfg.base_model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.base_model {cfg.base_model!r}: the encoder cannot be loaded ({exc})") from exc
    _check_positions(encoder.config, cfg.max_length)
    _freeze(encoder, cfg)
    return _assemble(encoder.float(), head_sizes, cfg.head_dropout)


def _freeze(encoder: PreTrainedModel, cfg: TransformerConfig) -> None:
    """Word embeddings and the lower layers stay as pretrained when the config says so."""
    if cfg.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    if cfg.train_layers is None:
        return
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"model.train_layers needs a BERT-like encoder (encoder.layer); {cfg.base_model!r} has none")
    for module in [encoder.get_submodule("embeddings"), *list(layers)[: max(0, len(layers) - cfg.train_layers)]]:
        for p in module.parameters():
            p.requires_grad_(False)


def _assemble(encoder: PreTrainedModel, head_sizes: dict[str, int], dropout: float) -> torch.nn.ModuleDict:
    """The network: ``encoder``, ``heads`` (``head0``, ``head1``, … in the order of ``head_sizes``) and ``dropout``."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.register_module("pooler", None)  # never used: windows are pooled from the last hidden states
    hidden = encoder.config.hidden_size
    heads = torch.nn.ModuleDict({f"head{i}": torch.nn.Linear(hidden, k) for i, k in enumerate(head_sizes.values())})
    return torch.nn.ModuleDict({"encoder": encoder, "heads": heads, "dropout": torch.nn.Dropout(dropout)})


def _encoder(net: torch.nn.ModuleDict) -> PreTrainedModel:
    """The Hugging Face encoder of a network built by :func:`_assemble`."""
    return cast("PreTrainedModel", net["encoder"])  # ModuleDict indexing is typed as a plain Module


def _check_positions(encoder_config: PretrainedConfig, max_length: int) -> None:
    limit = getattr(encoder_config, "max_position_embeddings", None)
    if limit and encoder_config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # these number positions from padding_idx + 1
    if limit and max_length > limit:
        raise ConfigError(f"model.max_length is {max_length}, the encoder takes at most {limit} tokens per window")


def _padded(windows: list[Window], pad_id: int, device: Device) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(w) for w in windows)
    ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for i, w in enumerate(windows):
        ids[i, : len(w)] = torch.tensor(w, dtype=torch.long)
        mask[i, : len(w)] = 1
    return ids.to(device), mask.to(device)


def _pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def _window_vectors(
    encoder: PreTrainedModel, windows: list[Window], pad_id: int, pooling: str, device: Device
) -> torch.Tensor:
    ids, mask = _padded(windows, pad_id, device)
    return _pool_tokens(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask, pooling)


# ------------------------------------------------- frozen lower layers, encoded once
# With ``train_layers: N`` the embeddings and every layer below the top N are frozen (see _freeze): their
# output for a window never changes during training. It is computed once (no dropout, no autograd) and
# kept in float16; each step then runs only the top N layers. On a CPU this is what makes fine-tuning
# affordable (a 12-layer encoder with N=4: about a third of the work per step).
def frozen_prefix(encoder: PreTrainedModel, cfg: TransformerConfig) -> int:
    """How many bottom layers are encoded once (0: no cache, every step runs the whole encoder)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not cfg.cache_frozen or cfg.train_layers is None or layers is None:
        return 0
    return max(0, len(layers) - cfg.train_layers)


def _layers(encoder: PreTrainedModel) -> torch.nn.ModuleList:
    # a BERT-like encoder keeps its layers in a ModuleList at encoder.layer (frozen_prefix checked it is there)
    return cast(torch.nn.ModuleList, encoder.get_submodule("encoder.layer"))


def _attention_mask(
    encoder: PreTrainedModel, hidden: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor | BlockMask | None:
    """The mask the encoder's own layers expect (its attention implementation decides the form)."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x: the additive extended mask
        # ModuleUtilsMixin.get_extended_attention_mask exists in 4.x only; the installed 5.x types lack it
        extended: torch.Tensor = encoder.get_extended_attention_mask(mask, mask.shape)  # type: ignore[operator]
        return extended
    bidirectional: torch.Tensor | BlockMask | None = create_bidirectional_mask(
        config=encoder.config, inputs_embeds=hidden, attention_mask=mask
    )
    return bidirectional


def _run_layers(
    encoder: PreTrainedModel, layers: list[torch.nn.Module], hidden: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    extended = _attention_mask(encoder, hidden, mask)
    for layer in layers:
        out = layer(hidden, extended)
        hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x layers return tuples
    return hidden


@torch.no_grad()
def encode_prefix(
    encoder: PreTrainedModel, windows: list[Window], frozen: int, pad_id: int, batch_size: int, device: Device
) -> list[torch.Tensor]:
    """Per window, the hidden states after the embeddings and the bottom ``frozen`` layers (float16)."""
    was_training = encoder.training
    encoder.eval()
    layers = list(_layers(encoder))[:frozen]
    embeddings = encoder.get_submodule("embeddings")
    out: list[torch.Tensor | None] = [None] * len(windows)
    order = sorted(range(len(windows)), key=lambda j: -len(windows[j]))
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = _padded([windows[j] for j in chunk], pad_id, device)
            hidden = _run_layers(encoder, layers, embeddings(input_ids=ids), mask)
            for row, j in enumerate(chunk):
                out[j] = hidden[row, : len(windows[j])].to("cpu", torch.float16).clone()
    finally:
        encoder.train(was_training)
    return [state for state in out if state is not None]  # every window was encoded: all are set


def _cached_window_vectors(
    encoder: PreTrainedModel, states: list[torch.Tensor], frozen: int, pooling: str, device: Device
) -> torch.Tensor:
    """Window vectors from cached bottom-layer states, through the trained top layers."""
    longest = max(len(s) for s in states)
    hidden = torch.zeros((len(states), longest, states[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(states), longest), dtype=torch.long)
    for i, s in enumerate(states):
        hidden[i, : len(s)] = s.float()
        mask[i, : len(s)] = 1
    hidden, mask = hidden.to(device), mask.to(device)
    hidden = _run_layers(encoder, list(_layers(encoder))[frozen:], hidden, mask)
    return _pool_tokens(hidden, mask, pooling)


def _pool_items(vectors: torch.Tensor, owners: list[int], lengths: list[int], n_items: int) -> torch.Tensor:
    """Length-weighted mean of each item's window vectors."""
    owner = torch.tensor(owners, device=vectors.device)
    weight = torch.tensor(lengths, dtype=vectors.dtype, device=vectors.device).unsqueeze(1)
    total = torch.zeros((n_items, vectors.shape[1]), dtype=vectors.dtype, device=vectors.device)
    total = total.index_add(0, owner, vectors * weight)
    norm = torch.zeros((n_items, 1), dtype=vectors.dtype, device=vectors.device).index_add(0, owner, weight)
    return total / norm


def _heads(net: torch.nn.ModuleDict) -> list[torch.nn.Module]:
    """The task and domain heads of a network built by :func:`_assemble`, in head order."""
    return list(cast(torch.nn.ModuleDict, net["heads"]).values())  # ModuleDict indexing is typed as a plain Module


def _forward(
    model: TransformerMultiTask,
    items: list[ItemWindows],
    device: Device,
    cached: list[list[torch.Tensor]] | None = None,
    frozen: int = 0,
) -> list[torch.Tensor]:
    """Logits of every head for a batch of items (each a list of windows); ``cached`` holds, per
    item, its windows' bottom-layer states when the frozen layers were encoded once."""
    net = model.network_
    flat = [w for windows in items for w in windows]
    owners = [i for i, windows in enumerate(items) for _ in windows]
    if cached is not None:
        states = [s for item_states in cached for s in item_states]
        vectors = _cached_window_vectors(_encoder(net), states, frozen, model.config.pooling, device)
    else:
        vectors = _window_vectors(_encoder(net), flat, model.special_ids_["pad"], model.config.pooling, device)
    pooled = net["dropout"](_pool_items(vectors, owners, [len(w) for w in flat], len(items)))
    return [head(pooled) for head in _heads(net)]


# ------------------------------------------------------------------------------ training
def train(
    model: TransformerMultiTask, windows: list[ItemWindows], targets: dict[str, Int64Array], rows: IntArray
) -> dict[str, Any]:
    """Fine-tune with a masked cross-entropy per head; returns what the run did."""
    from tqdm import tqdm

    cfg = model.config
    device = torch.device(
        "cuda" if cfg.device == "auto" and torch.cuda.is_available() else "cpu" if cfg.device == "auto" else cfg.device
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device is 'cuda' but torch sees no CUDA device; use 'cpu' or 'auto'")
    net = model.network_.to(device).train()
    per_epoch = max(1, math.ceil(len(rows) / cfg.batch_size))
    total_steps = max(1, math.ceil(cfg.epochs * per_epoch), cfg.min_steps)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = _optimizer(net, cfg)
    warmup = int(cfg.warmup_fraction * total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)),
    )
    y = {h: torch.as_tensor(t) for h, t in targets.items()}
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([max(len(w) for w in ws) for ws in windows])
    order: list[int] = []
    started = time.monotonic()
    frozen = frozen_prefix(_encoder(net), cfg)
    cache: dict[int, list[torch.Tensor]] | None = None
    if frozen:
        cache = _cache_rows(model, windows, rows, frozen, device)
        if cache is None:
            frozen = 0
    cache_seconds = round(time.monotonic() - started, 1)
    started, stopped_by = time.monotonic(), "steps"
    losses: list[float] = []
    log.info(
        "fine-tuning %s on %d rows: %d steps of %d (%.2f epochs) on %s",
        cfg.base_model,
        len(rows),
        total_steps,
        cfg.batch_size,
        total_steps / per_epoch,
        device,
    )
    bar = tqdm(range(total_steps), desc="fine-tuning", disable=None)
    for step in bar:
        if len(order) < cfg.batch_size:
            order += epoch_order(rng, rows, lengths, cfg.batch_size if cfg.length_bucketing else 0)
        batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
        logits = _forward(
            model, [windows[i] for i in batch], device, None if cache is None else [cache[i] for i in batch], frozen
        )
        loss = _masked_loss(logits, [y[h][batch].to(device) for h in y])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if bar.disable and (step + 1) % max(1, total_steps // 10) == 0:
            log.info(
                "step %d/%d, loss %.3f, %.0f s",
                step + 1,
                total_steps,
                np.mean(losses[-20:]),
                time.monotonic() - started,
            )
        if cfg.max_train_seconds and time.monotonic() - started > cfg.max_train_seconds:
            stopped_by = "max_train_seconds"
            log.warning(
                "stopped after %d of %d steps: model.max_train_seconds=%s", step + 1, total_steps, cfg.max_train_seconds
            )
            break
    bar.close()
    steps = len(losses)
    return {
        "steps": steps,
        "epochs": round(steps / per_epoch, 3),
        "seconds": round(time.monotonic() - started, 1),
        "final_loss": round(float(np.mean(losses[-20:])), 4),
        "rows": int(len(rows)),
        "device": device.type,
        "stopped_by": stopped_by,
        "cached_layers": frozen,
        "cache_seconds": cache_seconds if frozen else 0.0,
    }


def _cache_rows(
    model: TransformerMultiTask, windows: list[ItemWindows], rows: IntArray, frozen: int, device: Device
) -> dict[int, list[torch.Tensor]] | None:
    """The bottom-layer states of every training row's windows, or None when they would not fit in
    ``model.cache_max_mb`` (training then runs the whole encoder each step, as without a cache)."""
    cfg = model.config
    encoder = _encoder(model.network_)
    tokens = sum(len(w) for i in rows for w in windows[i])
    size_mb = tokens * encoder.config.hidden_size * 2 / 2**20
    if size_mb > cfg.cache_max_mb:
        log.warning(
            "the frozen layers' outputs would take %.0f MB (model.cache_max_mb is %s): not cached, every "
            "step runs the whole encoder",
            size_mb,
            cfg.cache_max_mb,
        )
        return None
    flat = [w for i in rows for w in windows[i]]
    log.info("encoding the %d frozen layers once: %d windows, %d tokens, %.0f MB", frozen, len(flat), tokens, size_mb)
    states = encode_prefix(encoder, flat, frozen, model.special_ids_["pad"], cfg.predict_batch_size, device)
    cache: dict[int, list[torch.Tensor]] = {}
    k = 0
    for i in rows:
        cache[int(i)] = states[k : k + len(windows[i])]
        k += len(windows[i])
    return cache


def epoch_order(
    rng: np.random.Generator, rows: IntArray, lengths: IntArray, batch_size: int, pool_batches: int = 32
) -> list[int]:
    """One epoch of rows in a random order. With ``batch_size``, rows are sorted by length within
    random pools of ``pool_batches`` batches and the batches shuffled: each batch holds rows of
    similar length, so little of a step is spent on padding, and the batches still vary."""
    order = rng.permutation(rows)
    if not batch_size:
        shuffled: list[int] = order.tolist()
        return shuffled
    batches: list[IntArray] = []
    pool = batch_size * pool_batches
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [int(i) for k in rng.permutation(len(batches)) for i in batches[k]]


def _optimizer(net: torch.nn.ModuleDict, cfg: TransformerConfig) -> torch.optim.Optimizer:
    """AdamW: weight decay on the encoder's matrices, none on its biases and norms; the heads at their own rate."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in _encoder(net).named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "LayerNorm" not in name else no_decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.learning_rate, "weight_decay": 0.0},
            {"params": list(net["heads"].parameters()), "lr": cfg.head_learning_rate, "weight_decay": 0.0},
        ]
    )


def _masked_loss(logits: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Sum over heads of the mean cross-entropy on the rows that carry the head's label."""
    total = logits[0].sum() * 0.0
    for z, t in zip(logits, targets):
        keep = t >= 0
        if keep.any():
            total = total + torch.nn.functional.cross_entropy(z[keep], t[keep])
    return total


# ------------------------------------------------------------------ serving state
def finish_weights(model: TransformerMultiTask) -> None:
    """After training: back to CPU, weights rounded to the saved precision, the int8 runtime built."""
    cfg = model.config
    net = model.network_.to("cpu").eval()
    if cfg.save_dtype == "float16":
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(p.half().float())  # what is served is exactly what is saved
    model.saved_state_ = None
    if cfg.runtime == "int8":
        model.saved_state_ = _to_save_dtype(net.state_dict(), cfg.save_dtype)
        _quantize(net)


def _to_save_dtype(state: dict[str, torch.Tensor], save_dtype: str) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with floating tensors in the saved precision, every tensor contiguous."""
    dtype = torch.float16 if save_dtype == "float16" else torch.float32
    return {
        k: (v.detach().to(dtype=dtype, copy=True) if v.is_floating_point() else v.detach().clone()).contiguous()
        for k, v in state.items()
    }


def _quantize(net: torch.nn.ModuleDict) -> None:
    """The encoder's linear layers in int8 (dynamic quantisation), in place."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(net["encoder"], {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


@torch.inference_mode()
def predict_logits(model: TransformerMultiTask, windows: list[ItemWindows]) -> dict[str, Float64Array]:
    """Logits per head for every item; windows run longest first in batches of ``predict_batch_size``."""
    net, cfg = model.network_, model.config
    flat = [(i, w) for i, ws in enumerate(windows) for w in ws]
    order = sorted(range(len(flat)), key=lambda j: -len(flat[j][1]))
    encoder = _encoder(net)
    hidden = encoder.config.hidden_size
    vectors = torch.zeros((len(flat), hidden))
    for start in range(0, len(order), cfg.predict_batch_size):
        chunk = order[start : start + cfg.predict_batch_size]
        vectors[chunk] = _window_vectors(
            encoder, [flat[j][1] for j in chunk], model.special_ids_["pad"], cfg.pooling, "cpu"
        )
    pooled = _pool_items(vectors, [i for i, _ in flat], [len(w) for _, w in flat], len(windows))
    names = model._head_sizes()
    return {name: head(pooled).numpy().astype(np.float64) for name, head in zip(names, _heads(net))}


def fit_temperatures(
    model: TransformerMultiTask, windows: list[ItemWindows], targets: dict[str, Int64Array]
) -> dict[str, float]:
    """Per head, the temperature that minimises the negative log-likelihood on held-out rows."""
    from scipy.optimize import minimize_scalar

    temperatures = {name: 1.0 for name in model._head_sizes()}
    if not windows:
        return temperatures
    logits = predict_logits(model, windows)
    for name, z in logits.items():
        keep = targets[name] >= 0
        if keep.sum() < 5:
            continue
        z, y = z[keep], targets[name][keep]

        def nll(log_t: float, z: Float64Array = z, y: Int64Array = y) -> float:
            s = z / math.exp(log_t)
            s = s - s.max(axis=1, keepdims=True)
            return float(-(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(axis=1))).mean())

        best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
        temperatures[name] = round(math.exp(best.x), 6)
        log.info(
            "head %s: temperature %.3f (NLL %.4f -> %.4f on %d held-out rows)",
            name,
            temperatures[name],
            nll(0.0),
            best.fun,
            len(y),
        )
    return temperatures


# ---------------------------------------------------------------------- persistence
def save_weights(model: TransformerMultiTask, folder: Path) -> None:
    """``encoder.json``, ``tokenizer.json`` and ``weights.safetensors`` (in the saved precision) into ``folder``."""
    from safetensors.torch import save_file

    from model.storage.files import write_json

    write_json(folder / ENCODER_CONFIG, _encoder(model.network_).config.to_dict())
    (folder / TOKENIZER).write_text(model.tokenizer_.to_str(), encoding="utf-8")
    if model.saved_state_ is not None:
        save_file(model.saved_state_, str(folder / WEIGHTS))
    elif (weights_file := getattr(model, "weights_file_", None)) is not None:
        shutil.copyfile(weights_file, folder / WEIGHTS)  # a loaded int8 model: its file is the state
    else:
        save_file(_to_save_dtype(model.network_.state_dict(), model.config.save_dtype), str(folder / WEIGHTS))


def load_weights(model: TransformerMultiTask, folder: Path) -> None:
    """Rebuild ``model``'s tokenizer and network from the files :func:`save_weights` wrote (int8 when configured)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from model.storage.files import read_json

    raw = read_json(folder / ENCODER_CONFIG)
    try:
        encoder_config = CONFIG_MAPPING[raw["model_type"]].from_dict(raw)
        state = load_file(str(folder / WEIGHTS))
    except (KeyError, OSError, ValueError, SafetensorError) as exc:
        raise BundleError(
            f"{folder}: the transformer's encoder cannot be read ({type(exc).__name__}: {exc}); retrain the model"
        ) from exc
    try:
        model.tokenizer_ = Tokenizer.from_file(str(folder / TOKENIZER))
    except Exception as exc:  # the tokenizers library raises plain Exception on a bad file
        raise BundleError(f"{folder}: {TOKENIZER} cannot be read ({exc}); retrain the model") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = _assemble(AutoModel.from_config(encoder_config), model._head_sizes(), model.config.head_dropout)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{folder}: the weights do not fit the encoder config ({exc}); retrain the model") from exc
    model.network_ = net.eval()
    model.saved_state_ = None
    model.weights_file_ = None
    if model.config.runtime == "int8":
        model.weights_file_ = folder / WEIGHTS
        _quantize(net)
