"""Types of the compiled featurizer (model/kinds/_ngrams.c); model/kinds/compiled.py is its only caller."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from typing_extensions import Buffer

def hash_terms(terms: Sequence[str], /) -> bytes:
    """The 64-bit lookup hash of each term, as bytes of uint64."""

def build_table(hashes: Buffer | np.ndarray[Any, Any], /) -> tuple[bytes, bytes]:
    """``(keys, vals)``: the hash table :func:`count_terms` looks terms up in (ValueError when two hashes are equal)."""

def count_terms(
    texts: Sequence[str],
    analyzer: int,
    lo: int,
    hi: int,
    keys: Buffer | np.ndarray[Any, Any],
    vals: Buffer | np.ndarray[Any, Any],
    vocab: int = 0,
    /,
) -> tuple[bytes, bytes, bytes]:
    """``(indptr int64, term ids int32, counts int32)`` as bytes: term ids and counts of word or char_wb n-grams."""
