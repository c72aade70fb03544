"""The output folder of a re-labelling job, laid out so that a job killed at any moment resumes exactly.

    OUT/job.json          what the job is (model version, inputs with size and mtime, tasks, batch size)
    OUT/manifest.jsonl    one line per finished chunk: its part, its rejects part, its counts
    OUT/parts/part-FFFFF-CCCCCCCC.parquet      labelled rows of chunk C of input file F
    OUT/rejects/part-FFFFF-CCCCCCCC.parquet    rejected rows of that chunk, with the reason
    OUT/rejects.jsonl, OUT/diff.json, OUT/diff.md   written when every chunk is done

A chunk is finished only once its manifest line is written, and that line is appended only after its
parts were renamed into place (each written to a temporary name first). A kill leaves at most parts
that the manifest does not list, stray temporary files and a torn last manifest line: the next run
drops all three and does those chunks again, so each input row ends up in the output exactly once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from model.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JOB = "job.json"
MANIFEST = "manifest.jsonl"
PARTS = "parts"
REJECTS = "rejects"
LOCK = ".lock"


def part_name(file_index: int, chunk_index: int) -> str:
    """The file name of a chunk's rows and rejects parts; names sort in input order."""
    return f"part-{file_index:05d}-{chunk_index:08d}.parquet"


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name in the same folder, fsync it, then rename it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file under a temporary name in the same folder, fsync it, then rename it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class JobStore:
    """Owns the output folder of one job: the lock, the job spec, the manifest."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir)
        self._lock_fh: TextIO | None = None  # held open (and flock'ed) from open() to close()
        self._manifest_fh: TextIO | None = None

    # -- opening ------------------------------------------------------------------------------
    def open(self, spec: dict[str, Any]) -> None:
        """Create or resume the job described by ``spec``; then :meth:`finished` lists what is done.

        Refuses an output folder that holds a different job (other inputs, model, tasks or batch size),
        since mixing them would not give every row exactly once."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._open_job(spec)
        except BaseException:  # a refused folder must not stay locked by this process
            self.close()
            raise

    def _open_job(self, spec: dict[str, Any]) -> None:
        """:meth:`open` once the folder is locked."""
        job_path = self.root / JOB
        spec = dict(spec, format_version=FORMAT_VERSION)
        if job_path.exists():
            found = json.loads(job_path.read_text(encoding="utf-8"))
            if found != spec:
                diff = sorted(k for k in set(found) | set(spec) if found.get(k) != spec.get(k))
                raise ConfigError(
                    f"{self.root} holds another re-labelling job (it differs in {diff}); resume it with the "
                    "same model, inputs, --tasks, --column and --batch-size, or write to a new --output"
                )
        elif any(p.name != LOCK for p in self.root.iterdir()):
            raise ConfigError(f"{self.root} is not empty and holds no re-labelling job; pass an empty or new --output")
        else:
            write_text_atomic(job_path, json.dumps(spec, ensure_ascii=False, indent=2) + "\n")
        (self.root / PARTS).mkdir(exist_ok=True)
        (self.root / REJECTS).mkdir(exist_ok=True)
        self._recover()
        self._manifest_fh = open(self.root / MANIFEST, "a", encoding="utf-8")

    def finished(self) -> Iterator[dict[str, Any]]:
        """The manifest entries of the finished chunks, read line by line."""
        return _entries(self.root / MANIFEST)

    def _lock(self) -> None:
        fh = open(self.root / LOCK, "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigError(f"another relabel job is running on {self.root}; wait for it or stop it first") from None
        self._lock_fh = fh

    def _recover(self) -> None:
        """Keep the complete manifest lines (streamed), drop a torn last one and stray temporary files."""
        for folder in (self.root, self.root / PARTS, self.root / REJECTS):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        path = self.root / MANIFEST
        if not path.exists():
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        dropped = 0
        with open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
            for line in src:
                if _entry(line) is None:
                    dropped += 1  # the torn line a kill can leave
                    continue
                dst.write(line if line.endswith("\n") else line + "\n")
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
        if dropped:
            log.warning(
                "dropped %d torn line(s) from %s (a killed run); those chunks will be done again", dropped, path
            )

    # -- progress -----------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """Append one finished chunk to the manifest (after its parts are in place)."""
        fh = self._manifest_fh
        if fh is None:
            raise RuntimeError(
                f"JobStore.record() needs an open job: call open() first (and not after close()) on {self.root}"
            )
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        """Close the manifest and release the folder's lock; safe to call twice."""
        for fh in (self._manifest_fh, self._lock_fh):
            if fh is not None:
                fh.close()
        self._manifest_fh = self._lock_fh = None

    # -- the end ------------------------------------------------------------------------------
    def write_rejects_jsonl(self, reject_parts: list[str]) -> int:
        """All rejected rows in one JSONL file, in input order, read part by part (memory stays flat)."""
        path = self.root / "rejects.jsonl"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        n = 0
        with open(tmp, "w", encoding="utf-8") as fh:
            for name in sorted(reject_parts):  # part names sort in input order
                for row in pq.read_table(self.root / REJECTS / name).to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
        os.replace(tmp, path)
        return n


def write_chunk(
    out_dir: Path, file_index: int, chunk_index: int, rows: pa.Table, rejects: pa.Table, stats: dict[str, Any]
) -> dict[str, Any]:
    """Write one chunk's parts (rejects first, then rows; each atomically) and return its manifest
    entry, for the coordinator to record."""
    name = part_name(file_index, chunk_index)
    rejects_part = None
    if rejects.num_rows:
        write_atomic(rejects, out_dir / REJECTS / name)
        rejects_part = name
    write_atomic(rows, out_dir / PARTS / name)
    return {"file": file_index, "chunk": chunk_index, "part": name, "rejects_part": rejects_part, **stats}


def read_output(out_dir: str | Path) -> Iterator[pa.Table]:
    """The labelled rows, part by part in input order (the parts the manifest lists)."""
    root = Path(out_dir)
    names = sorted({entry["part"] for entry in _entries(root / MANIFEST)})  # part names sort in input order
    for name in names:
        yield pq.read_table(root / PARTS / name)


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            entry = _entry(line)
            if entry is not None:
                yield entry


def _entry(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) and {"file", "chunk", "part"} <= set(entry) else None
