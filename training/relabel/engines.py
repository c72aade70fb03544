"""Engines: thin adapters that move chunks to :func:`relabel_batch` and finished chunks back.

Every engine yields manifest entries (one per finished chunk); the coordinator records them. The unit
of work is the same everywhere: read chunk → ``relabel_batch`` → ``write_chunk`` (parts written
atomically by whoever labelled them), so the local engine, the local process pool, Ray and Spark give
the same parts, row for row.

- ``local`` with ``workers=1``: in this process (the floor of the benchmark, plus the writing);
- ``local`` with ``workers=N``: N processes, each loading the model once; at most 2·N chunks in flight,
  so memory stays flat;
- ``ray``: Ray Data, reading tasks then ``map_batches`` over an actor pool (each actor loads the model
  once). On a cluster the inputs and ``--output`` must be on storage every node sees.
- ``spark``: Spark ``mapInPandas`` (each Python worker loads the model once), for history in Hive;
  ``local[N,M]`` when no SparkSession is active, so a failed task is tried again.
"""

from __future__ import annotations

import functools
import io
import json
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from model.predictor import Predictor
from training.relabel.batch import relabel_batch
from training.relabel.outputs import write_chunk
from training.relabel.sources import InputFile, iter_chunks


@dataclass(frozen=True)
class WorkSpec:
    """Everything a worker needs, picklable: it loads the model itself."""

    model_dir: str
    out_dir: str
    tasks: tuple[str, ...]
    files: tuple[InputFile, ...]
    batch_size: int
    column_map: dict[str, str] = field(default_factory=dict)
    duplicates: dict[int, dict[int, str]] = field(
        default_factory=dict
    )  # file → row → first seen (batch.find_duplicate_ids)


def pending_chunks(spec: WorkSpec, done: set[tuple[int, int]]) -> Iterator[tuple[int, int, pa.Table]]:
    """Every chunk of every input that the manifest does not list yet, in input order."""
    for file_index in range(len(spec.files)):
        for chunk_index, table in _pending_in_file(spec, done, file_index):
            yield file_index, chunk_index, table


def _pending_in_file(spec: WorkSpec, done: set[tuple[int, int]], file_index: int) -> Iterator[tuple[int, pa.Table]]:
    """``(chunk_index, table)`` for each chunk of one input that the manifest does not list yet."""
    for chunk_index, table in iter_chunks(spec.files[file_index], spec.batch_size):
        if (file_index, chunk_index) not in done:
            yield chunk_index, table


def process_chunk(
    predictor: Predictor, spec: WorkSpec, file_index: int, chunk_index: int, table: pa.Table
) -> dict[str, Any]:
    """Label one chunk and write its parts; return its manifest entry."""
    info = spec.files[file_index]
    result = relabel_batch(
        predictor,
        table,
        source_file=info.path,
        fmt=info.format,
        tasks=list(spec.tasks),
        column_map=spec.column_map,
        duplicates=spec.duplicates.get(file_index),
    )
    return write_chunk(Path(spec.out_dir), file_index, chunk_index, result.rows, result.rejects, result.stats)


# -- local ----------------------------------------------------------------------------------------
def run_local(
    spec: WorkSpec, done: set[tuple[int, int]], workers: int, predictor: Predictor | None = None
) -> Iterator[dict[str, Any]]:
    """Label the pending chunks on this machine and yield each chunk's manifest entry as it is written:
    in this process with one worker (reusing ``predictor`` if given), else in a pool of ``workers``
    spawned processes that each load the model once and stop when this process dies."""
    chunks = pending_chunks(spec, done)
    if workers == 1:
        predictor = predictor or Predictor.load(spec.model_dir)
        for file_index, chunk_index, table in chunks:
            yield process_chunk(predictor, spec, file_index, chunk_index, table)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds Arrow threads
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(spec, os.getpid())
    ) as pool:
        in_flight = set()
        for item in chunks:
            in_flight.add(pool.submit(_work, *item))
            if len(in_flight) >= 2 * workers:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in finished)
        while in_flight:
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in finished)


class _Worker:
    """The state of one worker process: its model, loaded once by the pool's initializer."""

    predictor: Predictor | None = None
    spec: WorkSpec | None = None
    parent: int | None = None


def _init_worker(spec: WorkSpec, parent: int) -> None:
    _Worker.predictor, _Worker.spec, _Worker.parent = Predictor.load(spec.model_dir), spec, parent


def _work(file_index: int, chunk_index: int, table: pa.Table) -> dict[str, Any]:
    predictor, spec = _Worker.predictor, _Worker.spec
    # the coordinator was killed (or _init_worker never ran here, so the model is not loaded): write nothing more
    if os.getppid() != _Worker.parent or predictor is None or spec is None:
        os._exit(1)
    return process_chunk(predictor, spec, file_index, chunk_index, table)


# -- Ray and Spark: a pending chunk travels as one row (file_index, chunk, Arrow IPC bytes)
# from the reading tasks to the labelling workers, and its manifest entry comes back as JSON
def _chunk_rows(spec: WorkSpec, done: set[tuple[int, int]], file_indexes: Iterable[Any]) -> Iterator[dict[str, list]]:
    """One single-row batch ``{file_index, chunk, ipc}`` per pending chunk of the given inputs."""
    for file_index in map(int, file_indexes):
        for chunk_index, table in _pending_in_file(spec, done, file_index):
            yield {"file_index": [file_index], "chunk": [chunk_index], "ipc": [_to_ipc(table)]}


def _to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _relabel_ipc(predictor: Predictor, spec: WorkSpec, file_index: Any, chunk_index: Any, ipc: bytes) -> str:
    """Label and write one chunk sent as Arrow IPC bytes; its manifest entry as JSON."""
    table = pa.ipc.open_stream(ipc).read_all()
    entry = process_chunk(predictor, spec, int(file_index), int(chunk_index), table)
    return json.dumps(entry, ensure_ascii=False)


# -- Ray ------------------------------------------------------------------------------------------
def run_ray(
    spec: WorkSpec,
    done: set[tuple[int, int]],
    workers: int,
    *,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Label the pending chunks with Ray Data (reading tasks per input file, ``workers`` labelling actors)
    and yield each chunk's manifest entry. Joins the cluster at ``address`` (None: Ray's default) unless Ray
    is already initialised, and shuts down only what it started."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield from _ray_entries(spec, done, workers, cpus_per_worker, progress)
    finally:
        if started:
            ray.shutdown()


def _ray_entries(
    spec: WorkSpec, done: set[tuple[int, int]], workers: int, cpus_per_worker: float, progress: bool
) -> Iterator[dict]:
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    # Ray's defaults retry a task or restart an actor when a worker process dies; an exception raised
    # by our code is never retried (bad rows do not raise: relabel_batch puts them in the rejects).
    context.actor_task_retry_on_errors = False
    files = ray.data.from_items(
        [{"file_index": i} for i in range(len(spec.files))], override_num_blocks=max(len(spec.files), 1)
    )
    chunks = files.map_batches(
        # Ray types a function UDF as taking the batch alone, as any batch format: it knows neither fn_kwargs
        # (spec, done) nor that the default batch_format gives _read_chunks a dict of NumPy arrays
        _read_chunks,  # type: ignore[arg-type]
        batch_size=1,
        fn_kwargs={"spec": spec, "done": done},
        num_cpus=min(cpus_per_worker, 1.0),
    )
    entries = chunks.map_batches(
        _RayRelabel,
        fn_constructor_kwargs={"spec": spec},
        batch_size=1,
        batch_format="pyarrow",
        concurrency=workers,
        num_cpus=cpus_per_worker,
    )
    for row in entries.iter_rows():
        yield json.loads(row["entry"])


def _read_chunks(batch: dict, *, spec: WorkSpec, done: set[tuple[int, int]]) -> Iterator[dict]:
    yield from _chunk_rows(spec, done, batch["file_index"])


class _RayRelabel:
    """A Ray Data actor: loads the model once, then labels and writes one chunk per call."""

    def __init__(self, spec: WorkSpec) -> None:
        self.spec = spec
        self.predictor = Predictor.load(spec.model_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        columns = (batch.column(c).to_pylist() for c in ("file_index", "chunk", "ipc"))
        entries = [_relabel_ipc(self.predictor, self.spec, *chunk) for chunk in zip(*columns)]
        return pa.table({"entry": pa.array(entries, pa.string())})


# -- Spark ----------------------------------------------------------------------------------------
SPARK_TASK_ATTEMPTS = 4  # local[N,M]: a task that fails (a worker process died) is tried M times in all
_spark_predictors: dict[str, Predictor] = {}  # per Python worker process: the model, loaded once


def run_spark(spec: WorkSpec, done: set[tuple[int, int]], workers: int) -> Iterator[dict]:
    """Spark ``mapInPandas``: reading tasks (one per input file) cut chunks, which are spread over the
    partitions and labelled there. Uses the active SparkSession when there is one (a cluster: inputs
    and ``--output`` on storage every node sees), else starts ``local[workers,4]`` and stops it after.
    The entries come back when the Spark job ends; a kill before that leaves parts the next run writes
    again under the same names, so the output still holds every row once."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    started = spark is None
    if spark is None:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter
        spark = (
            SparkSession.builder.master(f"local[{workers},{SPARK_TASK_ATTEMPTS}]")
            .appName("podskazka-relabel")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
    try:
        yield from _spark_entries(spark, spec, done, workers)
    finally:
        if started:
            spark.stop()


def _spark_entries(spark, spec: WorkSpec, done: set[tuple[int, int]], workers: int) -> Iterator[dict]:
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "1")  # one chunk per Arrow batch
    files = spark.range(len(spec.files), numPartitions=max(len(spec.files), 1)).withColumnRenamed("id", "file_index")
    chunks = files.mapInPandas(
        functools.partial(_spark_read_chunks, spec=spec, done=done), "file_index long, chunk long, ipc binary"
    )
    entries = chunks.repartition(max(workers, 1) * 4, "file_index", "chunk").mapInPandas(
        functools.partial(_spark_relabel, spec=spec), "entry string"
    )
    for row in entries.collect():
        yield json.loads(row["entry"])


def _spark_read_chunks(batches, *, spec: WorkSpec, done: set[tuple[int, int]]):
    import pandas as pd

    for batch in batches:
        for row in _chunk_rows(spec, done, batch["file_index"]):
            yield pd.DataFrame(row)


def _spark_relabel(batches, *, spec: WorkSpec):
    import pandas as pd

    predictor = _spark_predictors.get(spec.model_dir)
    if predictor is None:
        predictor = _spark_predictors[spec.model_dir] = Predictor.load(spec.model_dir)
    for batch in batches:
        for chunk in zip(batch["file_index"], batch["chunk"], batch["ipc"]):
            yield pd.DataFrame({"entry": [_relabel_ipc(predictor, spec, *chunk)]})
