"""Property-based fuzzing of the HTTP API from its own /openapi.json (schemathesis).

A real uvicorn server on loopback with the tiny bundle; every operation gets a bounded number of
generated requests (seeded: hypothesis' derandomize), sent with an admin key. No answer may be a
5xx, and every answer must match the schema the API publishes (its error envelope included).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[test]' (schemathesis)")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the importorskip)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from serve.main import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402

EXAMPLES = 40  # per operation: under a minute for the whole API on 2 cores

# the schema as the app publishes it (building the app loads no model: that happens at start-up)
schema = schemathesis.openapi.from_dict(create_app(Settings(api_keys=[])).openapi())


@pytest.fixture(scope="module")
def fuzz_server(predictor, tmp_path_factory, api_keys):
    """(base URL, the app) of a real server; the store is a fresh SQLite file."""
    db = tmp_path_factory.mktemp("fuzz-store") / "fb.sqlite3"
    app = create_app(Settings(model_dir=db.parent, feedback_db=db, api_keys_file=api_keys.file), predictor=predictor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_api_no_5xx_and_answers_match_schema(case, fuzz_server, api_keys):
    response = case.call(base_url=fuzz_server[0], headers=api_keys.headers("admin"), timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
