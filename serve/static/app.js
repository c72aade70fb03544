// The operator page: paste a conversation or replay a sample call, show the suggestions, send feedback.

import { ApiError, LiveLink, apiKey, getJson, postFeedback, russianError, setApiKey, suggest } from "./api.js";
import {
  contradictions, el, keepingFocus, macroClaims, noContent, renderDomains, renderMacros, renderNotices, renderTasks,
  shortcutTask, taskState,
} from "./render.js";

const $ = (id) => document.getElementById(id);
const ROLE_NAMES = { client: "Клиент", operator: "Оператор", bot: "Бот" };
const ROLE_ALIASES = {
  client: "client", "клиент": "client", customer: "client", "абонент": "client", "покупатель": "client",
  user: "client", "пользователь": "client",
  operator: "operator", "оператор": "operator", agent: "operator", "сотрудник": "operator", "специалист": "operator",
  "консультант": "operator", support: "operator", "поддержка": "operator",
  bot: "bot", "бот": "bot", "робот": "bot", system: "bot", "система": "bot",
};

const PAGE_SESSION = Math.random().toString(36).slice(2, 8);

// Macros keep their places: a macro that leaves the server's top list stays until a newcomer has
// been in that list for UPDATES updates in a row (or leads it by JUMP); a shown macro moves up only when
// it leads the one above by MARGIN for UPDATES updates in a row (or by JUMP, or the one above
// contradicts the decision). While the pointer or the focus is on the macros nothing moves at all.
class MacroOrder {
  constructor({ margin = 0.05, updates = 3, jump = 0.3 } = {}) {
    Object.assign(this, { margin, updates, jump });
    this.reset();
  }

  reset() {
    this.shown = [];
    this.cache = new Map();
    this.streak = new Map();
    this.challenger = null;
    this.count = 0;
    this.frozen = false;
  }

  update(macros, contradicts) {
    const incoming = new Map(macros.map((m) => [m.id, m]));
    for (const id of [...this.streak.keys()]) if (!incoming.has(id)) this.streak.delete(id);
    for (const m of macros) {
      this.cache.set(m.id, m);
      this.streak.set(m.id, (this.streak.get(m.id) || 0) + 1);
    }
    const get = (id) => incoming.get(id) || this.cache.get(id);
    if (this.frozen && this.shown.length) return this.shown.map(get);
    const bad = (id) => (id in contradicts ? 1 : 0);
    const conf = (id) => Number(get(id).confidence) || 0;
    const position = new Map(macros.map((m, i) => [m.id, i]));
    const rank = (a, b) => bad(a) - bad(b) || conf(b) - conf(a) || (position.get(a) ?? 99) - (position.get(b) ?? 99);
    // who is shown: the same macros, a gone one replaced only by a newcomer that has settled
    const newcomers = macros.map((m) => m.id).filter((id) => !this.shown.includes(id)).sort(rank);
    let kept = this.shown.map((id) => {
      if (incoming.has(id)) return id;
      const at = newcomers.findIndex((n) => this.streak.get(n) >= this.updates || conf(n) - conf(id) >= this.jump);
      return at >= 0 ? newcomers.splice(at, 1)[0] : id;
    });
    while (kept.length < Math.max(macros.length, this.shown.length) && newcomers.length) kept.push(newcomers.shift());
    // in which order: a move needs a settled lead
    const desired = kept.slice().sort(rank);
    const at = kept.findIndex((id, i) => id !== desired[i]);
    if (at < 0) {
      this.challenger = null;
      this.count = 0;
    } else {
      const lead = bad(kept[at]) > bad(desired[at]) ? Infinity : conf(desired[at]) - conf(kept[at]);
      const key = `${at}:${desired[at]}`;
      let adopt = lead >= this.jump;
      if (!adopt && lead >= this.margin) {
        this.count = this.challenger === key ? this.count + 1 : 1;
        this.challenger = key;
        adopt = this.count >= this.updates;
      } else if (!adopt) {
        this.challenger = null;
        this.count = 0;
      }
      if (adopt) {
        kept = desired;
        this.challenger = null;
        this.count = 0;
      }
    }
    this.shown = kept;
    return kept.map(get);
  }
}

const state = {
  taxonomy: null,
  claims: {},
  samples: [],
  interactionId: null,
  channel: "chat",
  clientId: null,
  turns: [], // the final turns so far (sent with feedback so an export can use them)
  result: null,
  shownMacros: [],
  contradicts: {},
  lastUpdate: null,
  feedback: new Map(), // "task:reason2" | "macro:M01" -> {accepted, chosen, message, failed, correcting, choice}
  replay: null, // {cancelled, link}
  macroOrder: new MacroOrder(),
};

function newInteraction(prefix, channel, clientId = null) {
  const random = Math.random().toString(36).slice(2, 8);
  state.interactionId = `${prefix}-${Date.now().toString(36)}-${random}`;
  state.channel = channel;
  state.clientId = clientId;
  state.turns = [];
  state.result = null;
  state.lastUpdate = null;
  state.feedback = new Map();
  state.macroOrder.reset();
  state.shownMacros = [];
  state.contradicts = {};
  $("suggestions").classList.remove("stale");
  renderAll(); // nothing of the previous conversation stays on screen; the cards keep their places
}

function setStatus(message, kind = "") {
  const status = $("status");
  status.textContent = message;
  status.title = message;
  status.className = `status ${kind}`;
}

function setTransport(text) {
  $("transport").textContent = text;
}

const clock = (date) => date.toLocaleTimeString("ru-RU", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// The connection as the operator sees it: a pill that stays until the state changes; offline marks
// the suggestions stale (greyed, with the time of the last update).
function setConnection(kind, text) {
  const pill = $("connection");
  pill.dataset.state = kind;
  $("connection-text").textContent = text;
  pill.title = text;
  $("suggestions").classList.toggle("stale", kind === "offline" || kind === "failed");
}

function lastUpdateText() {
  return state.lastUpdate ? `последнее обновление в ${clock(state.lastUpdate)}` : "подсказок ещё не было";
}

// --- parsing a pasted conversation ----------------------------------------------------------

// «[12:01]», «12:01:33», «(12:01)», «2024-05-01 12:01:33», «01.05.2024, 12:01» — what CRMs put before a turn.
const TIME = String.raw`(?:\d{1,4}[.\-/]\d{1,2}[.\-/]\d{1,4},?\s*)?\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?`;
const LEADING_TIME = new RegExp(String.raw`^(?:[\[(]\s*${TIME}\s*[\])]|${TIME})\s*(?:[-–—|:]\s+)?`);
const ROLE_LINE = new RegExp(String.raw`^([A-Za-zА-Яа-яЁё]+)` + // the role
  String.raw`(?:\s*[\[(][^\])]{0,40}[\])]|\s+${TIME}|\s+[А-ЯЁA-Z][A-Za-zА-Яа-яЁё.-]{0,30}){0,2}` + // «(12:01)», «[Анна]», «Анна»
  String.raw`\s*[:>]\s*(.*)$`);

// Lines -> turns; a line without a role continues the previous turn.
export function parseConversation(text) {
  const turns = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line) continue;
    line = line.replace(LEADING_TIME, "").trim();
    if (!line || new RegExp(`^${TIME}$`).test(line)) continue; // a line that is only a time stamp
    const match = line.match(ROLE_LINE);
    const role = match ? ROLE_ALIASES[match[1].toLowerCase()] : undefined;
    if (role) {
      turns.push({ role, text: match[2] });
    } else if (turns.length) {
      turns[turns.length - 1].text += `\n${line}`;
    } else {
      turns.push({ role: "client", text: line });
    }
  }
  return turns.filter((t) => t.text.trim());
}

// --- transcript -----------------------------------------------------------------------------

function transcriptItem(turn, partial) {
  return el("li", { class: `turn turn-${turn.role}${partial ? " partial" : ""}` },
    el("span", { class: "role", text: ROLE_NAMES[turn.role] || turn.role }),
    el("span", { class: "text", text: turn.text }));
}

function followTranscript() {
  const list = $("transcript");
  list.scrollTop = list.scrollHeight; // follow the call inside the list, never jump the page
}

function showTranscript(turns) {
  $("transcript").replaceChildren(...turns.map((t) => transcriptItem(t, false)));
  followTranscript();
}

function showPartial(index, turn, partial) {
  const list = $("transcript");
  if (index === 0) list.replaceChildren();
  const existing = list.children[index];
  const item = transcriptItem(turn, partial);
  if (existing) existing.replaceWith(item);
  else list.append(item);
  followTranscript();
}

// --- suggestions ----------------------------------------------------------------------------

// What the page suggests for a task: the live session's stable label (hysteresis), else the decided
// label, else the top of the ranking. Always a label of the task, never a group.
function suggestedFor(result, task) {
  if (!result) return null;
  const decision = (result.decisions || {})[task];
  if (decision && decision.reason === "no_content") return null;
  const stable = (result.stable || {})[task];
  if (stable && stable.label) return stable.label;
  if (decision && decision.level === "label" && decision.label) return decision.label;
  const ranked = result.predictions[task] || [];
  return ranked.length ? ranked[0].label : null;
}

// The labels the page shows as decided (a macro written for another one is demoted).
function decidedLabels(result) {
  const out = {};
  for (const task of Object.keys((result && result.predictions) || {})) {
    const view = taskState(task, result, state.taxonomy, suggestedFor(result, task));
    if (view.kind === "label") out[task] = view.label;
  }
  return out;
}

function renderAll() {
  const result = state.result;
  const shortcut = shortcutTask(result, state.taxonomy, (task) => suggestedFor(result, task));
  const ctx = { taxonomy: state.taxonomy, feedback: state.feedback, handlers, shortcut };
  keepingFocus(() => {
    renderNotices($("notices"), result, handlers);
    renderDomains($("domains"), result);
    renderTasks($("tasks"), result, ctx);
    renderMacros($("macros"), state.shownMacros, {
      ...ctx, contradicts: state.contradicts,
      emptyText: !result ? "Шаблоны появятся по ходу разговора."
        : noContent(result) ? "Мало данных: шаблоны появятся, когда клиент назовёт причину." : "Нет подходящих шаблонов.",
    });
  });
}

// A fresh result from the server.
function render(result) {
  state.result = result;
  state.lastUpdate = new Date();
  if (result.model_version) $("model-version").textContent = result.model_version;
  if (noContent(result)) {
    state.macroOrder.reset(); // before the client has spoken, no macro is suggested
    state.shownMacros = [];
    state.contradicts = {};
  } else {
    const macros = result.macros || [];
    state.contradicts = contradictions(macros, state.claims, decidedLabels(result));
    state.shownMacros = state.macroOrder.update(macros, state.contradicts);
  }
  $("suggestions").classList.remove("stale");
  renderAll();
}

function rerender() {
  renderAll();
}

function labelFeedback(task, suggested, chosen, accepted) {
  const ranked = state.result.predictions[task] || [];
  const place = ranked.findIndex((r) => r.label === suggested);
  return {
    task, suggested, chosen, accepted,
    confidence: place >= 0 ? ranked[place].confidence : undefined,
    rank: place >= 0 ? place + 1 : undefined,
  };
}

function feedbackDone(body) {
  if (body.macro_id) return body.accepted ? "Подходит, спасибо" : "Не подходит, учтено";
  if (body.accepted) return "Принято, спасибо";
  return body.chosen ? `Отклонено; верная метка: «${body.chosen}»` : "Отклонено; верная метка не указана";
}

async function sendFeedback(key, body) {
  const entry = state.feedback.get(key) || {};
  if (!body.accepted && body.chosen && body.chosen === body.suggested) {
    Object.assign(entry, { message: "Это та же метка, что и подсказка: нажмите «Принять»", failed: true });
    state.feedback.set(key, entry);
    rerender();
    return;
  }
  Object.assign(entry, { accepted: body.accepted, chosen: body.chosen, message: "отправляю…", failed: false, correcting: false });
  state.feedback.set(key, entry);
  rerender();
  try {
    await postFeedback({
      interaction_id: state.interactionId, model_version: state.result.model_version, channel: state.channel,
      client_id: state.clientId || undefined, turns: state.turns.length ? state.turns : undefined, ...body,
    });
    entry.message = feedbackDone(body);
    setStatus("Отзыв сохранён.", "ok");
  } catch (err) {
    entry.failed = true;
    entry.message = `не сохранено: ${err.message}`;
    setStatus(`Отзыв не сохранён: ${err.message}`, "error");
  }
  rerender();
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (err) {
    const area = el("textarea", { class: "offscreen", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

const handlers = {
  onAccept(task) {
    const suggested = suggestedFor(state.result, task);
    if (!suggested) return;
    sendFeedback(`task:${task}`, labelFeedback(task, suggested, suggested, true));
  },
  onStartReject(task) {
    const entry = state.feedback.get(`task:${task}`) || {};
    entry.correcting = !entry.correcting;
    state.feedback.set(`task:${task}`, entry);
    rerender();
    const select = document.getElementById(`correct-${task}`);
    if (select) select.focus();
  },
  onReject(task, chosen) {
    sendFeedback(`task:${task}`, labelFeedback(task, suggestedFor(state.result, task), chosen, false));
    const reject = document.querySelector(`[data-focus-key="task:${CSS.escape(task)}:reject"]`);
    if (reject) reject.focus(); // the correction form is gone: keep the keyboard where it was
  },
  onMacroFeedback(macro, accepted) {
    const place = state.shownMacros.findIndex((m) => m.id === macro.id);
    sendFeedback(`macro:${macro.id}`, {
      macro_id: macro.id, suggested: macro.id, chosen: accepted ? macro.id : null, accepted,
      confidence: macro.confidence, rank: place >= 0 ? place + 1 : undefined,
    });
  },
  async onCopy(macro) {
    const ok = await copyText(macro.text);
    setStatus(ok ? `Шаблон ${macro.id} скопирован.` : "Не удалось скопировать: выделите текст вручную.", ok ? "ok" : "error");
  },
  suggestedFor: (task) => suggestedFor(state.result, task),
};

// --- keyboard shortcuts: A accept, R reject, C copy the top macro (never while typing) -----------

function onShortcut(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing || event.repeat) return;
  const target = event.target;
  if (target instanceof Element && target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']")) return;
  const action = { KeyA: "accept", KeyR: "reject", KeyC: "copy" }[event.code];
  if (!action || !state.result) return;
  event.preventDefault();
  if (action === "copy") {
    const top = state.shownMacros[0];
    if (top) handlers.onCopy(top);
    else setStatus("Нет шаблона, который можно скопировать.", "error");
    return;
  }
  const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("article.task") : null;
  const task = focused ? focused.dataset.task : shortcutTask(state.result, state.taxonomy, handlers.suggestedFor);
  if (!task) {
    setStatus("Пока нечего принимать: мало данных.", "error");
    return;
  }
  if (action === "accept") {
    if (!handlers.suggestedFor(task)) setStatus("Пока нечего принимать: мало данных.", "error");
    else handlers.onAccept(task);
  } else {
    handlers.onStartReject(task);
  }
}

// --- paste ----------------------------------------------------------------------------------

async function submitPaste(event) {
  event.preventDefault();
  stopReplay();
  const turns = parseConversation($("conversation").value);
  if (!turns.length) {
    setStatus("Вставьте хотя бы одну реплику.", "error");
    $("conversation").focus();
    return;
  }
  newInteraction("paste", $("channel").value);
  state.turns = turns;
  showTranscript(turns);
  setStatus("Считаю подсказки…");
  setTransport("HTTP /v1/suggest");
  try {
    render(await suggest({ interaction_id: state.interactionId, channel: state.channel, turns }));
    setConnection("http", "HTTP: ответ получен");
    setStatus(`Готово: ${turns.length} ${plural(turns.length, "реплика", "реплики", "реплик")}.`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 0) setConnection("failed", "нет связи с сервером");
    setStatus(err.message, "error");
  }
}

function plural(n, one, few, many) {
  const mod10 = n % 10, mod100 = n % 100;
  if (mod10 === 1 && mod100 !== 11) return one;
  if (mod10 >= 2 && mod10 <= 4 && (mod100 < 10 || mod100 >= 20)) return few;
  return many;
}

// --- replay ---------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function finishReplay() {
  state.replay = null;
  $("transcript").setAttribute("aria-busy", "false");
  $("replay-button").disabled = false;
  $("stop-button").disabled = true;
}

function stopReplay() {
  if (!state.replay) return;
  const run = state.replay;
  run.cancelled = true;
  if (run.link) {
    run.link.end();
    run.link.close();
  }
  if ($("connection").dataset.state !== "idle") setConnection("idle", "разговор остановлен");
  finishReplay();
}

const FAILED = {
  unauthorized: "Ключ API не подошёл: введите верный ключ вверху страницы.",
  forbidden: "У этого ключа API нет роли оператора.",
  origin: "Сервер не принимает соединения с этой страницы (Origin).",
  taken_over: "Этот разговор открыт в другой вкладке: здесь подсказки больше не обновляются.",
};

function onLinkState(run, info) {
  if (state.replay !== run || run.cancelled) return;
  if (info.state === "online") {
    setConnection("online", "на связи");
    if (info.resumed) {
      setTransport("WebSocket /v1/live (переподключено)");
      setStatus("Связь восстановлена: подсказки обновляются.", "ok");
    }
  } else if (info.state === "offline") {
    const wait = Math.max(1, Math.round((info.delayMs || 0) / 1000));
    setConnection("offline", `нет связи · переподключаюсь (попытка ${info.attempt}) · ${lastUpdateText()}`);
    setStatus(`Нет связи с сервером: подсказки устарели (${lastUpdateText()}). Переподключаюсь через ${wait} с…`, "error");
  } else if (info.state === "failed") {
    setConnection("failed", "нет связи");
    setStatus(FAILED[info.reason] || "Связь с сервером прервана.", "error");
  } else if (info.state === "connecting") {
    setConnection("connecting", "подключаюсь…");
  }
}

function onServerError(code, serverMessage) {
  if (serverMessage) console.warn(`live: ${code}: ${serverMessage}`);
  setStatus(russianError(code), "error");
}

async function startReplay(event) {
  event.preventDefault();
  stopReplay();
  const sample = state.samples.find((s) => s.id === $("sample").value);
  if (!sample) return;
  const speed = Number($("speed").value) || 1;
  // the client is the same within this page (a second replay is flagged as a likely duplicate of
  // the first while that one is open) and new on every page load
  const clientId = `${sample.client_id}-${PAGE_SESSION}`;
  newInteraction(`demo-${sample.id}`, sample.channel, clientId);
  const interactionId = state.interactionId;
  const run = { cancelled: false, link: null, sample, clientId, interactionId, httpFailed: false };
  state.replay = run;
  $("replay-button").disabled = true;
  $("stop-button").disabled = false;
  $("transcript").replaceChildren();
  $("transcript").setAttribute("aria-busy", "true"); // partial hypotheses are not read out one by one
  setStatus("Подключаюсь…");
  const link = new LiveLink({
    start: { interaction_id: interactionId, channel: sample.channel, client_id: clientId },
    onSuggestions: (message) => { if (state.interactionId === interactionId && !run.cancelled) render(message); },
    onError: onServerError,
    onState: (info) => onLinkState(run, info),
  });
  run.link = link;
  const opened = await link.connect();
  if (run.cancelled) return;
  if (!opened) {
    link.close();
    run.link = null;
    setConnection("http", "HTTP (WebSocket недоступен)");
  }
  setTransport(opened ? "WebSocket /v1/live" : "HTTP /v1/suggest (WebSocket недоступен)");
  setStatus("Идёт разговор…");
  await playTurns(run, speed);
  if (run.cancelled) return;
  const last = sample.turns.length - 1;
  let done = true;
  if (run.link) {
    // the last turn's suggestions first; while the server is away the page waits (and says so)
    done = false;
    while (!run.cancelled && run.link.state !== "failed") {
      if (await run.link.answered(last, 1000)) {
        done = true;
        break;
      }
    }
    if (run.cancelled) return;
    const finished = run.link;
    finished.end(); // the server answers {"type": "ended"} and closes
    setTimeout(() => finished.close(), 2000);
    if (done) setConnection("idle", "разговор завершён");
  } else {
    for (let attempt = 0; run.httpFailed && !run.cancelled; attempt += 1) {
      await sleep(Math.min(5000, 500 * 2 ** attempt));
      if (!run.cancelled) await suggestOverHttp(run);
    }
    if (run.cancelled) return;
  }
  if (done) setStatus("Разговор завершён.", "ok");
  finishReplay();
}

// Calls arrive as speech recognition gives them: partial hypotheses a few words at a time, then
// the final turn, under the same seq. Chats and e-mails arrive whole.
async function playTurns(run, speed) {
  const { sample } = run;
  for (const [seq, turn] of sample.turns.entries()) {
    await sleep((sample.channel === "call" ? 500 : 900) / speed);
    if (run.cancelled) return;
    if (sample.channel === "call") {
      const words = turn.text.split(/\s+/);
      for (let n = 3; n < words.length; n += 3) {
        const partial = { role: turn.role, text: words.slice(0, n).join(" ") };
        showPartial(seq, partial, true);
        if (run.link) run.link.send(seq, partial.role, partial.text, false);
        await sleep(450 / speed);
        if (run.cancelled) return;
      }
    }
    showPartial(seq, turn, false);
    state.turns.push({ role: turn.role, text: turn.text });
    if (run.link) run.link.send(seq, turn.role, turn.text, true); // kept and sent again after a drop
    else await suggestOverHttp(run);
  }
}

async function suggestOverHttp(run) {
  const interactionId = state.interactionId;
  try {
    const result = await suggest({
      interaction_id: interactionId, channel: run.sample.channel, client_id: run.clientId, turns: state.turns.slice(),
    });
    if (state.interactionId === interactionId && !run.cancelled) {
      render(result);
      if (run.httpFailed) setStatus("Связь восстановлена: подсказки обновляются.", "ok");
      run.httpFailed = false;
      setConnection("http", "на связи (HTTP)");
    }
  } catch (err) {
    if (run.cancelled) return;
    run.httpFailed = true;
    if (err instanceof ApiError && (err.status === 0 || err.status >= 500)) {
      setConnection("offline", `нет связи · ${lastUpdateText()}`);
      setStatus(`Нет связи с сервером: подсказки устарели (${lastUpdateText()}). Повторю запрос…`, "error");
    } else {
      setStatus(err.message, "error");
    }
  }
}

// --- start-up -------------------------------------------------------------------------------

function saveKey(event) {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  setStatus(apiKey() ? "Ключ сохранён в этом браузере." : "Ключ удалён.", "ok");
  loadMeta();
}

async function loadMeta() {
  try {
    const ready = await getJson("/readyz");
    $("model-version").textContent = ready.model_version;
  } catch (err) {
    $("model-version").textContent = "модель не загружена";
    setStatus(`Сервис не готов: ${err.message}`, "error");
  }
  try {
    state.taxonomy = await getJson("/v1/taxonomy");
    state.claims = macroClaims(state.taxonomy);
  } catch (err) {
    state.taxonomy = null;
    state.claims = {};
    if (err instanceof ApiError && err.status === 401) {
      setStatus(err.message, "error");
      $("api-key").focus();
    }
  }
  try {
    state.samples = await getJson("/static/samples.json");
  } catch (err) {
    state.samples = [];
  }
  $("sample").replaceChildren(...state.samples.map((s) => el("option", { value: s.id, text: s.title })));
  $("replay-button").disabled = !state.samples.length;
  renderAll();
  document.body.dataset.ready = "true";
}

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", saveKey);
  $("paste-form").addEventListener("submit", submitPaste);
  $("replay-form").addEventListener("submit", startReplay);
  $("stop-button").addEventListener("click", () => {
    stopReplay();
    setStatus("Воспроизведение остановлено.");
  });
  $("conversation").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("paste-form").requestSubmit();
  });
  document.addEventListener("keydown", onShortcut);
  // nothing moves under the pointer (or the keyboard) while the operator is on the macros
  const macros = document.querySelector(".macros-region");
  const freeze = () => { state.macroOrder.frozen = macros.matches(":hover") || macros.contains(document.activeElement); };
  for (const name of ["pointerenter", "pointerleave", "focusin", "focusout"]) {
    macros.addEventListener(name, () => setTimeout(freeze, 0));
  }
  macros.addEventListener("pointerenter", () => { state.macroOrder.frozen = true; });
  renderAll();
  loadMeta();
}

init();
