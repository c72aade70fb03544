"""The per-batch work of re-labelling, as one plain function every engine calls.

:func:`relabel_batch` takes one chunk (an Arrow table from :mod:`training.relabel.sources`) and
returns the labelled rows, the rejected rows with their reason, and the chunk's counts. It never
raises on a bad row: undecodable bytes, a broken JSON line, a row without id or without text, a row
whose id an earlier row already has (``duplicate_id``: the first is kept) go to the rejects and the
rest of the chunk is labelled. :func:`find_duplicate_ids` is the pass over the inputs that says
which rows repeat an id.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from model.conversation.record import Interaction, interaction_from_dict
from model.errors import InputError
from model.predictor import Predictor
from model.suggestion import Suggestion
from training.data.load import turns_from_text_column
from training.relabel.diff import TASK_COUNTS, empty_task_stats
from training.relabel.sources import ERROR, RAW, SOURCE_ROW, InputFile, iter_chunks

TOP_K = 3
MAX_RECORD_CHARS = 2000
# typed as DataType: a list of several DataType subclasses would otherwise be inferred as list[object]
_REJECT_FIELDS: list[tuple[str, pa.DataType]] = [
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("id", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("record", pa.string()),
]
REJECT_SCHEMA = pa.schema(_REJECT_FIELDS)
_TOP = pa.list_(pa.struct([("label", pa.string()), ("confidence", pa.float64())]))


def output_schema(tasks: list[str]) -> pa.Schema:
    """Columns of the output parts: the input id and where it came from, then per task the top label,
    its confidence, the decision (null when the model abstains) and its level, the top 3, the label the
    input had and whether the new top label differs from it; ``changed`` = any task changed."""
    fields: list[tuple[str, pa.DataType]] = [
        ("id", pa.string()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("model_version", pa.string()),
        ("domain", pa.string()),
    ]
    for task in tasks:
        fields += [
            (f"{task}_label", pa.string()),
            (f"{task}_confidence", pa.float64()),
            (f"{task}_decision", pa.string()),
            (f"{task}_decision_level", pa.string()),
            (f"{task}_top3", _TOP),
            (f"{task}_old", pa.string()),
            (f"{task}_changed", pa.bool_()),
        ]
    fields.append(("changed", pa.bool_()))
    return pa.schema(fields)


@dataclass
class BatchResult:
    """What ``relabel_batch`` made of one chunk: the labelled rows (``output_schema``), the rejected rows
    with their reason (``REJECT_SCHEMA``), and the chunk's counts (rows, labelled, rejected, reasons,
    per-task stats, old labels outside the taxonomy) that the diff report sums."""

    rows: pa.Table
    rejects: pa.Table
    stats: dict[str, Any]


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def relabel_batch(
    predictor: Predictor,
    chunk: pa.Table,
    *,
    source_file: str,
    fmt: str,
    tasks: list[str],
    column_map: dict[str, str] | None = None,
    duplicates: dict[int, str] | None = None,
) -> BatchResult:
    """Label one chunk; ``fmt`` is the file's format ("json", "csv" or "parquet"); ``duplicates``:
    source rows of this file that repeat an earlier row's id → where that id was first seen."""
    good: list[tuple[int, str, Interaction]] = []
    rejects: dict[str, list] = {name: [] for name in REJECT_SCHEMA.names}
    reasons: Counter = Counter()
    for source_row, record, error in _records(chunk):
        row = None
        try:
            if error is not None:
                raise _Reject("invalid_row", error)
            row = _decode(record, fmt, column_map or {})
            interaction = _interaction(row, tasks)
            if duplicates and source_row in duplicates:
                raise _Reject(
                    "duplicate_id",
                    f"id {row['id']!r} was first seen at {duplicates[source_row]}; "
                    "the first is kept, give each row its own id",
                )
            good.append((source_row, row["id"], interaction))
        except _Reject as bad:
            reasons[bad.reason] += 1
            row_id = row.get("id") if row is not None else _raw_id(record, (column_map or {}).get("id", "id"))
            _add_reject(rejects, source_file, source_row, record, bad, row_id)
    good, unknown_old = _check_old_labels(good, predictor.taxonomy, tasks)
    results = (
        predictor.predict([x for _, _, x in good], tasks=tasks, top_k=TOP_K, top_macros=0, comments=False)
        if good
        else []
    )
    rows, task_stats = _output_rows(good, results, tasks, predictor.model_version, source_file)
    stats = {
        "rows": chunk.num_rows,
        "labelled": len(good),
        "rejected": chunk.num_rows - len(good),
        "reasons": dict(reasons),
        "tasks": task_stats,
        "unknown_old": unknown_old,
    }
    return BatchResult(
        rows=pa.table(rows, schema=output_schema(tasks)),
        rejects=pa.table(rejects, schema=REJECT_SCHEMA),
        stats=stats,
    )


def find_duplicate_ids(
    files: list[InputFile], batch_size: int, tasks: list[str], column_map: dict[str, str] | None = None
) -> dict[int, dict[int, str]]:
    """``{file_index: {source_row: where the id was first seen}}`` for each row that repeats the id of
    an earlier row that can be labelled (rows rejected for another reason claim no id). Holds a 12-byte
    digest per distinct id (about 100 bytes each in memory).

    A first pass only decodes the ids; when no id occurs twice (the usual case) that is all. Only the
    ids that do repeat are then checked in order, row by row, to find the first row that can be labelled."""
    counts: dict[bytes, int] = {}
    for _, _, row in _decoded_rows(files, batch_size, column_map):
        digest = _id_digest(row)
        counts[digest] = counts.get(digest, 0) + 1
    suspects = {digest for digest, n in counts.items() if n > 1}
    del counts
    if not suspects:
        return {}
    first: dict[bytes, tuple[int, int]] = {}
    repeats: dict[int, dict[int, str]] = {}
    for file_index, source_row, row in _decoded_rows(files, batch_size, column_map):
        digest = _id_digest(row)
        if digest not in suspects:
            continue
        try:
            _interaction(row, tasks)
        except _Reject:
            continue
        seen = first.setdefault(digest, (file_index, source_row))
        if seen != (file_index, source_row):
            repeats.setdefault(file_index, {})[source_row] = f"{files[seen[0]].path} row {seen[1]}"
    return repeats


def _decoded_rows(files: list[InputFile], batch_size: int, column_map: dict[str, str] | None):
    """``(file_index, source_row, row)`` for every row that reads and decodes, in input order."""
    for file_index, info in enumerate(files):
        for _, chunk in iter_chunks(info, batch_size):
            for source_row, record, error in _records(chunk):
                if error is not None:
                    continue
                try:
                    row = _decode(record, info.format, column_map or {})
                except _Reject:
                    continue
                yield file_index, source_row, row


def _id_digest(row: dict[str, Any]) -> bytes:
    return hashlib.blake2b(str(row["id"]).encode("utf-8"), digest_size=12).digest()


def _records(chunk: pa.Table):
    """``(source_row, record, reader_error)``: record is the raw line (bytes) for JSONL, else a dict."""
    numbers = chunk.column(SOURCE_ROW).to_pylist()
    errors = chunk.column(ERROR).to_pylist()
    records: Sequence[bytes | dict[str, Any] | None]  # raw JSONL lines, or the cells of a CSV/Parquet row
    if RAW in chunk.column_names:
        records = chunk.column(RAW).to_pylist()
    else:
        records = chunk.drop_columns([SOURCE_ROW, ERROR]).to_pylist()
    return zip(numbers, records, errors)


def _decode(record: bytes | dict, fmt: str, column_map: dict[str, str]) -> dict[str, Any]:
    if isinstance(record, bytes):
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject("undecodable_bytes", f"not UTF-8 text (byte {exc.start} of the line)") from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Reject("broken_json", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise _Reject("broken_json", f"each line must be a JSON object, got {type(row).__name__}")
    else:
        row = {}
        for key, value in record.items():
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Reject("undecodable_bytes", f"column {key!r} is not UTF-8 text (byte {exc.start})") from None
            row[key] = value
    for ours, theirs in column_map.items():
        row[ours] = row.get(theirs)
    if fmt == "csv" or isinstance(row.get("turns"), str):
        row = turns_from_text_column(row)
    row_id = row.get("id")
    if row_id is None or str(row_id).strip() == "":
        raise _Reject("missing_id", "no 'id' (every output row carries the input id)")
    row["id"] = str(row_id)
    return row


def _interaction(row: dict[str, Any], tasks: list[str]) -> Interaction:
    try:
        return interaction_from_dict(row, label_tasks=tuple(tasks), where="row")
    except InputError as exc:
        detail = exc.message.removeprefix("row: ")
        empty = "empty" in detail or "give 'turns'" in detail
        raise _Reject("empty_text" if empty else "invalid_record", detail) from None


def _raw_id(record, key: str):
    """The id of a row rejected before it was decoded (CSV/Parquet cells), when it has one."""
    if not isinstance(record, dict):
        return None
    value = record.get(key)
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _add_reject(rejects: dict[str, list], source_file: str, source_row, record, bad: _Reject, row_id) -> None:
    if isinstance(record, bytes):
        shown = record.decode("utf-8", errors="replace")
    elif record is None:
        shown = ""
    else:
        shown = json.dumps(
            {k: v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for k, v in record.items()},
            ensure_ascii=False,
            default=str,
        )
    rejects["source_file"].append(source_file)
    rejects["source_row"].append(source_row)
    rejects["id"].append(None if row_id in (None, "") else str(row_id))
    rejects["reason"].append(bad.reason)
    rejects["detail"].append(bad.detail)
    rejects["record"].append(shown[:MAX_RECORD_CHARS])


def _output_rows(good, results: list[Suggestion], tasks: list[str], model_version: str, source_file: str):
    n = len(good)
    columns: dict[str, list] = {
        "id": [row_id for _, row_id, _ in good],
        "source_file": [source_file] * n,
        "source_row": [source_row for source_row, _, _ in good],
        "model_version": [model_version] * n,
        "domain": [r.top_domain for r in results],
    }
    any_changed: list[bool | None] = [None] * n
    task_stats = {}
    for task in tasks:
        stats = empty_task_stats()
        label: list[str | None] = []
        confidence: list[float | None] = []
        decision: list[str | None] = []
        level: list[str | None] = []
        top: list[list[dict[str, Any]]] = []
        old: list[str | None] = []
        changed: list[bool | None] = []
        for i, ((_, _, x), result) in enumerate(zip(good, results)):
            ranked = result.predictions[task]
            decided = result.decisions[task]
            other_domain = decided.reason == "other_domain"  # a task of another domain: null, not a guess
            new = None if other_domain else ranked[0].label
            label.append(new)
            confidence.append(None if other_domain else ranked[0].confidence)
            decision.append(decided.label)
            level.append(decided.level)
            top.append([r.to_dict() for r in ranked])
            before = x.labels.get(task)
            old.append(before)
            stats["abstained"] += decided.label is None
            if other_domain:
                changed.append(None)
                continue
            stats["new"][new] = stats["new"].get(new, 0) + 1
            if before is None:
                changed.append(None)
                continue
            differs = before != new
            changed.append(differs)
            any_changed[i] = differs or bool(any_changed[i])
            stats["compared"] += 1
            stats["changed"] += differs
            pairs = stats["transitions"].setdefault(before, {})
            pairs[new] = pairs.get(new, 0) + 1
        task_stats[task] = stats
        columns.update(
            {
                f"{task}_label": label,
                f"{task}_confidence": confidence,
                f"{task}_decision": decision,
                f"{task}_decision_level": level,
                f"{task}_top3": top,
                f"{task}_old": old,
                f"{task}_changed": changed,
            }
        )
    columns["changed"] = any_changed
    return columns, task_stats


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add one chunk's counts into ``total`` (in place) and return it."""
    for key in ("rows", "labelled", "rejected"):
        total[key] = total.get(key, 0) + part[key]
    for task, labels in part.get("unknown_old", {}).items():
        into_old = total.setdefault("unknown_old", {}).setdefault(task, {})
        for label, n in labels.items():
            into_old[label] = into_old.get(label, 0) + n
    reasons = total.setdefault("reasons", {})
    for reason, n in part["reasons"].items():
        reasons[reason] = reasons.get(reason, 0) + n
    for task, stats in part["tasks"].items():
        into = total.setdefault("tasks", {}).setdefault(task, empty_task_stats())
        for key in TASK_COUNTS:
            into[key] += stats[key]
        for label, n in stats["new"].items():
            into["new"][label] = into["new"].get(label, 0) + n
        for old, news in stats["transitions"].items():
            pairs = into["transitions"].setdefault(old, {})
            for new, n in news.items():
                pairs[new] = pairs.get(new, 0) + n
    return total


def _check_old_labels(good, taxonomy, tasks: list[str]):
    """Old labels are matched to the model's taxonomy after whitespace (NBSP included) is normalised;
    the ones it does not have are counted per task (reported in the diff and by the command: training
    would refuse them) and kept as they are in ``<task>_old``."""
    from dataclasses import replace

    from training.data.load import normalize_label

    canonical = {t: {normalize_label(label): label for label in taxonomy.tasks[t].labels} for t in tasks}
    unknown: dict[str, Counter] = {}
    out = []
    for source_row, row_id, x in good:
        labels = dict(x.labels)
        for task in tasks:
            old = labels.get(task)
            if old is None or old in taxonomy.tasks[task].labels:
                continue
            fixed = canonical[task].get(normalize_label(old))
            if fixed is None:
                unknown.setdefault(task, Counter())[old] += 1
            else:
                labels[task] = fixed
        out.append((source_row, row_id, x if labels == x.labels else replace(x, labels=labels)))
    return out, {t: dict(c) for t, c in unknown.items()}
