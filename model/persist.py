"""Safe persistence of fitted parts: skops for scikit-learn estimators (only scikit-learn, NumPy and
SciPy types trusted), JSON + NumPy for vectorizers. Never a bare pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer

from model.errors import BundleError

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
_VECTORIZER_PARAMS = (
    "analyzer", "binary", "lowercase", "max_df", "max_features", "min_df", "ngram_range", "norm",
    "smooth_idf", "strip_accents", "sublinear_tf", "token_pattern", "use_idf", "dtype",
)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def save_skops(obj: Any, file: Path) -> None:
    sio.dump(obj, file)


def load_skops(file: Path) -> Any:
    untrusted = sio.get_untrusted_types(file=file)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise BundleError(f"{file}: refuses to load types outside scikit-learn/NumPy/SciPy: {refused}")
    try:
        return sio.load(file, trusted=untrusted)
    except Exception as exc:  # skops raises many types; report them as one bundle error
        raise BundleError(f"{file}: cannot be loaded ({type(exc).__name__}: {exc}); retrain the model") from exc


def load_head(file: Path) -> CalibratedClassifierCV:
    head = load_skops(file)
    if not isinstance(head, CalibratedClassifierCV) or not hasattr(head, "classes_"):
        raise BundleError(f"{file}: holds a {type(head).__name__}, expected a calibrated classifier; retrain the model")
    return head


def save_vectorizer(vec: TfidfVectorizer, folder: Path, name: str) -> None:
    """A fitted TfidfVectorizer as JSON (parameters + vocabulary) and its IDF as .npy: fast, no pickle."""
    params = {k: v for k, v in vec.get_params().items() if k in _VECTORIZER_PARAMS}
    params["dtype"] = np.dtype(params["dtype"]).name
    vocabulary = {term: int(i) for term, i in vec.vocabulary_.items()}
    write_json(folder / f"{name}.json", {"params": params, "vocabulary": vocabulary})
    np.save(folder / f"{name}.idf.npy", vec.idf_, allow_pickle=False)


def load_vectorizer(folder: Path, name: str) -> TfidfVectorizer:
    try:
        raw = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        params = dict(raw["params"])
        params["dtype"] = np.dtype(params["dtype"])
        params["ngram_range"] = tuple(params["ngram_range"])
        vec = TfidfVectorizer(**params)
        vec.vocabulary_ = raw["vocabulary"]
        vec.idf_ = np.load(folder / f"{name}.idf.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{folder / name}: the vectorizer cannot be read ({exc}); retrain the model") from exc
    return vec
