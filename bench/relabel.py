"""Throughput and memory of ``podskazka relabel`` against the floor. Prints figures; asserts nothing.

    python bench/relabel.py --model models/default [--rows 1000000] [--workers 1 2] [--format parquet]
    python bench/relabel.py --model models/default --rows 20000 --calls-only --workers 1 [--profile]

1. Generates ROWS interactions (sampled from datasets/corpus, unique ids, with their old labels; with
   --calls-only from its call rows only: the long conversations, ~450 characters at the median
   against ~70 for a chat) into one Parquet or JSONL file, written in slices so memory stays flat.
   The rows repeat corpus rows, so the per-turn caches hit far more often than on real history.
2. The floor (the predictor's own loop): ``Predictor.predict(rows, top_k=3, top_macros=0,
   comments=False)``, what the job calls, over the same rows in one in-process loop, batches of
   --batch-size, timing only the predict calls (``--floor-rows`` limits it to the first rows).
3. For each --workers value: the real command in a subprocess (reading, checks, predict, Parquet parts,
   manifest, diff report); rows/s from the job's own time (its log line "this run: N rows in S s":
   after imports and the model load, worker start-up included), the peak resident memory of its
   whole process tree, and its speed against the floor. With one worker also the overhead in CPU
   seconds per row (the job's process against the floor's predict calls): the fair figure on a machine
   other jobs share, where wall-clock rates swing with their load.
4. Rows per CPU-second of (a) the job (its log's CPU with one worker; the whole process tree's,
   imports and model load included, with more), (b) the floor, (c) a bare scikit-learn pipeline
   (TfidfVectorizer word 1-2 + LogisticRegression, fitted on the same rows' labels: reason2, else
   topic, else resolution; ``predict_proba`` timed on the same rows, batches of --batch-size, the
   texts joined beforehand), against the target: >= 5,000 rows per CPU-second and within 15 % of (b).
   ``--profile`` runs the one-worker job under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.predictor import Predictor  # noqa: E402

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("channel", pa.string()),
        ("turns", pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))),
        ("reason2", pa.string()),
        ("topic", pa.string()),
        ("resolution", pa.string()),
    ]
)
SLICE = 50_000


def corpus_rows(calls_only: bool = False) -> list[dict]:
    rows = []
    for path in sorted((ROOT / "datasets" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if not calls_only or r["channel"] == "call":
                rows.append({k: r.get(k) for k in SCHEMA.names})
    if not rows:
        raise SystemExit("datasets/corpus is empty: the bench samples its rows")
    return rows


def generate(path: Path, n: int, fmt: str, calls_only: bool = False) -> None:
    base = corpus_rows(calls_only)
    rng = np.random.default_rng(0)
    writer = pq.ParquetWriter(path, SCHEMA) if fmt == "parquet" else None
    with open(path, "w", encoding="utf-8") if fmt == "jsonl" else contextlib.nullcontext() as fh:
        for start in range(0, n, SLICE):
            picks = rng.integers(0, len(base), size=min(SLICE, n - start))
            rows = [dict(base[j], id=f"h{start + i:09d}") for i, j in enumerate(picks)]
            if writer:
                writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), row_group_size=SLICE)
            else:
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if writer:
        writer.close()


def _rows_in(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def floor(model: Path, path: Path, fmt: str, batch_size: int, limit: int | None) -> tuple[float, float, int]:
    """Wall and CPU seconds spent in Predictor.predict over the file's rows (up to ``limit``), and the
    row count."""
    predictor = Predictor.load(model)
    spent, cpu, done = 0.0, 0.0, 0
    for rows in _batches(path, fmt, batch_size):
        if limit is not None:
            rows = rows[: limit - done]
        t, c = time.perf_counter(), time.process_time()
        predictor.predict(rows, top_k=3, top_macros=0, comments=False)  # what the job asks
        spent += time.perf_counter() - t
        cpu += time.process_time() - c
        done += len(rows)
        if limit is not None and done >= limit:
            break
    return spent, cpu, done


def _batches(path: Path, fmt: str, batch_size: int):
    if fmt == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield batch.to_pylist()
        return
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == batch_size:
                yield rows
                rows = []
    if rows:
        yield rows


def run_job(
    model: Path, path: Path, out: Path, workers: int, batch_size: int, profile: Path | None = None
) -> tuple[float, float, float, float, float]:
    """Wall seconds, the job's own wall and CPU seconds (from its log: after imports and loading the
    model, up to the diff report; CPU of the coordinating process, i.e. all of it with one worker), the
    peak RSS (MiB, the whole process tree) and the CPU seconds of the whole process tree (imports and
    model load included) of one ``podskazka relabel`` run (under cProfile, writing ``profile``)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = (
        [sys.executable]
        + (["-m", "cProfile", "-o", str(profile)] if profile else [])
        + [
            "-m",
            "training.cli",
            "relabel",
            "--model",
            str(model),
            "--input",
            str(path),
            "--output",
            str(out),
            "--workers",
            str(workers),
            "--batch-size",
            str(batch_size),
            "--no-progress",
        ]
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = _PeakRss(proc.pid)
    peak.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t
    peak.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tree_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"relabel failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    job = re.search(r"this run: \d+ rows in ([\d.]+) s .*?; ([\d.]+) s CPU", err.decode())
    if not job:
        raise SystemExit(f"no timing line in the job's log:\n{err.decode()[-2000:]}")
    return seconds, float(job.group(1)), float(job.group(2)), peak.mib, tree_cpu


def sklearn_rate(path: Path, fmt: str, batch_size: int, limit: int | None) -> tuple[float, int, float]:
    """Rows per CPU-second of a bare TfidfVectorizer (word 1-2) + LogisticRegression ``predict_proba``
    on the file's rows (up to ``limit``), fitted on their own labels; (rate, rows, fit CPU seconds)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = [], []
    for rows in _batches(path, fmt, batch_size):
        for r in rows:
            texts.append(" ".join(t["text"] for t in r["turns"]))
            labels.append(r.get("reason2") or r.get("topic") or r.get("resolution") or "none")
        if limit is not None and len(texts) >= limit:
            break
    texts, labels = texts[:limit], labels[:limit]
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=300))
    distinct = dict(zip(texts, labels))  # the rows repeat corpus rows: fitting on each once is the same model
    c = time.process_time()
    pipeline.fit(list(distinct), list(distinct.values()))
    fit = time.process_time() - c
    cpu = 0.0
    for i in range(0, len(texts), batch_size):
        c = time.process_time()
        pipeline.predict_proba(texts[i : i + batch_size])
        cpu += time.process_time() - c
    return len(texts) / cpu, len(texts), fit


def print_profile(profile: Path, top: int = 25) -> None:
    import io
    import pstats

    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(profile), stream=buf).sort_stats(order).print_stats(top)
        text = buf.getvalue()
        print(f"--- the one-worker job under cProfile, top {top} by {order} ---")
        print(text[text.index("   ncalls") :].rstrip() if "   ncalls" in text else text)


class _PeakRss(threading.Thread):
    """Samples the resident memory of a process and all its descendants (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.mib, self._done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.mib = max(self.mib, sum(_rss_kib(p) for p in _tree(self.pid)) / 1024)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="*", default=[1], help="one job per value (none: floor only)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--floor-rows", type=int, default=None, help="time the floor on the first rows only")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the data and outputs (kept)")
    parser.add_argument("--calls-only", action="store_true", help="sample only the corpus's call rows (long)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the bare scikit-learn pipeline")
    parser.add_argument("--profile", action="store_true", help="also run the one-worker job under cProfile")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="podskazka-bench-relabel-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _bench(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args, work: Path) -> None:
    load = lambda: " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average {load()}")
    suffix = "parquet" if args.format == "parquet" else "jsonl"
    data = work / f"history{'-calls' if args.calls_only else ''}.{suffix}"
    t = time.perf_counter()
    if not (data.exists() and _rows_in(data, args.format) == args.rows):  # a kept --workdir is reused
        generate(data, args.rows, args.format, args.calls_only)
    print(
        f"generated {args.rows:,} rows ({'calls only, ' if args.calls_only else ''}"
        f"{data.stat().st_size / 2**20:,.0f} MiB {args.format}) in {time.perf_counter() - t:.0f} s"
    )
    print(f"model {Predictor.load(args.model).model_version}; batch size {args.batch_size}; {os.cpu_count()} cores")
    floor_rate = floor_cpu = None
    per_cpu: dict[str, float] = {}
    if not args.no_floor:
        spent, cpu, n = floor(args.model, data, args.format, args.batch_size, args.floor_rows)
        floor_rate, floor_cpu = n / spent, cpu / n
        per_cpu["(b) predictor loop"] = 1 / floor_cpu
        print(
            f"floor: Predictor.predict(top_macros=0, comments=False) in one loop: {floor_rate:,.0f} rows/s "
            f"({n:,} rows, {spent:.1f} s wall, {cpu:.1f} s CPU: {n / cpu:,.0f} rows per CPU-second); "
            f"load average {load()}",
            flush=True,
        )
    for workers in args.workers:
        wall, seconds, cpu, peak, tree_cpu = run_job(args.model, data, work / "out", workers, args.batch_size)
        rate = args.rows / max(seconds, 1e-9)
        line = (
            f"relabel --workers {workers}: {rate:,.0f} rows/s ({seconds:.1f} s job, {wall:.1f} s wall with "
            f"imports and model load), peak RSS {peak:,.0f} MiB"
        )
        if floor_rate:
            line += f"; x{rate / floor_rate:.2f} the floor's rows/s"
            if workers == 1:  # CPU time: the fair comparison on a machine others share
                line += f"; CPU per row {cpu / args.rows * 1e3:.2f} ms vs floor {floor_cpu * 1e3:.2f} ms: overhead {cpu / args.rows / floor_cpu - 1:+.1%}"
        line += f"; rows per CPU-second {args.rows / cpu:,.0f} (the job's log)" if workers == 1 else ""
        line += f", {args.rows / tree_cpu:,.0f} (whole process tree, imports and model load included)"
        per_cpu.setdefault("(a) relabel job", args.rows / (cpu if workers == 1 else tree_cpu))
        print(line + f"; load average {load()}", flush=True)
        report = json.loads((work / "out" / "diff.json").read_text(encoding="utf-8"))
        changed = ", ".join(f"{t}: {v['changed']:,}/{v['compared']:,}" for t, v in report["tasks"].items())
        print(f"  rows {report['rows']:,}, rejected {report['rejected']:,}, parts {report['parts']}, changed {changed}")
    if not args.no_sklearn:
        rate, n, fit = sklearn_rate(data, args.format, args.batch_size, args.floor_rows)
        per_cpu["(c) scikit-learn TF-IDF word 1-2 + LogisticRegression"] = rate
        print(
            f"bare scikit-learn pipeline: predict_proba {rate:,.0f} rows per CPU-second ({n:,} rows; fit {fit:.1f} s CPU); "
            f"load average {load()}",
            flush=True,
        )
    if per_cpu:
        print("rows per CPU-second (target for (a): >= 5,000 and within 15 % of (b)):")
        b = per_cpu.get("(b) predictor loop")
        for name, value in per_cpu.items():
            print(
                f"  {name}: {value:,.0f}"
                + (f"  ({value / b:.2f} of (b))" if b and name != "(b) predictor loop" else "")
            )
    if args.profile:
        profile = work / "relabel.prof"
        run_job(args.model, data, work / "out-profile", 1, args.batch_size, profile)
        print_profile(profile)


if __name__ == "__main__":
    main()
