"""The operator page at ``/``: served files, and the page itself in a real headless Chromium.

The browser tests start a real uvicorn server on a free loopback port with the tiny bundle and drive
Debian's chromium through Playwright (its own browser download is never used). Screenshots go to
artifacts/page/ (gitignored); their paths are printed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser tests skip; the rest runs
    expect = sync_playwright = None

from model.conversation.record import Interaction, Turn
from model.conversation.taxonomy import parse_taxonomy
from model.suggestion import RankedLabel
from serve.main import create_app
from serve.routes.page import STATIC_DIR
from serve.schemas import SuggestRequest
from serve.settings import Settings
from tests.factories import server_in_thread

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "page"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
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


@pytest.mark.parametrize(
    "name, media",
    [
        ("app.js", "text/javascript"),
        ("render.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("style.css", "text/css"),
        ("samples.json", "application/json"),
    ],
)
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
            {"channel": sample["channel"], "client_id": sample["client_id"], "turns": sample["turns"]}
        )
        assert len(request.turns) >= 6
        assert {t.role for t in request.turns} >= {"client", "operator"}
        r = client.post("/v1/suggest", json={"channel": sample["channel"], "turns": sample["turns"]})
        assert r.status_code == 200, r.text


# --- the page in a real browser -----------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(trained_bundle_dir, tmp_path_factory, api_keys):
    db = tmp_path_factory.mktemp("page-live-store") / "fb.sqlite3"
    live_app = create_app(Settings(model_dir=trained_bundle_dir, feedback_db=db, api_keys_file=api_keys.file))
    with server_in_thread(live_app, wait_s=60) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    if sync_playwright is None:
        pytest.skip("playwright is missing; pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is missing; `make system-deps` installs it")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 1000},
            locale="ru-RU",
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
    macro = page.locator("article.macro[data-macro]").first
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
    # the suggested label itself is no correction: it is not offered
    suggested = card.locator(".ranked li.top .label-name").inner_text()
    options = select.locator("option").evaluate_all("os => os.map((o) => o.value)")
    assert suggested not in options
    chosen = "Сроки доставки" if suggested != "Сроки доставки" else "Статус заказа"
    select.select_option(chosen)
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as answered:
        card.get_by_role("button", name="Отправить").click()
    assert answered.value.status == 201
    body = answered.value.request.post_data_json
    assert body == {**body, "task": "topic", "chosen": chosen, "accepted": False}
    assert body["suggested"] == suggested != chosen
    # the chosen label is shown after the reject
    expect(card.locator(".feedback-note")).to_have_text(f"Отклонено; верная метка: «{chosen}»")
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
    macro = {
        "id": "M04",
        "text": "Вопрос по интернету. Модель телефона: Redmi Note 10. Выполнено: {действие}.",
        "filled_slots": {"интернет_MMS": "интернету", "модель": "Redmi Note 10"},
        "missing_slots": ["действие"],
    }
    template = "Вопрос по {интернет_MMS}. Модель телефона: {модель}. Выполнено: {действие}."
    segments = page.evaluate(
        "([m, t]) => import('/static/render.js').then((r) => [r.macroSegments(m, t), r.macroSegments(m, null)])",
        [macro, template],
    )
    by_template, by_search = segments
    assert by_template == [
        {"text": "Вопрос по "},
        {"slot": "интернет_MMS", "value": "интернету"},
        {"text": ". Модель телефона: "},
        {"slot": "модель", "value": "Redmi Note 10"},
        {"text": ". Выполнено: "},
        {"missing": "действие"},
        {"text": "."},
    ]
    # without the template the values are found in the text and the placeholder is still marked
    assert {"slot": "модель", "value": "Redmi Note 10"} in by_search and {"missing": "действие"} in by_search
    assert "".join(s.get("text") or s.get("value") or "{{{}}}".format(s["missing"]) for s in by_search) == macro["text"]


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


def _render_tasks(page, result, taxonomy=None):
    """Render ``result`` into the task cards with the served taxonomy (or ``taxonomy``)."""
    return page.evaluate(
        """async ([result, given]) => {
        const r = await import('/static/render.js');
        const box = document.getElementById('tasks');
        const headers = { authorization: `Bearer ${localStorage.getItem('podskazka.apiKey')}` };
        const taxonomy = given || await (await fetch('/v1/taxonomy', { headers })).json();
        r.renderTasks(box, result, { taxonomy, feedback: new Map(),
            handlers: { suggestedFor: (t) => (result.predictions[t][0] || {}).label } });
        return [...box.querySelectorAll('article')].map((a) => ({ task: a.dataset.task, state: a.dataset.state,
            heading: a.querySelector('h4 .task-title').textContent, text: a.textContent }));
    }""",
        [result, taxonomy],
    )


def test_page_certainty_is_one_explained_notion(page):
    """Point 4: the word comes from the decision level (not the percentage), percentages are clamped
    to 1–99 %, and a tooltip explains both."""
    result = {
        "model_version": "m-1",
        "domains": [],
        "predictions": {
            "reason2": [
                {"label": "Как подключить?", "confidence": 0.52},
                {"label": "Как отключить?", "confidence": 0.3},
                {"label": "Другое", "confidence": 0.0},
            ],
            "topic": [{"label": "Статус заказа", "confidence": 0.9998}],
            "resolution": [{"label": "Решено", "confidence": 0.85}],
        },
        "decisions": {
            "reason2": {"label": "Как подключить?", "confidence": 0.52, "level": "label"},
            "topic": {"label": None, "confidence": 0.9998, "level": None, "reason": "other_domain"},
            "resolution": {"label": None, "confidence": 0.85, "level": None},
        },
        "macros": [],
    }
    cards = {c["task"]: c for c in _render_tasks(page, result)}
    assert cards["reason2"]["state"] == "label" and "уверенно" in cards["reason2"]["text"]
    assert cards["topic"]["state"] == "other_domain" and "другой домен" in cards["topic"]["text"]
    assert cards["resolution"]["state"] == "abstain" and "не уверена" in cards["resolution"]["text"]
    text = page.locator("#tasks").inner_text().replace("\u00a0", " ")
    assert ">99 %" in text and "<1 %" in text and "52 %" in text
    assert not re.search(r"(?<![\d<>])(100|0) ?%", text), text
    assert "порог" in page.locator("article[data-task='reason2'] .decision").get_attribute("title")
    # a group decision says «вероятно» and names the group
    result["decisions"]["reason2"] = {"label": "Услуги", "confidence": 0.61, "level": "group"}
    cards = {c["task"]: c for c in _render_tasks(page, result)}
    assert (
        cards["reason2"]["state"] == "group"
        and "вероятно" in cards["reason2"]["text"]
        and "«Услуги»" in cards["reason2"]["text"]
    )
    percents = page.evaluate(
        "import('/static/render.js').then((r) => [0, 0.001, 0.004, 0.005, 0.5, 0.994, 0.995, 0.9998, 1].map(r.percent))"
    )
    assert [p.replace("\u00a0", " ") for p in percents] == [
        "<1 %",
        "<1 %",
        "<1 %",
        "1 %",
        "50 %",
        "99 %",
        ">99 %",
        ">99 %",
        ">99 %",
    ]
    _screenshot(page, "decisions.png")
    assert page.problems == []


def test_page_macros_that_contradict_the_decided_resolution_are_marked(page):
    """Point 4: macros whose `when`/title name another resolution than the decided one are demoted
    and marked; which resolution a macro is for is read from the taxonomy, not from code."""
    claims, why = page.evaluate("""async () => {
        const r = await import('/static/render.js');
        const headers = { authorization: `Bearer ${localStorage.getItem('podskazka.apiKey')}` };
        const taxonomy = await (await fetch('/v1/taxonomy', { headers })).json();
        const claims = r.macroClaims(taxonomy);
        return [claims, r.contradictions([{ id: 'M15' }, { id: 'M16' }, { id: 'M01' }], claims, { resolution: 'Решено' })];
    }""")
    assert claims["M15"] == {"resolution": ["Решено"]} and claims["M16"] == {"resolution": ["Не решено"]}
    assert claims["M18"] == {"resolution": ["Не решено - Эскалировать"]} and "M01" not in claims
    assert set(why) == {"M16"} and "«Не решено»" in why["M16"] and "«Решено»" in why["M16"]
    # on the page: the chat decides «Решено», the contradicting macro goes below the consistent one
    page.route(
        "**/v1/suggest",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(
                {
                    "interaction_id": "x",
                    "model_version": "m-1",
                    "domains": [{"label": "marketplace", "confidence": 0.97}],
                    "predictions": {
                        "resolution": [
                            {"label": "Решено", "confidence": 0.62},
                            {"label": "Не решено", "confidence": 0.3},
                        ]
                    },
                    "decisions": {"resolution": {"label": "Решено", "confidence": 0.62, "level": "label"}},
                    "macros": [
                        {
                            "id": "M16",
                            "title": "Создано задание (Не решено)",
                            "text": "Создано задание.",
                            "confidence": 0.7,
                            "filled_slots": {},
                            "missing_slots": [],
                        },
                        {
                            "id": "M15",
                            "title": "Консультация по заказу (Решено)",
                            "text": "Консультация.",
                            "confidence": 0.4,
                            "filled_slots": {},
                            "missing_slots": [],
                        },
                    ],
                }
            ),
        ),
    )
    page.fill("#conversation", "client: где мой заказ")
    page.get_by_role("button", name="Получить подсказки").click()
    macros = page.locator("article.macro[data-macro]")
    expect(macros).to_have_count(2)
    assert [macros.nth(i).get_attribute("data-macro") for i in range(2)] == ["M15", "M16"]
    assert "contradicts" in macros.nth(1).get_attribute("class")
    assert "а решено «Решено»" in macros.nth(1).locator(".macro-note").inner_text()
    assert page.problems == []


def test_page_headings_come_from_the_taxonomy(page):
    """Point 6: another taxonomy's task shows its title (or question), never the raw task name."""
    taxonomy = {
        "tasks": {
            "label_l1": {
                "title": "Категория",
                "question": "Какая категория?",
                "domain": "",
                "labels": [{"label": "A", "group": None}, {"label": "B", "group": None}],
            },
            "label_l2": {
                "question": "Какая подкатегория?",
                "domain": "",
                "labels": [{"label": "C", "group": None}, {"label": "D", "group": None}],
            },
        },
        "macros": [],
    }
    result = {
        "model_version": "m-2",
        "domains": [],
        "predictions": {
            "label_l1": [{"label": "A", "confidence": 0.7}],
            "label_l2": [{"label": "C", "confidence": 0.6}],
        },
        "decisions": {
            "label_l1": {"label": "A", "confidence": 0.7, "level": "label"},
            "label_l2": {"label": None, "confidence": 0.6, "level": None},
        },
        "macros": [],
    }
    cards = {c["task"]: c["heading"] for c in _render_tasks(page, result, taxonomy)}
    assert cards == {"label_l1": "Категория", "label_l2": "Какая подкатегория?"}
    # the served taxonomy carries the titles
    served = {
        c["task"]: c["heading"]
        for c in _render_tasks(
            page, {**result, "predictions": {"reason2": [{"label": "Другое", "confidence": 0.5}]}, "decisions": {}}
        )
    }
    assert served == {"reason2": "Причина обращения"}
    assert page.problems == []


def test_taxonomy_titles_served_and_comment_rules_stay_with_their_taxonomy(client, predictor):
    """Point 6 without a browser: GET /v1/taxonomy has the tasks' titles; the telecom comment rules
    do not run on a model whose taxonomy is another one."""
    tasks = client.get("/v1/taxonomy").json()["tasks"]
    assert {name: t["title"] for name, t in tasks.items()} == {
        "reason2": "Причина обращения",
        "topic": "Тема обращения",
        "resolution": "Резолюция",
    }
    other = copy.copy(predictor)
    other.taxonomy = parse_taxonomy({"version": 1, "tasks": {"label_l1": {"title": "Категория", "labels": ["A", "B"]}}})
    complaint = Interaction(turns=(Turn(role="client", text="не могу войти, ничего не работает"),), channel="chat")
    hint = predictor._comment(complaint, {}, (RankedLabel(label="telecom", confidence=1.0),))
    assert hint is not None and hint.required is True
    assert other._comment(complaint, {}, (RankedLabel(label="label_l1", confidence=1.0),)) is None


def test_feedback_same_label_correction_refused(client):
    """Point 5: a «correction» to the suggested label is refused (it would be exported as training data)."""
    body = {
        "interaction_id": "same-1",
        "model_version": "m",
        "task": "topic",
        "suggested": "Статус заказа",
        "chosen": "Статус заказа",
        "accepted": False,
    }
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "same_label"
    assert "совпадает с подсказкой" in r.json()["error"]["message"]
    macro = {"interaction_id": "same-1", "model_version": "m", "macro_id": "M01", "chosen": "M01", "accepted": False}
    assert client.post("/v1/feedback", json=macro).json()["error"]["code"] == "same_label"
    assert client.post("/v1/feedback", json={**body, "accepted": True}).status_code == 201
    assert client.post("/v1/feedback", json={**body, "chosen": "Сроки доставки"}).status_code == 201


# --- the page as an operator sees it: layout, no-content state, keys, paste, errors, a dead server ---

CLS_OBSERVER = """() => { window.__cls = 0; window.__shifts = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) { if (!e.hadRecentInput) {
    window.__cls += e.value; window.__shifts.push([e.value, (e.sources || []).map((s) => s.node && (s.node.id || s.node.className))]); } } })
    .observe({ type: 'layout-shift', buffered: false });
  window.__orders = [];
  const macros = document.getElementById('macros');
  const record = () => { const ids = [...macros.querySelectorAll('article.macro[data-macro]')].map((a) => a.dataset.macro).join(',');
    if (ids && window.__orders[window.__orders.length - 1] !== ids) window.__orders.push(ids); };
  new MutationObserver(record).observe(macros, { childList: true });
}"""

IN_VIEW = """() => { const inView = (el) => { if (!el) return false; const r = el.getBoundingClientRect();
    return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; };
  const turns = document.querySelectorAll('#transcript .turn'); const list = document.getElementById('transcript');
  const last = turns[turns.length - 1]; const box = list.getBoundingClientRect();
  const inList = last && last.getBoundingClientRect().bottom <= box.bottom + 1 && last.getBoundingClientRect().top >= box.top - 1;
  return { lastTurn: inView(last) && inList, topMacro: inView(document.querySelector('article.macro[data-macro]')),
           scrolled: scrollY, turns: turns.length }; }"""


def test_page_replay_layout_is_stable_in_view_and_macros_steady(page):
    """Point 3 (and 4): at 1280×720 a replayed call shifts the layout by CLS ≤ 0.1, the latest turn and
    the top macro are on screen without scrolling, the macro order is steady, no «100 %» or «0 %»."""
    page.set_viewport_size({"width": 1280, "height": 720})
    page.evaluate(CLS_OBSERVER)
    page.select_option("#sample", "call-spisanie")
    page.select_option("#speed", "10")
    page.get_by_role("button", name="▶ Воспроизвести").click()
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length >= 6", timeout=30_000)
    page.locator("article.macro[data-macro]").first.wait_for()
    middle = page.evaluate(IN_VIEW)
    expect(page.locator("#status")).to_contain_text("завершён", timeout=60_000)
    end = page.evaluate(IN_VIEW)
    cls, shifts, orders = page.evaluate("[window.__cls, window.__shifts, window.__orders]")
    print(f"CLS over the call at 1280x720: {cls:.4f}; macro orders: {orders}")
    assert cls <= 0.1, shifts
    assert middle["lastTurn"] and middle["topMacro"] and middle["scrolled"] == 0, middle
    assert end["lastTurn"] and end["topMacro"] and end["scrolled"] == 0, end
    assert len(orders) <= 4, orders  # was nine orders in a ten-second call
    text = page.locator("body").inner_text().replace("\u00a0", " ")
    assert not re.search(r"(?<![\d<>])(100|0) ?%", text)
    _screenshot(page, "layout-1280x720.png")
    assert page.problems == []


def test_page_macros_do_not_move_under_the_pointer(page):
    """Point 3: while the pointer is on the macros, no macro changes place however the ranking moves."""
    page.set_viewport_size({"width": 1280, "height": 720})
    page.evaluate(CLS_OBSERVER)
    page.select_option("#sample", "call-internet")
    page.select_option("#speed", "10")
    page.get_by_role("button", name="▶ Воспроизвести").click()
    top = page.locator("article.macro[data-macro]").first
    top.wait_for(timeout=30_000)
    top.locator(".copy-area").hover()
    page.evaluate("window.__orders = []")
    expect(page.locator("#status")).to_contain_text("завершён", timeout=60_000)
    assert len(page.evaluate("window.__orders")) <= 1
    assert page.problems == []


def test_page_shows_too_little_data_before_the_client_speaks(page):
    """Point 1: a greeting-only conversation gets «мало данных», no decided label, no percentages, no macros."""
    page.fill("#conversation", "оператор: Билайн, добрый день, меня зовут Анна\nклиент: алло, здравствуйте")
    page.get_by_role("button", name="Получить подсказки").click()
    cards = page.locator("article.task")
    expect(cards.first).to_have_attribute("data-state", "no_content")
    assert cards.count() == 3
    for i in range(cards.count()):
        card = cards.nth(i)
        assert card.get_attribute("data-state") == "no_content"
        assert "мало данных" in card.locator(".decision").inner_text().lower()
        assert "клиент ещё не назвал причину" in card.locator(".decision").inner_text()
        assert card.locator(".pct").all_inner_texts() == ["", "", ""]
        assert card.locator("button.accept").is_disabled()
    assert page.locator("article.macro[data-macro]").count() == 0
    expect(page.locator("#macros")).to_contain_text("Мало данных")
    _screenshot(page, "no-content.png")
    # the client names the reason: the cards decide
    page.fill("#conversation", PASTED)
    page.get_by_role("button", name="Получить подсказки").click()
    expect(page.locator("article[data-task='reason2']")).not_to_have_attribute("data-state", "no_content")
    assert page.problems == []


def test_page_keyboard_shortcuts(page):
    """Point 5: A accepts, R opens the correction, C copies the top macro; shown in the page; not while typing."""
    page.fill("#conversation", PASTED)
    page.get_by_role("button", name="Получить подсказки").click()
    page.locator("article.macro[data-macro]").first.wait_for()
    expect(page.locator("#shortcuts")).to_contain_text("A")
    target = page.locator("article.task.kbd-target")
    expect(target).to_have_count(1)
    assert target.locator("button.accept").get_attribute("aria-keyshortcuts") == "A"
    assert page.locator("article.macro[data-macro]").first.locator("button.copy kbd").inner_text() == "C"
    task = target.get_attribute("data-task")
    # typing in the text field fires nothing
    sent = []
    page.on("request", lambda r: r.url.endswith("/v1/feedback") and sent.append(r))
    page.focus("#conversation")
    page.keyboard.press("a")
    page.keyboard.press("r")
    page.wait_for_timeout(200)
    assert sent == [] and page.locator(f"#correct-{task}").count() == 0
    page.locator("#suggestions").focus()
    with page.expect_request(lambda r: r.url.endswith("/v1/feedback")) as accepted:
        page.keyboard.press("a")
    assert accepted.value.post_data_json["task"] == task and accepted.value.post_data_json["accepted"] is True
    expect(target.locator(".feedback-note")).to_have_text("Принято, спасибо")
    page.locator("#suggestions").focus()
    page.keyboard.press("c")
    expect(page.locator("#status")).to_contain_text("скопирован")
    assert (
        page.evaluate("navigator.clipboard.readText()")
        == page.locator("article.macro[data-macro] .macro-text").first.inner_text()
    )
    page.locator("#suggestions").focus()
    page.keyboard.press("r")
    assert page.locator(f"#correct-{task}").evaluate("el => el === document.activeElement")
    assert page.problems == []


def test_page_parses_a_timestamped_crm_paste(page):
    """Point 5: CRM lines with times and names are turns, not one client turn."""
    page.fill(
        "#conversation",
        "\n".join(
            [
                "[12:01] Клиент: здравствуйте, где мой заказ",
                "12:01:33 Оператор: сейчас посмотрю",
                "(12:02) Оператор Анна: заказ в пути",
                "2024-05-01 12:03:10 Покупатель: а когда привезут?",
                "уже неделю жду",
                "Оператор [12:04]: завтра до 18:00",
            ]
        ),
    )
    page.get_by_role("button", name="Получить подсказки").click()
    turns = page.locator("#transcript .turn")
    expect(turns).to_have_count(5)
    roles = [turns.nth(i).locator(".role").inner_text() for i in range(5)]
    assert roles == ["Клиент", "Оператор", "Оператор", "Клиент", "Оператор"]
    texts = [turns.nth(i).locator(".text").inner_text() for i in range(5)]
    assert texts[0] == "здравствуйте, где мой заказ" and texts[2] == "заказ в пути"
    assert texts[3] == "а когда привезут?\nуже неделю жду" and texts[4] == "завтра до 18:00"
    assert page.problems == []


def test_page_errors_are_in_russian(page):
    """Point 5: the server's English messages never reach the operator; codes map to Russian text."""
    page.route(
        "**/v1/suggest",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps(
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "the request is invalid: turns: field required",
                        "details": [],
                    }
                }
            ),
        ),
    )
    page.fill("#conversation", "client: где мой заказ")
    page.get_by_role("button", name="Получить подсказки").click()
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    status = page.locator("#status").inner_text()
    assert "Сервер не принял запрос" in status and "invalid" not in status and "field" not in status
    page.unroute("**/v1/suggest")
    page.route("**/v1/suggest", lambda route: route.abort())
    page.get_by_role("button", name="Получить подсказки").click()
    expect(page.locator("#status")).to_have_text("Нет связи с сервером.")
    page.unroute("**/v1/suggest")
    page.problems[:] = [p for p in page.problems if "Failed to load resource" not in p and "ERR_FAILED" not in p]
    assert page.problems == []


class _ServerProcess:
    """A uvicorn subprocess on a fixed port that a test may kill and start again."""

    def __init__(self, bundle: Path, keys_file: Path, db: Path) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.env = {
            **os.environ,
            "PODSKAZKA_MODEL_DIR": str(bundle),
            "PODSKAZKA_API_KEYS_FILE": str(keys_file),
            "PODSKAZKA_FEEDBACK_DB": str(db),
            "PODSKAZKA_PII_SECRET": "x" * 32,
            "PODSKAZKA_RELOAD_SECONDS": "0",
            "PODSKAZKA_MODEL_WORKERS": "1",
            "PODSKAZKA_LOG_REQUESTS": "false",
            "PODSKAZKA_DOCS": "false",
        }
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "serve.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
            assert self.proc.poll() is None, "uvicorn exited"
        raise AssertionError("uvicorn did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def test_page_server_killed_mid_call_goes_offline_then_recovers(
    browser_context, api_keys, trained_bundle_dir, tmp_path
):
    """Point 2: the server dies mid-call: a persistent «нет связи» with the time of the last update and
    greyed (stale) cards, never «Разговор завершён»; the server comes back: the page reconnects by
    itself (backoff, resume token), sends the turns again and finishes the call."""
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip("no browser")
    server = _ServerProcess(trained_bundle_dir, api_keys.file, tmp_path / "fb.sqlite3")
    server.start()
    page = browser_context.new_page()
    try:
        page.set_viewport_size({"width": 1280, "height": 720})
        page.add_init_script(f"localStorage.setItem('podskazka.apiKey', {json.dumps(api_keys.keys['operator'])})")
        page.goto(f"{server.url}/")
        page.wait_for_selector("body[data-ready='true']")
        starts = []
        page.on(
            "websocket",
            lambda ws: ws.on(
                "framesent", lambda p: json.loads(p).get("type") == "start" and starts.append(json.loads(p))
            ),
        )
        page.select_option("#sample", "call-spisanie")
        page.select_option("#speed", "10")
        page.get_by_role("button", name="▶ Воспроизвести").click()
        page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length >= 3", timeout=30_000)
        expect(page.locator("article[data-task='reason2']")).not_to_have_attribute("data-state", "waiting")
        server.kill()
        connection = page.locator("#connection")
        expect(connection).to_contain_text("нет связи", timeout=10_000)
        expect(page.locator("#suggestions")).to_have_class(re.compile(r"\bstale\b"))
        expect(connection).to_contain_text("последнее обновление в")
        page.wait_for_timeout(3000)  # persistent: not a flash, and never «завершён» while the server is away
        assert "нет связи" in connection.inner_text()
        assert "завершён" not in page.locator("#status").inner_text()
        assert "Нет связи с сервером" in page.locator("#status").inner_text()
        assert page.locator("article[data-task='reason2'] .ranked li").count() == 3  # the stale cards stay, greyed
        assert (
            page.locator("#suggestions").evaluate("el => getComputedStyle(el.querySelector('.tasks-region')).opacity")
            < "1"
        )
        _screenshot(page, "server-down.png")
        server.start()
        expect(page.locator("#status")).to_contain_text("завершён", timeout=60_000)
        expect(page.locator("#suggestions")).not_to_have_class(re.compile(r"\bstale\b"))
        expect(page.locator("#transport")).to_have_text("WebSocket /v1/live (переподключено)")
        assert (
            len(starts) >= 2
            and starts[-1]["resume_token"]
            and starts[-1]["interaction_id"] == starts[0]["interaction_id"]
        )
        assert page.locator("#transcript .turn").count() == len(_sample("call-spisanie")["turns"])
        _screenshot(page, "server-back.png")
    finally:
        page.close()
        server.kill()
