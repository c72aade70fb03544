import orjson
import pytest
from fastapi.testclient import TestClient

from serve.main import create_app
from serve.settings import Settings

CALL = {
    "interaction_id": "call-1",
    "channel": "call",
    "turns": [
        {"role": "operator", "text": "билайн добрый день"},
        {"role": "client", "text": "сняли деньги непонятно за что с баланса"},
    ],
}
CHAT = {"interaction_id": "chat-1", "channel": "chat", "text": "где мой заказ статус не меняется"}


@pytest.fixture(scope="module")
def client(trained_bundle_dir, api_keys):
    app = create_app(Settings(model_dir=trained_bundle_dir, api_keys_file=api_keys.file))
    with TestClient(app, headers=api_keys.headers()) as c:
        yield c


def test_api_suggest_contract(client):
    r = client.post("/v1/suggest", json=CALL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["interaction_id"] == "call-1"
    assert body["model_version"].startswith("podskazka-tfidf-")
    assert set(body["predictions"]) == {"reason2", "topic", "resolution"}
    reason2 = body["predictions"]["reason2"]
    assert reason2[0]["label"] == "За что списание?" and len(reason2) == 3
    assert [x["confidence"] for x in reason2] == sorted((x["confidence"] for x in reason2), reverse=True)
    macros = body["macros"]
    assert macros and {"id", "text", "confidence"} <= set(macros[0])
    assert [m["confidence"] for m in macros] == sorted((m["confidence"] for m in macros), reverse=True)


def test_api_body_is_the_suggestion_to_dict(client, predictor):
    """The /v1/suggest contract: the body is Suggestion.to_dict() with the id, version and duplicate, byte for byte."""
    for payload in (CALL, CHAT, {**CHAT, "tasks": ["topic", "resolution"], "top_k": 5}):
        r = client.post("/v1/suggest", json=payload)
        assert r.status_code == 200, r.text
        row = {k: v for k, v in payload.items() if k not in ("interaction_id", "tasks", "top_k")}
        [suggestion] = predictor.predict([row], tasks=payload.get("tasks"), top_k=payload.get("top_k", 3))
        expected = {
            "interaction_id": payload["interaction_id"],
            "model_version": predictor.model_version,
            **suggestion.to_dict(),
            "duplicate": None,
        }
        assert r.content == orjson.dumps(expected)  # the server renders JSON with orjson


def test_api_suggest_plain_text_tasks_top_k(client):
    r = client.post("/v1/suggest", json={**CHAT, "tasks": ["topic"], "top_k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["predictions"]) == ["topic"]
    assert body["predictions"]["topic"][0]["label"] == "Статус заказа"
    assert len(body["predictions"]["topic"]) == 5


def test_api_batch_matches_single(client):
    r = client.post("/v1/suggest/batch", json={"interactions": [CALL, CHAT, {**CHAT, "tasks": ["resolution"]}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["interaction_id"] for x in results] == ["call-1", "chat-1", "chat-1"]
    single = client.post("/v1/suggest", json=CHAT).json()
    assert results[1]["predictions"] == single["predictions"]
    assert list(results[2]["predictions"]) == ["resolution"]


def test_api_batch_limit(client):
    r = client.post("/v1/suggest/batch", json={"interactions": [CHAT] * 257})
    assert r.status_code == 422
    assert "interactions" in r.json()["error"]["message"]


def test_api_meta_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    tax = client.get("/v1/taxonomy").json()
    assert [x["label"] for x in tax["tasks"]["resolution"]["labels"]][0] == "Решено"
    model = client.get("/v1/model").json()
    assert model["manifest"]["model_id"] == model["model_version"]
    assert "holdout" in model["manifest"]["metrics"]


BAD_REQUESTS = [
    ("malformed json", b'{"turns": [', 400, "malformed_json", "not valid JSON"),
    ("unknown task", {**CHAT, "tasks": ["intent"]}, 422, "input_invalid", "unknown task"),
    ("unknown role", {"turns": [{"role": "robot", "text": "x"}]}, 422, "invalid_request", "turns.0.role"),
    ("empty turns", {"turns": []}, 422, "invalid_request", "'turns' is empty"),
    ("no text", {"channel": "chat"}, 422, "invalid_request", "give 'turns'"),
    ("too long", {"text": "а" * 20_001}, 422, "invalid_request", "text"),
    (
        "too long in total",
        {"turns": [{"role": "client", "text": "а" * 15_000}] * 2},
        422,
        "input_invalid",
        "limit is 20000",
    ),
    ("too many turns", {"turns": [{"role": "client", "text": "а"}] * 201}, 422, "invalid_request", "turns"),
    ("wrong type", {"turns": "hello"}, 422, "invalid_request", "turns"),
    ("wrong top_k", {**CHAT, "top_k": "three"}, 422, "invalid_request", "top_k"),
    ("bad channel", {**CHAT, "channel": "fax"}, 422, "invalid_request", "channel"),
    ("empty text", {"turns": [{"role": "client", "text": "  "}]}, 422, "input_invalid", "text is empty"),
]


@pytest.mark.parametrize("name, payload, status, code, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_api_bad_input_then_good_request(client, name, payload, status, code, message):
    if isinstance(payload, bytes):
        r = client.post("/v1/suggest", content=payload, headers={"content-type": "application/json"})
    else:
        r = client.post("/v1/suggest", json=payload)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert message in error["message"]
    good = client.post("/v1/suggest", json=CALL)
    assert good.status_code == 200


def test_api_unknown_route_uses_envelope(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_api_body_too_large(trained_bundle_dir, api_keys):
    app = create_app(Settings(model_dir=trained_bundle_dir, max_body_bytes=1_000, api_keys_file=api_keys.file))
    with TestClient(app, headers=api_keys.headers()) as c:
        r = c.post("/v1/suggest", json={"text": "а" * 2_000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_api_not_ready_without_model(tmp_path, api_keys):
    app = create_app(Settings(model_dir=tmp_path / "none", api_keys_file=api_keys.file))
    c = TestClient(app, headers=api_keys.headers())  # no context manager: the lifespan (model load) has not run
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    r = c.post("/v1/suggest", json=CHAT)
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_api_broken_bundle_stops_start_up(bundle_copy):
    (bundle_copy / "macros.json").write_text("{}")
    app = create_app(Settings(model_dir=bundle_copy))
    with pytest.raises(Exception, match="checksum mismatch"):
        with TestClient(app):
            pass


def test_api_real_server_process(trained_bundle_dir, tmp_path):
    """`podskazka serve` as a user runs it: a real uvicorn process on a free loopback port; with no keys
    configured it makes a local dev key and the requests carry it."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODSKAZKA_")}
    env["PODSKAZKA_DEV_KEYS_FILE"] = str(tmp_path / "var" / "dev-keys.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--model", str(trained_bundle_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.3)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/suggest",
            data=json.dumps(CALL).encode(),
            headers={
                "content-type": "application/json",
                "authorization": "Bearer " + (tmp_path / "var" / "dev-key.txt").read_text().strip(),
            },
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        assert body["predictions"]["reason2"][0]["label"] == "За что списание?"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
