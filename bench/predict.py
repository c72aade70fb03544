"""Latency and throughput of a model bundle, in-process and over HTTP. Prints figures; asserts nothing.

    python bench/predict.py --model models/default [--requests 1000] [--batch 256]

In-process: single-request latency (p50, p99) of Predictor.predict on one interaction, and batch
throughput (rows/s) with batches of --batch. Over HTTP: a real uvicorn server on a free loopback
port, single requests to POST /v1/suggest (p50, p99) and batch throughput through /v1/suggest/batch.
Inputs are real-looking conversations from the corpus when present, else from a built-in set.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.predictor import Predictor  # noqa: E402

FALLBACK = [
    {"channel": "call", "turns": [{"role": "operator", "text": "билайн здравствуйте меня зовут анна"},
                                  {"role": "client", "text": "ну у меня деньги сняли вчера непонятно за что сто пятьдесят рублей"}]},
    {"channel": "chat", "turns": [{"role": "bot", "text": "Здравствуйте! Я бот поддержки"},
                                  {"role": "client", "text": "где мой заказ 12345678-0012 уже неделю не двигается"}]},
]


def load_inputs(n: int, *, channels: tuple[str, ...] = ("call", "chat", "email"), max_turns: int | None = None) -> list[dict]:
    """``n`` conversations drawn (seeded) from the corpus, or from a built-in pair when it is absent."""
    rows = []
    for path in sorted((ROOT / "datasets" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["channel"] in channels and r.get("turns"):
                rows.append({"channel": r["channel"], "turns": r["turns"][:max_turns]})
    rows = rows or FALLBACK
    rng = np.random.default_rng(0)
    return [rows[i] for i in rng.integers(0, len(rows), size=n)]


def percentiles(samples_ms: list[float]) -> str:
    a = np.asarray(samples_ms)
    return f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  mean {a.mean():.2f} ms"


def time_single(call, inputs: list[dict]) -> list[float]:
    """Milliseconds of ``call(x)`` for each input, after 20 warm-up calls."""
    for x in inputs[:20]:
        call(x)
    times = []
    for x in inputs:
        t = time.perf_counter()
        call(x)
        times.append((time.perf_counter() - t) * 1000)
    return times


def throughput(call_batch, inputs: list[dict], batch: int) -> tuple[float, int]:
    """Rows per second of ``call_batch(rows)`` (returns how many rows it answered) over >= 4 batches."""
    rows = inputs * max(1, (4 * batch) // len(inputs) + 1)
    t = time.perf_counter()
    done = 0
    for i in range(0, len(rows), batch):
        done += call_batch(rows[i:i + batch])
    return done / (time.perf_counter() - t), done


def bench_in_process(predictor: Predictor, inputs: list[dict], batch: int) -> None:
    times = time_single(lambda x: predictor.predict([x]), inputs)
    print(f"in-process single request ({len(inputs)}): {percentiles(times)}")
    rate, done = throughput(lambda rows: len(predictor.predict(rows)), inputs, batch)
    print(f"in-process batch throughput (batch {batch}): {rate:,.0f} rows/s ({done} rows)")


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def bench_http(model_dir: Path, inputs: list[dict], batch: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "serve", "--model", str(model_dir), "--port", str(port), "--insecure-local"],  # loopback
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.3)
        times = time_single(lambda x: _post(f"{base}/v1/suggest", x), inputs)
        print(f"HTTP single request ({len(inputs)}): {percentiles(times)}")
        rate, done = throughput(
            lambda rows: len(_post(f"{base}/v1/suggest/batch", {"interactions": rows})["results"]), inputs, batch
        )
        print(f"HTTP batch throughput (batch {batch}): {rate:,.0f} rows/s ({done} rows)")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    predictor = Predictor.load(args.model)
    print(f"model {predictor.model_version}")
    inputs = load_inputs(args.requests)
    bench_in_process(predictor, inputs, args.batch)
    if not args.no_http:
        bench_http(args.model, inputs, args.batch)


if __name__ == "__main__":
    main()
