"""Model bundles: one folder per model, a manifest, and nothing loaded before it is checked.

Layout (like spaCy's saved pipeline)::

    manifest.json      model id, created_at, git revision, library versions, taxonomy version,
                       labels per task, sha256 of every file and of the training data, metrics
    config.json        the resolved training configuration
    taxonomy.yaml      the taxonomy the model was trained with
    weights/           the model kind's own files (TF-IDF: vectorizers as JSON + .npy, heads as skops)
    macros.json        macro statistics (by label) and the macro ranker's settings
    macros/            the macro ranker: character n-gram vectorizer (JSON + .npy), weights (.npy)

Loading verifies every checksum, the format version and the scikit-learn version, and loads the
scikit-learn parts with skops trusting only scikit-learn, NumPy and SciPy types — never a bare pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import scipy
import sklearn
import skops

from model.base import model_class
from model.errors import BundleError
from model.macros import MacroRanker, MacroStats, load_macros
from model.persist import write_json as _write_json
from model.taxonomy import Taxonomy, load_taxonomy

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
WEIGHTS = "weights"


@dataclass
class Bundle:
    model: Any  # a model.base.MultiTaskModel
    macros: MacroStats | MacroRanker
    taxonomy: Taxonomy
    manifest: dict[str, Any]
    path: Path | None = None
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def domains(self) -> dict[str, str]:
        return {name: task.domain or name for name, task in self.taxonomy.tasks.items()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from model import __version__

    versions = {
        "podskazka": __version__,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
    }
    for name in ("torch", "transformers", "onnxruntime"):
        module = __import__("sys").modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def save_bundle(bundle: Bundle, out_dir: str | Path, taxonomy_path: str | Path) -> Path:
    """Write the bundle atomically: into a temporary folder beside ``out_dir``, then renamed."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model = bundle.model
        info = model.save(tmp / WEIGHTS)
        bundle.macros.save(tmp)
        _write_json(tmp / "config.json", bundle.manifest.get("config", {}))
        shutil.copyfile(taxonomy_path, tmp / "taxonomy.yaml")
        manifest = dict(bundle.manifest)
        manifest.update(
            format_version=FORMAT_VERSION,
            model_kind=model.kind,
            libraries=library_versions(),
            taxonomy={"version": bundle.taxonomy.version, "sha256": sha256_file(tmp / "taxonomy.yaml")},
            tasks=model.task_classes,
            weights=info,
            decision=bundle.decision,
        )
        manifest["files"] = {
            str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        _write_json(tmp / MANIFEST, manifest)
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(out_dir, backup)
            os.replace(tmp, out_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.manifest = manifest
    bundle.path = out_dir
    return out_dir


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise BundleError(
            f"model bundle {path} does not exist; train one with "
            f"'podskazka train --data datasets/corpus --out {path}' (or 'make model')"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path} is not a model bundle: {MANIFEST} is missing") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_path} cannot be read as JSON: {exc}") from exc
    if not isinstance(manifest, dict) or "files" not in manifest or "model_id" not in manifest:
        raise BundleError(f"{manifest_path} lacks 'model_id' or 'files'; the bundle is incomplete")
    return manifest


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check format, versions and every file's checksum; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {manifest.get('format_version')!r}, this podskazka reads format "
            f"{FORMAT_VERSION}; retrain the model with this version"
        )
    trained_with = manifest.get("libraries", {}).get("scikit-learn", "")
    if _minor(trained_with) != _minor(sklearn.__version__):
        raise BundleError(
            f"{path}: trained with scikit-learn {trained_with}, running {sklearn.__version__}; "
            "models do not carry across minor versions: retrain, or install the version it was trained with"
        )
    listed = manifest["files"]
    for rel, expected in listed.items():
        file = path / rel
        if not file.is_file():
            raise BundleError(f"{path}: file {rel} listed in the manifest is missing; the bundle is incomplete")
        actual = sha256_file(file)
        if actual != expected:
            raise BundleError(
                f"{path}: checksum mismatch for {rel} (manifest {expected[:12]}…, file {actual[:12]}…); "
                "the bundle was modified or corrupted: retrain or restore it"
            )
    extra = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != MANIFEST
        and str(p.relative_to(path)) not in listed
    )
    if extra:
        raise BundleError(f"{path}: files not listed in the manifest: {extra}; the bundle was tampered with")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest = verify_bundle(path)
    taxonomy = load_taxonomy(path / "taxonomy.yaml")
    info = dict(manifest.get("weights", {}), tasks=list(manifest["tasks"]))
    model = model_class(manifest.get("model_kind", "tfidf")).load(path / WEIGHTS, info)
    for task, classes in manifest["tasks"].items():
        if task not in taxonomy.tasks:
            raise BundleError(f"{path}: head '{task}' is not a task of the bundle's taxonomy")
        unknown = [c for c in classes if c not in taxonomy.tasks[task].labels]
        if unknown or model.task_classes.get(task) != classes:
            raise BundleError(f"{path}: head '{task}' labels disagree with the manifest or taxonomy: {unknown}")
    macros = load_macros(path, taxonomy)
    return Bundle(model=model, macros=macros, taxonomy=taxonomy, manifest=manifest, path=path,
                  decision=manifest.get("decision") or {})


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
