"""NumPy array types shared by the model kinds, the Predictor and the service (type annotations only).

Scores and probabilities keep the precision a model was fitted in (float32 features, float32 or float64
heads), so they are ``FloatArray``; where a dtype is fixed by construction the precise alias is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]  # scores, probabilities, embeddings: float32 or float64
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.integer[Any]]  # term ids, counts, offsets of any integer width
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
