"""Streaming readers for re-labelling: JSONL, CSV and Parquet cut into chunks of a fixed size.

A *chunk* is the unit of work and of resumption: ``(file_index, chunk_index)`` names the same rows
on every run with the same ``batch_size``, whatever the engine or the number of workers. Readers never
hold more than a chunk (plus one reader block) in memory, and they do not judge rows: a chunk is an
Arrow table of the file's own columns (JSONL: the raw line bytes in ``_raw``) plus

- ``_source_row``: the row's number in its file (JSONL: line number; CSV: data row; Parquet: row),
  null for a CSV row the parser could not split into fields;
- ``_error``: a reason when the reader itself had to reject the row (a CSV row with the wrong number
  of fields), else null.

Every other check (JSON, UTF-8, id, text) is made by :func:`training.relabel.batch.relabel_batch`,
so that each engine only moves chunks around.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.errors import DataError
from training.data.load import FORMATS, expand_paths

RAW = "_raw"
SOURCE_ROW = "_source_row"
ERROR = "_error"
CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """One input of a re-labelling job: its resolved path, its reader format ("json", "csv" or
    "parquet"), and the size and modification time that tell a resumed job whether it changed."""

    path: str
    format: str  # "json" | "csv" | "parquet"
    size: int
    mtime_ns: int

    def spec(self) -> dict[str, Any]:
        """The file as recorded in the job's job.json (a resumed job must find the same)."""
        return {"path": self.path, "format": self.format, "size": self.size, "mtime_ns": self.mtime_ns}


def discover_inputs(paths: list[str | Path], column_map: dict[str, str] | None = None) -> list[InputFile]:
    """Expand files and folders and open every file once, so that a file the job cannot read stops it
    before any output is written."""
    files = []
    for path in expand_paths(paths):
        stat = path.stat()
        info = InputFile(str(path.resolve()), FORMATS[path.suffix.lower()], stat.st_size, stat.st_mtime_ns)
        _check_opens(info, column_map or {})
        files.append(info)
    return files


def _check_opens(info: InputFile, column_map: dict[str, str]) -> None:
    if not os.access(info.path, os.R_OK):
        raise DataError(f"{info.path}: cannot be opened for reading (permission denied); fix its permissions")
    try:
        if info.format == "json":
            with open(info.path, "rb") as fh:
                fh.read(1)
            return
        if info.format == "parquet":
            columns = pq.ParquetFile(info.path).schema_arrow.names
        else:
            columns = _csv_header(info.path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"{info.path}: cannot be opened as {info.format.upper()} ({type(exc).__name__}: {exc}); "
            "fix or remove the file, then run the same command again"
        ) from exc
    names = set(columns) | {ours for ours, theirs in column_map.items() if theirs in columns}
    if not {"turns", "text"} & names:
        raise DataError(
            f"{info.path}: no 'turns' or 'text' column (found {sorted(columns)}); "
            "map your text column with --column text=YOUR_COLUMN"
        )
    if "id" not in names:
        raise DataError(
            f"{info.path}: no 'id' column (found {sorted(columns)}); every output row carries the input id, "
            "map yours with --column id=YOUR_COLUMN"
        )


def _csv_header(path: str) -> list[str]:
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
        convert_options=pacsv.ConvertOptions(column_types={}, check_utf8=False),
    )
    try:
        return list(reader.schema.names)
    finally:
        reader.close()


def count_rows(info: InputFile) -> int:
    """The number of rows the chunks will hold, for the progress bar: Parquet from its metadata, JSONL
    its non-blank lines, CSV its records (parsed, so a quoted value over several lines is one row, and a
    row the parser rejects still counts: it becomes a reject row). Memory stays flat."""
    if info.format == "parquet":
        return pq.ParquetFile(info.path).metadata.num_rows
    if info.format == "json":
        with open(info.path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    invalid = 0

    def on_invalid(row: pacsv.InvalidRow) -> Literal["skip"]:
        nonlocal invalid
        invalid += 1
        return "skip"

    first = _csv_header(info.path)[:1]
    reader = pacsv.open_csv(
        info.path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            include_columns=first, column_types={c: pa.binary() for c in first}, check_utf8=False
        ),
    )
    try:
        return sum(batch.num_rows for batch in reader) + invalid
    except pa.ArrowException:
        return 0  # the job itself reports the unreadable file
    finally:
        reader.close()


def iter_chunks(info: InputFile, batch_size: int) -> Iterator[tuple[int, pa.Table]]:
    """``(chunk_index, table)`` for one file, in order, each chunk ``batch_size`` rows but the last."""
    readers = {"json": _jsonl_chunks, "csv": _csv_chunks, "parquet": _parquet_chunks}
    try:
        yield from enumerate(readers[info.format](info.path, batch_size))
    except pa.ArrowException as exc:
        raise DataError(
            f"{info.path}: reading stopped part-way ({type(exc).__name__}: {exc}); the parts written so far "
            "are kept: fix the file and run the same command again"
        ) from exc


def _jsonl_chunks(path: str, batch_size: int) -> Iterator[pa.Table]:
    lines: list[bytes] = []
    numbers: list[int] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            lines.append(line.rstrip(b"\r\n"))
            numbers.append(lineno)
            if len(lines) == batch_size:
                yield _jsonl_table(lines, numbers)
                lines, numbers = [], []
    if lines:
        yield _jsonl_table(lines, numbers)


def _jsonl_table(lines: list[bytes], numbers: list[int]) -> pa.Table:
    return pa.table(
        {
            RAW: pa.array(lines, pa.binary()),
            SOURCE_ROW: pa.array(numbers, pa.int64()),
            ERROR: pa.nulls(len(lines), pa.string()),
        }
    )


def _parquet_chunks(path: str, batch_size: int) -> Iterator[pa.Table]:
    start = 1
    for table in _rechunk(
        (pa.Table.from_batches([b]) for b in pq.ParquetFile(path).iter_batches(batch_size=batch_size)), batch_size
    ):
        n = table.num_rows
        table = table.append_column(SOURCE_ROW, pa.array(range(start, start + n), pa.int64()))
        yield table.append_column(ERROR, pa.nulls(n, pa.string()))
        start += n


def _csv_chunks(path: str, batch_size: int) -> Iterator[pa.Table]:
    """CSV cells are read as bytes (UTF-8 is checked per row later, so one bad byte rejects one row);
    rows with the wrong number of fields are reported by the parser and become reject rows."""
    invalid: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> Literal["skip"]:
        text = (row.text or "")[:200]
        invalid.append(f"CSV row with {row.actual_columns} fields, expected {row.expected_columns}: {text!r}")
        return "skip"

    columns = _csv_header(path)
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in columns}, check_utf8=False),
    )
    start = 1
    schema = pa.schema([(c, pa.binary()) for c in columns])

    def tables() -> Iterator[pa.Table]:
        nonlocal start
        for batch in reader:
            table = pa.Table.from_batches([batch])
            n = table.num_rows
            table = table.append_column(SOURCE_ROW, pa.array(range(start, start + n), pa.int64()))
            table = table.append_column(ERROR, pa.nulls(n, pa.string()))
            start += n
            yield _with_invalid(table, invalid, schema)

    try:
        yield from _rechunk(tables(), batch_size)
        if invalid:  # rows rejected after the last good row
            yield _with_invalid(pa.Table.from_batches([], schema=_csv_schema(schema)), invalid, schema)
    finally:
        reader.close()


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(SOURCE_ROW, pa.int64())).append(pa.field(ERROR, pa.string()))


def _with_invalid(table: pa.Table, invalid: list[str], schema: pa.Schema) -> pa.Table:
    """Append the rows the parser rejected (so far) to ``table``, as rows carrying only ``_error``."""
    if not invalid:
        return table
    rows = pa.table(
        {
            **{c: pa.nulls(len(invalid), pa.binary()) for c in schema.names},
            SOURCE_ROW: pa.nulls(len(invalid), pa.int64()),
            ERROR: pa.array(invalid, pa.string()),
        }
    )
    invalid.clear()
    return pa.concat_tables([table, rows])


def _rechunk(tables: Iterator[pa.Table], batch_size: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of exactly ``batch_size`` rows (the last may be shorter)."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        while table.num_rows:
            take = min(batch_size - held, table.num_rows)
            pending.append(table.slice(0, take))
            held += take
            table = table.slice(take)
            if held == batch_size:
                yield pa.concat_tables(pending).combine_chunks()
                pending, held = [], 0
    if held:
        yield pa.concat_tables(pending).combine_chunks()
