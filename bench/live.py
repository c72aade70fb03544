"""Live round-trip latency per turn over a real uvicorn server on loopback. Prints figures; asserts nothing.

    python bench/live.py --model models/default [--sessions 60] [--parallel 1 8] [--partials 3]

For each conversation (calls and chats from datasets/corpus, else a built-in pair) one WebSocket
session on /v1/live: ``start``, then per turn a few partial prefixes and the final turn. The round
trip of a turn is the time from sending its final message to receiving the ``suggestions`` message
of that ``seq`` with ``final: true`` (the model runs in the server's thread pool). Run once without
``client_id`` and once with it (then each final turn also writes the interaction to the SQLite store
for the duplicate check); with ``--parallel N`` sessions stream at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

from predict import load_inputs  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]


def load_conversations(n: int) -> list[dict]:
    """Calls and chats from the corpus (the live channels), at most 12 turns each."""
    return load_inputs(n, channels=("call", "chat"), max_turns=12)


def start_server(model_dir: Path, db: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PODSKAZKA_FEEDBACK_DB": str(db)}
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--model", str(model_dir), "--port", str(port),
                             "--insecure-local"],  # a loopback server: no keys
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            return proc, f"ws://127.0.0.1:{port}/v1/live"
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.terminate()
                raise SystemExit("the server did not start")
            time.sleep(0.3)


def run_session(url: str, conversation: dict, session_id: str, client_id: str | None, partials: int) -> list[float]:
    """Stream one conversation; returns the round trip (ms) of each final turn."""
    times = []
    with connect(url, max_size=2**22) as ws:
        start = {"type": "start", "interaction_id": session_id, "channel": conversation["channel"]}
        if client_id:
            start["client_id"] = client_id
        ws.send(json.dumps(start))
        assert json.loads(ws.recv())["type"] == "started"
        for seq, turn in enumerate(conversation["turns"]):
            words = turn["text"].split()
            for k in range(1, partials + 1):
                cut = max(1, len(words) * k // (partials + 1))
                ws.send(json.dumps({"type": "turn", "seq": seq, "role": turn["role"],
                                    "text": " ".join(words[:cut]), "final": False}))
            t = time.perf_counter()
            ws.send(json.dumps({"type": "turn", "seq": seq, "role": turn["role"], "text": turn["text"], "final": True}))
            while True:  # skip debounced answers to the partials
                message = json.loads(ws.recv())
                if message["type"] == "suggestions" and message["seq"] == seq and message["final"]:
                    break
                if message["type"] == "error":
                    raise SystemExit(f"server error: {message}")
            times.append((time.perf_counter() - t) * 1000)
        ws.send(json.dumps({"type": "end"}))
    return times


def bench(url: str, conversations: list[dict], *, parallel: int, with_client: bool, partials: int, tag: str) -> None:
    lock = threading.Lock()
    samples: list[float] = []

    def one(i: int) -> None:
        client_id = f"bench-client-{i % 7}" if with_client else None
        got = run_session(url, conversations[i], f"{tag}-{i}", client_id, partials)
        with lock:
            samples.extend(got)

    for i in range(min(3, len(conversations))):  # warm-up
        run_session(url, conversations[i], f"{tag}-warm-{i}", None, 0)
    t = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(len(conversations))))
    wall = time.perf_counter() - t
    a = np.asarray(samples)
    label = f"{'with' if with_client else 'without'} client_id, {parallel} parallel session(s)"
    print(f"{label}: {len(a)} final turns in {len(conversations)} sessions, round trip "
          f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  mean {a.mean():.2f} ms  "
          f"({len(a) / wall:,.0f} turns/s)")


def bench_in_process(model_dir: Path, conversations: list[dict]) -> None:
    """The model alone on the same growing windows: what the live path adds is the difference."""
    sys.path.insert(0, str(ROOT))
    from model.predictor import Predictor

    predictor = Predictor.load(model_dir)
    for conversation in conversations[:3]:
        predictor.predict([conversation], top_k=None)
    times = []
    for conversation in conversations:
        for n in range(1, len(conversation["turns"]) + 1):
            window = {"channel": conversation["channel"], "turns": conversation["turns"][:n]}
            t = time.perf_counter()
            predictor.predict([window], top_k=None)
            times.append((time.perf_counter() - t) * 1000)
    a = np.asarray(times)
    print(f"in-process model call on the same {len(a)} turn windows: "
          f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  mean {a.mean():.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--partials", type=int, default=3, help="partial prefixes sent before each final turn")
    args = parser.parse_args()
    conversations = load_conversations(args.sessions)
    bench_in_process(args.model, conversations)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(args.model, Path(tmp) / "bench.sqlite3")
        try:
            print(f"server {url}, model {args.model}, {args.partials} partials per turn")
            for parallel in args.parallel:
                for with_client in (False, True):
                    bench(url, conversations, parallel=parallel, with_client=with_client, partials=args.partials,
                          tag=f"p{parallel}-{int(with_client)}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
