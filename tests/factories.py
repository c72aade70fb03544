"""Small data factories for the tests: a labelled corpus whose labels a model can learn."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

# the evaluation-only benchmarks beside the clone (../shared/benchmarks): tests that read them skip without them
SHARED = Path(__file__).resolve().parents[2] / "shared"

# Each label gets its own vocabulary so a model that learns anything separates them.
TELECOM = {
    "За что списание?": (["сняли", "деньги", "непонятно"], ["сто рублей", "двести рублей", "с баланса", "вчера"]),
    "Не могу выйти в интернет": (["интернет", "не", "грузит"], ["совсем", "страницы", "ютуб", "браузер"]),
    "Смена оператора (MNP)": (["перейти", "с", "номером"], ["от мтс", "к теле2", "сохранить номер", "перенос"]),
}
MARKET = {
    "Статус заказа": (["где", "мой", "заказ"], ["трек", "отслеживание", "статус не меняется", "неделю"]),
    "Возврат денег": (["когда", "вернут", "деньги"], ["за возврат", "на карту", "отмененный", "сумма"]),
    "Вход в аккаунт": (["не", "могу", "войти"], ["код не приходит", "пароль", "смс", "озон id"]),
}
RESOLUTIONS = ["Решено", "Не решено", "Не решено - Эскалировать"]
OPERATOR = {
    "Решено": "вот подробная информация вопрос решен",
    "Не решено": "создала задание ответ придет в течение трех дней",
    "Не решено - Эскалировать": "перевожу обращение на специалиста другого отдела",
}
FILLERS = ["ну", "слушайте", "короче", "здравствуйте", "алло", "эээ", "вот", "подскажите"]


TASKS = ("reason2", "topic", "resolution")  # the tasks make_rows labels
# a transformer small enough to fine-tune in seconds on make_rows (with base_model=str(make_tiny_bert(folder)))
TINY_BERT_PARAMS: dict[str, Any] = dict(
    text_prefix="",
    max_length=16,
    window_overlap=4,
    max_windows=4,
    epochs=20,
    batch_size=16,
    learning_rate=3e-3,
    head_learning_rate=3e-2,
    warmup_fraction=0.05,
    head_dropout=0.0,
    calibration_fraction=0.15,
    threads=1,
    predict_batch_size=8,
)


def make_rows(n_per_label: int = 10, seed: int = 0) -> list[dict]:
    rows = []
    n = 0
    for label, (core, extras) in TELECOM.items():
        for i in range(n_per_label):
            filler = FILLERS[(i + seed) % len(FILLERS)]
            extra = extras[i % len(extras)]
            text = f"{filler} {' '.join(core)} {extra} вариант {i + seed}"
            n += 1
            rows.append(
                {
                    "id": f"t{n}",
                    "scenario": f"t-{label}-{i // 2}",
                    "channel": "call",
                    "turns": [{"role": "operator", "text": "билайн здравствуйте"}, {"role": "client", "text": text}],
                    "reason2": label,
                    "macros": ["M01"] if label == "За что списание?" else [],
                }
            )
    for (label, (core, extras)), (j, resolution) in itertools.product(MARKET.items(), enumerate(RESOLUTIONS)):
        for i in range(max(2, n_per_label // 3 + 1)):
            filler = FILLERS[(i + j + seed) % len(FILLERS)]
            text = f"{filler} {' '.join(core)} {extras[(i + j) % len(extras)]} номер {i}{j}{seed}"
            n += 1
            rows.append(
                {
                    "id": f"m{n}",
                    "scenario": f"m-{label}-{j}-{i // 2}",
                    "channel": "chat",
                    "turns": [
                        {"role": "bot", "text": "здравствуйте я бот"},
                        {"role": "client", "text": text},
                        {"role": "operator", "text": OPERATOR[resolution]},
                    ],
                    "topic": label,
                    "resolution": resolution,
                    "macros": {"Решено": ["M15"], "Не решено": ["M16"], "Не решено - Эскалировать": ["M18"]}[
                        resolution
                    ],
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train_kind(tmp_path_factory, taxonomy_path, kind: str, params: dict):
    """One training run of ``kind`` on :func:`make_rows` through training.fitting.train, as the CLI runs it
    (no held-out split); returns the bundle and its folder."""
    from training.fitting.config import TrainConfig
    from training.fitting.train import train

    data = write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", make_rows())
    out = tmp_path_factory.mktemp("bundles") / kind
    config = TrainConfig.from_dict(
        {"taxonomy": str(taxonomy_path), "split": {"test_size": 0.0}, "model": {"kind": kind, "params": params}}
    )
    return train([str(data)], out, config), out


def make_feedback(**overrides: Any):
    """A :class:`serve.feedback_store.Feedback`: an accepted «За что списание?» on a call (no turns), with
    ``overrides`` applied."""
    from serve.feedback_store import Feedback

    base: dict[str, Any] = dict(
        interaction_id="int-1",
        model_version="v1",
        task="reason2",
        suggested="За что списание?",
        chosen="За что списание?",
        accepted=True,
        operator_id="op-1",
        client_id="c-1",
        channel="call",
        confidence=0.8,
        turns=None,
    )
    return Feedback(**{**base, **overrides})


def labelled_accuracy(classes: list[str], probabilities, rows: list[dict], task: str) -> float:
    """Top-1 accuracy over the rows that carry ``task``'s label."""
    labelled = [(i, r[task]) for i, r in enumerate(rows) if task in r]
    return sum(classes[int(probabilities[i].argmax())] == label for i, label in labelled) / len(labelled)


def labelled_interactions(rows: list[dict]) -> list:
    """``rows`` as interactions that carry their labels of :data:`TASKS`."""
    from model.conversation.record import interaction_from_dict

    return [interaction_from_dict(r, label_tasks=TASKS) for r in rows]


def assert_learns_the_rows(model, min_accuracy: float):
    """A model trained on :func:`make_rows` gets at least ``min_accuracy`` of them right per task, with rows
    that sum to 1; returns its domain scores ``(classes, probabilities)``."""
    import numpy as np

    rows = make_rows()
    probs, domain = model.predict_proba(labelled_interactions(rows))
    for task in TASKS:
        classes, p = probs[task]
        accuracy = labelled_accuracy(classes, p, rows, task)
        assert accuracy >= min_accuracy, (task, accuracy)
        assert np.allclose(p.sum(axis=1), 1.0)
    return domain


def make_tiny_bert(folder):
    """A random 2-layer BERT with a word-level tokenizer over the factory corpus's words (no download)."""
    import pytest

    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import re

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from model.conversation.record import interaction_from_dict
    from model.kinds.transformer.kind import render_for_encoder

    words = set()
    for r in make_rows():
        words.update(re.findall(r"\w+|[^\w\s]", render_for_encoder(interaction_from_dict(r)).lower()))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *sorted(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    ).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    return folder


@contextlib.contextmanager
def server_in_thread(app, *, wait_s: float = 30.0):
    """A real uvicorn serving ``app`` in a thread on a free loopback port; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(int(wait_s * 10)):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
