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

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
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
    throw new ApiError(0, "сервис недоступен");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
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
      this.onError(message.message || "ошибка сервиса");
    }
  }
}
