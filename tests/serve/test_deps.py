"""The routes' typed dependencies (serve/deps.py): one Service per app, filled by the lifespan, and no
route reaching into ``app.state``."""

import ast
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve.deps import Service, service_of
from serve.main import create_app
from serve.settings import Settings

SERVE = Path(__file__).resolve().parents[2] / "serve"
CALL = {"channel": "call", "turns": [{"role": "client", "text": "сняли деньги непонятно за что"}]}


def _reads_app_state(node: ast.AST) -> bool:
    """``….app.state`` or ``app.state`` (an attribute read, not a getattr with a string)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "state"):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "app") or (
        isinstance(owner, ast.Attribute) and owner.attr == "app"
    )


def test_deps_no_module_but_the_factory_touches_app_state():
    """Routes and the service's parts declare what they need; only create_app puts the Service on the app."""
    offenders = []
    for path in sorted(SERVE.rglob("*.py")):
        if path.name == "main.py" and path.parent == SERVE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(SERVE.parent)}:{n.lineno}" for n in ast.walk(tree) if _reads_app_state(n)]
    assert not offenders, f"read the Service through serve/deps.py instead: {offenders}"


def test_deps_service_is_filled_while_the_app_runs_and_emptied_after(predictor, tmp_path):
    app = create_app(Settings(model_dir=tmp_path, insecure_local=True), predictor=predictor)
    service = service_of(app)
    assert isinstance(service, Service) and service.predictor is None and service.pool is None
    with TestClient(app) as client:
        assert service.predictor is predictor
        assert service.store is not None and service.pool is not None and service.live is not None
        assert service.reloader is None  # handed a model: nothing to watch
        assert client.post("/v1/suggest", json=CALL).status_code == 200
    assert service.predictor is None and service.store is None and service.pool is None and service.live is None


def test_deps_before_start_up_routes_answer_not_ready(predictor, tmp_path):
    """Without the lifespan (no model, no pool) a route answers 503 not_ready in the envelope, not a 500."""
    app = create_app(Settings(model_dir=tmp_path, insecure_local=True), predictor=predictor)
    client = TestClient(app)  # not entered: the lifespan does not run
    r = client.post("/v1/suggest", json=CALL)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "not_ready"
    assert "readyz" in r.json()["error"]["message"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_deps_service_of_a_foreign_app_says_so():
    with pytest.raises(RuntimeError, match="create_app"):
        service_of(FastAPI())
