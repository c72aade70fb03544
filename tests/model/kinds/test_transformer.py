"""The transformer model kind, on a tiny random BERT and a word-level tokenizer made here (no downloads).
Save → load → the same probabilities, and refusing to predict unfitted, are the contract every kind meets
(tests/model/kinds/test_contract.py); what is here is the transformer's own."""

import json
import subprocess
import sys

import numpy as np
import pytest

from model.conversation.record import interaction_from_dict
from model.errors import BundleError, ConfigError
from model.kinds.transformer.kind import TransformerConfig, TransformerMultiTask, render_for_encoder
from tests.factories import (
    TASKS,
    TINY_BERT_PARAMS,
    assert_learns_the_rows,
    labelled_accuracy,
    labelled_interactions,
    make_rows,
    make_tiny_bert,
    train_kind,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random 2-layer BERT with a word-level tokenizer over the factory corpus's words."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint, taxonomy_path):
    """One fine-tuning run through training.fitting.train (the kind as the CLI uses it), reused by the tests."""
    return train_kind(
        tmp_path_factory, taxonomy_path, "transformer", dict(TINY_BERT_PARAMS, base_model=str(tiny_checkpoint))
    )


def test_transformer_overfits_tiny_corpus(trained):
    bundle, _ = trained
    domain_classes, d = assert_learns_the_rows(bundle.model, 0.9)
    assert domain_classes == ["marketplace", "telecom"]
    expected = [1 if "reason2" in r else 0 for r in make_rows()]
    assert np.mean(np.argmax(d, axis=1) == expected) >= 0.9


def test_transformer_bundle_holds_safetensors_and_a_tokenizer(trained):
    _, out = trained
    assert {"encoder.json", "weights.safetensors", "tokenizer.json"} <= {p.name for p in (out / "weights").iterdir()}
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.bin"))


def test_transformer_predictor_serves_the_bundle(trained):
    from model.predictor import Predictor

    _, out = trained
    predictor = Predictor.load(out)
    rows = make_rows(2, seed=3)  # unseen variants of the training wording
    call_row = next(r for r in rows if r.get("reason2") == "Смена оператора (MNP)")
    chat_row = next(r for r in rows if r.get("topic") == "Статус заказа")
    [call, chat] = predictor.predict([call_row, chat_row], top_k=2)
    assert call.predictions["reason2"][0].label == "Смена оператора (MNP)"
    assert chat.predictions["topic"][0].label == "Статус заказа"
    assert call.domains[0].confidence >= 0.5 and len(call.predictions["topic"]) == 2


def test_transformer_temperatures_fitted_on_held_out_rows(trained):
    _bundle, out = trained
    info = json.loads((out / "manifest.json").read_text())["weights"]
    assert set(info["temperatures"]) == {"reason2", "topic", "resolution", "_domain"}
    assert all(0.04 < t < 21 for t in info["temperatures"].values())
    assert info["train_report"]["steps"] > 0 and info["train_report"]["rows"] < len(make_rows())


def test_transformer_partial_labels_masked_loss():
    from model.kinds.transformer.torch_backend import _masked_loss

    logits = [torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]]), torch.tensor([[1.0, 0.0, 0.0]] * 3)]
    targets = [torch.tensor([0, -1, 1]), torch.tensor([-1, -1, -1])]
    expected = torch.nn.functional.cross_entropy(logits[0][[0, 2]], torch.tensor([0, 1]))
    assert torch.isclose(_masked_loss(logits, targets), expected)  # unlabelled rows and heads add nothing


def test_transformer_partial_labels_heads_and_targets():
    rows = make_rows(4)
    rows.append({"turns": [{"role": "client", "text": "без метки"}], "channel": "chat"})  # no label at all
    model = TransformerMultiTask(TransformerConfig(base_model="unused"))
    model.classes_ = {
        "reason2": sorted({r["reason2"] for r in rows if "reason2" in r}),
        "topic": sorted({r["topic"] for r in rows if "topic" in r}),
    }
    model.domain_classes_ = None
    targets = model._targets(labelled_interactions(rows), [None] * len(rows))
    assert (targets["reason2"] >= 0).sum() == sum("reason2" in r for r in rows)
    assert targets["topic"][-1] == -1 and targets["reason2"][-1] == -1
    assert set(targets["reason2"][[i for i, r in enumerate(rows) if "topic" in r]]) == {-1}


def test_transformer_long_conversation_is_windowed_not_truncated(trained):
    model = trained[0].model
    turns = [{"role": "client", "text": f"ну интернет не грузит совсем страницы {i}"} for i in range(30)]
    item = interaction_from_dict({"channel": "call", "turns": turns})
    from model.kinds.transformer.torch_backend import windows_for

    [windows] = windows_for(model, [render_for_encoder(item)])
    assert len(windows) == model.config.max_windows
    assert all(len(w) <= model.config.max_length for w in windows)
    cls_id, sep_id = model.special_ids_["cls"], model.special_ids_["sep"]
    assert all(w[0] == cls_id and w[-1] == sep_id for w in windows)
    assert windows[0][-1 - model.config.window_overlap : -1] == windows[1][1 : 1 + model.config.window_overlap]
    probs, _ = model.predict_proba([item])
    classes, p = probs["reason2"]
    assert classes[int(np.argmax(p[0]))] == "Не могу выйти в интернет"


def test_transformer_config_validation_errors():
    with pytest.raises(ConfigError, match="model.max_length must be an integer in \\[8, 8192\\], got 4"):
        TransformerConfig(max_length=4)
    with pytest.raises(ConfigError, match="model.window_overlap must be an integer in \\[0, 13\\], got 16"):
        TransformerConfig(max_length=16, window_overlap=16)
    with pytest.raises(ConfigError, match="model.runtime must be one of \\['float32', 'int8'\\], got 'onnx'"):
        TransformerConfig(runtime="onnx")
    with pytest.raises(ConfigError, match="model.calibration_fraction must be in \\[0, 0.5\\], got 0.8"):
        TransformerConfig(calibration_fraction=0.8)
    with pytest.raises(ConfigError, match="model.learning_rate must be in \\(0, 1\\), got 0"):
        TransformerConfig(learning_rate=0)
    with pytest.raises(ConfigError, match="model.base_model must be a Hugging Face name or a folder"):
        TransformerConfig(base_model=" ")
    with pytest.raises(ConfigError, match="model.learning_rate must be a number, got '1e-4'"):
        TransformerConfig(learning_rate="1e-4")
    with pytest.raises(ConfigError, match="model.batch_size must be an integer"):
        TransformerConfig(batch_size=True)


def test_transformer_train_config_rejects_unknown_params():
    from training.fitting.config import TrainConfig

    with pytest.raises(ConfigError, match="model.params for kind 'transformer'.*'lr'"):
        TrainConfig.load(None, ["model.kind=transformer", "model.params.lr=0.1"])


def test_transformer_bad_base_model_and_max_length(tmp_path, tiny_checkpoint):
    items = labelled_interactions(make_rows(2))
    with pytest.raises(ConfigError, match="no tokenizer could be loaded"):
        TransformerMultiTask(TransformerConfig(base_model=str(tmp_path))).fit(items, list(TASKS))
    with pytest.raises(ConfigError, match="model.max_length is 128, the encoder takes at most 64"):
        TransformerMultiTask(TransformerConfig(base_model=str(tiny_checkpoint), max_length=128)).fit(items, list(TASKS))


def test_transformer_broken_manifest_refused(tmp_path):
    with pytest.raises(BundleError, match="manifest entry is incomplete"):
        TransformerMultiTask.load(tmp_path, {"params": {}, "tasks": ["reason2"], "classes": {}})


def test_transformer_config_needs_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from model.kinds.transformer.kind import TransformerConfig; TransformerConfig(max_length=128)\n"
        "from training.fitting.config import TrainConfig; TrainConfig.load(None, ['model.kind=transformer'])\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_transformer_load_refuses_damaged_files(trained, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    _, out = trained
    info = dict(json.loads((out / "manifest.json").read_text())["weights"], tasks=["reason2", "topic", "resolution"])
    folder = tmp_path / "weights"
    shutil.copytree(out / "weights", folder)
    state = load_file(str(folder / "weights.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("heads.")}, str(folder / "weights.safetensors"))
    with pytest.raises(BundleError, match="the weights do not fit the encoder config"):
        TransformerMultiTask.load(folder, info)
    (folder / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="tokenizer.json cannot be read"):
        TransformerMultiTask.load(folder, info)
    (folder / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="the transformer's encoder cannot be read"):
        TransformerMultiTask.load(folder, info)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when no GPU is there")
def test_transformer_cuda_without_gpu_is_a_config_error(tiny_checkpoint):
    config = TransformerConfig(**dict(TINY_BERT_PARAMS, base_model=str(tiny_checkpoint), device="cuda"))
    with pytest.raises(ConfigError, match="model.device is 'cuda' but torch sees no CUDA device"):
        TransformerMultiTask(config).fit(labelled_interactions(make_rows(2)), list(TASKS))


def test_transformer_cached_frozen_layers_match_the_whole_encoder(tiny_checkpoint):
    """The top layers run on cached bottom-layer states give the full encoder's window vectors."""
    from model.kinds.transformer import torch_backend as tt

    model = TransformerMultiTask(
        TransformerConfig(**dict(TINY_BERT_PARAMS, base_model=str(tiny_checkpoint), train_layers=1))
    )
    model.tokenizer_, model.special_ids_ = tt.load_tokenizer(str(tiny_checkpoint))
    model.classes_, model.domain_classes_ = {"reason2": ["a", "b"]}, None
    model.network_ = tt.new_network(model.config, model._head_sizes())
    encoder = model.network_["encoder"].eval()
    texts = [render_for_encoder(x) for x in labelled_interactions(make_rows(2))]
    windows = [w for ws in tt.windows_for(model, texts) for w in ws]
    assert len({len(w) for w in windows}) > 1  # padding is exercised
    frozen = tt.frozen_prefix(encoder, model.config)
    assert frozen == 1
    states = tt.encode_prefix(encoder, windows, frozen, model.special_ids_["pad"], 8, "cpu")
    assert [len(s) for s in states] == [len(w) for w in windows] and states[0].dtype == torch.float16
    with torch.no_grad():
        cached = tt._cached_window_vectors(encoder, states, frozen, "mean", "cpu")
        whole = tt._window_vectors(encoder, windows, model.special_ids_["pad"], "mean", "cpu")
    torch.testing.assert_close(cached, whole, rtol=0, atol=5e-3)  # float16 storage of the states
    assert tt.frozen_prefix(encoder, TransformerConfig(train_layers=None)) == 0
    assert tt.frozen_prefix(encoder, TransformerConfig(train_layers=1, cache_frozen=False)) == 0


def test_transformer_fits_top_layers_on_cached_states(tiny_checkpoint):
    """train_layers=1: the bottom layer is encoded once, it and the embeddings never change, and the
    model still learns the rows; with too small a cache_max_mb the whole encoder runs every step."""
    from model.kinds.transformer import torch_backend as tt

    params = dict(TINY_BERT_PARAMS, base_model=str(tiny_checkpoint), train_layers=1, calibration_fraction=0.0)
    rows = make_rows()
    items = labelled_interactions(rows)
    before = tt.new_network(TransformerConfig(**params), {"x": 2})["encoder"].state_dict()
    model = TransformerMultiTask(TransformerConfig(**params)).fit(items, ["reason2"])
    report = model.train_report_
    assert report["cached_layers"] == 1 and report["steps"] > 0
    after = model.network_["encoder"].state_dict()  # int8 runtime: the quantised layers are packed
    for name in ("embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight"):
        torch.testing.assert_close(after[name], before[name].half().float())
    classes, p = model.predict_proba(items, ["reason2"])[0]["reason2"]
    assert labelled_accuracy(classes, p, rows, "reason2") >= 0.9

    uncached = TransformerMultiTask(TransformerConfig(**dict(params, cache_max_mb=0, max_steps=2)))
    uncached.fit(items, ["reason2"])
    assert uncached.train_report_["cached_layers"] == 0 and uncached.train_report_["steps"] == 2


def test_transformer_length_bucketed_epoch_order():
    from model.kinds.transformer.torch_backend import epoch_order

    rows = np.arange(200)
    lengths = np.random.default_rng(0).integers(5, 250, size=200)
    order = epoch_order(np.random.default_rng(1), rows, lengths, batch_size=8, pool_batches=25)
    assert sorted(order) == rows.tolist()  # every row once per epoch
    batches = [order[i : i + 8] for i in range(0, 200, 8)]
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    plain = epoch_order(np.random.default_rng(1), rows, lengths, batch_size=0)
    plain_spread = np.mean([np.ptp(lengths[plain[i : i + 8]]) for i in range(0, 200, 8)])
    assert spread < plain_spread / 4  # similar lengths share a batch
    assert order != epoch_order(np.random.default_rng(2), rows, lengths, batch_size=8, pool_batches=25)


def test_transformer_min_steps_floor(tiny_checkpoint):
    """A small data set trains for at least min_steps steps, however few epochs that makes."""
    params = dict(TINY_BERT_PARAMS, base_model=str(tiny_checkpoint), calibration_fraction=0.0, epochs=0.01, min_steps=5)
    model = TransformerMultiTask(TransformerConfig(**params)).fit(labelled_interactions(make_rows(2)), ["reason2"])
    assert model.train_report_["steps"] == 5
    with pytest.raises(ConfigError, match="model.min_steps must be an integer"):
        TransformerConfig(min_steps=-1)
