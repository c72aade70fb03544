"""The duplicate flag: same client, same channel, same predicted problem, earlier one still open;
never in chats; «Дубликат» proposed with the M23 macro naming the earlier interaction (the project
taxonomy's duplicate policy); no check at all under a taxonomy without one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from model.assist.duplicates import duplicate_tasks, problem_of
from model.conversation.record import interaction_from_dict
from model.suggestion import RankedLabel, Suggestion
from serve.duplicates import check_duplicate, duplicate_for_request
from serve.feedback_store import SQLiteStore, StoreHolder
from serve.main import create_app
from serve.settings import Settings

ORDER_1 = "где мой заказ трек статус не меняется неделю"
ORDER_2 = "пишу повторно где мой заказ статус не меняется"
CHARGE = "сняли деньги непонятно сто рублей с баланса"


@pytest.fixture
def client(predictor, tmp_path, api_keys):
    app = create_app(
        Settings(model_dir=tmp_path, feedback_db=tmp_path / "fb.sqlite3", api_keys_file=api_keys.file),
        predictor=predictor,
    )
    with TestClient(app, headers=api_keys.headers()) as c:
        yield c


def _suggest(client, interaction_id, text, *, channel="email", client_id="c-1", **kw):
    r = client.post(
        "/v1/suggest",
        json={"interaction_id": interaction_id, "client_id": client_id, "channel": channel, "text": text, **kw},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_duplicate_flagged_for_same_client_channel_problem(client):
    first = _suggest(client, "em-1", ORDER_1)
    second = _suggest(client, "em-2", ORDER_2)
    assert first["duplicate"] is None
    dup = second["duplicate"]
    assert dup["duplicate_of"] == "em-1" and dup["resolution"] == "Дубликат"
    assert (dup["task"], dup["label"], dup["channel"]) == ("topic", "Статус заказа", "email")
    assert dup["macro"] == {
        "id": "M23",
        "title": "Дубликат",
        "text": "Дубликат обращения № em-1 по той же проблеме в том же канале.",
    }
    # asking again about the earlier one does not flag it against the later one
    assert _suggest(client, "em-1", ORDER_1)["duplicate"] is None


def test_duplicate_checked_even_when_problem_task_not_requested(client):
    _suggest(client, "em-1", ORDER_1)
    second = _suggest(client, "em-2", ORDER_2, tasks=["resolution"])
    assert list(second["predictions"]) == ["resolution"]
    assert second["duplicate"]["duplicate_of"] == "em-1"


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ({"channel": "chat"}, "never in chats"),
        ({"channel": "call"}, "another channel"),
        ({"client_id": "c-2"}, "another client"),
        ({"text": CHARGE}, "another problem"),
        ({"client_id": None}, "no client id: nothing to match"),
    ],
)
def test_duplicate_not_flagged(client, second, why):
    first_channel = "chat" if second.get("channel") == "chat" else "email"
    _suggest(client, "x-1", ORDER_1, channel=first_channel)
    kw = {"channel": "email", "client_id": "c-1", "text": ORDER_2, **second}
    text = kw.pop("text")
    assert _suggest(client, "x-2", text, **kw)["duplicate"] is None, why


def test_duplicate_not_flagged_once_earlier_closed(client):
    _suggest(client, "em-1", ORDER_1)
    r = client.post(
        "/v1/feedback",
        json={
            "interaction_id": "em-1",
            "model_version": "v1",
            "task": "resolution",
            "suggested": "Решено",
            "accepted": True,
        },
    )
    assert r.json()["closed"] is True
    assert _suggest(client, "em-2", ORDER_2)["duplicate"] is None
    # «Не решено» keeps a case open; closed: false reopens one
    client.post(
        "/v1/feedback",
        json={
            "interaction_id": "em-1",
            "model_version": "v1",
            "task": "resolution",
            "suggested": "Решено",
            "accepted": False,
            "chosen": "Не решено",
            "closed": False,
        },
    )
    assert _suggest(client, "em-3", ORDER_2)["duplicate"]["duplicate_of"] in {"em-1", "em-2"}


def test_duplicate_in_batch(client):
    r = client.post(
        "/v1/suggest/batch",
        json={
            "interactions": [
                {"interaction_id": "b-1", "client_id": "c-9", "channel": "email", "text": ORDER_1},
                {"interaction_id": "b-2", "client_id": "c-9", "channel": "email", "text": ORDER_2},
            ]
        },
    )
    assert [x["duplicate"] and x["duplicate"]["duplicate_of"] for x in r.json()["results"]] == [None, "b-1"]


def test_duplicate_window_limits_how_far_back(predictor, tmp_path):
    store = SQLiteStore(tmp_path / "w.sqlite3")
    problem = ("topic", "Статус заказа")
    kw = dict(client_id="c", channel="email", problem=problem, turns=None, window_hours=24)
    assert check_duplicate(store, predictor.taxonomy, interaction_id="a", now=0.0, **kw) is None
    late = check_duplicate(store, predictor.taxonomy, interaction_id="b", now=25 * 3600.0, **kw)
    soon = check_duplicate(store, predictor.taxonomy, interaction_id="c", now=26 * 3600.0, **kw)
    assert late is None and soon["duplicate_of"] == "b"
    store.close()


def test_problem_follows_top_domain(predictor):
    result = Suggestion(
        predictions={
            "reason2": (RankedLabel("Настройки", 0.4),),
            "topic": (RankedLabel("Статус заказа", 0.3),),
        },
        decisions={},
        domains=(RankedLabel("telecom", 0.9), RankedLabel("marketplace", 0.1)),
    )
    assert problem_of(predictor.taxonomy, result) == ("reason2", "Настройки")
    flipped = replace(result, domains=result.domains[::-1])
    assert problem_of(predictor.taxonomy, flipped) == ("topic", "Статус заказа")
    assert problem_of(predictor.taxonomy, Suggestion(predictions={"resolution": ()}, decisions={})) == (None, None)


def test_no_duplicate_check_under_a_taxonomy_without_a_policy(predictor, tmp_path):
    """A bundle whose taxonomy has no 'duplicates' (another centre's, or a copy older than the section)
    remembers nothing and flags nothing, and the routes ask the model for no extra task."""
    bare = replace(predictor.taxonomy, problems={}, duplicates=None, closing=None, comment_rules=None)
    assert duplicate_tasks(bare, predictor.tasks) == []
    assert duplicate_tasks(predictor.taxonomy, predictor.tasks) == ["reason2", "topic"]
    store = SQLiteStore(tmp_path / "n.sqlite3")
    kw = dict(client_id="c", channel="email", problem=("topic", "Статус заказа"), turns=None, window_hours=24)
    assert check_duplicate(store, bare, interaction_id="a", now=0.0, **kw) is None
    assert check_duplicate(store, bare, interaction_id="b", now=1.0, **kw) is None
    # nothing was remembered: under the project's policy the same problem finds no earlier interaction
    assert check_duplicate(store, predictor.taxonomy, interaction_id="c", now=2.0, **kw) is None
    store.close()


def test_duplicate_check_reuses_the_suggestion(predictor, tmp_path, monkeypatch):
    """The problem comes from the suggestion already computed for the request: the model is not run again."""
    settings = Settings(model_dir=tmp_path, feedback_db=tmp_path / "r.sqlite3")
    holder = StoreHolder(settings)
    interaction = interaction_from_dict({"channel": "email", "text": ORDER_1})
    [result] = predictor.predict([interaction])
    monkeypatch.setattr(predictor, "predict", lambda *a, **k: pytest.fail("the model ran a second time"))
    kw = dict(interaction=interaction, client_id="c-1", result=result)
    assert duplicate_for_request(predictor, holder, settings, interaction_id="r-1", now=0.0, **kw) is None
    dup = duplicate_for_request(predictor, holder, settings, interaction_id="r-2", now=1.0, **kw)
    assert dup is not None and (dup.duplicate_of, dup.task) == ("r-1", "topic")
    holder.close()


def test_duplicate_flagged_in_live_session(client):
    _suggest(client, "call-1", CHARGE, channel="call", client_id="c-5")
    with client.websocket_connect("/v1/live") as ws:
        ws.send_json({"type": "start", "interaction_id": "call-2", "channel": "call", "client_id": "c-5"})
        ws.receive_json()
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": "опять " + CHARGE, "final": True})
        final = ws.receive_json()
        ws.send_json({"type": "turn", "seq": 1, "role": "operator", "text": "сейча", "final": False})
        partial = ws.receive_json()
    assert final["duplicate"]["duplicate_of"] == "call-1" and final["duplicate"]["task"] == "reason2"
    assert partial["final"] is False and partial["duplicate"] == final["duplicate"]  # kept between final turns


def test_duplicate_check_skipped_while_store_down(predictor, tmp_path, api_keys):
    (tmp_path / "a-file").write_text("x")
    settings = Settings(model_dir=tmp_path, feedback_db=tmp_path / "a-file" / "fb.sqlite3", api_keys_file=api_keys.file)
    with TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers()) as c:
        body = _suggest(c, "em-1", ORDER_1)
    assert body["duplicate"] is None and body["predictions"]["topic"][0]["label"] == "Статус заказа"
