"""The operator page at ``/``: served files, and the page itself in a real headless Chromium.

The browser tests start a real uvicorn server on a free loopback port with the tiny bundle and drive
Debian's chromium through Playwright (its own browser download is never used). Screenshots go to
artifacts/page/ (gitignored); their paths are printed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser tests skip; the rest runs
    expect = sync_playwright = None

from serve.main import create_app
from serve.routes.page import STATIC_DIR
from serve.schemas import SuggestRequest
from serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "page"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASTED = """operator: билайн добрый день меня зовут анна
client: сняли деньги непонятно за что с баланса
вчера сто рублей
operator: сейчас проверю списания по номеру"""


# --- the files, without a browser ----------------------------------------------------------------

@pytest.fixture(scope="module")
def client(trained_bundle_dir, tmp_path_factory, api_keys):
    db = tmp_path_factory.mktemp("page-store") / "fb.sqlite3"
    app = create_app(Settings(model_dir=trained_bundle_dir, feedback_db=db, api_keys_file=api_keys.file))
    with TestClient(app, headers=api_keys.headers("operator")) as c:
        yield c


def test_page_index_served_with_csp(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="ru">' in r.text and "/static/app.js" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("name, media", [("app.js", "text/javascript"), ("render.js", "text/javascript"),
                                         ("api.js", "text/javascript"), ("style.css", "text/css"),
                                         ("samples.json", "application/json")])
def test_page_static_files_served(client, name, media):
    r = client.get(f"/static/{name}")
    assert r.status_code == 200, name
    assert r.headers["content-type"].startswith(media)
    assert r.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ["index.htm", "missing.js", "..%2Fmain.py", ".hidden.js", "main.py"])
def test_page_static_refuses_unknown_names(client, name):
    r = client.get(f"/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] in {"not_found", "http_error"}


def test_page_samples_are_valid_requests(client):
    samples = json.loads((STATIC_DIR / "samples.json").read_text(encoding="utf-8"))
    assert 2 <= len(samples) <= 5
    assert len({s["id"] for s in samples}) == len(samples)
    for sample in samples:
        assert sample["title"] and sample["channel"] in {"call", "chat", "email"}
        request = SuggestRequest.model_validate(
            {"channel": sample["channel"], "client_id": sample["client_id"], "turns": sample["turns"]})
        assert len(request.turns) >= 6
        assert {t.role for t in request.turns} >= {"client", "operator"}
        r = client.post("/v1/suggest", json={"channel": sample["channel"], "turns": sample["turns"]})
        assert r.status_code == 200, r.text


# --- the page in a real browser -----------------------------------------------------------------

@pytest.fixture(scope="module")
def base_url(trained_bundle_dir, tmp_path_factory, api_keys):
    db = tmp_path_factory.mktemp("page-live-store") / "fb.sqlite3"
    live_app = create_app(Settings(model_dir=trained_bundle_dir, feedback_db=db, api_keys_file=api_keys.file))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(live_app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):  # up to a minute to load the bundle and bind
        if server.started or not thread.is_alive():
            break
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    if sync_playwright is None:
        pytest.skip("playwright is missing; pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is missing; `make system-deps` installs it")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 1000}, locale="ru-RU",
            permissions=["clipboard-read", "clipboard-write"],
        )
        yield context
        context.close()


@pytest.fixture
def page(browser_context, base_url, api_keys):
    """The page with an operator's key in its key field's storage, as after the operator saved it once."""
    page = browser_context.new_page()
    page.add_init_script(f"localStorage.setItem('podskazka.apiKey', {json.dumps(api_keys.keys['operator'])})")
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console: {msg.text}"))
    page.goto(f"{base_url}/")
    page.wait_for_selector("body[data-ready='true']")
    yield page
    page.close()


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_page_paste_shows_suggestions_copy_and_feedback(page, base_url):
    page.select_option("#channel", "call")
    page.fill("#conversation", PASTED)
    page.get_by_role("button", name="Получить подсказки").click()
    first = page.locator("article[data-task='reason2'] .ranked li").first
    first.wait_for()

    # the conversation as parsed: the unlabelled line continues the client's turn
    turns = page.locator("#transcript .turn")
    assert turns.count() == 3
    assert "вчера сто рублей" in turns.nth(1).inner_text()

    # ranked labels with bars, highest first, and a decision line per task
    assert first.locator(".label-text").inner_text().startswith("За что списание?")
    meters = page.locator("article[data-task='reason2'] [role='meter']")
    values = [int(meters.nth(i).get_attribute("aria-valuenow")) for i in range(meters.count())]
    assert len(values) == 3 and values == sorted(values, reverse=True) and values[0] > 0
    assert page.locator("article[data-task] .decision").count() >= 1
    expected = page.request.get(f"{base_url}/readyz").json()["model_version"]
    assert page.locator("#model-version").inner_text() == expected
    assert "Телеком" in page.locator("#domains").inner_text()
    # the comment rules: a complaint about a charge is a claim (rule 1 of the seed)
    hint = page.locator("[data-testid='comment-hint']")
    expect(hint).to_contain_text("Нужен комментарий")
    assert hint.locator("li[data-rule='claim']").inner_text().startswith("Претензия")

    # a macro: its text is copied to the clipboard on click
    macro = page.locator("article.macro").first
    macro.wait_for()
    macro.get_by_role("button", name="Копировать", exact=True).click()
    expect(page.locator("#status")).to_contain_text("скопирован")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip()
    assert macro.locator(".macro-text").inner_text() == copied

    # accept the reason: a feedback request with what was suggested and chosen
    accept = page.locator("article[data-task='reason2']").get_by_role("button", name="✓ Принять")
    with page.expect_request(lambda r: r.url.endswith("/v1/feedback") and r.method == "POST") as sent:
        accept.click()
    body = sent.value.post_data_json
    assert body["task"] == "reason2" and body["accepted"] is True
    assert body["suggested"] == body["chosen"] and body["suggested"]
    assert body["model_version"] == expected and body["interaction_id"].startswith("paste-")
    assert body["channel"] == "call" and body["rank"] == 1 and 0 < body["confidence"] <= 1
    assert [t["role"] for t in body["turns"]] == ["operator", "client", "operator"]
    expect(page.locator("article[data-task='reason2'] .feedback-note")).to_have_text("Принято, спасибо")
    assert page.locator("article[data-task='reason2'] button.accept").get_attribute("aria-pressed") == "true"

    # the macro's own feedback
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as answered:
        macro.get_by_role("button", name="✓ Подходит").click()
    assert answered.value.status == 201
    assert answered.value.request.post_data_json["macro_id"] == macro.get_attribute("data-macro")
    _screenshot(page, "paste.png")
    assert page.problems == []


def test_page_reject_with_correction_sends_chosen_label(page):
    page.fill("#conversation", "client: где мой заказ статус не меняется неделю")
    page.keyboard.press("Tab")
    page.focus("#conversation")
    page.keyboard.press("Control+Enter")  # the keyboard path submits too
    card = page.locator("article[data-task='topic']")
    card.locator(".ranked li").first.wait_for()
    card.get_by_role("button", name="✕ Отклонить").click()
    select = page.locator("#correct-topic")
    assert select.evaluate("el => el === document.activeElement")
    select.select_option("Сроки доставки")
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as answered:
        card.get_by_role("button", name="Отправить").click()
    assert answered.value.status == 201
    body = answered.value.request.post_data_json
    assert body == {**body, "task": "topic", "chosen": "Сроки доставки", "accepted": False}
    assert body["suggested"] != "Сроки доставки"
    expect(card.locator(".feedback-note")).to_have_text("Отклонено, учтено")
    assert card.locator("button.reject").get_attribute("aria-pressed") == "true"
    assert page.problems == []


def _replay(page, sample_id: str, speed: str = "50") -> None:
    page.select_option("#sample", sample_id)
    page.select_option("#speed", speed)
    page.get_by_role("button", name="▶ Воспроизвести").click()
    expect(page.locator("#status")).to_contain_text("завершён", timeout=60_000)


def _sample(sample_id: str) -> dict:
    samples = json.loads((STATIC_DIR / "samples.json").read_text(encoding="utf-8"))
    return next(s for s in samples if s["id"] == sample_id)


def test_page_replay_streams_a_sample_call_over_websocket(page):
    frames = {"sent": [], "received": []}

    def watch(ws):
        ws.on("framesent", lambda payload: frames["sent"].append(json.loads(payload)))
        ws.on("framereceived", lambda payload: frames["received"].append(json.loads(payload)))

    page.on("websocket", watch)
    _replay(page, "call-spisanie")
    sample = _sample("call-spisanie")
    assert page.locator("#transcript .turn").count() == len(sample["turns"])
    assert page.locator("#transcript .turn.partial").count() == 0
    expect(page.locator("#transport")).to_have_text("WebSocket /v1/live")
    assert page.locator("#replay-button").is_enabled() and page.locator("#stop-button").is_disabled()

    # the protocol as sent: the key, start, partials and finals under one seq per utterance, end
    kinds = [f["type"] for f in frames["sent"]]
    assert kinds[:2] == ["auth", "start"] and kinds[-1] == "end" and set(kinds) == {"auth", "start", "turn", "end"}
    turns = [f for f in frames["sent"] if f["type"] == "turn"]
    assert any(not t["final"] for t in turns), "a call streams partial turns"
    finals = [t for t in turns if t["final"]]
    assert [t["text"] for t in finals] == [t["text"] for t in sample["turns"]]
    assert [t["seq"] for t in finals] == list(range(len(sample["turns"])))
    # ...and what came back was rendered: the stable label is the one shown
    expect(page.locator("article[data-task='reason2'] .ranked li")).to_have_count(3)
    last = [f for f in frames["received"] if f.get("type") == "suggestions"][-1]
    shown = page.locator("article[data-task='reason2'] .ranked li.top .label-text span").first.inner_text()
    assert shown == last["stable"]["reason2"]["label"]
    _screenshot(page, "replay.png")
    assert page.problems == []


def test_page_second_replay_of_the_same_call_is_flagged_duplicate(page):
    _replay(page, "call-internet")
    assert page.locator("[data-testid='duplicate']").count() == 0
    _replay(page, "call-internet")
    notice = page.locator("[data-testid='duplicate']")
    expect(notice).to_contain_text("Похоже на дубликат обращения № demo-call-internet-")
    expect(notice).to_contain_text("«Дубликат»")
    _screenshot(page, "duplicate.png")
    assert page.problems == []


def test_page_macro_segments_mark_filled_and_missing_slots(page):
    macro = {"id": "M04", "text": "Вопрос по интернету. Модель телефона: Redmi Note 10. Выполнено: {действие}.",
             "filled_slots": {"интернет_MMS": "интернету", "модель": "Redmi Note 10"}, "missing_slots": ["действие"]}
    template = "Вопрос по {интернет_MMS}. Модель телефона: {модель}. Выполнено: {действие}."
    segments = page.evaluate(
        "([m, t]) => import('/static/render.js').then((r) => [r.macroSegments(m, t), r.macroSegments(m, null)])",
        [macro, template])
    by_template, by_search = segments
    assert by_template == [{"text": "Вопрос по "}, {"slot": "интернет_MMS", "value": "интернету"},
                           {"text": ". Модель телефона: "}, {"slot": "модель", "value": "Redmi Note 10"},
                           {"text": ". Выполнено: "}, {"missing": "действие"}, {"text": "."}]
    # without the template the values are found in the text and the placeholder is still marked
    assert {"slot": "модель", "value": "Redmi Note 10"} in by_search and {"missing": "действие"} in by_search
    assert "".join(s.get("text") or s.get("value") or "{%s}" % s["missing"] for s in by_search) == macro["text"]


def test_page_replay_resumes_after_a_dropped_socket(page):
    """The page's socket is cut mid-call: the page starts the same interaction again, the server
    resumes it, and the call goes on over WebSocket."""
    connections, from_server, from_page = [], [], []

    def route(ws):
        server = ws.connect_to_server()
        connections.append(ws)
        number = len(connections)
        server.on_message(lambda message: (from_server.append(json.loads(message)), ws.send(message)))

        def forward(message):
            from_page.append((number, json.loads(message)))
            server.send(message)
            if number == 1 and len(from_page) == 8:  # start and a few turns, then the line drops
                ws.close(code=4999, reason="dropped")
        ws.on_message(forward)

    page.route_web_socket("**/v1/live", route)
    _replay(page, "call-spisanie", speed="10")  # slow enough that the drop lands mid-call
    expect(page.locator("#transport")).to_have_text("WebSocket /v1/live (переподключено)")
    assert len(connections) == 2
    second = [m for n, m in from_page if n == 2]
    assert [m["type"] for m in second[:2]] == ["auth", "start"]
    starts = [m for m in from_server if m["type"] == "started"]
    assert second[1]["resume_token"] == starts[0]["resume_token"]  # the owner's token resumes it
    assert [s["resumed"] for s in starts] == [False, True]
    assert starts[1]["interaction_id"] == starts[0]["interaction_id"]
    finals = [m for m in from_server if m["type"] == "suggestions" and m["final"]]
    assert finals[-1]["seq"] == len(_sample("call-spisanie")["turns"]) - 1
    assert page.locator("#transcript .turn").count() == len(_sample("call-spisanie")["turns"])
    assert page.problems == []


def test_page_replay_falls_back_to_http_without_websocket(page):
    page.route_web_socket("**/v1/live", lambda ws: ws.close(code=4999, reason="no websocket here"))
    posts = []
    page.on("request", lambda r: r.url.endswith("/v1/suggest") and posts.append(r.post_data_json))
    _replay(page, "chat-ne-poluchen")
    expect(page.locator("#transport")).to_contain_text("HTTP /v1/suggest")
    sample = _sample("chat-ne-poluchen")
    assert [len(p["turns"]) for p in posts] == list(range(1, len(sample["turns"]) + 1))
    assert {p["channel"] for p in posts} == {"chat"}
    expect(page.locator("article[data-task='topic'] .ranked li")).to_have_count(3)
    assert page.problems == []


def test_page_task_cards_show_abstention_and_group(page):
    result = {
        "model_version": "m-1", "domains": [{"label": "telecom", "confidence": 0.9}, {"label": "marketplace", "confidence": 0.1}],
        "predictions": {"reason2": [{"label": "Как подключить?", "confidence": 0.31},
                                    {"label": "Как отключить?", "confidence": 0.3}],
                        "topic": [{"label": "Статус заказа", "confidence": 0.5}]},
        "decisions": {"reason2": {"label": "Услуги", "confidence": 0.61, "level": "group"},
                      "topic": {"label": None, "confidence": 0.5, "level": None}},
        "macros": [],
    }
    html = page.evaluate("""async ([result]) => {
        const r = await import('/static/render.js');
        const box = document.getElementById('tasks');
        const headers = { authorization: `Bearer ${localStorage.getItem('podskazka.apiKey')}` };
        const taxonomy = await (await fetch('/v1/taxonomy', { headers })).json();
        r.renderTasks(box, result, { taxonomy, feedback: new Map(),
            handlers: { suggestedFor: (t) => result.predictions[t][0].label } });
        return [...box.querySelectorAll('article')].map((a) => [a.dataset.task, a.className, a.textContent]);
    }""", [result])
    cards = {task: (cls, text) for task, cls, text in html}
    page.locator("article[data-task='topic'] summary").click()  # unfold, for the screenshot
    _screenshot(page, "decisions.png")
    assert "группа" in cards["reason2"][1].lower() and "Услуги · 61%" in cards["reason2"][1]
    assert cards["reason2"][0] == "task"
    # an abstention says so; a task of the unlikely domain is folded
    assert cards["topic"][0] == "task off-domain"
    assert "домен «Маркетплейс»: 10%" in cards["topic"][1] and "не уверена" in cards["topic"][1]
