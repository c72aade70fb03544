"""GET /metrics: the named series after some requests, access by role, queue rejections."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from serve.main import create_app
from serve.pool import Busy, ModelPool
from serve.settings import Settings

CALL = {"channel": "call", "turns": [{"role": "client", "text": "сняли деньги непонятно за что с баланса"}]}
CHAT = {"channel": "chat", "text": "где мой заказ статус не меняется"}


def _client(predictor, tmp_path, api_keys, **overrides) -> TestClient:
    settings = Settings(
        model_dir=tmp_path / "unused", feedback_db=tmp_path / "fb.sqlite3", api_keys_file=api_keys.file, **overrides
    )
    return TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers("operator"))


def _value(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_expose_the_named_series_after_requests(predictor, tmp_path, api_keys):
    with _client(predictor, tmp_path, api_keys) as client:
        before = client.get("/metrics", headers=api_keys.headers("analyst")).text
        for body in (CALL, CHAT, CALL):
            assert client.post("/v1/suggest", json=body).status_code == 200
        assert client.post("/v1/suggest/batch", json={"interactions": [CALL, CHAT]}).status_code == 200
        assert client.get("/v1/nothing-here/123").status_code == 404
        r = client.get("/metrics", headers=api_keys.headers("analyst"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in (
        "podskazka_http_request_duration_seconds_bucket",
        "podskazka_http_requests_total",
        "podskazka_http_requests_in_flight",
        "podskazka_queue_rejections_total",
        "podskazka_model_info",
        "podskazka_prediction_confidence_bucket",
        "podskazka_decisions_total",
        "podskazka_abstentions_total",
        "podskazka_top_label_total",
        "podskazka_model_reloads_total",
    ):
        assert name in text, name
    # latency per route template, never the raw path
    assert (
        _value(text, "podskazka_http_request_duration_seconds_count", route="/v1/suggest")
        - _value(before, "podskazka_http_request_duration_seconds_count", route="/v1/suggest")
        == 3
    )
    assert 'route="unmatched"' in text and "nothing-here" not in text
    assert _value(text, "podskazka_model_info", model_version=predictor.model_version) == 1
    # 5 conversations, every task counted once each
    for task in predictor.tasks:
        grown = _value(text, "podskazka_decisions_total", task=task) - _value(
            before, "podskazka_decisions_total", task=task
        )
        assert grown == 5, task
        assert _value(text, "podskazka_prediction_confidence_count", task=task) >= 5
    assert _value(text, "podskazka_top_label_total", task="reason2", label="За что списание?") >= 2
    # telecom tasks abstain on a marketplace chat (other domain): the abstention counter moves
    assert _value(text, "podskazka_abstentions_total", task="reason2") >= 2


def test_metrics_need_an_analyst_key_unless_public(predictor, tmp_path, api_keys):
    with _client(predictor, tmp_path, api_keys) as client:
        assert client.get("/metrics", headers={"authorization": ""}).status_code == 401
        assert client.get("/metrics").status_code == 403  # operator
        assert client.get("/metrics", headers=api_keys.headers("admin")).status_code == 200
    with _client(predictor, tmp_path, api_keys, metrics_public=True) as client:
        assert client.get("/metrics", headers={"authorization": ""}).status_code == 200


def test_queue_rejections_are_counted():
    import asyncio

    def rejections():
        return REGISTRY.get_sample_value("podskazka_queue_rejections_total") or 0.0

    release = threading.Event()

    async def scenario():
        pool = ModelPool(1, 0)
        pool.start()
        try:
            running = asyncio.ensure_future(pool.run(release.wait, 5))
            await asyncio.sleep(0.05)
            with pytest.raises(Busy):
                await pool.run(lambda: None)
            release.set()
            await running
        finally:
            pool.shutdown()

    before = rejections()
    asyncio.run(scenario())
    assert rejections() == before + 1
