"""The model registry (serve/registry.py), its CLI, and hot reload (serve/reload.py): in process and
under load in a real uvicorn server."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serve import registry
from serve.main import create_app
from serve.reload import smoke_test
from serve.settings import Settings
from training.cli import app as cli

ROOT = Path(__file__).resolve().parents[2]
CALL = {"channel": "call", "turns": [{"role": "client", "text": "сняли деньги непонятно за что с баланса"}]}


def _renamed_copy(source: Path, target: Path, model_id: str) -> Path:
    """A copy of a bundle under another model id (the manifest is not among the checksummed files),
    i.e. a second valid bundle without a second training run."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    manifest["model_id"] = model_id
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return target


@pytest.fixture
def reg(tmp_path, trained_bundle_dir) -> Path:
    """A registry with bundles ``a`` and ``b`` (valid, different ids) and ``broken`` (a weight file
    damaged after training: refused by its checksum); ``a`` active."""
    root = tmp_path / "registry"
    root.mkdir()
    _renamed_copy(trained_bundle_dir, root / "a", "podskazka-test-a")
    _renamed_copy(trained_bundle_dir, root / "b", "podskazka-test-b")
    broken = _renamed_copy(trained_bundle_dir, root / "broken", "podskazka-test-broken")
    victim = next(p for p in sorted((broken / "weights").rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\0")
    registry.activate(root, "a")
    return root


def _cli(*args: str):
    result = CliRunner().invoke(cli, list(args))
    return result


# -- the registry and its CLI --------------------------------------------------------------------


def test_registry_list_activate_rollback_through_cli(reg):
    listed = _cli("models", "list", "--registry", str(reg), "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in json.loads(listed.output)}
    assert set(rows) == {"a", "b", "broken"}
    assert rows["a"]["active"] and not rows["b"]["active"]
    assert rows["b"]["model_id"] == "podskazka-test-b" and rows["b"]["kind"] == "tfidf" and rows["b"]["created"]

    assert _cli("models", "activate", "b", "--registry", str(reg)).exit_code == 0
    assert (reg / "ACTIVE").read_text().strip() == "b"
    assert registry.resolve(reg) == reg / "b"
    text = _cli("models", "list", "--registry", str(reg)).output
    assert any(line.startswith("* b") for line in text.splitlines()), text

    back = _cli("models", "rollback", "--registry", str(reg))
    assert back.exit_code == 0 and "a" in back.output
    assert registry.active_name(reg) == "a"
    # nothing earlier than the first activation
    with pytest.raises(Exception, match="no earlier activation"):
        registry.rollback(reg)
    # repeated rollbacks walk back one activation each
    registry.activate(reg, "b")
    registry.activate(reg, "a")
    assert registry.rollback(reg)["to"] == "b"
    assert registry.rollback(reg)["to"] == "a"
    actions = [e["action"] for e in registry.history(reg)]
    assert actions == ["activate", "activate", "rollback", "activate", "activate", "rollback", "rollback"]


def test_registry_refuses_broken_and_unknown_bundles(reg):
    broken = _cli("models", "activate", "broken", "--registry", str(reg))
    assert broken.exit_code != 0
    assert registry.active_name(reg) == "a"
    unknown = _cli("models", "activate", "nope", "--registry", str(reg))
    assert unknown.exit_code != 0
    with pytest.raises(Exception, match="not a bundle folder name"):
        registry.activate(reg, "../a")
    assert registry.active_name(reg) == "a"
    # a bundle folder is not a registry, and serves itself
    assert registry.resolve(reg / "b") == reg / "b"


def test_registry_module_entry_point_for_images_without_training(reg, capsys):
    assert registry.main(["--registry", str(reg), "activate", "b"]) == 0
    assert registry.main(["--registry", str(reg), "list"]) == 0
    assert "* b" in capsys.readouterr().out
    assert registry.main(["--registry", str(reg), "activate", "broken"]) == 2


def test_smoke_test_refuses_a_model_whose_confidences_do_not_sum_to_one(predictor, monkeypatch):
    smoke_test(predictor)  # a good one passes

    real = predictor.predict

    def halved(*args, **kwargs):
        return [
            dataclasses.replace(
                result,
                predictions={
                    task: tuple(dataclasses.replace(x, confidence=x.confidence / 2) for x in ranked)
                    for task, ranked in result.predictions.items()
                },
            )
            for result in real(*args, **kwargs)
        ]

    monkeypatch.setattr(predictor, "predict", halved)
    with pytest.raises(Exception, match="sum to"):
        smoke_test(predictor)


# -- hot reload in process -----------------------------------------------------------------------


def test_reload_swaps_verified_bundle_and_keeps_old_on_failure(reg, tmp_path, api_keys):
    settings = Settings(
        model_dir=reg, api_keys_file=api_keys.file, feedback_db=tmp_path / "fb.sqlite3", reload_seconds=0
    )
    with TestClient(create_app(settings), headers=api_keys.headers()) as client:
        assert client.post("/v1/suggest", json=CALL).json()["model_version"] == "podskazka-test-a"
        with client.websocket_connect("/v1/live") as ws:  # a live session across the swap
            ws.send_json({"type": "start", "interaction_id": "live-r", "channel": "call"})
            assert ws.receive_json()["model_version"] == "podskazka-test-a"
            ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": "сняли деньги", "final": True})
            assert ws.receive_json()["model_version"] == "podskazka-test-a"

            nothing = client.post("/v1/models/reload").json()
            assert nothing["changed"] is False and nothing["error"] is None

            registry.activate(reg, "b")
            swapped = client.post("/v1/models/reload").json()
            assert swapped == {"changed": True, "model_version": "podskazka-test-b", "error": None}
            ws.send_json({"type": "turn", "seq": 1, "role": "client", "text": "непонятно за что", "final": True})
            update = ws.receive_json()
            assert update["type"] == "suggestions" and update["model_version"] == "podskazka-test-b"

        registry.activate(reg, "broken", check=False)
        refused = client.post("/v1/models/reload").json()
        assert refused["changed"] is False and refused["model_version"] == "podskazka-test-b"
        assert "checksum" in refused["error"]["message"]
        assert client.post("/v1/suggest", json=CALL).json()["model_version"] == "podskazka-test-b"
        ready = client.get("/readyz").json()
        assert ready["model_version"] == "podskazka-test-b" and ready["reload_failed"] is True
        info = client.get("/v1/model").json()
        assert info["model_version"] == "podskazka-test-b" and "checksum" in info["reload"]["last_error"]["message"]

        registry.rollback(reg)  # back to b, which is being served: the error clears
        registry.rollback(reg)  # to a
        assert client.post("/v1/models/reload").json()["model_version"] == "podskazka-test-a"
        assert "reload_failed" not in client.get("/readyz").json()
        # only admins may trigger a reload
        assert client.post("/v1/models/reload", headers=api_keys.headers("analyst")).status_code == 403


# -- hot reload under load in a real server ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sample(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("workers", [1, 2])
def test_hot_reload_under_load_in_uvicorn(reg, tmp_path, api_keys, workers):
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PODSKAZKA_API_KEYS_FILE": str(api_keys.file),
        "PODSKAZKA_RELOAD_SECONDS": "0.3",
        "PODSKAZKA_FEEDBACK_DB": str(tmp_path / "fb.sqlite3"),
        "PODSKAZKA_MODEL_WORKERS": "2",
        "PODSKAZKA_MODEL_QUEUE": "64",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serve",
                "--model",
                str(reg),
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-format",
                "json",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    headers = api_keys.headers()
    secret = "уникальнаяфраза" + "42"
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load():
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"channel": "call", "turns": [{"role": "client", "text": f"сняли деньги {secret} {n}"}]}
                r = http.post("/v1/suggest", json=body, headers={"x-request-id": f"load-{n}"})
                results.append((r.status_code, r.json().get("model_version") if r.status_code == 200 else r.text))

    try:

        def ready():
            try:
                return httpx.get(base + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise AssertionError(log_path.read_text(errors="replace")[-3000:]) from None
                return False

        _wait(ready, 90, "the server to start")
        # /readyz answers from the first worker up; the others may still be loading bundle a
        _wait(
            lambda: (
                _sample(httpx.get(base + "/metrics", headers=headers, timeout=10).text, "podskazka_workers_ready")
                == workers
            ),
            90,
            "every worker to load bundle a",
        )
        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        _wait(lambda: len(results) >= 10, 30, "requests on bundle a")

        registry.activate(reg, "b")
        seen = len(results)
        # every worker has switched once the last 2 * workers * 5 answers all come from b
        _wait(
            lambda: (
                len(results) > seen + 10 * workers and all(v == "podskazka-test-b" for _, v in results[-10 * workers :])
            ),
            60,
            "the switch to b",
        )

        registry.activate(reg, "broken", check=False)
        metrics_of = lambda: httpx.get(base + "/metrics", headers=headers, timeout=10).text
        _wait(
            lambda: _sample(metrics_of(), "podskazka_model_reloads_total", result="failed") >= workers,
            60,
            "every worker to refuse the broken bundle",
        )
        mark = len(results)
        _wait(lambda: len(results) >= mark + 10, 30, "requests after the refusal")
        stop.set()
        thread.join(30)

        statuses = {status for status, _ in results}
        assert statuses == {200}, [r for r in results if r[0] != 200][:3]
        versions = [v for _, v in results]
        assert set(versions) == {"podskazka-test-a", "podskazka-test-b"}
        assert versions[0] == "podskazka-test-a" and all(v == "podskazka-test-b" for v in versions[mark:])
        if workers == 1:  # one process: the version changes exactly once
            changes = sum(1 for x, y in itertools.pairwise(versions) if x != y)
            assert changes == 1, changes

        text = metrics_of()
        assert _sample(text, "podskazka_model_reloads_total", result="ok") == workers
        assert _sample(text, "podskazka_model_info", model_version="podskazka-test-b") == 1
        assert _sample(text, "podskazka_model_info", model_version="podskazka-test-a") == 0
        assert _sample(text, "podskazka_http_requests_total", route="/v1/suggest", status="200") >= len(results) - 5
        ready_body = httpx.get(base + "/readyz").json()
        assert ready_body["model_version"] == "podskazka-test-b" and ready_body["reload_failed"] is True
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)

    # the server's log: JSON lines, with request ids; never the text sent or a key
    lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(parsed) >= len(lines) - 2, [line for line in lines if not line.startswith("{")][:5]
    access = [e for e in parsed if e.get("logger") == "podskazka.access" and e.get("route") == "/v1/suggest"]
    assert {"load-1", "load-2"} <= {e.get("request_id") for e in access}
    assert all(e["status"] == 200 and "duration_ms" in e and e.get("model_version") for e in access)
    assert any(e.get("event") == "reload_failed" for e in parsed)
    raw = log_path.read_text(encoding="utf-8", errors="replace")
    assert secret not in raw and api_keys.keys["admin"] not in raw
