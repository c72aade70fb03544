"""Reading and validating labelled interactions (JSONL, CSV, Parquet) through Hugging Face ``datasets``.

Every problem is reported with the file and row it comes from and what to do about it: a label
not in the taxonomy (listed, with how to add it), empty text, a missing column, a file it cannot read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from model.errors import DataError, InputError
from model.normalize import render_interaction
from model.record import Interaction, interaction_from_dict
from model.taxonomy import Taxonomy

log = logging.getLogger(__name__)

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_ROLE_PREFIX = re.compile(
    r"^\s*(client|operator|bot|клиент|оператор|бот|абонент|сотрудник)\s*:\s*(.*)$", re.IGNORECASE
)
_ROLE_ALIASES = {"клиент": "client", "абонент": "client", "оператор": "operator", "сотрудник": "operator", "бот": "bot"}
MAX_ERRORS_SHOWN = 20


@dataclass
class Row:
    interaction: Interaction
    source: str  # "file:row"
    group: str
    raw_history: Any = None


@dataclass
class LoadedData:
    rows: list[Row]
    files: list[dict[str, Any]]  # path, sha256, rows

    @property
    def interactions(self) -> list[Interaction]:
        return [r.interaction for r in self.rows]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for row in self.rows:
            x = row.interaction
            digest.update(render_interaction(x).encode("utf-8"))
            digest.update(json.dumps(sorted(x.labels.items()), ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expanded to the supported files inside them (recursively, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in FORMATS and f.is_file())
            if not found:
                raise DataError(f"{p}: the folder holds no {sorted(FORMATS)} files")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in FORMATS:
                raise DataError(f"{p}: unsupported file type {p.suffix!r}; use one of {sorted(FORMATS)}")
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def read_records(path: Path, column_map: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Read one file into plain dict rows (through Hugging Face ``datasets``)."""
    import datasets  # heavy import: only where data is read

    datasets.disable_progress_bars()
    builder = FORMATS[path.suffix.lower()]
    try:
        with tempfile.TemporaryDirectory(prefix="podskazka-hf-") as cache:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
            rows = ds.to_list()
    except Exception as exc:  # datasets/pyarrow raise many types for unreadable input
        if builder == "json":
            rows = _read_jsonl_strict(path)  # names the bad line, or reads a file pyarrow could not
        else:
            raise DataError(f"{path}: cannot be read as {builder.upper()} ({type(exc).__name__}: {exc})") from exc
    if column_map:
        rows = [_apply_column_map(row, column_map, path) for row in rows]
    if builder == "csv" or (rows and "turns" in rows[0] and isinstance(rows[0]["turns"], str)):
        rows = [_turns_from_text_column(row) for row in rows]
    return rows


def _read_jsonl_strict(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); re-save the file as UTF-8") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror}") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line") from exc
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _apply_column_map(row: dict[str, Any], column_map: dict[str, str], path: Path) -> dict[str, Any]:
    out = dict(row)
    for ours, theirs in column_map.items():
        if theirs not in row:
            raise DataError(
                f"{path}: column {theirs!r} (mapped to {ours!r}) is missing; the file has columns "
                f"{sorted(row)}; fix the column mapping"
            )
        out[ours] = row[theirs]
    return out


def _turns_from_text_column(row: dict[str, Any]) -> dict[str, Any]:
    """CSV keeps a conversation in one text column: lines ``role: text`` become turns; a JSON list
    is read as turns; anything else is one client turn."""
    value = row.get("turns")
    text = value if isinstance(value, str) else row.get("text")
    if not isinstance(text, str):
        return row
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            row = dict(row, turns=json.loads(stripped))
            return row
        except json.JSONDecodeError:
            pass
    turns = []
    for line in text.splitlines():
        m = _ROLE_PREFIX.match(line)
        if m:
            role = _ROLE_ALIASES.get(m.group(1).lower(), m.group(1).lower())
            turns.append({"role": role, "text": m.group(2)})
        elif turns and line.strip():
            turns[-1]["text"] += "\n" + line
    if turns:
        return dict(row, turns=turns)
    return dict(row, turns=None, text=text)


def load_data(
    paths: Iterable[str | Path],
    taxonomy: Taxonomy,
    *,
    column_map: dict[str, str] | None = None,
    group_by: str = "scenario",
    require_label: bool = True,
) -> LoadedData:
    """Read, validate and convert every row; raise one DataError that lists every bad row."""
    files = expand_paths(paths)
    tasks = taxonomy.task_names
    rows: list[Row] = []
    problems: list[str] = []
    unknown: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    file_info = []
    for path in files:
        records = read_records(path, column_map)
        if records and not any(k in records[0] for k in ("turns", "text")):
            raise DataError(
                f"{path}: no 'turns' or 'text' column (found {sorted(records[0])}); "
                "map your text column with --column text=YOUR_COLUMN"
            )
        file_info.append({"path": str(path), "sha256": _sha256(path), "rows": len(records)})
        for i, raw in enumerate(records, 1):
            where = f"{path}:{i}"
            try:
                x = interaction_from_dict(raw, label_tasks=tasks, where=where)
            except InputError as exc:
                problems.append(exc.message)
                continue
            for task, label in x.labels.items():
                if label not in taxonomy.tasks[task].labels:
                    unknown[task][label].append(where)
            if require_label and not x.labels:
                problems.append(f"{where}: no label for any task {list(tasks)}")
                continue
            group = raw.get(group_by) or raw.get("client_id") or raw.get("id") or where
            rows.append(Row(interaction=x, source=where, group=str(group), raw_history=raw.get("history")))
    if unknown:
        for task, labels in unknown.items():
            for label, where in sorted(labels.items()):
                shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
                problems.append(f"{shown}: label {label!r} is not in task '{task}' of the taxonomy")
        problems.append(
            "to add a label, put it under tasks.<task>.labels in the taxonomy YAML "
            "(datasets/taxonomy.yaml) with a description, or correct the rows (labels match byte for byte)"
        )
    if problems:
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f"\n… and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DataError(
            f"{len(problems)} problem(s) in the data:\n" + "\n".join(f"- {p}" for p in shown) + more,
            details=problems,
        )
    if not rows:
        raise DataError(f"no rows in {[str(f) for f in files]}")
    return LoadedData(rows=rows, files=file_info)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
