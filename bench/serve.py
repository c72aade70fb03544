"""HTTP throughput and latency of ``podskazka serve``: POST /v1/suggest against GET /healthz. Prints figures; asserts nothing.

    python bench/serve.py --model models/default [--workers 2] [--concurrency 1 4 16] [--duration 10]
                          [--calls 8] [--chars 2000] [--one-worker 4] [--tool auto|wrk|python]

Starts the real server (``podskazka serve --workers N``, default one per core) on a free loopback port
with a temporary API keys file holding one operator key, waits for /readyz, warms every worker, then
in the same run, for each concurrency C: POST /v1/suggest for --duration seconds over C keep-alive
connections (--calls different calls of about --chars characters from the corpus, rotated request by
request; the full response: every task, 3 macros with filled slots, the comment rule), then GET
/healthz the same way. Per cell: requests/s, latency p50/p99, errors (non-2xx answers and socket
errors: connect, read, write, timeout), the server's CPU time per request (its whole process tree,
from /proc), and per concurrency the ratio suggest rps / healthz rps (healthz is the ceiling of the
HTTP stack itself: what is left of it is the model's share). Then one row with ``--workers 1`` at
--one-worker connections (0: none).

The load generator is ``wrk`` with a Lua script (bodies rotated from a Lua table read from files,
the Authorization header, non-2xx counted in ``response``, percentiles printed as JSON by ``done``)
when wrk is on PATH, else a Python one (a thread per connection, http.client keep-alive). Either
shares the machine's cores with the server: on 2 cores, the figures are what one machine does
serving and loading itself. The measured calls repeat (--calls of them, rotated), so the per-turn
caches are warm after the first round: bench/predict.py measures cold calls in-process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from predict import long_calls  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve.auth import add_key  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

LUA = r"""
local paths = {%(paths)s}
local method, path = "%(method)s", "%(path)s"
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"}
local bodies, requests = {}, {}
local n = 0
non2xx = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, p in ipairs(paths) do
    local f = assert(io.open(p, "rb"))
    bodies[i] = f:read("*a")
    f:close()
  end
  if #bodies == 0 then bodies[1] = nil end
  for i = 1, math.max(#bodies, 1) do
    requests[i] = wrk.format(method, path, headers, bodies[i])
  end
  n = math.random(#requests) - 1  -- threads start at different calls
end

function request()
  n = n %% #requests + 1
  return requests[n]
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "mean_us": %%.1f, "max_us": %%d, ' ..
    '"non2xx": %%d, "connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    bad, e.connect, e.read, e.write, e.timeout))
end
"""


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(root: int) -> float:
    """user + system CPU seconds of ``root`` and every live descendant (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(entry)] = fields
            parents.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime (fields 14 and 15)
        todo.extend(parents.get(pid, []))
    return total / CLOCK_TICKS


class Server:
    def __init__(self, model: Path, workers: int, keys_file: Path, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).parent / "podskazka"
        cmd = [
            str(exe) if exe.exists() else shutil.which("podskazka") or "podskazka",
            "serve",
            "--model",
            str(model),
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        env = {
            **os.environ,
            "PODSKAZKA_API_KEYS_FILE": str(keys_file),
            "PODSKAZKA_FEEDBACK_DB": str(tmp / "fb.sqlite3"),
            "PODSKAZKA_DEV_KEYS_FILE": str(tmp / "dev-keys.json"),
        }
        self.log = tmp / f"server-{workers}.log"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.workers = workers
        deadline, ready = time.time() + 180, 0
        while ready < 3 * workers:  # every worker loads its own model: several answers in a row
            try:
                urllib.request.urlopen(f"{self.base}/readyz", timeout=5)
                ready += 1
            except (OSError, urllib.error.HTTPError):
                ready = 0
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise SystemExit(f"the server did not start:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.3)

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def post(base: str, key: str, body: bytes, timeout: float = 120) -> dict:
    req = urllib.request.Request(
        f"{base}/v1/suggest", data=body, headers={"content-type": "application/json", "authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def warm(server: Server, key: str, bodies: list[bytes]) -> None:
    """Every worker answers every body at least once (new connections spread over the workers)."""

    def one(i: int) -> None:
        for body in bodies[i % len(bodies) :] + bodies[: i % len(bodies)]:
            post(server.base, key, body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4 * server.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_wrk(base: str, lua: Path, concurrency: int, duration: float) -> dict:
    cmd = [
        "wrk",
        "-t",
        str(min(concurrency, os.cpu_count() or 1)),
        "-c",
        str(concurrency),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        base + "/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no figures ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRK_JSON ") :])
    seconds = r["duration_us"] / 1e6
    return {
        "requests": r["requests"],
        "rps": r["requests"] / seconds,
        "p50": r["p50_us"] / 1000,
        "p99": r["p99_us"] / 1000,
        "non2xx": r["non2xx"],
        "socket": r["connect"] + r["read"] + r["write"] + r["timeout"],
    }


def run_python(
    base: str, key: str, method: str, path: str, bodies: list[bytes], concurrency: int, duration: float
) -> dict:
    host, port = base.split("//")[1].split(":")
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    lock = threading.Lock()
    times: list[float] = []
    counts = {"non2xx": 0, "socket": 0}
    start = time.perf_counter()
    stop = start + duration

    def worker(i: int) -> None:
        conn, n, mine, bad, errors = None, i, [], 0, 0
        while time.perf_counter() < stop:
            body = bodies[n % len(bodies)] if bodies else None
            n += 1
            try:
                conn = conn or http.client.HTTPConnection(host, int(port), timeout=30)
                t = time.perf_counter()
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - t) * 1000)
                bad += not 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            times.extend(mine)
            counts["non2xx"] += bad
            counts["socket"] += errors

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    a = np.asarray(times or [float("nan")])
    return {
        "requests": len(times),
        "rps": len(times) / seconds,
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        **counts,
    }


def measure(
    server: Server,
    tool: str,
    key: str,
    bodies: list[bytes],
    lua: dict[str, Path],
    endpoint: str,
    concurrency: int,
    duration: float,
) -> dict:
    cpu = server.cpu()
    if tool == "wrk":
        r = run_wrk(server.base, lua[endpoint], concurrency, duration)
    elif endpoint == "suggest":
        r = run_python(server.base, key, "POST", "/v1/suggest", bodies, concurrency, duration)
    else:
        r = run_python(server.base, key, "GET", "/healthz", [], concurrency, duration)
    r["cpu_ms"] = (server.cpu() - cpu) * 1000 / max(r["requests"], 1)
    return r


def row(workers: int, endpoint: str, c: int, r: dict) -> str:
    return (
        f"| {workers} | {endpoint} | {c} | {r['rps']:,.1f} | {r['p50']:.1f} | {r['p99']:.1f} | "
        f"{r['non2xx']} + {r['socket']} | {r['cpu_ms']:.2f} | {r['requests']:,} | {loadavg()} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--workers", type=int, default=0, help="server processes (0: one per core)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--calls", type=int, default=8, help="different calls rotated")
    parser.add_argument("--chars", type=int, default=2000, help="characters of a call")
    parser.add_argument("--one-worker", type=int, default=4, help="connections of the --workers 1 row (0: none)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    tool = ("wrk" if shutil.which("wrk") else "python") if args.tool == "auto" else args.tool
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = args.workers or cores
    calls = long_calls(args.calls, chars=args.chars)
    tmp = Path(tempfile.mkdtemp(prefix="podskazka-bench-serve-"))
    try:
        key = add_key(tmp / "keys.json", "bench", ["operator"])
        bodies, paths = [], []
        for i, call in enumerate(calls):
            body = json.dumps({"interaction_id": f"bench-{i}", **call}, ensure_ascii=False).encode()
            (tmp / f"body-{i}.json").write_bytes(body)
            bodies.append(body)
            paths.append(str(tmp / f"body-{i}.json"))
        lua = {}
        for endpoint, method, path, files in (
            ("suggest", "POST", "/v1/suggest", paths),
            ("healthz", "GET", "/healthz", []),
        ):
            lua[endpoint] = tmp / f"{endpoint}.lua"
            lua[endpoint].write_text(
                LUA % {"paths": ", ".join(json.dumps(p) for p in files), "method": method, "path": path, "key": key}
            )
        sizes = [sum(len(t["text"]) for t in c["turns"]) for c in calls]
        print(f"load average {loadavg()}; {cores} cores; load generator {tool}; {args.duration:g} s per cell")
        print(
            f"{len(calls)} calls rotated: {np.median(sizes):,.0f} characters, "
            f"{np.median([len(c['turns']) for c in calls]):.0f} turns, {np.median([len(b) for b in bodies]):,.0f} "
            f"body bytes at the median"
        )
        results: dict[tuple[int, str, int], dict] = {}
        header = (
            "| workers | endpoint | connections | requests/s | p50 ms | p99 ms | errors (non-2xx + socket) | "
            "server CPU ms/request | requests | load average |\n|---|---|---|---|---|---|---|---|---|---|"
        )
        plan = [(workers, args.concurrency)]
        if args.one_worker and workers != 1:
            plan.append((1, [args.one_worker]))
        printed = False
        for n_workers, concurrencies in plan:
            t = time.perf_counter()
            server = Server(args.model, n_workers, tmp / "keys.json", tmp)
            try:
                ready = time.perf_counter() - t
                t = time.perf_counter()
                warm(server, key, bodies)
                sample = post(server.base, key, bodies[0])
                macros = sample.get("macros") or []
                print(
                    f"server --workers {n_workers} on {server.base}: ready in {ready:.1f} s, warmed in "
                    f"{time.perf_counter() - t:.1f} s; a response: tasks {sorted(sample['predictions'])}, "
                    f"{len(macros)} macros, {sum(len(m['filled_slots']) for m in macros)} filled slots, "
                    f"comment rule {'yes' if sample.get('comment_required') is not None else 'no'}"
                )
                if not printed:
                    print(header)
                    printed = True
                for c in concurrencies:
                    for endpoint in ("suggest", "healthz"):
                        r = measure(server, tool, key, bodies, lua, endpoint, c, args.duration)
                        results[(n_workers, endpoint, c)] = r
                        print(row(n_workers, endpoint, c, r), flush=True)
            finally:
                server.stop()
        print("suggest rps / healthz rps:")
        for n_workers, concurrencies in plan:
            for c in concurrencies:
                s, h = results[(n_workers, "suggest", c)], results[(n_workers, "healthz", c)]
                print(
                    f"  --workers {n_workers}, {c} connection(s): {s['rps']:,.1f} / {h['rps']:,.1f} = "
                    f"{s['rps'] / max(h['rps'], 1e-9):.4f}"
                )
        print(f"load average {loadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
