"""A bundle's ``manifest.json`` as a typed record: :class:`Manifest`.

Two parties fill it (like Rasa's ``ModelMetadata``): the trainer names the model and records its
provenance (``model_id``, ``created_at``, ``git_revision``, ``config``, ``training_data``,
``metrics``, ``warnings``; a derived bundle ``derived_from``, ``adaptation``, ``history``), and
:func:`model.storage.bundle.save_bundle` stamps what the saved files are (``format_version``,
``model_kind``, ``libraries``, ``taxonomy``, ``tasks``, ``weights``, ``decision``, ``files``).

:meth:`Manifest.from_dict` checks the format version first: a bundle of another format is refused
with its version and what to do. :meth:`Manifest.to_dict` writes the same JSON keys, in the order of
the file it was read from; keys this version does not know are kept as they were. A provenance field
left ``None`` is not written unless ``key_order`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.assist.decision import DecisionPolicy
from model.errors import BundleError

FORMAT_VERSION = 3  # 3: compiled arrays + JSON only (no skops); 2 held skops heads

# provenance: written when set (not None); recorded by the trainer
_PROVENANCE = (
    "created_at",
    "git_revision",
    "derived_from",
    "config",
    "training_data",
    "metrics",
    "warnings",
    "adaptation",
    "history",
)
# contents: always written; stamped by save_bundle
_CONTENTS = ("format_version", "model_kind", "libraries", "taxonomy", "tasks", "weights", "decision", "files")
_KNOWN = frozenset(("model_id", *_PROVENANCE, *_CONTENTS))


@dataclass(frozen=True)
class TaxonomyStamp:
    """The taxonomy a bundle was trained with: its declared version and the sha256 of the copy saved."""

    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        """``{"version", "sha256"}``."""
        return {"version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds. A manifest the trainer has not saved yet has empty contents."""

    model_id: str = ""  # empty until the trainer names the model
    # provenance
    created_at: str | None = None
    git_revision: str | None = None
    derived_from: str | None = None  # the model_id of the bundle this one was derived from (priors, adapt)
    config: dict[str, Any] | None = None  # the resolved training configuration (TrainConfig.to_dict())
    training_data: dict[str, Any] | None = None  # files, rows, fingerprint of the training data
    metrics: dict[str, Any] | None = None  # {"holdout": {...}} when the trainer held rows out
    warnings: list[str] | None = None
    adaptation: dict[str, Any] | None = None  # the report of `podskazka adapt`
    history: list[dict[str, Any]] | None = None  # one entry per derivation step (`podskazka priors`)
    # contents
    format_version: int = FORMAT_VERSION
    model_kind: str = "tfidf"
    libraries: dict[str, str] = field(default_factory=dict)
    taxonomy: TaxonomyStamp | None = None
    tasks: dict[str, list[str]] = field(default_factory=dict)  # task → the labels its head knows
    weights: dict[str, Any] = field(default_factory=dict)  # what the model kind recorded of its files
    decision: DecisionPolicy = field(default_factory=DecisionPolicy)
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as written
    # the keys written first, in this order: those of the file read, or those a trainer records (a provenance
    # field listed here is written even when None, as null)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def writer_version(self) -> str | None:
        """The podskazka version that saved the bundle, when recorded."""
        return self.libraries.get("podskazka")

    @classmethod
    def from_dict(cls, raw: Any, where: str = "manifest.json") -> Manifest:
        """Read a manifest: the format version first (another format: :class:`BundleError` saying which
        and what to do), then each field's type. ``where`` names the file in messages."""
        if not isinstance(raw, Mapping):
            raise BundleError(f"{where} holds {type(raw).__name__}, not a JSON object; the bundle is damaged")
        check_format(raw, where)
        if "model_id" not in raw or "files" not in raw:
            raise BundleError(f"{where} lacks 'model_id' or 'files'; the bundle is incomplete")
        if not isinstance(raw["model_id"], str) or not raw["model_id"]:
            raise BundleError(f"{where}: 'model_id' is {raw['model_id']!r}, not a name; the bundle is damaged")
        if not isinstance(raw["files"], Mapping):
            raise BundleError(f"{where}: the manifest's 'files' is not a mapping of file → sha256; refused")
        tasks = raw.get("tasks")
        if not isinstance(tasks, Mapping) or not all(
            isinstance(labels, list) and all(isinstance(x, str) for x in labels) for labels in tasks.values()
        ):
            raise BundleError(f"{where}: the manifest's 'tasks' is not a mapping of task → labels; retrain the model")
        stamp = _typed(raw, "taxonomy", Mapping, where)
        return cls(
            model_id=raw["model_id"],
            created_at=_typed(raw, "created_at", str, where),
            git_revision=_typed(raw, "git_revision", str, where),
            derived_from=_typed(raw, "derived_from", str, where),
            config=_typed(raw, "config", dict, where),
            training_data=_typed(raw, "training_data", dict, where),
            metrics=_typed(raw, "metrics", dict, where),
            warnings=_typed(raw, "warnings", list, where),
            adaptation=_typed(raw, "adaptation", dict, where),
            history=_typed(raw, "history", list, where),
            format_version=FORMAT_VERSION,
            model_kind=_typed(raw, "model_kind", str, where) or "tfidf",
            libraries={str(k): str(v) for k, v in (_typed(raw, "libraries", Mapping, where) or {}).items()},
            taxonomy=TaxonomyStamp(version=str(stamp.get("version")), sha256=str(stamp.get("sha256")))
            if stamp is not None
            else None,
            tasks={str(task): list(labels) for task, labels in tasks.items()},
            weights=dict(_typed(raw, "weights", Mapping, where) or {}),
            decision=DecisionPolicy.from_dict(_typed(raw, "decision", Mapping, where), where=f"{where}: decision"),
            files={str(rel): sha for rel, sha in raw["files"].items()},
            extra={k: v for k, v in raw.items() if k not in _KNOWN},
            key_order=tuple(raw),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``manifest.json``: the same keys ``from_dict`` read, in the same order; a new
        manifest in the order training writes (provenance, then contents)."""
        out: dict[str, Any] = {"model_id": self.model_id}
        for name in _PROVENANCE:
            value = getattr(self, name)
            if value is not None or name in self.key_order:
                out[name] = value
        out.update(
            format_version=self.format_version,
            model_kind=self.model_kind,
            libraries=dict(self.libraries),
            taxonomy=self.taxonomy.to_dict() if self.taxonomy is not None else None,
            tasks={task: list(labels) for task, labels in self.tasks.items()},
            weights=dict(self.weights),
            decision=self.decision.to_dict(),
            files=dict(self.files),
        )
        if self.taxonomy is None and "taxonomy" not in self.key_order:
            del out["taxonomy"]
        out.update(self.extra)
        if not self.key_order:
            return out
        first = {k: out[k] for k in self.key_order if k in out}
        return first | {k: v for k, v in out.items() if k not in first}


def check_format(raw: Mapping[str, Any], where: str = "manifest.json") -> None:
    """Refuse a manifest of another format than :data:`FORMAT_VERSION`, saying what to do."""
    version = raw.get("format_version")
    if version == FORMAT_VERSION:
        return
    writer = (raw.get("libraries") or {}).get("podskazka") if isinstance(raw.get("libraries"), Mapping) else None
    by = f" (written by podskazka {writer})" if writer else ""
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: bundle format {version}{by} is newer than this podskazka reads (format {FORMAT_VERSION}); "
            "upgrade podskazka to the version that wrote it, or retrain the model with this version"
        )
    if isinstance(version, int) and not isinstance(version, bool):
        raise BundleError(
            f"{where}: bundle format {version}{by} is older than this podskazka reads (format {FORMAT_VERSION}); "
            "retrain the model with this version ('podskazka train --data datasets/corpus --out <folder>')"
        )
    raise BundleError(
        f"{where}: 'format_version' is {version!r}, not a format number; the manifest was not written by "
        f"podskazka or is damaged: retrain the model with this version (format {FORMAT_VERSION})"
    )


def _typed(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``raw[key]`` when it is a ``kind`` (or absent/null: ``None``); otherwise a :class:`BundleError`."""
    value = raw.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise BundleError(f"{where}: {key!r} is {type(value).__name__}, not {kind.__name__}; the bundle is damaged")
