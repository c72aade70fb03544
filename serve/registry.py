"""A model registry on disk: bundles side by side and a pointer to the one to serve.

Layout::

    models/                 the registry (any folder)
      ACTIVE                one line: the folder name of the bundle to serve (written atomically)
      HISTORY.jsonl         append-only: one JSON object per activate / rollback
      <id>/                 a bundle (manifest.json, weights/, ...), e.g. as 'podskazka train --out models/<id>' writes it
      ...

``podskazka serve --model models`` serves the bundle ``ACTIVE`` names and every server process
reloads when the pointer changes (serve/reload.py); ``--model models/<id>`` serves that one bundle.
``podskazka models list|activate|rollback`` (or ``python -m serve.registry`` where training/ is not
installed, as in the Docker image) manage the pointer. This module reads manifests only; it never
loads a model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from model.errors import BundleError, ConfigError
from model.storage.bundle import MANIFEST, read_manifest, verify_bundle

ACTIVE = "ACTIVE"
HISTORY = "HISTORY.jsonl"
LOCK = ".lock"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def is_bundle(path: Path) -> bool:
    """A folder holding a bundle's manifest."""
    return (Path(path) / MANIFEST).is_file()


def is_registry(path: Path) -> bool:
    """A folder that is not itself a bundle and holds an ``ACTIVE`` pointer."""
    path = Path(path)
    return path.is_dir() and not is_bundle(path) and (path / ACTIVE).is_file()


def _check_name(registry: Path, name: str) -> str:
    if not _NAME.match(name or ""):
        raise ConfigError(
            f"{registry}: {name!r} is not a bundle folder name (letters, digits, '.', '_', '-'); "
            "the pointer must name a folder inside the registry"
        )
    return name


def active_name(registry: Path) -> str | None:
    """The bundle folder ``ACTIVE`` names (None when there is no pointer yet)."""
    try:
        text = (Path(registry) / ACTIVE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return _check_name(Path(registry), text) if text else None


def resolve(path: Path) -> Path:
    """The bundle folder to serve for ``path``: the bundle itself, or a registry's active bundle."""
    path = Path(path)
    if not is_registry(path):
        return path  # a bundle folder (or a missing path: loading says what is wrong)
    name = active_name(path)
    if name is None:
        raise BundleError(
            f"{path}/{ACTIVE} is empty; activate a bundle with 'podskazka models activate ID --registry {path}'"
        )
    return path / name


@contextmanager
def _locked(registry: Path) -> Iterator[None]:
    """One writer at a time (activate, rollback) on this registry."""
    import fcntl

    fd = os.open(Path(registry) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_pointer(registry: Path, name: str) -> None:
    tmp = Path(registry) / f".{ACTIVE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, Path(registry) / ACTIVE)  # readers see the old pointer or the new one, never half


def history(registry: Path) -> list[dict[str, Any]]:
    """The registry's activations and rollbacks, oldest first (a torn line is skipped)."""
    out: list[dict[str, Any]] = []
    try:
        lines = (Path(registry) / HISTORY).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line of a crashed writer
        if isinstance(entry, dict):
            out.append(entry)
    return out


def _append_history(registry: Path, entry: dict[str, Any]) -> None:
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    fd = os.open(Path(registry) / HISTORY, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _stack(entries: list[dict[str, Any]]) -> list[str]:
    """The activations still in force, oldest first: activate pushes, rollback pops."""
    stack: list[object] = []  # the history's "to" values, checked to be names at the end
    for entry in entries:
        if entry.get("action") == "activate":
            stack.append(entry.get("to"))
        elif entry.get("action") == "rollback":
            if stack and stack[-1] == entry.get("from"):
                stack.pop()
            if not stack or stack[-1] != entry.get("to"):
                stack.append(entry.get("to"))
    return [s for s in stack if isinstance(s, str)]


def list_models(registry: Path) -> list[dict[str, Any]]:
    """Every bundle folder of the registry: id, kind, created, a metrics summary, active or not."""
    registry = Path(registry)
    if not registry.is_dir():
        raise ConfigError(
            f"{registry} is not a folder; a registry is a folder of bundles (models/<id>/) and an ACTIVE pointer"
        )
    if is_bundle(registry):
        raise ConfigError(f"{registry} is a bundle, not a registry; give the folder that holds bundles")
    active = active_name(registry) if (registry / ACTIVE).is_file() else None
    rows = []
    for folder in sorted(p for p in registry.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_bundle(folder):
            continue
        row: dict[str, Any] = {"id": folder.name, "active": folder.name == active}
        try:
            manifest = read_manifest(folder)
        except BundleError as exc:
            row.update(error=exc.message)
            rows.append(row)
            continue
        row.update(
            model_id=manifest.model_id,
            kind=manifest.model_kind,
            created=manifest.created_at,
            metrics=metrics_summary(manifest.metrics or {}),
        )
        rows.append(row)
    return rows


def metrics_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """Macro-F1 per task from a manifest's held-out (else cross-validated) ``metrics``, when present."""
    for source in ("holdout", "crossval", "cv"):
        block = metrics.get(source)
        if not isinstance(block, dict):
            continue
        nested = block.get("tasks")
        tasks = nested if isinstance(nested, dict) else block
        out: dict[str, float] = {}
        for task, values in tasks.items():
            if isinstance(values, dict):
                value = values.get("macro_f1", values.get("f1_macro"))
                if isinstance(value, dict):
                    value = value.get("mean")
                if isinstance(value, (int, float)):
                    out[task] = round(float(value), 4)
        if out:
            return out
    return {}


def activate(registry: Path, name: str, *, check: bool = True, action: str = "activate") -> dict[str, Any]:
    """Point ``ACTIVE`` at bundle ``name`` (checked against its manifest first unless ``check`` is
    off); appended to the history. Serving processes pick it up within their reload interval."""
    registry = Path(registry)
    _check_name(registry, name)
    target = registry / name
    if not is_bundle(target):
        known = [row["id"] for row in list_models(registry)] if registry.is_dir() else []
        raise ConfigError(f"{target} is not a bundle in the registry; known: {known}")
    if check:
        verify_bundle(target)  # checksums of every file: a broken bundle is never activated
    with _locked(registry):
        previous = active_name(registry)
        _write_pointer(registry, name)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "action": action,
            "from": previous,
            "to": name,
            "user": _user(),
        }
        _append_history(registry, entry)
    return entry


def rollback(registry: Path, *, check: bool = True) -> dict[str, Any]:
    """Activate the bundle that was active before the current one (repeatable: each rollback goes one
    activation further back)."""
    registry = Path(registry)
    with _locked(registry):
        current = active_name(registry)
        stack = _stack(history(registry))
        if stack and stack[-1] == current:
            stack.pop()
        if not stack:
            raise ConfigError(
                f"{registry}: no earlier activation to roll back to (see {HISTORY}); activate a bundle by id instead"
            )
        target = stack[-1]
    if check:
        verify_bundle(registry / target)
    with _locked(registry):
        _write_pointer(registry, target)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "action": "rollback",
            "from": current,
            "to": target,
            "user": _user(),
        }
        _append_history(registry, entry)
    return entry


def _user() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry (a container's arbitrary uid)
        return None


def format_list(rows: list[dict[str, Any]]) -> str:
    """:func:`list_models` rows as text, one bundle a line (``*`` marks the active one)."""
    if not rows:
        return "no bundles in this registry (train one with 'podskazka train --out REGISTRY/ID')"
    lines = []
    for row in rows:
        mark = "*" if row["active"] else " "
        if "error" in row:
            lines.append(f"{mark} {row['id']}  (unreadable: {row['error']})")
            continue
        metrics = " ".join(f"{task}={value:.3f}" for task, value in row.get("metrics", {}).items())
        lines.append(
            f"{mark} {row['id']}  {row.get('kind') or '?'}  {row.get('created') or '?'}  "
            f"{row.get('model_id') or '?'}  {metrics}".rstrip()
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m serve.registry list|activate ID|rollback [--registry DIR]`` (for images without
    the training CLI; the same as ``podskazka models ...``)."""
    parser = argparse.ArgumentParser(prog="python -m serve.registry", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, default=Path(os.environ.get("PODSKAZKA_MODEL_DIR", "models")))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    act = sub.add_parser("activate")
    act.add_argument("id")
    act.add_argument("--no-check", action="store_true")
    back = sub.add_parser("rollback")
    back.add_argument("--no-check", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            rows = list_models(args.registry)
            print(json.dumps(rows, ensure_ascii=False, indent=2) if args.json else format_list(rows))
        elif args.command == "activate":
            entry = activate(args.registry, args.id, check=not args.no_check)
            print(f"active: {entry['to']} (was {entry['from']})")
        else:
            entry = rollback(args.registry, check=not args.no_check)
            print(f"rolled back: {entry['to']} (was {entry['from']})")
    except (ConfigError, BundleError) as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
