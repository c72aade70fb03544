"""The re-labelling job: check everything that can be checked before writing, then run an engine,
record each finished chunk, and write the rejects and the diff report at the end."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model.errors import ConfigError
from model.predictor import Predictor
from training.relabel.batch import find_duplicate_ids, merge_stats
from training.relabel.diff import diff_markdown, diff_report
from training.relabel.engines import WorkSpec, run_local, run_ray, run_spark
from training.relabel.outputs import JobStore, write_text_atomic
from training.relabel.sources import count_rows, discover_inputs

log = logging.getLogger(__name__)

ENGINES = ("local", "ray", "spark")


@dataclass
class RelabelConfig:
    """What to re-label, with what, where to, and how. Validated when built."""

    model: str | Path
    inputs: list[str | Path]
    output: str | Path
    engine: str = "local"
    tasks: list[str] | None = None
    workers: int | None = None  # None: every local core
    batch_size: int = 2048
    column_map: dict[str, str] = field(default_factory=dict)
    progress: bool | None = None  # None: a progress bar when stderr is a terminal
    cpus_per_worker: float = 1.0  # ray: CPUs each actor claims (fractions allowed)
    ray_address: str | None = None  # ray: an existing cluster; None starts a local one

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {list(ENGINES)}, got {self.engine!r}")
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError("engine 'ray' needs Ray Data, which is not installed: pip install -e '.[cluster]'")
        if self.engine == "spark" and importlib.util.find_spec("pyspark") is None:
            raise ConfigError("engine 'spark' needs PySpark, which is not installed: pip install -e '.[cluster]'")
        if self.workers is None:
            self.workers = os.cpu_count() or 1
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.cpus_per_worker <= 64:
            raise ConfigError(f"cpus_per_worker must be in (0, 64], got {self.cpus_per_worker}")
        if not self.inputs:
            raise ConfigError("give at least one --input file or folder")
        if self.tasks == []:
            self.tasks = None


def relabel(config: RelabelConfig) -> dict[str, Any]:
    """Run (or resume) the job; return the diff report. Nothing is written before the model loads and
    every input file opens."""
    workers = config.workers
    if workers is None:  # RelabelConfig.__post_init__ turns None into the core count; set after it, it is not
        raise ConfigError(
            "RelabelConfig.workers was set to None after the config was built; set a number, or build the "
            "config with workers=None (every local core)"
        )
    predictor = Predictor.load(config.model)
    tasks = predictor.check_tasks(config.tasks)
    files = discover_inputs(config.inputs, config.column_map)
    duplicates = find_duplicate_ids(files, config.batch_size, tasks, config.column_map)
    if duplicates:
        log.warning(
            "%d rows repeat the id of an earlier row: the first is kept, the others go to rejects.jsonl (duplicate_id)",
            sum(len(rows) for rows in duplicates.values()),
        )
    spec = WorkSpec(
        model_dir=str(Path(config.model).resolve()),
        out_dir=str(Path(config.output).resolve()),
        tasks=tuple(tasks),
        files=tuple(files),
        batch_size=config.batch_size,
        column_map=dict(config.column_map),
        duplicates=duplicates,
    )
    store = JobStore(config.output)
    store.open(
        {
            "model_version": predictor.model_version,
            "tasks": tasks,
            "batch_size": config.batch_size,
            "column_map": dict(sorted(config.column_map.items())),
            "inputs": [f.spec() for f in files],
        }
    )
    try:
        progress = _Progress()
        for entry in store.finished():
            progress.add(entry)
        if progress.done:
            log.info(
                "resuming: %d chunks (%d rows) already done in %s",
                len(progress.done),
                progress.totals["rows"],
                config.output,
            )
        started, cpu, rows_before = time.perf_counter(), time.process_time(), progress.totals.get("rows", 0)
        show = sys.stderr.isatty() if config.progress is None else config.progress
        total = sum(count_rows(f) for f in files) if show else None
        with tqdm(
            total=total,
            initial=rows_before,
            unit="rows",
            unit_scale=True,
            smoothing=0.1,
            disable=not show,
            desc="relabel",
        ) as bar:
            for entry in _engine(config, workers, spec, set(progress.done), predictor):
                store.record(entry)
                progress.add(entry)
                bar.update(entry["rows"])
                bar.set_postfix(rejected=progress.totals["rejected"], refresh=False)
        report = _finish(store, progress, predictor.model_version, tasks)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        this_run = report["rows"] - rows_before
        log.info(
            "this run: %d rows in %.2f s (%.0f rows/s; %.2f s CPU in the coordinating process)",
            this_run,
            seconds,
            this_run / max(seconds, 1e-9),
            cpu,
        )
        return report
    finally:
        store.close()


class _Progress:
    """What the finished chunks add up to; holds counts, never rows (memory stays flat)."""

    def __init__(self) -> None:
        self.totals: dict[str, Any] = {}
        self.done: set[tuple[int, int]] = set()
        self.reject_parts: list[str] = []

    def add(self, entry: dict[str, Any]) -> None:
        key = (entry["file"], entry["chunk"])
        if key in self.done:
            return
        self.done.add(key)
        merge_stats(self.totals, entry)
        if entry.get("rejects_part"):
            self.reject_parts.append(entry["rejects_part"])


def _engine(config: RelabelConfig, workers: int, spec: WorkSpec, done: set, predictor: Predictor):
    if config.engine == "ray":
        return run_ray(
            spec,
            done,
            workers,
            cpus_per_worker=config.cpus_per_worker,
            address=config.ray_address,
            progress=bool(config.progress),
        )
    if config.engine == "spark":
        return run_spark(spec, done, workers)
    return run_local(spec, done, workers, predictor)


def _finish(store: JobStore, progress: _Progress, model_version: str, tasks: list[str]) -> dict[str, Any]:
    store.write_rejects_jsonl(progress.reject_parts)
    totals = progress.totals
    report = diff_report(totals, model_version=model_version, tasks=tasks, output=str(store.root))
    report["parts"] = len(progress.done)
    write_text_atomic(store.root / "diff.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_text_atomic(store.root / "diff.md", diff_markdown(report))
    log.info(
        "relabel done: %d rows, %d labelled, %d rejected %s; report in %s",
        report["rows"],
        report["labelled"],
        report["rejected"],
        report["rejected_by_reason"],
        store.root / "diff.md",
    )
    return report
