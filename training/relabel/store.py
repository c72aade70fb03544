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
from pathlib import Path
from typing import Any, Iterator

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
    return f"part-{file_index:05d}-{chunk_index:08d}.parquet"


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name in the same folder, fsync it, then rename it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
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
        self._lock_fh = None
        self._manifest_fh = None

    # -- opening ------------------------------------------------------------------------------
    def open(self, spec: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
        """Create or resume the job described by ``spec``; return the finished chunks' manifest entries.

        Refuses an output folder that holds a different job (other inputs, model, tasks or batch size),
        since mixing them would not give every row exactly once."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
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
        done = self._recover()
        self._manifest_fh = open(self.root / MANIFEST, "a", encoding="utf-8")
        return done

    def _lock(self) -> None:
        self._lock_fh = open(self.root / LOCK, "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another relabel job is running on {self.root}; wait for it or stop it first") from None

    def _recover(self) -> dict[tuple[int, int], dict[str, Any]]:
        """Keep the complete manifest lines, drop a torn last one and any stray temporary files."""
        done: dict[tuple[int, int], dict[str, Any]] = {}
        path = self.root / MANIFEST
        lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        kept = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn line a kill can leave (or the empty string after the last "\n")
            done[(entry["file"], entry["chunk"])] = entry
            kept.append(line)
        if len(kept) != len([line for line in lines if line]):
            log.warning("dropped a torn line from %s (a killed run); its chunk will be done again", path)
        if path.exists():
            write_text_atomic(path, "".join(line + "\n" for line in kept))
        for folder in (self.root, self.root / PARTS, self.root / REJECTS):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        return done

    # -- progress -----------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """Append one finished chunk to the manifest (after its parts are in place)."""
        self._manifest_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._manifest_fh.flush()
        os.fsync(self._manifest_fh.fileno())

    def close(self) -> None:
        for fh in (self._manifest_fh, self._lock_fh):
            if fh is not None:
                fh.close()
        self._manifest_fh = self._lock_fh = None

    # -- the end ------------------------------------------------------------------------------
    def write_rejects_jsonl(self, entries: list[dict[str, Any]]) -> int:
        """All rejected rows in one JSONL file, read part by part (memory stays flat)."""
        path = self.root / "rejects.jsonl"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        n = 0
        with open(tmp, "w", encoding="utf-8") as fh:
            for entry in sorted(entries, key=lambda e: (e["file"], e["chunk"])):
                if not entry.get("rejects_part"):
                    continue
                for row in pq.read_table(self.root / REJECTS / entry["rejects_part"]).to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
        os.replace(tmp, path)
        return n


def write_chunk(out_dir: Path, file_index: int, chunk_index: int, rows: pa.Table, rejects: pa.Table,
                stats: dict[str, Any]) -> dict[str, Any]:
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
    entries = [json.loads(line) for line in (root / MANIFEST).read_text(encoding="utf-8").splitlines() if line]
    for entry in sorted(entries, key=lambda e: (e["file"], e["chunk"])):
        yield pq.read_table(root / PARTS / entry["part"])
