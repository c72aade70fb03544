"""Property-based fuzzing of the HTTP API from its own /openapi.json (schemathesis).

A real uvicorn server on loopback with the tiny bundle; every operation gets a bounded number of
generated requests (seeded: hypothesis' derandomize), sent with an admin key. No answer may be a
5xx, and every answer must match the schema the API publishes (its error envelope included).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[test]' (schemathesis)")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the importorskip)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from serve.main import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402
from tests.factories import server_in_thread  # noqa: E402

EXAMPLES = 40  # per operation: under a minute for the whole API on 2 cores

# the schema as the app publishes it (building the app loads no model: that happens at start-up)
schema = schemathesis.openapi.from_dict(create_app(Settings(api_keys=[])).openapi())


@pytest.fixture(scope="module")
def fuzz_server(predictor, tmp_path_factory, api_keys):
    """(base URL, the app) of a real server; the store is a fresh SQLite file."""
    db = tmp_path_factory.mktemp("fuzz-store") / "fb.sqlite3"
    app = create_app(Settings(model_dir=db.parent, feedback_db=db, api_keys_file=api_keys.file), predictor=predictor)
    with server_in_thread(app, wait_s=30) as url:
        yield url, app


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_fuzz_api_no_5xx_and_answers_match_schema(case, fuzz_server, api_keys):
    response = case.call(base_url=fuzz_server[0], headers=api_keys.headers("admin"), timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
