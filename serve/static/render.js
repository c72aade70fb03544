// Rendering one /v1/suggest result. Everything from the service goes in through textContent, never
// as HTML. Every card keeps its height whatever the result says (a fixed number of ranked rows and
// macro cards, one-line decision and notes), so a live update never moves what the operator points at.

// Headings for bundles made before the taxonomy carried titles; a task's `title` in the taxonomy wins.
const LEGACY_TASK_TITLES = { reason2: "Причина обращения", topic: "Тема обращения", resolution: "Резолюция" };
const DOMAIN_NAMES = { telecom: "Телеком", marketplace: "Маркетплейс" };
const OFF_DOMAIN = 0.5; // a task whose domain scores below this is shown as «другой домен»
export const RANKED_ROWS = 3;
export const MACRO_SLOTS = 3;
// comment_required reasons by rule (seed 000_…, «Комментарии в Interaction необходимо вносить в случаях»)
const COMMENT_RULES = {
  claim: ["Претензия", "укажите выполненные действия и рекомендации клиенту"],
  expert_transfer: ["Переключение на экспертов", "укажите, куда переключен и какие доп. вопросы заданы"],
  agreement: ["Договоренность, льгота или компенсация", "укажите, что предоставлено, размер и обоснование"],
  internet_mms: ["Интернет / GPRS / MMS", "укажите модель телефона и что сделано"],
  identified_action: ["Действие после идентификации", "укажите идентификацию и выполненные действия"],
  legal_entity_block: ["Блокировка номера юр. лица", "укажите конт. телефон, предупреждение и пароль"],
  refusal: ["Отказ в предоставлении информации", "укажите, в чём отказано и почему"],
  asis_transfer: ["Переключение на АСИС", "отметьте, чтобы повторно не предлагали"],
  dropped_call: ["Звонок прерван", "запишите вопрос клиента"],
};

// One notion of certainty: the word comes from the decision level (the thresholds the model was
// calibrated for), never from the percentage; the percentage is the share of the model's belief.
export const CERTAINTY = {
  label: { word: "уверенно", explain: "Метка прошла порог точности этой задачи: подсказку можно принять." },
  group: { word: "вероятно", explain: "Уверена только в группе меток: уточните метку внутри группы." },
  abstain: { word: "не уверена", explain: "Ни одна метка не прошла порог точности: выберите метку сами." },
  no_content: { word: "мало данных", explain: "Клиент ещё не сказал ничего, кроме приветствия: решать рано." },
  other_domain: { word: "другой домен", explain: "Обращение скорее из другого домена: эта задача к нему не относится." },
  waiting: { word: "жду", explain: "Подсказки появятся после первых реплик." },
};
const PCT_EXPLAIN = "Доля уверенности модели в метке среди всех меток задачи (1–99 %). " +
  "Решение («уверенно», «вероятно», «не уверена») принимается по порогам точности, а не по этому числу.";

export function taskTitle(task, taxonomy) {
  const spec = taxonomy && taxonomy.tasks ? taxonomy.tasks[task] : null;
  if (spec && spec.title) return spec.title;
  if (LEGACY_TASK_TITLES[task]) return LEGACY_TASK_TITLES[task];
  if (spec && spec.question) return spec.question;
  return task;
}
export const domainName = (domain) => DOMAIN_NAMES[domain] || domain;

// A confidence for people: never «100 %» or «0 %» (the model is never sure, nor sure it is not).
export function percent(confidence) {
  const value = Number(confidence);
  if (!Number.isFinite(value) || value < 0.005) return "<1\u00a0%";
  if (value >= 0.995) return ">99\u00a0%";
  return `${Math.min(99, Math.max(1, Math.round(value * 100)))}\u00a0%`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const kbd = (key) => el("kbd", { "aria-hidden": "true", text: key });

// Re-rendering during a live call must not throw the keyboard focus away.
export function keepingFocus(render) {
  const key = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.focusKey : undefined;
  render();
  if (key) {
    const again = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function bar(confidence, label) {
  const value = Math.round(Math.max(0, Math.min(1, Number(confidence) || 0)) * 100);
  const fill = el("span", { class: "bar-fill" });
  fill.style.width = `${value}%`;
  return el("span", {
    class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": value,
    "aria-valuetext": percent(confidence), "aria-label": `Уверенность: ${label}`,
  }, fill);
}

// True when no task has anything to decide yet (the client has not said why they called).
export function noContent(result) {
  const decisions = Object.values((result && result.decisions) || {});
  return decisions.length > 0 && decisions.every((d) => d && d.reason === "no_content");
}

export function renderDomains(container, result) {
  const domains = result ? result.domains : null;
  if (!domains || !domains.length || noContent(result)) {
    container.replaceChildren(el("span", { class: "muted", text: result ? "Домен: пока не ясен" : "Домен: —" }));
    return;
  }
  container.replaceChildren(
    el("span", { class: "muted", text: "Домен:" }),
    ...domains.map((d, i) => el("span", { class: i === 0 ? "chip chip-top" : "chip", title: PCT_EXPLAIN },
      `${domainName(d.label)} · ${percent(d.confidence)}`)),
  );
}

export function renderNotices(container, result, handlers) {
  container.replaceChildren();
  const rule = result ? result.comment_required : null;
  if (rule && typeof rule === "object" && !noContent(result)) {
    const reasons = Array.isArray(rule.reasons) ? rule.reasons : [];
    if (rule.required) {
      container.append(el("div", { class: "notice notice-warn", "data-testid": "comment-hint" },
        el("strong", { text: "Нужен комментарий в Interaction" }),
        reasons.length ? el("ul", { class: "inline-list" }, reasons.map(commentReason)) : null));
    } else {
      container.append(el("div", { class: "notice", "data-testid": "comment-hint" },
        "Комментарий по правилам не обязателен."));
    }
  }
  const duplicate = result ? result.duplicate : null;
  if (duplicate && typeof duplicate === "object" && duplicate.duplicate_of) {
    const macro = duplicate.macro;
    container.append(el("div", { class: "notice notice-warn", "data-testid": "duplicate" },
      el("strong", { text: `Похоже на дубликат обращения № ${duplicate.duplicate_of}` }),
      duplicate.label ? ` — та же проблема («${duplicate.label}») в том же канале.` : ".",
      ` Предлагаемая резолюция: «${duplicate.resolution || "Дубликат"}».`,
      macro && macro.text ? el("button", { type: "button", class: "copy small", onclick: () => handlers.onCopy(macro) },
        "Копировать комментарий") : null));
  }
}

function commentReason(reason) {
  if (typeof reason === "string") return el("li", { text: reason });
  const [title, what] = COMMENT_RULES[reason.rule] || [reason.rule, ""];
  const quote = /«([^»]+)»/.exec(reason.because || "");
  const detail = [what, reason.seed_rule ? `правило ${reason.seed_rule}` : "", quote ? `в разговоре: «${quote[1]}»` : ""]
    .filter(Boolean).join("; ");
  return el("li", { "data-rule": reason.rule, title: detail || null }, el("strong", { text: title }),
    what ? el("span", { class: "muted", text: ` — ${what}` }) : null);
}

// The state of one task: which certainty word, what to say, and which label (if any) is suggested.
export function taskState(task, result, taxonomy, suggested) {
  if (!result) return { kind: "waiting", text: "жду реплик разговора" };
  const decision = (result.decisions || {})[task] || null;
  const spec = taxonomy && taxonomy.tasks ? taxonomy.tasks[task] : null;
  const domain = spec ? spec.domain : null;
  const scores = Object.fromEntries((result.domains || []).map((d) => [d.label, d.confidence]));
  if (decision && decision.reason === "no_content") {
    return { kind: "no_content", text: "клиент ещё не назвал причину обращения" };
  }
  const offByScore = domain && domain in scores && scores[domain] < OFF_DOMAIN;
  if ((decision && decision.reason === "other_domain") || offByScore) {
    const share = domain && domain in scores ? ` (домен «${domainName(domain)}»: ${percent(scores[domain])})` : "";
    return { kind: "other_domain", text: `скорее не относится к этому обращению${share}` };
  }
  if (!decision || decision.label === null || decision.label === undefined) {
    return { kind: "abstain", text: "выберите метку сами" };
  }
  if (decision.level === "group") return { kind: "group", group: decision.label, text: `группа «${decision.label}»: уточните метку` };
  return { kind: "label", label: suggested || decision.label };
}

function decisionLine(task, state, stable) {
  const certainty = CERTAINTY[state.kind];
  const badge = el("span", { class: "badge", title: certainty.explain, text: certainty.word });
  const tip = `${certainty.explain} ${PCT_EXPLAIN}`;
  if (state.kind === "label") {
    const held = stable && stable.held;
    return el("p", { class: `decision decision-${state.kind}`, "data-certainty": state.kind, title: tip },
      badge, el("strong", { class: "decision-label", text: state.label }),
      held ? el("span", { class: "chip small held", title: "Держу метку, пока новый лидер не закрепится", text: "держу" }) : null);
  }
  return el("p", { class: `decision decision-${state.kind}`, "data-certainty": state.kind, title: tip },
    badge, el("span", { class: "decision-text", text: state.text }));
}

function rankedRows(ranked, suggested, groups, rows, blank) {
  const items = [];
  for (let i = 0; i < rows; i += 1) {
    const item = blank ? null : ranked[i];
    if (!item) {
      items.push(el("li", { class: "placeholder", "aria-hidden": "true" },
        el("span", { class: "label-text", text: "—" }), el("span", { class: "bar" }), el("span", { class: "pct" })));
      continue;
    }
    const group = groups[item.label] && groups[item.label] !== item.label ? groups[item.label] : null;
    items.push(el("li", { class: item.label === suggested ? "top" : "" },
      el("span", { class: "label-text", title: group ? `${item.label} (${group})` : item.label },
        el("span", { class: "label-name", text: item.label }), group ? el("span", { class: "group", text: group }) : null),
      bar(item.confidence, item.label),
      el("span", { class: "pct", title: PCT_EXPLAIN, text: percent(item.confidence) })));
  }
  return el("ol", { class: "ranked" }, items);
}

function correctionForm(task, labels, suggested, state, handlers) {
  const id = `correct-${task}`;
  const choices = labels.filter((label) => label !== suggested); // «the same label» is no correction
  const select = el("select", { id, "data-focus-key": `${task}:correct`, onchange: (e) => { state.choice = e.target.value; } },
    el("option", { value: "", text: "— не знаю —" }),
    choices.map((label) => el("option", { value: label, text: label, selected: state.choice === label })));
  return el("div", { class: "row correction" },
    el("label", { for: id, text: "Верная метка" }), select,
    el("button", { type: "button", "data-focus-key": `${task}:send`, onclick: () => handlers.onReject(task, select.value || null) }, "Отправить"));
}

function feedbackNote(state) {
  if (!state.message) return null;
  return el("span", { class: `feedback-note ${state.failed ? "error" : "ok"}`, title: state.message, text: state.message });
}

function feedbackRow(key, state, { acceptLabel, rejectLabel, onAccept, onReject, what, keys, acceptDisabled }) {
  return el("div", { class: "row actions" },
    el("button", {
      type: "button", class: "accept", title: what ? `Принять «${what}»` : null, "data-focus-key": `${key}:accept`,
      "aria-pressed": state.accepted === true && !state.failed ? "true" : "false", onclick: onAccept,
      disabled: acceptDisabled, "aria-keyshortcuts": keys ? "A" : null,
    }, acceptLabel, keys ? kbd("A") : null),
    el("button", {
      type: "button", class: "reject", "data-focus-key": `${key}:reject`,
      "aria-pressed": state.accepted === false && !state.failed ? "true" : "false", onclick: onReject,
      "aria-keyshortcuts": keys ? "R" : null,
    }, rejectLabel, keys ? kbd("R") : null),
    feedbackNote(state));
}

// The task the keyboard shortcuts act on: the first one with a decided label, else the first in its domain.
export function shortcutTask(result, taxonomy, suggestedFor) {
  if (!result) return null;
  const tasks = Object.keys(result.predictions || {});
  const states = tasks.map((task) => [task, taskState(task, result, taxonomy, suggestedFor(task))]);
  const decided = states.find(([, s]) => s.kind === "label");
  if (decided) return decided[0];
  const inDomain = states.find(([, s]) => s.kind === "group" || s.kind === "abstain");
  return inDomain ? inDomain[0] : null;
}

export function renderTasks(container, result, ctx) {
  const { taxonomy, feedback, handlers, shortcut } = ctx;
  const tasks = result ? Object.keys(result.predictions || {}) : Object.keys((taxonomy && taxonomy.tasks) || {});
  const cards = tasks.map((task) => {
    const ranked = result ? result.predictions[task] || [] : [];
    const spec = taxonomy && taxonomy.tasks ? taxonomy.tasks[task] : null;
    const domain = spec ? spec.domain : null;
    const state = feedback.get(`task:${task}`) || {};
    const groups = spec ? Object.fromEntries(spec.labels.map((l) => [l.label, l.group])) : {};
    const suggested = result ? handlers.suggestedFor(task) : null;
    const view = taskState(task, result, taxonomy, suggested);
    const blank = view.kind === "no_content" || view.kind === "waiting";
    const isTarget = shortcut === task;
    const title = taskTitle(task, taxonomy);
    const heading = el("h4", { id: `task-${task}`, title: spec && spec.question ? spec.question : null },
      el("span", { class: "task-title", text: title }),
      domain ? el("span", { class: "chip small", text: domainName(domain) }) : null,
      isTarget ? el("span", { class: "chip small kbd-note", title: "Клавиши A и R действуют на эту задачу", text: "клавиши A / R" }) : null);
    const labels = spec ? spec.labels.map((l) => l.label) : ranked.map((r) => r.label);
    return el("article", {
      class: `task task-${view.kind}${view.kind === "other_domain" ? " off-domain" : ""}${isTarget ? " kbd-target" : ""}`,
      "data-task": task, "data-state": view.kind, "aria-labelledby": `task-${task}`,
    },
    heading,
    decisionLine(task, view, result ? (result.stable || {})[task] : null),
    rankedRows(ranked, suggested, groups, Math.max(RANKED_ROWS, ranked.length), blank),
    result ? feedbackRow(`task:${task}`, state, {
      acceptLabel: "✓ Принять", rejectLabel: "✕ Отклонить", what: suggested, keys: isTarget,
      acceptDisabled: blank || !suggested,
      onAccept: () => handlers.onAccept(task),
      onReject: () => handlers.onStartReject(task),
    }) : el("div", { class: "row actions" }, el("span", { class: "muted", text: " " })),
    state.correcting ? correctionForm(task, labels, suggested, state, handlers) : null);
  });
  container.replaceChildren(...cards);
}

// Which labels each macro is written for, read from the taxonomy (data, not label strings in code):
// a label of some task that the macro's title or `when` quotes («…»), puts in parentheses, or is.
// {macro id: {task: [labels]}}; a macro naming no label has no entry.
export function macroClaims(taxonomy) {
  const out = {};
  if (!taxonomy || !taxonomy.tasks) return out;
  for (const macro of taxonomy.macros || []) {
    const named = new Set([String(macro.title || "").trim()]);
    for (const text of [macro.title || "", macro.when || ""]) {
      for (const m of text.matchAll(/«([^«»]+)»/g)) named.add(m[1].trim());
      for (const m of text.matchAll(/\(([^()]+)\)/g)) named.add(m[1].trim());
    }
    for (const [task, spec] of Object.entries(taxonomy.tasks)) {
      const labels = (spec.labels || []).map((l) => l.label).filter((label) => named.has(label));
      if (labels.length) (out[macro.id] = out[macro.id] || {})[task] = labels;
    }
  }
  return out;
}

// {macro id: why it contradicts}: the macro is written for labels of a task whose decided label is another.
export function contradictions(macros, claims, decided) {
  const out = {};
  for (const macro of macros || []) {
    for (const [task, labels] of Object.entries(claims[macro.id] || {})) {
      const label = decided[task];
      if (label && !labels.includes(label)) {
        out[macro.id] = `Шаблон для «${labels.join("», «")}», а решено «${label}»`;
      }
    }
  }
  return out;
}

// The macro text split into plain parts, filled slots and missing slots.
export function macroSegments(macro, template) {
  const filled = normaliseFilled(macro.filled_slots);
  const slotPattern = /\{([^{}]+)\}/g;
  if (template && Object.keys(filled).length) {
    const segments = [];
    let last = 0;
    for (const match of template.matchAll(slotPattern)) {
      if (match.index > last) segments.push({ text: template.slice(last, match.index) });
      const slot = match[1];
      segments.push(slot in filled && filled[slot] !== null ? { slot, value: String(filled[slot]) } : { missing: slot });
      last = match.index + match[0].length;
    }
    if (last < template.length) segments.push({ text: template.slice(last) });
    const rebuilt = segments.map((s) => s.text ?? s.value ?? `{${s.missing}}`).join("");
    if (rebuilt === macro.text) return segments;
  }
  // Fall-back: mark the placeholders left in the text, highlight the filled values found in it.
  const segments = [];
  let last = 0;
  for (const match of macro.text.matchAll(slotPattern)) {
    if (match.index > last) segments.push({ text: macro.text.slice(last, match.index) });
    segments.push({ missing: match[1] });
    last = match.index + match[0].length;
  }
  if (last < macro.text.length) segments.push({ text: macro.text.slice(last) });
  return highlightValues(segments, filled);
}

function normaliseFilled(filled) {
  if (!filled) return {};
  if (Array.isArray(filled)) {
    const out = {};
    for (const item of filled) {
      if (item && typeof item === "object") out[item.slot || item.name] = item.value;
    }
    return out;
  }
  return typeof filled === "object" ? filled : {};
}

function highlightValues(segments, filled) {
  let out = segments;
  for (const [slot, value] of Object.entries(filled)) {
    if (value === null || value === undefined || value === "") continue;
    const needle = String(value);
    let done = false;
    out = out.flatMap((s) => {
      if (done || s.text === undefined) return [s];
      const at = s.text.indexOf(needle);
      if (at < 0) return [s];
      done = true;
      return [{ text: s.text.slice(0, at) }, { slot, value: needle }, { text: s.text.slice(at + needle.length) }]
        .filter((part) => part.text !== "");
    });
  }
  return out;
}

function macroPlaceholder(text) {
  return el("article", { class: "macro placeholder", "aria-hidden": "true" },
    el("header", {}, el("h4", { text: "\u00a0" }), el("span", { class: "pct" })),
    el("div", { class: "copy-area" }, el("span", { class: "macro-text muted", text })),
    el("p", { class: "macro-note", text: "\u00a0" }),
    el("div", { class: "row actions" }, el("button", { type: "button", disabled: true, tabindex: "-1" }, "Копировать")));
}

// `macros` in the order to show (the page keeps it steady); ctx.contradicts: {id: why}.
export function renderMacros(container, macros, ctx) {
  const { taxonomy, feedback, handlers, contradicts = {}, emptyText } = ctx;
  const templates = Object.fromEntries(((taxonomy && taxonomy.macros) || []).map((m) => [m.id, m.text]));
  const list = macros || [];
  const cards = list.map((macro, index) => {
    const key = `macro:${macro.id}`;
    const state = feedback.get(key) || {};
    const top = index === 0;
    const text = el("span", { class: "macro-text" }, macroSegments(macro, templates[macro.id]).map((s) => {
      if (s.text !== undefined) return s.text;
      if (s.value !== undefined) return el("mark", { class: "slot-filled", title: `заполнено: ${s.slot}` }, s.value);
      return el("span", { class: "slot-missing", title: "не заполнено — допишите" }, `{${s.missing}}`);
    }));
    const missing = macro.missing_slots || [];
    const why = contradicts[macro.id];
    const note = why ? `⚠ ${why}` : missing.length ? `Не заполнено: ${missing.join(", ")} — допишите перед сохранением.` : "\u00a0";
    return el("article", { class: `macro${why ? " contradicts" : ""}${top ? " macro-top" : ""}`, "data-macro": macro.id, "aria-labelledby": `macro-${macro.id}` },
      el("header", {},
        el("h4", { id: `macro-${macro.id}`, title: macro.title }, el("span", { class: "macro-id", text: macro.id }), " ", macro.title),
        el("span", { class: "pct", title: "Насколько шаблон подходит разговору (1–99 %); порядок держится, пока новый шаблон не обгонит устойчиво.", text: percent(macro.confidence) })),
      el("button", { type: "button", class: "copy-area", "data-focus-key": `${key}:text`, "aria-label": `Копировать шаблон «${macro.title}»`, onclick: () => handlers.onCopy(macro) }, text),
      el("p", { class: `macro-note${why ? " warn" : ""}`, title: note.trim() || null, text: note }),
      el("div", { class: "row actions" },
        el("button", { type: "button", class: "copy", "data-focus-key": `${key}:copy`, "aria-keyshortcuts": top ? "C" : null, onclick: () => handlers.onCopy(macro) },
          "Копировать", top ? kbd("C") : null),
        feedbackRow(key, state, {
          acceptLabel: "✓ Подходит", rejectLabel: "✕ Не подходит",
          onAccept: () => handlers.onMacroFeedback(macro, true),
          onReject: () => handlers.onMacroFeedback(macro, false),
        })));
  });
  for (let i = cards.length; i < MACRO_SLOTS; i += 1) {
    cards.push(macroPlaceholder(i === 0 ? emptyText || "Нет подходящих шаблонов." : "\u00a0"));
  }
  container.replaceChildren(...cards);
}
