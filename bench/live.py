"""Live round-trip latency per turn over a real uvicorn server on loopback. Prints figures; asserts nothing.

    python bench/live.py --model models/default [--sessions 60] [--parallel 1 8] [--partials 3] [--workers 2]
    python bench/live.py --model models/default --lengths 5 50 200 [--length-sessions 5]

The server runs with a temporary API keys file holding one operator key; each connection sends
``{"type": "auth", "key": ...}`` (answered ``authenticated``) before ``start``.

Default mode: for each conversation (calls and chats from datasets/corpus, else a built-in pair) one
WebSocket session on /v1/live: ``start``, then per turn a few partial prefixes and the final turn.
The round trip of a turn is the time from sending its final message to receiving the
``suggestions`` message of that ``seq`` with ``final: true`` (the model runs in the server's thread
pool). Run once without ``client_id`` and once with it (then each final turn also writes the
interaction to the SQLite store for the duplicate check); with ``--parallel N`` sessions stream at
the same time.

``--lengths``: is the cost of a turn flat in the conversation's length? For each length L,
--length-sessions sessions (one at a time) of L turns, the turns of corpus calls joined in order
(no turn in two sessions, so the per-turn caches are cold), each turn sent as one or two partials
(alternately) and then the final; the figure is the round-trip p50/p99 of the LAST 5 final turns of
each session (the cost of a turn at that length), beside the same turns through
Predictor.predict_live in-process (the model alone, with its running sums).
"""

from __future__ import annotations

import argparse
import contextlib
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
from predict import load_inputs  # bench/ is on sys.path when this script runs
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve.auth import add_key  # noqa: E402

LAST = 5  # --lengths: the final turns of each session that are measured


def load_conversations(n: int) -> list[dict]:
    """Calls and chats from the corpus (the live channels), at most 12 turns each."""
    return load_inputs(n, channels=("call", "chat"), max_turns=12)


def call_turns(seed: int = 0) -> list[dict]:
    """The turns of every telecom corpus call, calls whole and in a seeded order (a long stream to cut
    sessions of any length from)."""
    rows = []
    for path in sorted((ROOT / "datasets" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["channel"] == "call" and r.get("reason2") and r.get("turns"):
                rows.append(r["turns"])
    order = np.random.default_rng(seed).permutation(len(rows))
    return [dict(t) for j in order for t in rows[j] if t["text"].strip()]


def start_server(model_dir: Path, tmp: Path, workers: int) -> tuple[subprocess.Popen, str, str]:
    """A server with a fresh keys file (one operator key): (process, ws URL, key)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = add_key(tmp / "keys.json", "bench-live", ["operator"])
    env = {
        **os.environ,
        "PODSKAZKA_FEEDBACK_DB": str(tmp / "bench.sqlite3"),
        "PODSKAZKA_API_KEYS_FILE": str(tmp / "keys.json"),
        "PODSKAZKA_DEV_KEYS_FILE": str(tmp / "dev-keys.json"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "serve", "--model", str(model_dir), "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline, ready = time.time() + 180, 0
    while ready < 3 * max(workers, 1):  # every worker loads its own model: several answers in a row
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
            ready += 1
        except OSError:
            ready = 0
            if time.time() > deadline or proc.poll() is not None:
                proc.terminate()
                raise SystemExit("the server did not start") from None
            time.sleep(0.3)
    return proc, f"ws://127.0.0.1:{port}/v1/live", key


@contextlib.contextmanager
def open_session(url: str, key: str, start: dict):
    """A connected, authenticated socket with its interaction started."""
    with connect(url, max_size=2**22) as ws:
        ws.send(json.dumps({"type": "auth", "key": key}))
        reply = json.loads(ws.recv())
        if reply.get("type") != "authenticated":
            raise SystemExit(f"auth refused: {reply}")
        ws.send(json.dumps(start))
        reply = json.loads(ws.recv())
        if reply.get("type") != "started":
            raise SystemExit(f"start refused: {reply}")
        yield ws


def final_round_trip(ws, seq: int, message: dict) -> float:
    """Send a final turn; ms until its ``suggestions`` (debounced answers to partials skipped)."""
    t = time.perf_counter()
    ws.send(json.dumps(message))
    while True:
        reply = json.loads(ws.recv())
        if reply["type"] == "suggestions" and reply["seq"] == seq and reply["final"]:
            return (time.perf_counter() - t) * 1000
        if reply["type"] == "error":
            raise SystemExit(f"server error: {reply}")


def run_session(
    url: str, key: str, conversation: dict, session_id: str, client_id: str | None, partials: int
) -> list[float]:
    """Stream one conversation; returns the round trip (ms) of each final turn."""
    times = []
    start = {"type": "start", "interaction_id": session_id, "channel": conversation["channel"]}
    if client_id:
        start["client_id"] = client_id
    with open_session(url, key, start) as ws:
        for seq, turn in enumerate(conversation["turns"]):
            words = turn["text"].split()
            for k in range(1, partials + 1):
                cut = max(1, len(words) * k // (partials + 1))
                ws.send(
                    json.dumps(
                        {
                            "type": "turn",
                            "seq": seq,
                            "role": turn["role"],
                            "text": " ".join(words[:cut]),
                            "final": False,
                        }
                    )
                )
            times.append(
                final_round_trip(
                    ws, seq, {"type": "turn", "seq": seq, "role": turn["role"], "text": turn["text"], "final": True}
                )
            )
        ws.send(json.dumps({"type": "end"}))
    return times


def stream_long(url: str, key: str, turns: list[dict], session_id: str) -> list[float]:
    """One call session of ``turns``: each turn as one (even seq) or two (odd) partial prefixes, then
    the final. The round trip (ms) of every final turn."""
    times = []
    with open_session(url, key, {"type": "start", "interaction_id": session_id, "channel": "call"}) as ws:
        for seq, turn in enumerate(turns):
            words = turn["text"].split()
            n = 1 + seq % 2
            for k in range(1, n + 1):
                ws.send(
                    json.dumps(
                        {
                            "type": "turn",
                            "seq": seq,
                            "role": turn["role"],
                            "text": " ".join(words[: max(1, len(words) * k // (n + 1))]),
                            "final": False,
                        }
                    )
                )
            times.append(
                final_round_trip(
                    ws, seq, {"type": "turn", "seq": seq, "role": turn["role"], "text": turn["text"], "final": True}
                )
            )
        ws.send(json.dumps({"type": "end"}))
    return times


def live_in_process(predictor, turns: list[dict]) -> list[float]:
    """The same session through Predictor.predict_live in-process (final turns only): ms per turn."""
    from model.conversation.record import interaction_from_dict

    state = predictor.live_state("call")
    times = []
    for n in range(1, len(turns) + 1):
        interaction = interaction_from_dict({"channel": "call", "turns": turns[:n]})
        t = time.perf_counter()
        predictor.predict_live(state, interaction, top_k=None)
        times.append((time.perf_counter() - t) * 1000)
    return times


def bench_lengths(url: str, key: str, model_dir: Path, lengths: list[int], sessions: int) -> None:
    from model.predictor import Predictor

    stream, at = call_turns(), 0

    def take(n: int) -> list[dict]:
        nonlocal at
        if at + n > len(stream):
            raise SystemExit(
                f"the corpus calls have {len(stream)} turns: too few for these --lengths/--length-sessions"
            )
        at += n
        return stream[at - n : at]

    predictor = Predictor.load(model_dir)
    warm = take(30)
    live_in_process(predictor, warm)  # lazy loads (spaCy, pymorphy)
    stream_long(url, key, take(30), "len-warm")
    print(
        f"round trip of the last {LAST} final turns of each session (sessions one at a time; the server "
        f"against the model alone in-process on the same turns):"
    )
    print(
        "| turns | sessions | characters (median) | round trip p50 ms | p99 ms | every final turn p50 ms | "
        "in-process predict_live p50 ms | p99 ms | load average |\n|---|---|---|---|---|---|---|---|---|"
    )
    for length in lengths:
        over, every, alone, chars = [], [], [], []
        for i in range(sessions):
            turns = take(length)
            chars.append(sum(len(t["text"]) for t in turns))
            times = stream_long(url, key, turns, f"len{length}-{i}")
            over.extend(times[-LAST:])
            every.extend(times)
            alone.extend(live_in_process(predictor, take(length))[-LAST:])  # other turns: cold caches there too
        o, a = np.asarray(over), np.asarray(alone)
        print(
            f"| {length} | {sessions} | {np.median(chars):,.0f} | {np.percentile(o, 50):.1f} | {np.percentile(o, 99):.1f} | "
            f"{np.percentile(every, 50):.1f} | {np.percentile(a, 50):.1f} | {np.percentile(a, 99):.1f} | "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} |",
            flush=True,
        )


def bench(
    url: str, key: str, conversations: list[dict], *, parallel: int, with_client: bool, partials: int, tag: str
) -> None:
    lock = threading.Lock()
    samples: list[float] = []

    def one(i: int) -> None:
        client_id = f"bench-client-{i % 7}" if with_client else None
        got = run_session(url, key, conversations[i], f"{tag}-{i}", client_id, partials)
        with lock:
            samples.extend(got)

    for i in range(min(4, len(conversations))):  # warm-up (with client_id: each worker opens its store)
        run_session(url, key, conversations[i], f"{tag}-warm-{i}", "bench-warm" if with_client else None, 0)
    t = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(len(conversations))))
    wall = time.perf_counter() - t
    a = np.asarray(samples)
    label = f"{'with' if with_client else 'without'} client_id, {parallel} parallel session(s)"
    print(
        f"{label}: {len(a)} final turns in {len(conversations)} sessions, round trip "
        f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  mean {a.mean():.2f} ms  "
        f"({len(a) / wall:,.0f} turns/s)"
    )


def bench_in_process(model_dir: Path, conversations: list[dict]) -> None:
    """The model alone on the same growing windows: what the live path adds is the difference."""
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
    print(
        f"in-process model call on the same {len(a)} turn windows: "
        f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  mean {a.mean():.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--partials", type=int, default=3, help="partial prefixes sent before each final turn")
    parser.add_argument("--workers", type=int, default=0, help="server processes (0: one per core)")
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=None,
        help="instead of the default mode: sessions of these many turns (e.g. 5 50 200)",
    )
    parser.add_argument("--length-sessions", type=int, default=5, help="sessions per --lengths value")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    conversations = [] if args.lengths else load_conversations(args.sessions)
    if conversations:
        bench_in_process(args.model, conversations)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, key = start_server(args.model, Path(tmp), args.workers)
        try:
            print(f"server {url}, model {args.model}, --workers {args.workers or 'one per core'}")
            if args.lengths:
                bench_lengths(url, key, args.model, args.lengths, args.length_sessions)
            else:
                print(f"{args.partials} partials per turn")
            for parallel in [] if args.lengths else args.parallel:
                for with_client in (False, True):
                    bench(
                        url,
                        key,
                        conversations,
                        parallel=parallel,
                        with_client=with_client,
                        partials=args.partials,
                        tag=f"p{parallel}-{int(with_client)}",
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
