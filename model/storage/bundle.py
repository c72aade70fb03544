"""Model bundles: one folder per model, a manifest, and nothing loaded before it is checked.

Layout (like spaCy's saved pipeline)::

    manifest.json      model id, created_at, git revision, library versions, taxonomy version,
                       labels per task, sha256 of every file and of the training data, metrics
    config.json        the resolved training configuration
    taxonomy.yaml      the taxonomy the model was trained with
    weights/           the model kind's own files (TF-IDF: compiled n-gram views and stacked heads,
                       JSON + .npy; transformer: safetensors + JSON)
    macros.json        macro statistics (by label) and the macro ranker's settings
    macros/            the macro ranker: compiled character n-gram view (JSON + .npy), weights (.npy)

A bundle is data, never code: arrays are read with ``allow_pickle=False``, everything else is JSON,
YAML (safe loader) or safetensors. Before anything is read, :func:`verify_bundle` checks the format
version and that every file is listed in the manifest with its sha256, is a regular file (no symbolic
links anywhere in the bundle), lies inside the bundle, and that nothing unlisted is there. Loaders
then reach files only through :class:`BundleFiles`, which admits listed, relative names only.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy
import scipy

from model.assist.decision import DecisionPolicy
from model.assist.macros import MacroRanker, MacroStats, load_macros
from model.conversation.taxonomy import Taxonomy, load_taxonomy
from model.errors import BundleError
from model.kinds.registry import MultiTaskModel, model_class
from model.storage.files import sha256_file
from model.storage.files import write_json as _write_json
from model.storage.manifest import FORMAT_VERSION, Manifest, TaxonomyStamp

MANIFEST = "manifest.json"
WEIGHTS = "weights"


@dataclass
class Bundle:
    """A fitted model with its macro ranker, taxonomy, manifest and decision policy (saved or not)."""

    model: MultiTaskModel
    macros: MacroStats | MacroRanker
    taxonomy: Taxonomy
    manifest: Manifest = field(default_factory=Manifest)  # the trainer's provenance; save_bundle stamps the rest
    path: Path | None = None
    decision: DecisionPolicy = field(default_factory=DecisionPolicy)  # saved as the manifest's "decision"

    @property
    def model_id(self) -> str:
        """The manifest's model id (empty before the trainer names the model)."""
        return self.manifest.model_id

    @property
    def domains(self) -> dict[str, str]:
        """Each task's domain (a task without one is its own domain): what routing and the macro ranker read."""
        return {name: task.domain or name for name, task in self.taxonomy.tasks.items()}


def library_versions() -> dict[str, str]:
    """The versions of this package, Python and the numeric and ML libraries loaded, for the manifest."""
    from model import __version__

    versions = {
        "podskazka": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    for name in ("sklearn", "torch", "transformers", "onnxruntime"):
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
        _write_json(tmp / "config.json", bundle.manifest.config or {})
        shutil.copyfile(taxonomy_path, tmp / "taxonomy.yaml")
        manifest = replace(
            bundle.manifest,
            format_version=FORMAT_VERSION,
            model_kind=model.kind,
            libraries=library_versions(),
            taxonomy=TaxonomyStamp(version=bundle.taxonomy.version, sha256=sha256_file(tmp / "taxonomy.yaml")),
            tasks=dict(model.task_classes),
            weights=info,
            decision=bundle.decision,
        )
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = replace(manifest, files=files)
        _write_json(tmp / MANIFEST, manifest.to_dict())
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


def read_manifest(path: str | Path) -> Manifest:
    """The bundle's manifest, its format checked first (nothing else of the bundle is read)."""
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
    return Manifest.from_dict(manifest, where=str(manifest_path))


class BundleFiles:
    """The verified files of one bundle: :meth:`path` hands out a file only if the manifest lists it."""

    def __init__(self, root: Path, listed: dict[str, str], prefix: str = "") -> None:
        self.root = root
        self.listed = listed
        self.prefix = prefix

    def sub(self, folder: str) -> BundleFiles:
        """The same files seen from a sub-folder (``weights/``)."""
        return BundleFiles(self.root, self.listed, f"{self.prefix}{folder.strip('/')}/")

    def path(self, rel: str) -> Path:
        """The file ``rel`` (under this view's folder); :class:`BundleError` when the manifest does not list it."""
        name = f"{self.prefix}{rel}"
        if name not in self.listed:
            raise BundleError(
                f"{self.root}: the model asks for {name!r}, which the manifest does not list; "
                "the bundle is inconsistent or crafted: retrain or restore it"
            )
        return self.root / name

    __call__ = path


def _check_rel(root: Path, rel: Any) -> str:
    """A manifest file entry must be a plain relative path that stays inside the bundle."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise BundleError(f"{root}: the manifest lists a file {rel!r} that is not a plain relative path; refused")
    pure = Path(rel)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in rel.split("/")):
        raise BundleError(f"{root}: the manifest lists {rel!r}, which leaves the bundle (absolute or '..'); refused")
    return rel


def verify_bundle(path: str | Path) -> Manifest:
    """Check the format and every file (listed, checksummed, regular, inside); return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)  # the format version and the manifest's own shape
    listed = manifest.files
    root = path.resolve()
    links = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_symlink())
    if links:
        raise BundleError(f"{path}: symbolic links are not allowed in a bundle: {links}; refused")
    for rel, expected in listed.items():
        _check_rel(path, rel)
        file = path / rel
        resolved = file.resolve()
        if root not in resolved.parents:
            raise BundleError(f"{path}: {rel!r} resolves outside the bundle; refused")
        if not file.is_file():
            raise BundleError(f"{path}: file {rel} listed in the manifest is missing; the bundle is incomplete")
        actual = sha256_file(file)
        if actual != expected:
            raise BundleError(
                f"{path}: checksum mismatch for {rel}; the bundle was modified or corrupted: retrain or restore it"
            )
    extra = sorted(
        str(p.relative_to(path))
        for p in path.rglob("*")
        if p.is_file() and p.name != MANIFEST and str(p.relative_to(path)) not in listed
    )
    if extra:
        raise BundleError(f"{path}: files not listed in the manifest: {extra}; the bundle was tampered with")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Verify the bundle at ``path`` (:func:`verify_bundle`), then load it."""
    path = Path(path)
    manifest = verify_bundle(path)
    files = BundleFiles(path, manifest.files)
    taxonomy = load_taxonomy(files.path("taxonomy.yaml"))
    tasks = manifest.tasks
    info = dict(manifest.weights, tasks=list(tasks))
    model = model_class(manifest.model_kind).load(files.sub(WEIGHTS), info)
    for task, classes in tasks.items():
        if task not in taxonomy.tasks:
            raise BundleError(f"{path}: head '{task}' is not a task of the bundle's taxonomy")
        unknown = [c for c in classes if c not in taxonomy.tasks[task].labels]
        if unknown or model.task_classes.get(task) != classes:
            raise BundleError(f"{path}: head '{task}' labels disagree with the manifest or taxonomy: {unknown}")
    macros = load_macros(files, taxonomy)
    return Bundle(
        model=model,
        macros=macros,
        taxonomy=taxonomy,
        manifest=manifest,
        path=path,
        decision=manifest.decision,
    )
