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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.conversation.record import Interaction, interaction_from_dict
from model.conversation.taxonomy import Taxonomy
from model.errors import DataError, InputError
from model.storage.files import sha256_file
from model.text.normalize import render_interaction

log = logging.getLogger(__name__)

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_ROLE_PREFIX = re.compile(r"^\s*(client|operator|bot|клиент|оператор|бот|абонент|сотрудник)\s*:\s*(.*)$", re.IGNORECASE)
_ROLE_ALIASES = {"клиент": "client", "абонент": "client", "оператор": "operator", "сотрудник": "operator", "бот": "bot"}
MAX_ERRORS_SHOWN = 20


@dataclass
class Row:
    """One validated row of labelled data: the interaction, where it came from (``path:line``, or
    ``path row N`` when records cannot be matched to lines), the group it is split with, and the raw
    ``history`` column as read (None when absent)."""

    interaction: Interaction
    source: str  # "file:row"
    group: str
    raw_history: Any = None


@dataclass
class LoadedData:
    """What ``load_data`` read: the rows in file order, one entry per file (path, sha256, row count), the
    column the rows were grouped by (None: row by row) and the one asked for, the warnings already logged,
    and the labels outside the taxonomy kept by ``unknown_labels="keep"`` (task -> label -> rows)."""

    rows: list[Row]
    files: list[dict[str, Any]]  # path, sha256, rows
    group_key: str | None = None  # the column the rows were grouped by; None: every row its own group
    group_by_requested: str = "scenario"
    warnings: list[str] = field(default_factory=list)
    unseen_labels: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # task -> label -> rows (unknown_labels="keep")

    @property
    def n_groups(self) -> int:
        """How many distinct split groups the rows fall into."""
        return len({r.group for r in self.rows})

    def split_info(self) -> dict[str, Any]:
        """What the split was grouped by, for logs, manifests and reports (never claims more than was done)."""
        return {
            "group_by": self.group_key or "row",
            "group_by_requested": self.group_by_requested,
            "groups": self.n_groups,
            "rows": len(self.rows),
        }

    @property
    def interactions(self) -> list[Interaction]:
        """The rows' interactions, in row order."""
        return [r.interaction for r in self.rows]

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the rows' rendered texts and labels, in order (the manifest's
        ``training_data.sha256``): the same rows give the same digest whatever files they came from."""
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
    hf_log = logging.getLogger("datasets")
    level = hf_log.level
    hf_log.setLevel(logging.CRITICAL)  # its "Failed to read file" line would repeat our message without the fix
    try:
        with tempfile.TemporaryDirectory(prefix="podskazka-hf-") as cache:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
            rows = ds.to_list()
    except Exception as exc:  # datasets/pyarrow raise many types for unreadable input
        if builder == "json":
            rows = _read_jsonl_strict(path)  # names the bad line, or reads a file pyarrow could not
        elif builder == "csv":
            raise DataError(_diagnose_csv(path, exc)) from exc
        else:
            raise DataError(f"{path}: cannot be read as {builder.upper()} ({_root_cause(exc)})") from exc
    finally:
        hf_log.setLevel(level)
    if column_map:
        rows = [_apply_column_map(row, column_map, path) for row in rows]
    if builder == "csv" or (rows and "turns" in rows[0] and isinstance(rows[0]["turns"], str)):
        rows = [turns_from_text_column(row) for row in rows]
    return rows


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's type and message (``datasets`` wraps the parser's error in its own)."""
    while (inner := exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)) is not None:
        exc = inner
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _diagnose_csv(path: Path, exc: BaseException) -> str:
    """Name the line that makes a CSV file unreadable, and the fix."""
    import csv
    import io

    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data[: bad.start].count(b"\n") + 1
        return f"{path}:{line}: not UTF-8 text (byte {bad.start} of the file); re-save the file as UTF-8"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    try:
        header = next(reader, None)
        previous = reader.line_num
        for record in reader:
            if record and header is not None and len(record) != len(header):
                return (
                    f"{path}:{previous + 1}: {len(record)} fields, the header has {len(header)}; put a value "
                    'that holds a comma or a line break in double quotes ("…"), or fix the line'
                )
            previous = reader.line_num
    except csv.Error as bad:
        return (
            f"{path}:{previous + 1}: {bad}; a quote opened on this line is not closed (a quote inside a value "
            'is written twice: ""), fix the line'
        )
    cause = _root_cause(exc)
    if "EOF inside string" in cause:
        return f'{path}:{previous + 1}: a quoted value is never closed; close the quote (") or fix the line'
    return f"{path}: cannot be read as CSV ({cause}); check the header and the quoting"


def record_lines(path: Path, n_records: int) -> list[int] | None:
    """The line of the file each record starts on (CSV: the header is line 1; JSONL: blank lines
    skipped), or None when the records cannot be matched to lines (then rows are named by number)."""
    import csv

    builder = FORMATS.get(path.suffix.lower())
    try:
        if builder == "csv":
            lines = []
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                next(reader, None)
                previous = reader.line_num
                for record in reader:
                    if record:
                        lines.append(previous + 1)
                    previous = reader.line_num
        elif builder == "json":
            with open(path, encoding="utf-8") as fh:
                lines = [i for i, line in enumerate(fh, 1) if line.strip()]
        else:
            return None
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return lines if len(lines) == n_records else None


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
            raise DataError(
                f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
            ) from exc
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


def turns_from_text_column(row: dict[str, Any]) -> dict[str, Any]:
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


GROUP_FALLBACK = "client_id"
_GROUP_HINTS = (
    "group",
    "client",
    "customer",
    "user",
    "session",
    "ticket",
    "conversation",
    "dialog",
    "thread",
    "scenario",
    "story",
    "call",
    "chat",
)


def normalize_label(value: str) -> str:
    """A label as compared across files: whitespace (NBSP included) trimmed and collapsed."""
    return " ".join(str(value).split())


def load_data(
    paths: Iterable[str | Path],
    taxonomy: Taxonomy,
    *,
    column_map: dict[str, str] | None = None,
    group_by: str = "scenario",
    require_label: bool = True,
    unknown_labels: str = "error",
    taxonomy_source: str | Path | None = None,
) -> LoadedData:
    """Read, validate and convert every row; raise one DataError that lists every bad row.

    Labels match the taxonomy after whitespace is normalised (a trailing NBSP in a spreadsheet is not a
    new label). ``unknown_labels="keep"`` (evaluation) keeps rows whose label the taxonomy lacks and
    counts them in ``unseen_labels`` instead of refusing them. Rows are grouped by ``group_by``; when no
    row has that column, by ``client_id``; when neither exists, each row is its own group and a warning
    says so (held-out figures are then optimistic when rows of one story are alike)."""
    if unknown_labels not in ("error", "keep"):
        raise ValueError(f"unknown_labels must be 'error' or 'keep', got {unknown_labels!r}")
    files = expand_paths(paths)
    tasks = taxonomy.task_names
    canonical = {t: {normalize_label(label): label for label in taxonomy.tasks[t].labels} for t in tasks}
    parsed: list[tuple[Interaction, str, dict[str, Any]]] = []
    problems: list[str] = []
    unknown: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    file_info = []
    columns: dict[str, list[Any]] = defaultdict(list)
    for path in files:
        records = read_records(path, column_map)
        if records and not any(k in records[0] for k in ("turns", "text")):
            raise DataError(
                f"{path}: no 'turns' or 'text' column (found {sorted(records[0])}); "
                "map your text column with --column text=YOUR_COLUMN"
            )
        file_info.append({"path": str(path), "sha256": sha256_file(path), "rows": len(records)})
        lines = record_lines(path, len(records))
        for i, raw in enumerate(records, 1):
            where = f"{path}:{lines[i - 1]}" if lines else f"{path} row {i}"
            raw = _canonical_labels(raw, tasks, canonical)
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
            parsed.append((x, where, raw))
            for key, value in raw.items():
                if _is_group_value(value):
                    columns[key].append(value)
    unseen: dict[str, dict[str, int]] = {}
    if unknown and unknown_labels == "keep":
        unseen = {
            task: {label: len(where) for label, where in sorted(labels.items())} for task, labels in unknown.items()
        }
    elif unknown:
        for task, labels in unknown.items():
            for label, places in sorted(labels.items()):
                shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
                problems.append(f"{shown}: label {label!r} is not in task '{task}' of the taxonomy")
        source = (
            f"the taxonomy file {taxonomy_source}"
            if taxonomy_source
            else "the taxonomy file this command uses (the config's `taxonomy:`, or the bundle's taxonomy.yaml)"
        )
        problems.append(
            f"to add a label, put it under tasks.<task>.labels in {source} with a description, "
            "or correct the rows (labels match after trimming whitespace)"
        )
    if problems:
        listed = problems[:MAX_ERRORS_SHOWN]
        more = f"\n… and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
        raise DataError(
            f"{len(problems)} problem(s) in the data:\n" + "\n".join(f"- {p}" for p in listed) + more,
            details=problems,
        )
    if not parsed:
        raise DataError(f"no rows in {[str(f) for f in files]}")
    group_key, warnings = _choose_group_key(group_by, columns, len(parsed))
    rows = []
    for x, where, raw in parsed:
        value = raw.get(group_key) if group_key else None
        group = str(value) if _is_group_value(value) else f"row:{where}"
        rows.append(Row(interaction=x, source=where, group=group, raw_history=raw.get("history")))
    for text in warnings:
        log.warning("%s", text)
    return LoadedData(
        rows=rows,
        files=file_info,
        group_key=group_key,
        group_by_requested=group_by,
        warnings=warnings,
        unseen_labels=unseen,
    )


def _canonical_labels(
    raw: dict[str, Any], tasks: Iterable[str], canonical: dict[str, dict[str, str]]
) -> dict[str, Any]:
    out = raw
    for task in tasks:
        value = raw.get(task)
        if isinstance(value, str) and value not in canonical[task].values():
            fixed = canonical[task].get(normalize_label(value), normalize_label(value))
            if fixed != value:
                out = dict(out) if out is raw else out
                out[task] = fixed
    return out


def _is_group_value(value: Any) -> bool:
    if value is None or isinstance(value, (dict, list, bool)):
        return False
    if isinstance(value, float) and value != value:
        return False
    return str(value).strip() != ""


def _choose_group_key(group_by: str, columns: dict[str, list[Any]], n_rows: int) -> tuple[str | None, list[str]]:
    """The column that groups rows for held-out splits, and the warnings to show about it."""
    warnings = []
    for key in dict.fromkeys([group_by, GROUP_FALLBACK]):
        present = len(columns.get(key, []))
        if not present:
            continue
        if key != group_by:
            warnings.append(f"no row has a {group_by!r} column: rows are grouped by {key!r} instead")
        if present < n_rows:
            warnings.append(f"{n_rows - present} of {n_rows} rows have no {key!r}: each of them is its own group")
        return key, warnings
    candidates = [
        c
        for c, values in columns.items()
        if c not in ("text", "turns", "id")
        and any(h in c.lower() for h in _GROUP_HINTS)
        and len(values) == n_rows
        and 1 < len({str(v) for v in values}) < n_rows
    ]
    hint = (
        f"; this data has {', '.join(repr(c) for c in sorted(candidates))}: use --set split.group_by="
        f"{sorted(candidates)[0]}"
        if candidates
        else "; add a column that says which rows belong together and pass --set split.group_by=COLUMN"
    )
    warnings.append(
        f"ROWS ARE SPLIT ONE BY ONE: no row has a {group_by!r} or {GROUP_FALLBACK!r} column, so rows of one "
        f"conversation, client or story can fall on both sides of a split and held-out figures are optimistic{hint}"
    )
    return None, warnings
