// The operator page: paste a conversation or replay a sample call, show the suggestions, send feedback.

import { ApiError, LiveSession, apiKey, getJson, postFeedback, setApiKey, suggest } from "./api.js";
import { el, keepingFocus, renderDomains, renderMacros, renderNotices, renderTasks } from "./render.js";

const $ = (id) => document.getElementById(id);
const ROLE_NAMES = { client: "Клиент", operator: "Оператор", bot: "Бот" };
const ROLE_ALIASES = {
  client: "client", "клиент": "client", customer: "client", "абонент": "client",
  operator: "operator", "оператор": "operator", agent: "operator", "сотрудник": "operator",
  bot: "bot", "бот": "bot",
};

const PAGE_SESSION = Math.random().toString(36).slice(2, 8);

const state = {
  taxonomy: null,
  samples: [],
  interactionId: null,
  channel: "chat",
  clientId: null,
  turns: [], // the final turns so far (sent with feedback so an export can use them)
  result: null,
  feedback: new Map(), // "task:reason2" | "macro:M01" -> {accepted, chosen, message, failed, correcting, choice}
  replay: null, // {cancelled, live}
};

function newInteraction(prefix, channel, clientId = null) {
  const random = Math.random().toString(36).slice(2, 8);
  state.interactionId = `${prefix}-${Date.now().toString(36)}-${random}`;
  state.channel = channel;
  state.clientId = clientId;
  state.turns = [];
  state.result = null;
  state.feedback = new Map();
  // nothing of the previous conversation stays on screen
  $("notices").replaceChildren();
  $("domains").replaceChildren();
  $("tasks").replaceChildren(el("p", { class: "muted empty", text: "Жду подсказки…" }));
  $("macros").replaceChildren(el("p", { class: "muted empty", text: "Нет шаблонов." }));
}

function setStatus(message, kind = "") {
  const status = $("status");
  status.textContent = message;
  status.className = `status ${kind}`;
}

function setTransport(text) {
  $("transport").textContent = text;
}

// "client: ..." lines -> turns; a line without a role continues the previous turn.
function parseConversation(text) {
  const turns = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const match = line.match(/^([A-Za-zА-Яа-яЁё]+)\s*[:>]\s*(.*)$/);
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

function showTranscript(turns) {
  $("transcript").replaceChildren(...turns.map((t) => transcriptItem(t, false)));
}

function showPartial(index, turn, partial) {
  const list = $("transcript");
  if (index === 0) list.replaceChildren();
  const existing = list.children[index];
  const item = transcriptItem(turn, partial);
  if (existing) existing.replaceWith(item);
  else list.append(item);
  list.scrollTop = list.scrollHeight; // follow the call inside the list, never jump the page
}

// --- suggestions ----------------------------------------------------------------------------

function render(result) {
  state.result = result;
  if (result.model_version) $("model-version").textContent = result.model_version;
  const ctx = { taxonomy: state.taxonomy, feedback: state.feedback, handlers };
  keepingFocus(() => {
    renderNotices($("notices"), result, handlers);
    renderDomains($("domains"), result.domains);
    renderTasks($("tasks"), result, ctx);
    renderMacros($("macros"), result.macros, ctx);
  });
}

function rerender() {
  if (state.result) render(state.result);
}

// What the page suggests for a task: the live session's stable label (hysteresis), else the decided
// label, else the top of the ranking. Always a label of the task, never a group.
function suggestedFor(result, task) {
  const stable = (result.stable || {})[task];
  if (stable && stable.label) return stable.label;
  const decision = (result.decisions || {})[task];
  if (decision && decision.level === "label" && decision.label) return decision.label;
  const ranked = result.predictions[task] || [];
  return ranked.length ? ranked[0].label : null;
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

async function sendFeedback(key, body) {
  const entry = state.feedback.get(key) || {};
  Object.assign(entry, { accepted: body.accepted, chosen: body.chosen, message: "отправляю…", failed: false, correcting: false });
  state.feedback.set(key, entry);
  rerender();
  try {
    await postFeedback({
      interaction_id: state.interactionId, model_version: state.result.model_version, channel: state.channel,
      client_id: state.clientId || undefined, turns: state.turns.length ? state.turns : undefined, ...body,
    });
    entry.message = body.accepted ? "Принято, спасибо" : "Отклонено, учтено";
    setStatus("Отзыв сохранён.", "ok");
  } catch (err) {
    entry.failed = true;
    entry.message = err instanceof ApiError && err.status === 404 ? "отзывы не принимаются этим сервером" : `не сохранено: ${err.message}`;
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
    const place = (state.result.macros || []).findIndex((m) => m.id === macro.id);
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
    setStatus(`Готово: ${turns.length} ${plural(turns.length, "реплика", "реплики", "реплик")}.`, "ok");
  } catch (err) {
    setStatus(explain(err), "error");
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
  state.replay.cancelled = true;
  if (state.replay.live) {
    state.replay.live.end();
    state.replay.live.close();
  }
  finishReplay();
}

// Opens /v1/live for the run's interaction; false when the socket cannot be had.
async function connectLive(run) {
  const interactionId = run.interactionId;
  const live = new LiveSession({
    onSuggestions: (message) => { if (state.interactionId === interactionId) render(message); },
    onError: (message) => setStatus(`Ошибка сервиса: ${message}`, "error"),
    onClose: () => { if (state.replay === run) setTransport("WebSocket прерван, переподключаюсь…"); },
  });
  const start = { interaction_id: interactionId, channel: run.sample.channel, client_id: run.clientId };
  // a resume needs the token the dropped socket's "started" gave (and the same key)
  if (run.live && run.live.resumeToken) start.resume_token = run.live.resumeToken;
  const opened = await live.open(start);
  run.live = opened ? live : null;
  return opened;
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
  const run = { cancelled: false, live: null, sample, clientId, interactionId: state.interactionId, reconnected: false };
  state.replay = run;
  $("replay-button").disabled = true;
  $("stop-button").disabled = false;
  $("transcript").replaceChildren();
  $("transcript").setAttribute("aria-busy", "true"); // partial hypotheses are not read out one by one
  setStatus("Подключаюсь…");
  const opened = await connectLive(run);
  if (run.cancelled) return;
  setTransport(opened ? "WebSocket /v1/live" : "HTTP /v1/suggest (WebSocket недоступен)");
  setStatus("Идёт разговор…");
  await playTurns(run, speed);
  if (run.cancelled) return;
  if (run.live) {
    const live = run.live;
    await live.answered(sample.turns.length - 1, 10000); // the last turn's suggestions first
    if (run.cancelled) return;
    live.end(); // the server answers {"type": "ended"} and closes
    setTimeout(() => live.close(), 2000);
  }
  setStatus("Разговор завершён.", "ok");
  finishReplay();
}

// A dropped socket is resumed once: `start` with the same interaction_id, then the final turns
// again (a repeated final of the same seq is harmless). If that fails too, HTTP takes over.
async function sendLive(run, seq, turn, final) {
  if (!run.live) return false;
  if (run.live.sendTurn(seq, turn.role, turn.text, final)) return true;
  if (!run.reconnected) {
    run.reconnected = true;
    if (await connectLive(run)) {
      state.turns.forEach((t, i) => run.live.sendTurn(i, t.role, t.text, true));
      setTransport("WebSocket /v1/live (переподключено)");
      return final || run.live.sendTurn(seq, turn.role, turn.text, final);
    }
  }
  run.live = null;
  setTransport("HTTP /v1/suggest (WebSocket прерван)");
  return false;
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
        await sendLive(run, seq, partial, false);
        await sleep(450 / speed);
        if (run.cancelled) return;
      }
    }
    showPartial(seq, turn, false);
    state.turns.push({ role: turn.role, text: turn.text });
    if (!(await sendLive(run, seq, turn, true))) await suggestOverHttp(run);
  }
}

async function suggestOverHttp(run) {
  const interactionId = state.interactionId;
  try {
    const result = await suggest({
      interaction_id: interactionId, channel: run.sample.channel, client_id: run.clientId, turns: state.turns.slice(),
    });
    if (state.interactionId === interactionId && !run.cancelled) render(result);
  } catch (err) {
    setStatus(`Ошибка: ${err.message}`, "error");
  }
}

// --- start-up -------------------------------------------------------------------------------

const NEED_KEY = "Нужен ключ API: введите его вверху страницы (make serve печатает, где лежит ключ разработчика).";

function explain(err) {
  return err instanceof ApiError && err.status === 401 ? NEED_KEY : `Ошибка: ${err.message}`;
}

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
  } catch (err) {
    state.taxonomy = null;
    if (err instanceof ApiError && err.status === 401) {
      setStatus(NEED_KEY, "error");
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
  loadMeta();
}

init();
