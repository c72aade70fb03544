// Talking to the service: POST /v1/suggest, POST /v1/feedback, GET metadata, WebSocket /v1/live.
// Every call carries the API key the operator entered (kept in this browser's localStorage).

const KEY_STORAGE = "podskazka.apiKey";

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch (err) {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch (err) {
    // storage blocked: the key lives until the page is closed
  }
}

// What an operator reads: the server's error codes in Russian (its own messages are English, for
// developers; they go to the console, never to the page).
const CODE_TEXT = {
  unauthorized: "Нужен ключ API: введите его вверху страницы (make serve печатает, где лежит ключ разработчика).",
  forbidden: "У этого ключа API нет роли оператора.",
  not_ready: "Модель ещё загружается, попробуйте через несколько секунд.",
  busy: "Сервер перегружен, повторите через секунду.",
  store_unavailable: "Хранилище отзывов временно недоступно, повторите позже.",
  internal_error: "Внутренняя ошибка сервера (записана в журнал сервера).",
  invalid_request: "Сервер не принял запрос: данные неполны или неверны.",
  invalid_message: "Сервер не принял сообщение: данные неполны или неверны.",
  input_invalid: "Сервер не принял данные: проверьте текст разговора и метки.",
  malformed_json: "Сервер не смог прочитать запрос.",
  payload_too_large: "Разговор слишком длинный: сократите текст.",
  rate_limited: "Слишком много запросов, подождите немного.",
  not_found: "Сервер не знает такого адреса: возможно, отзывы не принимаются.",
  method_not_allowed: "Сервер не поддерживает этот запрос.",
  same_label: "Исправление совпадает с подсказкой: выберите другую метку или нажмите «Принять».",
  not_owner: "Этот разговор ведётся в другой вкладке или с другим ключом.",
  already_started: "Это соединение уже ведёт другой разговор.",
  not_started: "Разговор ещё не начат на сервере.",
  unknown_type: "Сервер не понял сообщение страницы.",
  bad_message: "Сервер не понял сообщение страницы.",
  bundle_invalid: "Модель на сервере повреждена или не подходит: обратитесь к администратору.",
  unavailable: "Нет связи с сервером.",
};

export function russianError(code, status) {
  if (code && CODE_TEXT[code]) return CODE_TEXT[code];
  if (status === 0) return CODE_TEXT.unavailable;
  if (status === 401) return CODE_TEXT.unauthorized;
  if (status === 403) return CODE_TEXT.forbidden;
  if (status >= 500) return `Ошибка сервера (HTTP ${status}).`;
  if (status) return `Сервер отклонил запрос (HTTP ${status}).`;
  return "Ошибка сервиса.";
}

export class ApiError extends Error {
  constructor(status, code, serverMessage) {
    super(russianError(code, status));
    this.status = status;
    this.code = code || null;
    this.serverMessage = serverMessage || ""; // English, for the console and tooltips
  }
}

async function request(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  const key = apiKey();
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "unavailable");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (error.message) console.warn(`${method} ${path}: ${response.status} ${error.code}: ${error.message}`);
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

export const getJson = (path) => request("GET", path);
export const suggest = (body) => request("POST", "/v1/suggest", body);
export const postFeedback = (body) => request("POST", "/v1/feedback", body);

const OPEN_TIMEOUT_MS = 3000;

// One live session over WebSocket /v1/live. `open()` resolves to false when the socket cannot be
// opened (no endpoint, a proxy without WebSocket): the caller then falls back to HTTP.
export class LiveSession {
  constructor({ onSuggestions, onError, onClose }) {
    this.onSuggestions = onSuggestions;
    this.onError = onError;
    this.onClose = onClose;
    this.socket = null;
    this.opened = false;
    this.closedByUs = false;
    this.answeredSeq = -1; // the highest final seq the server has answered
    this.resumeToken = null; // from "started": only this page (with the same key) may resume the session
    this.waiters = [];
  }

  open(start) {
    return new Promise((resolve) => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      let settled = false;
      const settle = (ok) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(ok);
        }
      };
      let socket;
      try {
        socket = new WebSocket(`${scheme}//${location.host}/v1/live`);
      } catch (err) {
        resolve(false);
        return;
      }
      const timer = setTimeout(() => {
        socket.close();
        settle(false);
      }, OPEN_TIMEOUT_MS);
      this.socket = socket;
      socket.addEventListener("open", () => {
        this.opened = true;
        const key = apiKey();
        if (key) socket.send(JSON.stringify({ type: "auth", key }));
        socket.send(JSON.stringify({ type: "start", ...start }));
        settle(true);
      });
      socket.addEventListener("message", (event) => this._receive(event.data));
      socket.addEventListener("error", () => settle(false));
      socket.addEventListener("close", (event) => {
        settle(false);
        if (this.opened && !this.closedByUs && this.onClose) this.onClose(event);
      });
    });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  sendTurn(seq, role, text, final) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify({ type: "turn", seq, role, text, final }));
    return true;
  }

  // Resolves true once the final turn `seq` is answered, false after `timeoutMs` or a closed socket.
  answered(seq, timeoutMs) {
    if (this.answeredSeq >= seq) return Promise.resolve(true);
    if (!this.isOpen) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push((answered) => {
        if (answered < seq) return false;
        clearTimeout(timer);
        resolve(true);
        return true;
      });
    });
  }

  end() {
    this.closedByUs = true;
    if (this.isOpen) this.socket.send(JSON.stringify({ type: "end" }));
  }

  close() {
    this.closedByUs = true;
    if (this.socket) this.socket.close(1000);
  }

  _receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (message.type === "started") {
      this.resumeToken = message.resume_token || null;
    } else if (message.type === "suggestions") {
      if (message.final && message.seq > this.answeredSeq) this.answeredSeq = message.seq;
      this.waiters = this.waiters.filter((w) => !w(this.answeredSeq));
      this.onSuggestions(message);
    } else if (message.type === "error" && this.onError) {
      this.onError(message.code, message.message || "");
    }
    if (this.onMessage) this.onMessage(message);
  }
}

// Close codes after which trying again does not help (README «WebSocket /v1/live»).
const FINAL_CLOSE = { 1008: "origin", 4001: "taken_over", 4401: "unauthorized", 4403: "forbidden" };
const BACKOFF_MS = [500, 1000, 2000, 4000, 5000];

// The live link of one call: a LiveSession per socket, reconnected with backoff after a drop and
// resumed with the resume token the server gave in "started"; the final turns the server has not
// answered are sent again. `connect()` resolves false when no socket can be had at all (the caller
// falls back to HTTP). `onState({state, attempt, delayMs, reason})`: connecting, online, offline, failed.
export class LiveLink {
  constructor({ start, onSuggestions, onError, onState }) {
    this.start = start;
    this.onSuggestions = onSuggestions;
    this.onError = onError || (() => {});
    this.onState = onState || (() => {});
    this.session = null;
    this.resumeToken = null;
    this.finals = new Map(); // seq -> {role, text}: every final turn, to send again after a drop
    this.answeredSeq = -1;
    this.waiters = [];
    this.state = "connecting";
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.reconnects = 0;
  }

  _setState(state, extra = {}) {
    this.state = state;
    this.onState({ state, attempt: this.attempt, ...extra });
  }

  // One socket: resolves true once the server answered "started".
  _openOnce() {
    return new Promise((resolve) => {
      let started = false;
      const session = new LiveSession({
        onSuggestions: (message) => {
          if (session !== this.session) return;
          if (message.final && message.seq > this.answeredSeq) this.answeredSeq = message.seq;
          this.waiters = this.waiters.filter((w) => !w(this.answeredSeq));
          this.onSuggestions(message);
        },
        onError: (code, message) => { if (session === this.session) this.onError(code, message); },
        onClose: (event) => {
          if (!started) { clearTimeout(timer); resolve(false); return; } // closed before "started": not up
          if (session === this.session) this._dropped(event);
        },
      });
      session.onMessage = (message) => {
        if (message.type !== "started" || started) return;
        started = true;
        clearTimeout(timer);
        this.resumeToken = message.resume_token || this.resumeToken;
        // what the server holds of this call: after a resume, only the finals it lacks are sent again
        const held = new Set(message.resumed ? message.final_seqs || [] : []);
        for (const [seq, turn] of [...this.finals.entries()].sort((a, b) => a[0] - b[0])) {
          if (!held.has(seq)) session.sendTurn(seq, turn.role, turn.text, true);
        }
        resolve(true);
      };
      const timer = setTimeout(() => { if (!started) { session.close(); resolve(false); } }, 5000);
      this.session = session;
      const start = { ...this.start };
      if (this.resumeToken) start.resume_token = this.resumeToken;
      session.open(start).then((opened) => {
        if (!opened) { clearTimeout(timer); resolve(false); }
      });
    });
  }

  async connect() {
    this._setState("connecting");
    const ok = await this._openOnce();
    if (this.stopped) return false;
    if (!ok) {
      this.session = null;
      return false;
    }
    this._setState("online");
    return true;
  }

  _dropped(event) {
    if (this.stopped) return;
    const reason = FINAL_CLOSE[event && event.code];
    if (reason) {
      this.session = null;
      this._setState("failed", { reason });
      return;
    }
    this._schedule();
  }

  _schedule() {
    if (this.stopped || this.timer) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this._setState("offline", { delayMs });
    this.timer = setTimeout(async () => {
      this.timer = null;
      if (this.stopped) return;
      const ok = await this._openOnce();
      if (this.stopped) return;
      if (ok) {
        this.attempt = 0;
        this.reconnects += 1;
        this._setState("online", { resumed: true });
      } else {
        this._schedule();
      }
    }, delayMs);
  }

  // A turn of the call: sent now when the socket is up; a final one is kept and sent again after a drop.
  send(seq, role, text, final) {
    if (final) this.finals.set(seq, { role, text });
    if (this.state === "online" && this.session && this.session.sendTurn(seq, role, text, final)) return true;
    if (this.state === "online") this._schedule(); // the socket died without a close event yet
    return false;
  }

  // Resolves true once the final turn `seq` is answered (across reconnections), false after `timeoutMs`.
  answered(seq, timeoutMs) {
    if (this.answeredSeq >= seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = (answered) => {
        if (answered < seq) return false;
        clearTimeout(timer);
        resolve(true);
        return true;
      };
      this.waiters.push(waiter);
    });
  }

  end() {
    this.stopped = true; // the call is over: no reconnecting after the server closes
    clearTimeout(this.timer);
    this.timer = null;
    if (this.session) this.session.end();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.session) this.session.close();
  }
}
