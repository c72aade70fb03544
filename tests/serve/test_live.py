"""Live suggestions: hysteresis, session state and bounds, and the WebSocket protocol end to end."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from serve.deps import service_of
from serve.live_sessions import LiveSession, SessionManager, Stabilizer
from serve.main import create_app
from serve.settings import Settings

CALL_TURNS = [
    ("operator", "билайн здравствуйте"),
    ("client", "ну сняли деньги непонятно"),
    ("client", "ну сняли деньги непонятно за что с баланса вчера сто рублей"),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- hysteresis --


def test_stabilizer_holds_label_against_small_flicker():
    stab = Stabilizer(margin=0.15, updates=3)
    assert stab.update("reason2", {"A": 0.50, "B": 0.40}) == ("A", False)
    # B leads by a little, A leads again, B again: the shown label never changes
    assert stab.update("reason2", {"A": 0.44, "B": 0.46}) == ("A", True)
    assert stab.update("reason2", {"A": 0.47, "B": 0.43}) == ("A", False)
    assert stab.update("reason2", {"A": 0.45, "B": 0.48}) == ("A", True)
    assert stab.update("reason2", {"A": 0.46, "B": 0.44}) == ("A", False)


def test_stabilizer_switches_on_margin_at_once():
    stab = Stabilizer(margin=0.15, updates=3)
    stab.update("topic", {"A": 0.6, "B": 0.3})
    assert stab.update("topic", {"A": 0.3, "B": 0.6}) == ("B", False)


def test_stabilizer_switches_after_consecutive_updates():
    stab = Stabilizer(margin=0.15, updates=3)
    stab.update("topic", {"A": 0.5, "B": 0.4})
    assert stab.update("topic", {"A": 0.45, "B": 0.5}) == ("A", True)
    assert stab.update("topic", {"A": 0.45, "B": 0.5}) == ("A", True)
    assert stab.update("topic", {"A": 0.45, "B": 0.5}) == ("B", False)


def test_stabilizer_challenger_count_restarts_with_another_challenger():
    stab = Stabilizer(margin=0.5, updates=2)
    stab.update("t", {"A": 0.4, "B": 0.3, "C": 0.3})
    assert stab.update("t", {"A": 0.3, "B": 0.4, "C": 0.3}) == ("A", True)
    assert stab.update("t", {"A": 0.3, "B": 0.3, "C": 0.4}) == ("A", True)  # C is a new challenger: count 1
    assert stab.update("t", {"A": 0.3, "B": 0.3, "C": 0.4}) == ("C", False)


def test_stabilizer_rejects_bad_parameters():
    with pytest.raises(ValueError, match="margin must be within"):
        Stabilizer(margin=1.5)
    with pytest.raises(ValueError, match="updates must be >= 1"):
        Stabilizer(updates=0)
    with pytest.raises(ValueError, match="no scores"):
        Stabilizer().update("t", {})


# -- one session's turns --


def test_session_partial_replaced_final_fixed_and_stale_partial_ignored():
    session = LiveSession("x")
    assert session.apply_turn(0, "client", "ну", final=False)
    assert session.apply_turn(0, "client", "ну сняли", final=False)
    assert [t.text for t in session.window()] == ["ну сняли"]
    assert session.apply_turn(0, "client", "ну сняли деньги", final=True)
    assert not session.apply_turn(0, "client", "ну сня", final=False)
    assert session.apply_turn(1, "operator", "сейчас", final=False)
    assert [t.text for t in session.window()] == ["ну сняли деньги", "сейчас"]
    assert session.final_seqs == [0] and session.last_seq == 1 and not session.is_final(1)


def test_session_turns_bounded_oldest_dropped():
    session = LiveSession("x", max_turns=3)
    for seq in range(5):
        session.apply_turn(seq, "client", f"слово {seq}", final=True)
    assert sorted(session.turns) == [2, 3, 4]


def test_session_window_fits_model_character_limit():
    session = LiveSession("x")
    for seq in range(3):
        session.apply_turn(seq, "client", "а" * 9000, final=True)
    window = session.window()
    assert len(window) == 2 and sum(len(t.text) for t in window) <= 20_000


# -- the session manager --


def _manager(clock, **kw) -> SessionManager:
    return SessionManager(clock=clock, **{"max_sessions": 3, "resume_seconds": 60, **kw})


def test_manager_resume_keeps_state_within_window():
    clock = FakeClock()
    manager = _manager(clock)
    session, resumed, _ = manager.open("a", "conn1", make=lambda: LiveSession("a"))
    session.apply_turn(0, "client", "сняли деньги", final=True)
    manager.detach(session, "conn1")
    clock.now += 59
    again, resumed, to_close = manager.open("a", "conn2", make=lambda: LiveSession("a"), token=session.resume_token)
    assert resumed and again is session and again.final_seqs == [0] and to_close == []


def test_manager_frees_detached_session_after_resume_window():
    clock = FakeClock()
    manager = _manager(clock)
    session, _, _ = manager.open("a", "conn1", make=lambda: LiveSession("a"))
    manager.detach(session, "conn1")
    clock.now += 61
    assert manager.sweep() == 1 and manager.get("a") is None
    fresh, resumed, _ = manager.open("a", "conn2", make=lambda: LiveSession("a"))
    assert not resumed and fresh is not session


def test_manager_connected_session_does_not_expire():
    clock = FakeClock()
    manager = _manager(clock)
    manager.open("a", "conn1", make=lambda: LiveSession("a"))
    clock.now += 1000
    assert manager.sweep() == 0 and manager.get("a") is not None


def test_manager_take_over_returns_previous_owner():
    manager = _manager(FakeClock())
    session, _, _ = manager.open("a", "conn1", make=lambda: LiveSession("a"))
    _, resumed, to_close = manager.open("a", "conn2", make=lambda: LiveSession("a"), token=session.resume_token)
    assert resumed and to_close == [("conn1", "taken_over")]
    manager.detach(manager.get("a"), "conn1")  # the old connection going away leaves the new owner alone
    assert manager.get("a").owner == "conn2"


def test_manager_evicts_detached_first_then_least_recently_used():
    clock = FakeClock()
    manager = _manager(clock)
    conn = {name: f"conn-{name}" for name in "abcde"}
    for name in "abc":
        clock.now += 1
        manager.open(name, conn[name], make=lambda name=name: LiveSession(name))
    manager.detach(manager.get("b"), conn["b"])
    _, _, to_close = manager.open("d", conn["d"], make=lambda: LiveSession("d"))
    assert manager.get("b") is None and to_close == [] and len(manager) == 3
    manager.touch(manager.get("a"))  # c is now the least recently used
    _, _, to_close = manager.open("e", conn["e"], make=lambda: LiveSession("e"))
    assert manager.get("c") is None and to_close == [(conn["c"], "evicted")] and len(manager) == 3


def test_manager_end_frees_session():
    manager = _manager(FakeClock())
    session, _, _ = manager.open("a", "conn1", make=lambda: LiveSession("a"))
    manager.end(session, "conn1")
    assert manager.get("a") is None and len(manager) == 0


def test_manager_rejects_bad_bound():
    with pytest.raises(ValueError, match="max_sessions must be >= 1"):
        SessionManager(max_sessions=0)


# -- the WebSocket protocol --


def _client(api_keys, predictor, tmp_path, *, role="operator", **overrides) -> TestClient:
    settings = Settings(
        model_dir=tmp_path / "unused",
        feedback_db=tmp_path / "fb.sqlite3",
        **{"live_debounce_ms": 200, "api_keys_file": api_keys.file, **overrides},
    )
    return TestClient(create_app(settings, predictor=predictor), headers=api_keys.headers(role))


def _start(ws, interaction_id="live-1", **extra):
    ws.send_json({"type": "start", "interaction_id": interaction_id, "channel": "call", **extra})
    started = ws.receive_json()
    assert started["type"] == "started", started
    return started


def test_live_final_turns_answered_with_suggestions(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path) as client, client.websocket_connect("/v1/live") as ws:
        started = _start(ws, tasks=["reason2"])
        assert started == {
            "type": "started",
            "interaction_id": "live-1",
            "model_version": predictor.model_version,
            "resumed": False,
            "last_seq": None,
            "final_seqs": [],
            "resume_token": started["resume_token"],
        }
        assert len(started["resume_token"]) >= 32
        ws.send_json({"type": "turn", "seq": 0, "role": "operator", "text": CALL_TURNS[0][1], "final": True})
        first = ws.receive_json()
        ws.send_json({"type": "turn", "seq": 1, "role": "client", "text": CALL_TURNS[2][1], "final": True})
        second = ws.receive_json()
    assert first["type"] == "suggestions" and first["seq"] == 0 and first["final"] is True
    assert second["seq"] == 1 and list(second["predictions"]) == ["reason2"]
    assert second["predictions"]["reason2"][0]["label"] == "За что списание?"
    assert len(second["predictions"]["reason2"]) == 3
    assert {"model_version", "decisions", "domains", "macros", "duplicate", "stable"} <= set(second)
    assert set(second["stable"]["reason2"]) == {"label", "confidence", "held"}


def test_live_partials_debounced_into_one_update(predictor, tmp_path, api_keys):
    with (
        _client(api_keys, predictor, tmp_path, live_debounce_ms=1000) as client,
        client.websocket_connect("/v1/live") as ws,
    ):
        _start(ws)
        words = CALL_TURNS[2][1].split()
        for n in range(1, len(words) + 1):
            ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": " ".join(words[:n]), "final": False})
        update = ws.receive_json()
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # one update for the burst, not one per word
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": CALL_TURNS[2][1], "final": True})
        final = ws.receive_json()
    assert update["type"] == "suggestions" and update["seq"] == 0 and update["final"] is False
    assert final["final"] is True and final["stable"]["reason2"]["label"] == "За что списание?"


def test_live_bad_messages_answered_and_session_goes_on(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path) as client, client.websocket_connect("/v1/live") as ws:
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": "алло", "final": True})
        assert ws.receive_json()["code"] == "not_started"
        ws.send_text("{not json")
        assert ws.receive_json()["code"] == "bad_message"
        ws.send_json({"type": "start", "interaction_id": "x", "tasks": ["nope"]})
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == "input_invalid" and "unknown task" in error["message"]
        _start(ws, "bad-1")
        ws.send_json({"type": "dance"})
        assert ws.receive_json()["code"] == "unknown_type"
        ws.send_json({"type": "turn", "seq": "1", "role": "client", "text": "алло", "final": True})
        error = ws.receive_json()
        assert error["code"] == "invalid_message" and error["details"][0]["field"] == "seq"
        ws.send_json({"type": "turn", "seq": 1, "role": "robot", "text": "алло"})
        assert ws.receive_json()["details"][0]["field"] == "role"
        ws.send_json({"type": "start", "interaction_id": "other"})
        assert ws.receive_json()["code"] == "already_started"
        ws.send_json({"type": "turn", "seq": 1, "role": "client", "text": CALL_TURNS[2][1], "final": True})
        assert ws.receive_json()["type"] == "suggestions"


def test_live_reconnect_resumes_same_interaction(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path) as client:
        with client.websocket_connect("/v1/live") as ws:
            token = _start(ws, "resume-1")["resume_token"]
            ws.send_json({"type": "turn", "seq": 0, "role": "operator", "text": CALL_TURNS[0][1], "final": True})
            ws.receive_json()
            ws.send_json({"type": "turn", "seq": 1, "role": "client", "text": CALL_TURNS[2][1], "final": True})
            before = ws.receive_json()
        # the connection dropped; a new one resumes the interaction with its turns and shown labels
        with client.websocket_connect("/v1/live") as ws:
            started = _start(ws, "resume-1", resume_token=token)
            assert started["resumed"] is True and started["final_seqs"] == [0, 1] and started["last_seq"] == 1
            resumed = ws.receive_json()
            assert resumed["type"] == "suggestions" and resumed["seq"] == 1
            assert resumed["stable"] == before["stable"]
            ws.send_json({"type": "turn", "seq": 2, "role": "operator", "text": "сейчас проверю", "final": True})
            assert ws.receive_json()["seq"] == 2
            ws.send_json({"type": "end"})
            assert ws.receive_json() == {"type": "ended", "interaction_id": "resume-1"}
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1000
        assert service_of(client.app).live.sessions.get("resume-1") is None


def test_live_second_connection_takes_over(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path) as client:
        with client.websocket_connect("/v1/live") as first:
            token = _start(first, "dup-conn")["resume_token"]
            with client.websocket_connect("/v1/live") as second:  # the owner's new socket, with the token
                assert _start(second, "dup-conn", resume_token=token)["resumed"] is True
                with pytest.raises(WebSocketDisconnect) as closed:
                    first.receive_json()
                assert closed.value.code == 4001
                second.send_json({"type": "ping"})
                assert second.receive_json() == {"type": "pong"}


def test_live_idle_connection_closed_and_session_kept(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path, live_idle_seconds=1.0) as client:
        with client.websocket_connect("/v1/live") as ws:
            _start(ws, "idle-1")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4000
        session = service_of(client.app).live.sessions.get("idle-1")
        assert session is not None and session.owner is None


def test_live_session_bound_evicts_and_closes(predictor, tmp_path, api_keys):
    with _client(api_keys, predictor, tmp_path, live_max_sessions=1) as client:
        with client.websocket_connect("/v1/live") as first:
            _start(first, "s1")
            with client.websocket_connect("/v1/live") as second:
                _start(second, "s2")
                with pytest.raises(WebSocketDisconnect) as closed:
                    first.receive_json()
                assert closed.value.code == 4002
        assert len(service_of(client.app).live.sessions) == 1


def test_live_http_suggest_with_turns_so_far_matches(predictor, tmp_path, api_keys):
    turns = [{"role": r, "text": t} for r, t in (CALL_TURNS[0], CALL_TURNS[2])]
    with _client(api_keys, predictor, tmp_path) as client:
        http = client.post("/v1/suggest", json={"channel": "call", "turns": turns, "tasks": ["reason2"]}).json()
        with client.websocket_connect("/v1/live") as ws:
            _start(ws, "same-1", tasks=["reason2"])
            for seq, turn in enumerate(turns):
                ws.send_json({"type": "turn", "seq": seq, "final": True, **turn})
                live = ws.receive_json()
    assert live["predictions"] == http["predictions"] and live["macros"] == http["macros"]
    assert live["comment_required"] == http["comment_required"] and live["decisions"] == http["decisions"]


def test_live_before_model_loaded_answers_not_ready(tmp_path):
    client = TestClient(create_app(Settings(model_dir=tmp_path / "missing")))  # no lifespan: nothing loaded
    with client.websocket_connect("/v1/live") as ws:
        assert ws.receive_json()["code"] == "not_ready"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1013


def test_live_model_runs_in_thread_pool_not_event_loop(predictor, tmp_path, api_keys):
    import threading

    from model.predictor import Predictor

    threads = []

    class Recording(Predictor):
        def predict(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            return super().predict(*args, **kwargs)

        def predict_live(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            return super().predict_live(*args, **kwargs)

    with _client(api_keys, Recording(predictor.bundle), tmp_path) as client, client.websocket_connect("/v1/live") as ws:
        _start(ws)
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": CALL_TURNS[2][1], "final": True})
        assert ws.receive_json()["type"] == "suggestions"
    assert threads and all(name.startswith("podskazka-model") for name in threads)


def test_live_start_may_name_the_domain(predictor, tmp_path, api_keys):
    """A queue that knows its line says so in `start`: tasks of the other domain get no decision."""
    with _client(api_keys, predictor, tmp_path) as client, client.websocket_connect("/v1/live") as ws:
        _start(ws, domain="marketplace")
        ws.send_json({"type": "turn", "seq": 0, "role": "client", "text": CALL_TURNS[2][1], "final": True})
        update = ws.receive_json()
    assert update["type"] == "suggestions"
    assert update["decisions"]["reason2"]["label"] is None
    assert update["decisions"]["reason2"]["reason"] == "other_domain"
