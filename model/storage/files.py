"""Small file primitives every part of a bundle uses: JSON read and write, a file's sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from model.errors import BundleError


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept readable), one trailing newline."""
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a JSON file of a bundle; a file that cannot be read or parsed is a :class:`BundleError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot be read as JSON ({exc}); retrain the model") from exc


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
