"""Logs: JSON lines with the request id, never the text sent, the client id or the key."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from serve.logs import JsonFormatter, TextFormatter, logging_config, resolve_format
from serve.main import create_app
from serve.settings import Settings

SECRET_TEXT = "мойсекретныйтекст" + "987"
SECRET_CLIENT = "client-" + "5551234"


@pytest.fixture
def captured():
    """Every log record formatted as the service's JSON lines, into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.captureWarnings(False)  # the app turns it on when it sees the service's formatter


def _client(predictor, tmp_path, api_keys) -> TestClient:
    settings = Settings(model_dir=tmp_path / "unused", feedback_db=tmp_path / "fb.sqlite3", api_keys_file=api_keys.file)
    return TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers("operator"))


def test_json_log_lines_carry_the_request_id_and_never_the_text(predictor, tmp_path, api_keys, captured):
    body = {
        "interaction_id": "i-1",
        "client_id": SECRET_CLIENT,
        "channel": "call",
        "turns": [{"role": "client", "text": f"сняли деньги {SECRET_TEXT}"}],
    }
    with _client(predictor, tmp_path, api_keys) as client:
        r = client.post("/v1/suggest", json=body, headers={"x-request-id": "req-abc.123"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-abc.123"
        bad = client.post(
            "/v1/suggest",
            json={"channel": "call", "turns": []},
            headers={"x-request-id": "no spaces or\nnewlines allowed"},
        )
        assert bad.status_code == 422
        generated = bad.headers["x-request-id"]
        assert generated != "no spaces or\nnewlines allowed" and len(generated) == 32
        too_long = client.get("/healthz", headers={"x-request-id": "x" * 65}).headers["x-request-id"]
        assert too_long != "x" * 65
        assert client.get("/v1/taxonomy", headers={"authorization": "Bearer pk_wrong-key-value"}).status_code == 401
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = [e for e in lines if e["logger"] == "podskazka.access"]
    ok = next(e for e in access if e.get("request_id") == "req-abc.123")
    assert ok["route"] == "/v1/suggest" and ok["status"] == 200 and ok["method"] == "POST"
    assert ok["duration_ms"] >= 0 and ok["model_version"] == predictor.model_version
    assert {"time", "level", "logger", "message"} <= set(ok)
    assert next(e for e in access if e.get("request_id") == generated)["status"] == 422
    for secret in (SECRET_TEXT, SECRET_CLIENT, "pk_wrong-key-value", api_keys.keys["operator"], "i-1"):
        assert secret not in text, secret


def test_log_lines_inside_model_threads_keep_the_request_id(predictor, tmp_path, api_keys, captured, monkeypatch):
    import serve.routes.suggest as suggest

    real = suggest._suggest

    def logged(*args):
        logging.getLogger("serve.test").info("inside the model thread")
        return real(*args)

    monkeypatch.setattr(suggest, "_suggest", logged)
    with _client(predictor, tmp_path, api_keys) as client:
        client.post("/v1/suggest", json={"channel": "chat", "text": "где заказ"}, headers={"x-request-id": "rid-7"})
    inside = [json.loads(line) for line in captured.getvalue().splitlines() if "inside the model thread" in line]
    assert inside and inside[0]["request_id"] == "rid-7"


def test_formats_and_config():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    record.status = 500
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "boom now" and entry["level"] == "error" and entry["status"] == 500
    assert "status=500" in TextFormatter().format(record)
    assert resolve_format("json") == "json" and resolve_format("text") == "text"
    with pytest.raises(ValueError):
        resolve_format("xml")
    config = logging_config("json")
    assert config["formatters"]["default"]["()"] == "serve.logs.JsonFormatter"
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
