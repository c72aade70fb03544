"""The compiled featurizer (model/kinds/_ngrams.c) counts exactly the terms scikit-learn's analyzers produce."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from model.kinds.compiled import NgramFeaturizer

TEXTS = [
    "__call__ __client__ сняли деньги 4g не работает, wi-fi тоже!!",
    "ёлка Ёжик\tтабы\u00a0nbsp\u2003em-space and_underscore 𗀀 tangut 😀 emoji ½ ²",
    "",
    "   ",
    "a",
    "ab ab ab",
    "x" * 300,
    "слово " * 50,
    "__email__ __num__ __num__ рублей за тариф «Мой онлайн+»",
]


@pytest.mark.parametrize(
    "analyzer,ngrams", [("word", (1, 2)), ("word", (1, 1)), ("char_wb", (2, 5)), ("char_wb", (3, 5))]
)
def test_compiled_counts_equal_scikit_learn(analyzer, ngrams):
    vec = TfidfVectorizer(
        analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float32
    )
    vec.fit(TEXTS + ["ещё немного текста для словаря", "and_underscore tangut"])
    featurizer = NgramFeaturizer.from_sklearn(vec)
    assert featurizer.compiled, "the C extension is built by pip install -e ."
    expected = vec.transform(TEXTS)
    got = featurizer.transform(TEXTS)
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    for row in range(len(TEXTS)):
        a, b = got[row], expected[row]
        np.testing.assert_array_equal(np.sort(a.indices), np.sort(b.indices))
        np.testing.assert_allclose(a.toarray(), b.toarray(), atol=1e-7)


def test_python_path_equals_compiled(monkeypatch):
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float32).fit(TEXTS)
    compiled = NgramFeaturizer.from_sklearn(vec)
    python = NgramFeaturizer.from_sklearn(vec)
    python._table = None
    a, b = compiled.transform(TEXTS), python.transform(TEXTS)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.data, b.data, atol=1e-7)
