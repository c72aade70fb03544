"""Feedback: the store on SQLite (WAL) and on a real throwaway PostgreSQL server, the HTTP endpoints,
masking, acceptance statistics, the training export, and concurrent writes with nothing lost."""

from __future__ import annotations

import glob
import json
import logging
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve.export import export_training_records
from serve.feedback_store import (
    PRIVACY_VERSION,
    Feedback,
    PostgresStore,
    SQLiteStore,
    legacy_client_key,
    operator_key,
    remask_turns,
)
from serve.main import create_app
from serve.settings import Settings
from tests.factories import make_feedback

PHONE_TURNS = [
    {"role": "operator", "text": "билайн здравствуйте"},
    {"role": "client", "text": "сняли деньги непонятно, мой номер +7 916 123-45-67, почта anna.k@mail.ru"},
]


# -- a throwaway PostgreSQL server --


def _pg_bin() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    """initdb + pg_ctl into a temporary folder (as the postgres user when the tests run as root);
    listens on a Unix socket only. Yields a URL template with {db}."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package "
            "(bash .ci/system-deps.sh) to run the PostgreSQL store tests"
        )
    user = None
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the throwaway server as")
        user = "postgres"
    base = Path(tempfile.mkdtemp(prefix="podskazka-pg-", dir="/tmp" if user else None))  # reachable by postgres
    if user:
        os.chown(base, account.pw_uid, account.pw_gid)
    data, port = base / "data", _free_port()

    def run(*args):
        subprocess.run([str(a) for a in args], check=True, cwd=base, user=user, capture_output=True, timeout=120)

    try:
        run(pg_bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        run(
            pg_bin / "pg_ctl",
            "-D",
            data,
            "-l",
            base / "server.log",
            "-w",
            "-t",
            "60",
            "-o",
            f"-k {base} -c listen_addresses='' -p {port} -c fsync=off -c max_connections=50",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}") from exc
    try:
        yield f"postgresql://postgres@/{{db}}?host={base}&port={port}"
    finally:
        run(pg_bin / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


_db_counter = iter(range(10**6))


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh database on the throwaway server for one test."""
    import psycopg

    name = f"t{next(_db_counter)}"
    with psycopg.connect(postgres_server.format(db="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.format(db=name)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        made = SQLiteStore(tmp_path / "feedback.sqlite3")
    else:
        made = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=4)
    yield made
    made.close()


def _fb(i: int = 0, **kw) -> Feedback:
    return make_feedback(**{"interaction_id": f"int-{i}", "turns": tuple(PHONE_TURNS), **kw})


def _stored(store, sql: str, params: tuple = ()) -> tuple | None:
    """One row of ``sql`` on the store's own database (SQLite or PostgreSQL): what was really written."""
    return store._run(lambda cur: store._exec(cur, sql, params).fetchone())


def _stored_turns(store, interaction_id: str) -> list[dict] | None:
    row = _stored(store, "SELECT turns FROM interactions WHERE interaction_id = ?", (interaction_id,))
    return None if row is None or row[0] is None else json.loads(row[0])


# -- the store, on both backends --


def test_store_stats_per_task_label_and_version(store):
    store.add_feedback(_fb(1), now=1.0)
    store.add_feedback(_fb(2, accepted=False, chosen="Настройки"), now=2.0)
    store.add_feedback(_fb(3, model_version="v2"), now=3.0)
    store.add_feedback(_fb(4, task="macros", suggested="M01", chosen="M01"), now=4.0)
    stats = store.stats()
    assert (stats["total"], stats["accepted"], stats["acceptance_rate"]) == (4, 3, 0.75)
    assert stats["by_model_version"] == [
        {"model_version": "v1", "total": 3, "accepted": 2, "acceptance_rate": 0.6667},
        {"model_version": "v2", "total": 1, "accepted": 1, "acceptance_rate": 1.0},
    ]
    assert {r["task"]: r["total"] for r in stats["by_task"]} == {"macros": 1, "reason2": 3}
    assert {
        "task": "reason2",
        "label": "За что списание?",
        "total": 3,
        "accepted": 2,
        "acceptance_rate": 0.6667,
    } in stats["by_label"]
    # the JSON of GET /v1/stats keeps its key order
    assert list(stats) == ["total", "accepted", "acceptance_rate", "by_model_version", "by_task", "by_label"]
    assert list(stats["by_model_version"][0]) == ["model_version", "total", "accepted", "acceptance_rate"]
    assert list(stats["by_task"][0]) == ["task", "total", "accepted", "acceptance_rate"]
    assert list(stats["by_label"][0]) == ["task", "label", "total", "accepted", "acceptance_rate"]
    assert store.stats(model_version="v2")["total"] == 1
    assert store.stats(model_version="v9") == {
        "total": 0,
        "accepted": 0,
        "acceptance_rate": None,
        "by_model_version": [],
        "by_task": [],
        "by_label": [],
    }


def test_store_masks_personal_data_and_hashes_client(store):
    store.add_feedback(_fb(1, comment="перезвонить на 89161234567"), now=1.0)
    row = _stored(store, "SELECT turns, comment, client_key FROM feedback")
    stored = json.dumps(row, ensure_ascii=False)
    assert "123-45-67" not in stored and "anna.k@mail.ru" not in stored and "89161234567" not in stored
    assert "[ТЕЛЕФОН]" in row[0] and "[EMAIL]" in row[0] and "[ТЕЛЕФОН]" in row[1]
    assert row[2] == store.client_key("c-1") and "c-1" not in row[2]


def test_store_export_is_valid_training_data(store, tmp_path, taxonomy_path):
    from model.conversation.taxonomy import load_taxonomy
    from training.data.load import load_data

    store.add_feedback(_fb(1), now=1.0)  # accepted
    store.add_feedback(_fb(2, accepted=False, chosen="Настройки"), now=2.0)  # corrected
    store.add_feedback(_fb(2, task="macros", suggested="M01", chosen="M01"), now=3.0)
    store.add_feedback(_fb(3, accepted=False, chosen=None), now=4.0)  # rejected, no correction: no label
    store.add_feedback(_fb(4, turns=None), now=5.0)  # turns unknown: left out
    records = list(export_training_records(store, page=2))
    assert [r["id"] for r in records] == ["int-1", "int-2"]
    assert records[0]["reason2"] == "За что списание?" and "macros" not in records[0]
    assert records[1]["reason2"] == "Настройки" and records[1]["macros"] == ["M01"]
    assert records[1]["client_id"] == store.client_key("c-1") and "[ТЕЛЕФОН]" in records[1]["turns"][1]["text"]
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    loaded = load_data([path], load_taxonomy(taxonomy_path))
    assert [row.interaction.labels for row in loaded.rows] == [
        {"reason2": "За что списание?"},
        {"reason2": "Настройки"},
    ]


def test_store_concurrent_writes_lose_nothing(store):
    def write(worker: int) -> list[int]:
        return [store.add_feedback(_fb(worker * 1000 + i), now=float(i)) for i in range(25)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for chunk in pool.map(write, range(8)) for i in chunk]
    assert len(ids) == len(set(ids)) == 200
    assert store.stats()["total"] == 200


def test_store_serves_again_after_a_unit_of_work_fails(store):
    """A unit of work that raises something other than a driver error is rolled back, and the next call
    is served (SQLite used to keep its one connection inside the open transaction: every later call failed)."""

    def half_done(cur) -> None:
        store._exec(
            cur,
            "INSERT INTO interactions (interaction_id, channel, first_seen, last_seen) VALUES (?, ?, ?, ?)",
            ("lost", "call", 0.0, 0.0),
        )
        raise ValueError("a bug in the unit of work")

    with pytest.raises(ValueError, match="a bug"):
        store._run(half_done)
    store.add_feedback(_fb(1), now=1.0)
    assert store.stats()["total"] == 1
    assert _stored(store, "SELECT COUNT(*) FROM interactions WHERE interaction_id = ?", ("lost",)) == (0,)


def test_store_remember_and_duplicate_lookup(store):
    first = store.remember(
        "a",
        client_id="c",
        channel="email",
        problem_task="topic",
        problem_label="Статус заказа",
        turns=PHONE_TURNS,
        now=100.0,
    )
    second = store.remember(
        "b", client_id="c", channel="email", problem_task="topic", problem_label="Статус заказа", turns=None, now=200.0
    )
    assert store.find_open_duplicate(second, client_id="c", since=0.0).interaction_id == "a"
    assert store.find_open_duplicate(first, client_id="c", since=0.0) is None  # the earlier is not the duplicate
    assert store.find_open_duplicate(second, client_id="c", since=150.0) is None  # out of the window
    again = store.remember(
        "a", client_id=None, channel="email", problem_task=None, problem_label=None, turns=None, now=300.0
    )
    assert again.first_seen == 100.0 and again.problem_label == "Статус заказа"
    assert "[ТЕЛЕФОН]" in _stored_turns(store, "a")[1]["text"]
    store.set_status("a", "closed")
    assert store.find_open_duplicate(second, client_id="c", since=0.0) is None


def test_store_feedback_keeps_remembered_turns_after_pruning(store):
    store.remember(
        "a",
        client_id="c",
        channel="call",
        problem_task="reason2",
        problem_label="Настройки",
        turns=PHONE_TURNS,
        now=100.0,
    )
    store.add_feedback(_fb(0, interaction_id="a", turns=None, chosen="Настройки", accepted=False), now=110.0)
    assert store.prune_interactions(before=200.0) == 1 and _stored_turns(store, "a") is None
    [record] = export_training_records(store)
    assert record["reason2"] == "Настройки" and "[ТЕЛЕФОН]" in record["turns"][1]["text"]


# -- upgrading the rows of an earlier version (personal data in the clear) --

SECRET = b"0123456789abcdef0123456789abcdef"
OLD_SCHEMA = """
CREATE TABLE feedback (id {pk}, created_at TEXT NOT NULL, interaction_id TEXT NOT NULL, model_version TEXT NOT NULL,
    task TEXT NOT NULL, suggested TEXT, chosen TEXT, accepted INTEGER NOT NULL, operator_id TEXT, client_key TEXT,
    channel TEXT, confidence DOUBLE PRECISION, turns TEXT, comment TEXT);
CREATE TABLE interactions (interaction_id TEXT PRIMARY KEY, client_key TEXT, channel TEXT NOT NULL,
    problem_task TEXT, problem_label TEXT, first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL DEFAULT 'open', turns TEXT)
"""
CLEAR_TURNS = json.dumps(
    [
        {"role": "operator", "text": "здравствуйте, как к вам обращаться?"},
        {"role": "client", "text": "Иванова Мария Петровна, мой номер +7 912 345-67-89"},
    ],
    ensure_ascii=False,
)
IN_CLEAR = ["op-ivanova", "Иванова", "Мария", "Петровна", "912", "345-67-89", "maria.ivanova", "mail.ru"]


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request, tmp_path):
    """A database as the versions before the upgrade left it (the tables, no ``meta``): yields ``(open, sql)``,
    a function opening a store on it and one running raw SQL on it (``?`` placeholders; the rows it returns)."""
    if request.param == "sqlite":
        path = tmp_path / "old.sqlite3"

        def sql(statement: str, params: tuple = ()) -> list[tuple]:
            conn = sqlite3.connect(path)
            try:
                with conn:
                    return conn.execute(statement, params).fetchall()
            finally:
                conn.close()

        def open_it():
            return SQLiteStore(path, secret=SECRET)

        pk = "INTEGER PRIMARY KEY AUTOINCREMENT"
        sql("PRAGMA journal_mode=WAL")  # as every earlier SQLiteStore left its file
    else:
        import psycopg

        url = request.getfixturevalue("postgres_url")

        def sql(statement: str, params: tuple = ()) -> list[tuple]:
            with psycopg.connect(url) as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []

        def open_it():
            return PostgresStore(url, pool_size=2, secret=SECRET)

        pk = "BIGSERIAL PRIMARY KEY"
    for statement in OLD_SCHEMA.format(pk=pk).split(";"):
        sql(statement)
    return open_it, sql


def _dump_tables(sql) -> list[list[tuple]]:
    return [
        sql("SELECT * FROM feedback ORDER BY id"),
        sql("SELECT * FROM interactions ORDER BY interaction_id"),
    ]


def _write_old_rows(sql) -> None:
    sql(
        "INSERT INTO feedback (created_at, interaction_id, model_version, task, suggested, chosen, accepted,"
        " operator_id, client_key, channel, turns, comment) VALUES ('2024-01-01T00:00:00+00:00', 'old-1', 'v0',"
        " 'reason2', ?, ?, 1, 'op-ivanova', ?, 'call', ?, ?)",
        ("За что списание?", "За что списание?", legacy_client_key("c-1"), CLEAR_TURNS, "почта maria.ivanova@mail.ru"),
    )
    sql(
        "INSERT INTO feedback (created_at, interaction_id, model_version, task, suggested, chosen, accepted)"
        " VALUES ('2024-01-02T00:00:00+00:00', 'old-2', 'v0', 'reason2', 'Тариф', 'Роуминг', 0)"
    )
    sql(
        "INSERT INTO interactions (interaction_id, client_key, channel, first_seen, last_seen, turns)"
        " VALUES ('old-1', ?, 'call', 100, 100, ?)",
        (legacy_client_key("c-1"), CLEAR_TURNS),
    )


def test_store_upgrades_rows_written_in_the_clear_once(old_database, caplog):
    """A database of the version between issue #11 and the privacy upgrade: rows of before #11 in the clear
    (operator id, phone, name, e-mail), and a row written the new way; opening it pseudonymises and masks the old
    rows once, leaves the new one as it was, and a second open changes nothing."""
    open_store_on_it, sql = old_database
    store = open_store_on_it()
    store.add_feedback(_fb(9, operator_id="op-petrov", comment="звонила Иванова Мария Петровна"), now=1.0)
    store.close()
    sql("DROP TABLE IF EXISTS meta")  # the version before kept none
    _write_old_rows(sql)
    [(new_operator, new_turns, new_comment)] = sql("SELECT operator_id, turns, comment FROM feedback WHERE id = 1")
    assert new_operator == operator_key("op-petrov", SECRET) and "[ТЕЛЕФОН]" in new_turns
    with caplog.at_level(logging.INFO, logger="serve.feedback_store"):
        store = open_store_on_it()
    upgraded = _dump_tables(sql)
    text = json.dumps(upgraded, ensure_ascii=False)
    for clear in IN_CLEAR:
        assert clear not in text, clear
    for placeholder in ("[ТЕЛЕФОН]", "[ФИО]", "[EMAIL]"):
        assert placeholder in text, placeholder
    assert sql("SELECT operator_id FROM feedback WHERE interaction_id = 'old-1'") == [
        (operator_key("op-ivanova", SECRET),)
    ]
    assert sql("SELECT operator_id FROM feedback WHERE interaction_id = 'old-2'") == [(None,)]
    assert sql("SELECT operator_id, turns, comment FROM feedback WHERE id = 1") == [
        (new_operator, new_turns, new_comment)  # the new-way row: not pseudonymised twice, masked as it was
    ]
    assert sql("SELECT client_key FROM interactions") == [(legacy_client_key("c-1"),)]  # still matched
    assert sql("SELECT value FROM meta WHERE key = 'privacy_version'") == [(str(PRIVACY_VERSION),)]
    [line] = [r.getMessage() for r in caplog.records if "privacy version" in r.getMessage()]
    assert "1 operator ids pseudonymised, 1 of 3 feedback rows and 1 of 1 interactions" in line
    assert not any(clear in caplog.text for clear in IN_CLEAR)
    assert store.stats()["total"] == 3 and store.stats()["accepted"] == 2
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="serve.feedback_store"):
        open_store_on_it().close()
    assert _dump_tables(sql) == upgraded and "privacy version" not in caplog.text


def test_store_upgrade_runs_in_one_of_several_processes_opening_at_once(old_database, caplog):
    open_store_on_it, sql = old_database
    for i in range(30):
        sql(
            "INSERT INTO feedback (created_at, interaction_id, model_version, task, accepted, operator_id, turns)"
            " VALUES ('2024-01-01T00:00:00+00:00', ?, 'v0', 'reason2', 1, ?, ?)",
            (f"old-{i}", f"op-{i % 3}", CLEAR_TURNS),
        )
    with caplog.at_level(logging.INFO, logger="serve.feedback_store"), ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: open_store_on_it(), range(4)))  # as four worker processes would
    assert len([r for r in caplog.records if "privacy version" in r.getMessage()]) == 1
    assert sorted(sql("SELECT DISTINCT operator_id FROM feedback")) == sorted(
        (operator_key(f"op-{i}", SECRET),) for i in range(3)
    )
    assert "912" not in json.dumps(sql("SELECT turns FROM feedback"))
    for made in stores:
        made.close()


def test_store_fresh_database_is_at_the_privacy_version(store, caplog):
    assert _stored(store, "SELECT value FROM meta WHERE key = 'privacy_version'") == (str(PRIVACY_VERSION),)
    assert remask_turns(None) is None and remask_turns("не JSON: +7 912 345-67-89") == "не JSON: [ТЕЛЕФОН]"


def test_sqlite_store_is_wal_and_shared_by_processes(tmp_path):
    path = tmp_path / "shared.sqlite3"
    one, two = SQLiteStore(path), SQLiteStore(path)  # as two worker processes would
    assert one.journal_mode == "wal"
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: (one if i % 2 else two).add_feedback(_fb(i), now=float(i)), range(100)))
    assert one.stats()["total"] == two.stats()["total"] == 100
    one.close()
    two.close()


def test_sqlite_store_unwritable_path_refused(tmp_path):
    from serve.feedback_store import StoreError

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreError, match="cannot open the feedback database"):
        SQLiteStore(tmp_path / "a-file" / "feedback.sqlite3")


def test_postgres_store_bad_url_refused(postgres_server):
    from serve.feedback_store import StoreError

    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL feedback store"):
        PostgresStore(postgres_server.format(db="no_such_database"))


# -- the HTTP endpoints --


@pytest.fixture
def client(predictor, tmp_path, api_keys):
    app = create_app(
        Settings(model_dir=tmp_path / "unused", feedback_db=tmp_path / "fb.sqlite3", api_keys_file=api_keys.file),
        predictor=predictor,
    )
    with TestClient(app, headers=api_keys.headers()) as c:
        yield c


def _post(client, **kw):
    body = {
        "interaction_id": "call-1",
        "model_version": "v1",
        "task": "reason2",
        "suggested": "За что списание?",
        "accepted": True,
        **kw,
    }
    return client.post("/v1/feedback", json=body)


def test_feedback_endpoint_stats_and_export(client, predictor):
    r = _post(client, turns=PHONE_TURNS, operator_id="op-7", confidence=0.81, rank=1)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": 1, "interaction_id": "call-1", "closed": None}
    assert (
        _post(
            client, interaction_id="call-2", accepted=False, chosen="Настройки", text="не приходят настройки"
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/v1/feedback",
            json={"interaction_id": "call-2", "model_version": "v1", "macro_id": "M01", "accepted": True},
        ).status_code
        == 201
    )
    stats = client.get("/v1/stats").json()
    assert (stats["total"], stats["accepted"]) == (3, 2)
    assert {"task": "macros", "label": "M01", "total": 1, "accepted": 1, "acceptance_rate": 1.0} in stats["by_label"]
    r = client.get("/v1/feedback/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in r.text.splitlines()]
    assert [(x["id"], x["reason2"]) for x in records] == [("call-1", "За что списание?"), ("call-2", "Настройки")]
    assert records[1]["turns"] == [{"role": "client", "text": "не приходят настройки"}]
    assert records[1]["macros"] == ["M01"] and "[ТЕЛЕФОН]" in records[0]["turns"][1]["text"]
    assert client.get("/v1/stats", params={"model_version": "v2"}).json()["total"] == 0


def test_feedback_takes_turns_of_live_session(client):
    with client.websocket_connect("/v1/live") as ws:
        ws.send_json({"type": "start", "interaction_id": "live-fb", "channel": "call"})
        ws.receive_json()
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": PHONE_TURNS[1]["text"], "final": True})
        ws.receive_json()
        assert _post(client, interaction_id="live-fb").status_code == 201
    [record] = [json.loads(line) for line in client.get("/v1/feedback/export").text.splitlines()]
    assert record["id"] == "live-fb" and record["turns"][0]["text"].startswith(
        "сняли деньги непонятно, мой номер [ТЕЛЕФОН]"
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"task": "colour"}, "task is 'colour'; use one of"),
        ({"chosen": "Почти списание"}, "chosen 'Почти списание' is not a label of task 'reason2'"),
        ({"suggested": "Нечто"}, "suggested 'Нечто' is neither a label nor a group"),
        ({"macro_id": "M01"}, "either 'task'"),
        ({"task": None}, "either 'task'"),
        ({"task": None, "macro_id": "M99"}, "macro_id 'M99' is not a macro"),
        ({"suggested": None}, "give 'suggested'"),
        ({"accepted": "yes"}, "accepted: Input should be a valid boolean"),
        ({"operator": "x"}, "operator: Extra inputs are not permitted"),
        ({"confidence": 2}, "confidence: Input should be less than or equal to 1"),
    ],
)
def test_feedback_rejects_bad_requests(client, change, match):
    body = {
        "interaction_id": "call-1",
        "model_version": "v1",
        "task": "reason2",
        "suggested": "За что списание?",
        "accepted": True,
        **change,
    }
    r = client.post("/v1/feedback", json={k: v for k, v in body.items() if v is not None})
    assert r.status_code == 422, r.text
    assert match in r.json()["error"]["message"]


def test_feedback_store_unavailable_is_503(predictor, tmp_path, api_keys):
    (tmp_path / "a-file").write_text("x")
    settings = Settings(model_dir=tmp_path, feedback_db=tmp_path / "a-file" / "fb.sqlite3", api_keys_file=api_keys.file)
    with TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers()) as c:
        r = _post(c)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert c.get("/healthz").status_code == 200


def test_feedback_many_concurrent_requests_lose_nothing(client):
    def post(i: int) -> int:
        return _post(client, interaction_id=f"c-{i}", operator_id=f"op-{i % 5}").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, range(120)))
    assert codes == [201] * 120
    assert client.get("/v1/stats").json()["total"] == 120


def test_feedback_on_postgres_through_the_service(predictor, tmp_path, postgres_url, api_keys):
    settings = Settings(
        model_dir=tmp_path,
        database_url=postgres_url,
        feedback_db=tmp_path / "unused.sqlite3",
        api_keys_file=api_keys.file,
    )
    with TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers()) as c:
        lock = threading.Lock()
        done = []

        def post(i: int) -> None:
            r = _post(c, interaction_id=f"pg-{i}", turns=PHONE_TURNS)
            with lock:
                done.append(r.status_code)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(60)))
        assert done == [201] * 60
        assert c.get("/v1/stats").json()["total"] == 60
        assert len(c.get("/v1/feedback/export").text.splitlines()) == 60
    assert not (tmp_path / "unused.sqlite3").exists()


def test_feedback_closes_by_the_taxonomys_closing_labels(predictor, tmp_path, api_keys):
    """A resolution closes the case when the served taxonomy's ``closing`` lists it; under a taxonomy
    without that section (another centre's, an old bundle's copy) only an explicit ``closed`` does."""
    from dataclasses import replace

    from model.predictor import Predictor

    bare = Predictor(replace(predictor.bundle, taxonomy=replace(predictor.taxonomy, closing=None)))
    body = {"model_version": "v1", "task": "resolution", "suggested": "Решено", "accepted": True}
    for served, closes in ((predictor, True), (bare, None)):
        settings = Settings(
            model_dir=tmp_path / "unused", feedback_db=tmp_path / f"{closes}.sqlite3", api_keys_file=api_keys.file
        )
        with TestClient(create_app(settings, predictor=served), headers=api_keys.headers()) as c:

            def closed(**kw):
                r = c.post("/v1/feedback", json={**body, "interaction_id": "em-1", **kw})
                assert r.status_code == 201, r.text
                return r.json()["closed"]

            assert closed() is closes
            assert closed(accepted=False, chosen="Дубликат") is closes
            assert closed(accepted=False, chosen="Не решено") is None  # keeps the case as it is
            assert closed(closed=False) is False and closed(task="reason2", suggested="Другое") is None
