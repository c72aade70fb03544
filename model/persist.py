"""Small file helpers shared by the bundle writers. Nothing here reads a pickle: bundles hold arrays
(``.npy``, read with ``allow_pickle=False``), JSON, YAML and safetensors only (see :mod:`model.compiled`)."""

from __future__ import annotations

from model.compiled import write_json

__all__ = ["write_json"]
