"""Latency and throughput of a model bundle, in-process and over HTTP. Prints figures; asserts nothing.

    python bench/predict.py --model models/default [--requests 150] [--warmup 30] [--chars 2000] [--batch 256] [--no-http]

In-process, per request: one call of about --chars characters (corpus calls joined: see long_calls)
with the full response (labels, decisions, domains, 3 macros with filled slots, the comment rule),
after --warmup requests on OTHER calls, so that the per-turn caches (normalised text, slot
matches, word n-grams) are cold for each measured call, which is sent once: p50/p99 of
Predictor.predict, then of the model alone (Predictor.score: every task head, the domain head and
the macro ranker's raw scores) on a further set of unseen calls. Then batch throughput (rows/s,
batches of --batch, corpus conversations of every channel). Over HTTP (python bench/serve.py is the
fuller bench): a real uvicorn server on a free loopback port, single requests to POST /v1/suggest
(p50, p99) and batch throughput through /v1/suggest/batch.
"""

from __future__ import annotations

import argparse
import json
import os
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
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "билайн здравствуйте меня зовут анна"},
            {"role": "client", "text": "ну у меня деньги сняли вчера непонятно за что сто пятьдесят рублей"},
        ],
    },
    {
        "channel": "chat",
        "turns": [
            {"role": "bot", "text": "Здравствуйте! Я бот поддержки"},
            {"role": "client", "text": "где мой заказ 12345678-0012 уже неделю не двигается"},
        ],
    },
]


def load_inputs(
    n: int, *, channels: tuple[str, ...] = ("call", "chat", "email"), max_turns: int | None = None
) -> list[dict]:
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


def long_calls(n: int, *, chars: int = 2000, seed: int = 0) -> list[dict]:
    """``n`` distinct calls of about ``chars`` characters (the corpus has few that long: its calls are
    ~450 characters at the median, 1,700 at most): the turns of corpus calls of one domain (telecom
    or marketplace, alternating), taken in a seeded order and joined until the next turn would pass
    ``chars`` (that turn is cut at a word to fill up). No corpus call goes into two of them, so the
    model's per-turn caches are cold for each one the first time it is sent. Fewer than ``n`` when
    the corpus runs out (about 390 of 2,000 characters: 65 marketplace, the rest telecom)."""
    pools: dict[str, list[dict]] = {"telecom": [], "marketplace": []}
    for path in sorted((ROOT / "datasets" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["channel"] == "call" and r.get("turns"):
                pools["telecom" if r.get("reason2") else "marketplace"].append(r)
    rng = np.random.default_rng(seed)
    queues = {}
    for domain, rows in pools.items():
        order = rng.permutation(len(rows))
        queues[domain] = [dict(t) for j in order for t in rows[j]["turns"]]  # calls stay whole, in order
    out, positions, exhausted = [], {domain: 0 for domain in queues}, set()
    while len(out) < n and len(exhausted) < len(queues):
        domain = ("telecom", "marketplace")[len(out) % 2]
        if domain in exhausted:
            domain = next(d for d in queues if d not in exhausted)
        queue, k = queues[domain], positions[domain]
        turns, size = [], 0
        while k < len(queue) and size < chars:
            turn = queue[k]
            k += 1
            room = chars - size
            if len(turn["text"]) > room:
                cut = turn["text"][:room].rsplit(" ", 1)[0]
                if not cut:
                    break
                turn = {**turn, "text": cut}
            turns.append(turn)
            size += len(turn["text"])
        positions[domain] = k
        if size < chars * 0.9:  # this domain's calls ran out
            exhausted.add(domain)
            continue
        out.append({"channel": "call", "turns": turns})
    return out


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
        done += call_batch(rows[i : i + batch])
    return done / (time.perf_counter() - t), done


def bench_in_process(
    predictor: Predictor, inputs: list[dict], batch: int, *, requests: int, warmup: int, chars: int
) -> None:
    from model.conversation.record import interaction_from_dict

    calls = long_calls(warmup + 2 * requests, chars=chars)
    if len(calls) < warmup + 2 * requests:
        requests = max(1, (len(calls) - warmup) // 2)
        print(f"(the corpus gives {len(calls)} distinct calls of {chars} characters: {requests} measured per figure)")
    warm, measured, alone = (
        calls[:warmup],
        calls[warmup : warmup + requests],
        calls[warmup + requests : warmup + 2 * requests],
    )
    t = time.perf_counter()
    for x in warm:  # loads spaCy/pymorphy lazily on the first call: seconds
        predictor.predict([x])
    print(
        f"warm-up: {len(warm)} other calls in {time.perf_counter() - t:.1f} s; load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    sizes = [sum(len(t["text"]) for t in x["turns"]) for x in measured]
    times, cpu, macros, filled = [], [], 0, 0
    for x in measured:
        t, c = time.perf_counter(), time.process_time()
        result = predictor.predict([x])[0]
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        macros += len(result.macros)
        filled += sum(len(m.filled_slots) for m in result.macros)
    print(
        f"in-process Predictor.predict, full response, {len(measured)} unseen calls of "
        f"{np.median(sizes):,.0f} characters ({np.median([len(x['turns']) for x in measured]):.0f} turns) at the median, "
        f"{macros / len(measured):.1f} macros and {filled / len(measured):.1f} filled slots a response: {percentiles(times)}; "
        f"CPU p50 {np.percentile(cpu, 50):.2f} ms  p99 {np.percentile(cpu, 99):.2f} ms"
    )
    items = [interaction_from_dict(x) for x in alone]
    times, cpu = [], []
    for item in items:
        t, c = time.perf_counter(), time.process_time()
        predictor.score([item])
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    print(
        f"in-process model alone (Predictor.score: task heads, domain head, macro raw scores), {len(items)} other "
        f"unseen calls: {percentiles(times)}; CPU p50 {np.percentile(cpu, 50):.2f} ms  p99 {np.percentile(cpu, 99):.2f} ms"
    )
    rate, done = throughput(lambda rows: len(predictor.predict(rows)), inputs, batch)
    print(
        f"in-process batch throughput (batch {batch}, corpus conversations of every channel, mostly short chats): "
        f"{rate:,.0f} rows/s ({done} rows)"
    )


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
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
                    raise SystemExit("the server did not start") from None
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
    parser.add_argument("--requests", type=int, default=150, help="measured calls per in-process figure")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up calls (not measured)")
    parser.add_argument("--chars", type=int, default=2000, help="characters of a measured call")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--http-requests", type=int, default=300)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    predictor = Predictor.load(args.model)
    print(f"model {predictor.model_version}")
    inputs = load_inputs(max(args.http_requests, args.batch))
    bench_in_process(predictor, inputs, args.batch, requests=args.requests, warmup=args.warmup, chars=args.chars)
    if not args.no_http:
        bench_http(args.model, inputs[: args.http_requests], args.batch)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
