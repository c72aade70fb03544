// Rendering one /v1/suggest result. Everything from the service goes in through textContent, never
// as HTML.

const TASK_NAMES = {
  reason2: "Причина обращения (Reason 2)",
  topic: "Тема обращения",
  resolution: "Резолюция",
};
const DOMAIN_NAMES = { telecom: "Телеком", marketplace: "Маркетплейс" };
const OFF_DOMAIN = 0.5;
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
}; // a task whose domain scores below this is shown folded

export const taskName = (task) => TASK_NAMES[task] || task;
export const domainName = (domain) => DOMAIN_NAMES[domain] || domain;

export function percent(confidence) {
  const value = Math.round(Number(confidence) * 100);
  return confidence > 0 && value < 1 ? "<1%" : `${value}%`;
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
  const value = Math.round(Number(confidence) * 100);
  const fill = el("span", { class: "bar-fill" });
  fill.style.width = `${Math.max(0, Math.min(100, value))}%`;
  return el("span", {
    class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": value,
    "aria-valuetext": percent(confidence), "aria-label": `Уверенность: ${label}`,
  }, fill);
}

export function renderDomains(container, domains) {
  container.replaceChildren();
  if (!domains || !domains.length) return;
  container.append(
    el("span", { class: "muted", text: "Домен:" }),
    ...domains.map((d, i) => el("span", { class: i === 0 ? "chip chip-top" : "chip" },
      `${domainName(d.label)} · ${percent(d.confidence)}`)),
  );
}

export function renderNotices(container, result, handlers) {
  container.replaceChildren();
  const rule = result.comment_required;
  if (rule && typeof rule === "object") {
    const reasons = Array.isArray(rule.reasons) ? rule.reasons : [];
    if (rule.required) {
      container.append(el("div", { class: "notice notice-warn", "data-testid": "comment-hint" },
        el("strong", { text: "Нужен комментарий в Interaction" }),
        reasons.length ? el("ul", {}, reasons.map(commentReason)) : null));
    } else {
      container.append(el("div", { class: "notice", "data-testid": "comment-hint" },
        "Комментарий по правилам не обязателен."));
    }
  }
  const duplicate = result.duplicate;
  if (duplicate && typeof duplicate === "object" && duplicate.duplicate_of) {
    const macro = duplicate.macro;
    container.append(el("div", { class: "notice notice-warn", "data-testid": "duplicate" },
      el("strong", { text: `Похоже на дубликат обращения № ${duplicate.duplicate_of}` }),
      duplicate.label ? ` — та же проблема («${duplicate.label}») в том же канале.` : ".",
      ` Предлагаемая резолюция: «${duplicate.resolution || "Дубликат"}».`,
      macro && macro.text ? el("div", { class: "row" },
        el("button", { type: "button", class: "copy", onclick: () => handlers.onCopy(macro) }, "Копировать комментарий")) : null));
  }
}

// The decision (label, group or abstention); in a live session the label shown is the stable one.
function commentReason(reason) {
  if (typeof reason === "string") return el("li", { text: reason });
  const [title, what] = COMMENT_RULES[reason.rule] || [reason.rule, reason.because || ""];
  const quote = /«([^»]+)»/.exec(reason.because || "");
  return el("li", { "data-rule": reason.rule },
    el("strong", { text: title }), what ? ` — ${what}` : "",
    quote || reason.seed_rule ? el("span", { class: "muted" },
      ` (${[reason.seed_rule ? `правило ${reason.seed_rule}` : "", quote ? `в разговоре: «${quote[1]}»` : ""].filter(Boolean).join("; ")})`) : null);
}

function decisionLine(decision, stable) {
  if (!decision) return null;
  const pct = percent(decision.confidence);
  if (decision.label === null || decision.label === undefined) {
    return el("p", { class: "decision decision-abstain" },
      el("span", { class: "badge", text: "не уверена" }), " выберите метку сами");
  }
  if (decision.level === "group") {
    return el("p", { class: "decision decision-group" },
      el("span", { class: "badge", text: "группа" }), " ", el("strong", { text: decision.label }), ` · ${pct}`);
  }
  const shown = stable && stable.label ? stable : decision;
  return el("p", { class: "decision decision-label" },
    el("span", { class: "badge", text: "решение" }), " ", el("strong", { text: shown.label }), ` · ${percent(shown.confidence)}`,
    stable && stable.held ? el("span", { class: "muted held", text: "держу метку, пока новый лидер не закрепится" }) : null);
}

function correctionForm(task, labels, state, handlers) {
  const id = `correct-${task}`;
  const select = el("select", { id, "data-focus-key": `${task}:correct`, onchange: (e) => { state.choice = e.target.value; } },
    el("option", { value: "", text: "— не знаю —" }),
    labels.map((label) => el("option", { value: label, text: label, selected: state.choice === label })));
  return el("div", { class: "row correction" },
    el("label", { for: id, text: "Верная метка" }), select,
    el("button", { type: "button", "data-focus-key": `${task}:send`, onclick: () => handlers.onReject(task, select.value || null) }, "Отправить"));
}

function feedbackRow(key, state, { acceptLabel, rejectLabel, onAccept, onReject, what }) {
  return el("div", { class: "row actions" },
    el("button", { type: "button", class: "accept", title: what ? `Принять «${what}»` : null, "data-focus-key": `${key}:accept`, "aria-pressed": state.accepted === true && !state.failed ? "true" : "false", onclick: onAccept }, acceptLabel),
    el("button", { type: "button", class: "reject", "data-focus-key": `${key}:reject`, "aria-pressed": state.accepted === false && !state.failed ? "true" : "false", onclick: onReject }, rejectLabel),
    state.message ? el("span", { class: `feedback-note ${state.failed ? "error" : "ok"}`, text: state.message }) : null);
}

export function renderTasks(container, result, ctx) {
  const { taxonomy, feedback, handlers } = ctx;
  const domainScores = Object.fromEntries((result.domains || []).map((d) => [d.label, d.confidence]));
  const cards = Object.entries(result.predictions || {}).map(([task, ranked]) => {
    const spec = taxonomy && taxonomy.tasks ? taxonomy.tasks[task] : null;
    const domain = spec ? spec.domain : null;
    const offDomain = domain && domain in domainScores && domainScores[domain] < OFF_DOMAIN;
    const state = feedback.get(`task:${task}`) || {};
    const groups = spec ? Object.fromEntries(spec.labels.map((l) => [l.label, l.group])) : {};
    const suggested = handlers.suggestedFor(task);
    const list = el("ol", { class: "ranked" }, ranked.map((item) => el("li", { class: item.label === suggested ? "top" : "" },
      el("span", { class: "label-text" }, el("span", { text: item.label }),
        groups[item.label] && groups[item.label] !== item.label ? el("span", { class: "group", text: groups[item.label] }) : null),
      bar(item.confidence, item.label),
      el("span", { class: "pct", text: percent(item.confidence) }))));
    const body = [
      decisionLine((result.decisions || {})[task], (result.stable || {})[task]),
      list,
      feedbackRow(`task:${task}`, state, {
        acceptLabel: "✓ Принять", rejectLabel: "✕ Отклонить", what: suggested,
        onAccept: () => handlers.onAccept(task),
        onReject: () => handlers.onStartReject(task),
      }),
      state.correcting ? correctionForm(task, spec ? spec.labels.map((l) => l.label) : ranked.map((r) => r.label), state, handlers) : null,
    ];
    const heading = el("h4", { id: `task-${task}` }, taskName(task),
      domain ? el("span", { class: "chip small", text: domainName(domain) }) : null);
    if (offDomain) {
      return el("article", { class: "task off-domain", "data-task": task, "aria-labelledby": `task-${task}` },
        heading,
        el("details", {}, el("summary", { text: `Скорее не относится к этому обращению (домен «${domainName(domain)}»: ${percent(domainScores[domain])})` }), ...body));
    }
    return el("article", { class: "task", "data-task": task, "aria-labelledby": `task-${task}` }, heading, ...body);
  });
  container.replaceChildren(...cards);
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

export function renderMacros(container, macros, ctx) {
  const { taxonomy, feedback, handlers } = ctx;
  if (!macros || !macros.length) {
    container.replaceChildren(el("p", { class: "muted empty", text: "Нет подходящих шаблонов." }));
    return;
  }
  const templates = Object.fromEntries(((taxonomy && taxonomy.macros) || []).map((m) => [m.id, m.text]));
  container.replaceChildren(...macros.map((macro) => {
    const key = `macro:${macro.id}`;
    const state = feedback.get(key) || {};
    const text = el("span", { class: "macro-text" }, macroSegments(macro, templates[macro.id]).map((s) => {
      if (s.text !== undefined) return s.text;
      if (s.value !== undefined) return el("mark", { class: "slot-filled", title: `заполнено: ${s.slot}` }, s.value);
      return el("span", { class: "slot-missing", title: "не заполнено — допишите" }, `{${s.missing}}`);
    }));
    const missing = macro.missing_slots || [];
    return el("article", { class: "macro", "data-macro": macro.id, "aria-labelledby": `macro-${macro.id}` },
      el("header", {},
        el("h4", { id: `macro-${macro.id}` }, el("span", { class: "macro-id", text: macro.id }), " ", macro.title),
        el("span", { class: "pct", title: "уверенность", text: percent(macro.confidence) })),
      el("button", { type: "button", class: "copy-area", "data-focus-key": `${key}:text`, "aria-label": `Копировать шаблон «${macro.title}»`, onclick: () => handlers.onCopy(macro) }, text),
      missing.length ? el("p", { class: "missing-note", text: `Не заполнено: ${missing.join(", ")} — допишите перед сохранением.` }) : null,
      el("div", { class: "row actions" },
        el("button", { type: "button", class: "copy", "data-focus-key": `${key}:copy`, onclick: () => handlers.onCopy(macro) }, "Копировать"),
        feedbackRow(key, state, {
          acceptLabel: "✓ Подходит", rejectLabel: "✕ Не подходит",
          onAccept: () => handlers.onMacroFeedback(macro, true),
          onReject: () => handlers.onMacroFeedback(macro, false),
        })));
  }));
}
