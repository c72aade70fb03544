"""The extractors behind :class:`model.slots.SlotFiller` (lexicons in :mod:`model.slot_lexicon`), one
function per family of slots. Every function takes the processed turns and returns ``{slot: value}`` for what
it found; values are taken from the text (digits as said, phrases as said), never made up."""

from __future__ import annotations

import re
from typing import Callable

from model.slot_lexicon import (
    BRANDS, AMBIGUOUS_BRANDS, MODEL_WORDS, JOIN_LETTERS, IDENT, TRANSFER_HEADS,
    TARGET_STOP, TARGET_KEEP_PREP, SERVICES, TARIFF_NAMES, BILL_DOCS, MONTHS,
    LOYALTY, REQUESTS, REQUEST_VERBS, ACTIONS, RECOMMEND, GREETING,
)

_ORDER = re.compile(r"(?<![\d-])(\d{6,10})-(\d{3,5})(?:-(\d{1,3}))?(?![\d-])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])(?:\+7|8|7)?[\s(-]*9\d{2}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?![\d-])"
                    r"|(?<![\w-])(?:\+7|8|7)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?![\d-])")
_ADDRESS = re.compile(
    r"((?:г\.?|город)\s*[а-я-]+,?\s*)?(?:ул\.?|улица|пр-т|проспект|пер\.?|переулок)\s*[а-я-]+(?:\s[а-я-]+)?,?\s*"
    r"(?:д\.?|дом)\s*\d+\s?[а-я]?\b(?:,?\s*(?:корп\.?|корпус|к\.)\s*\d+)?(?:,?\s*(?:кв\.?|квартира)\s*\d+)?")
_AMOUNT = re.compile(r"(?<![\d-])(\d[\d ]{0,9}(?:[.,]\d{1,2})?)\s*(?:руб\w*|р\.|₽)")
_TERM = re.compile(r"\b((?:в течение|до|через|не позднее)\s+(?:\d+\s+)?(?:рабоч\w+\s+|календарн\w+\s+)?"
                   r"(?:час\w*|дн\w+|день|сут\w*|недел\w+|минут\w*|месяц\w*))")
_PERIOD = re.compile(r"\bза\s+((?:(?:этот|прошлый|последн\w+|текущ\w+|весь|всю|предыдущ\w+)\s+)?"
                     r"(?:\d+\s+)?(?:месяц\w*|год\w*|квартал\w*|недел\w+|полгода|период)|"
                     r"(?:(?:" + "|".join(MONTHS) + r")\w*(?:\s*(?:-|–|и|по)?\s*)?){1,2}(?:\s\d{4})?)")
_TASK = re.compile(r"\b(?:создал\w*|оформил\w*|завел\w*|отправил\w*|создано|создан\w*)\s+(?:\w+\s+)?"
                   r"(?:задание|заявк\w|запрос)\s+((?:в|на)\s+[\w-]+(?:\s+(?!и\b|с\b|ответ)[\w-]+){0,3})")
_TICKET = re.compile(r"заявк\w*(?:\s+в\s+(?:it|ит))?\s*(?:№|номер)\s*([\w-]*\d[\w-]*)")
_APPEAL = re.compile(r"обращени\w*\s*(?:№|номер)\s*([\w-]*\d[\w-]*)")
_PASSWORD = re.compile(r"пароль\b(?:\s+\S+){0,5}?\s+(\d{4,8})\b")


def _ops(turns):
    return [t for t in turns if t.role == "operator"]


def ids(turns, matches, filler) -> dict[str, str]:
    """Order and shipment numbers, e-mail, phone, postal address, ticket and appeal numbers, password."""
    out: dict[str, str] = {}
    for turn in turns:
        for source in (turn.raw, turn.text):
            for m in _ORDER.finditer(source):
                out.setdefault("номер_заказа", f"{m.group(1)}-{m.group(2)}")
                if m.group(3):
                    out.setdefault("номер_отправления", m.group(0))
            if (m := _EMAIL.search(source)) and "email" not in out:
                out["email"] = m.group(0).rstrip(".")
        if "email" not in out and (spoken := spoken_email(turn.text)):
            out["email"] = spoken
        if (m := _ADDRESS.search(turn.raw.lower()) or _ADDRESS.search(turn.text)) and "адрес" not in out:
            out["адрес"] = m.group(0).strip(" ,.")
        for pattern, slot in ((_TICKET, "номер_заявки"), (_APPEAL, "номер_обращения"), (_PASSWORD, "пароль")):
            if (m := pattern.search(turn.text)) and slot not in out:
                out[slot] = m.group(1)
    out.update(phone(turns))
    if "адрес" not in out and "email" in out:
        out["адрес"] = out["email"]
    return out


def phone(turns) -> dict[str, str]:
    found = []
    for k, turn in enumerate(turns):
        contact = any(re.search(r"контакт|для связи", t.text) for t in turns[max(0, k - 1):k + 1])
        for source in (turn.raw, turn.text):
            for m in _PHONE.finditer(source):
                digits = re.sub(r"\D", "", m.group(0))
                if len(digits) == 10:
                    digits = "7" + digits
                if len(digits) == 11:
                    found.append((contact, "+7 " + digits[1:4]
                                  + " " + digits[4:7] + "-" + digits[7:9] + "-" + digits[9:]))
    if any(re.search(r"контактн\w+ (?:телефон|номер)|телефон для связи", t.text) for t in _ops(turns)):
        found = [f for f in found if f[0]]  # a contact phone was asked for: only its answer will do
    return {"телефон": found[0][1]} if found else {}


_SPOKEN_DOMAINS = {"гмайл": "gmail", "джимейл": "gmail", "мейл": "mail", "мэйл": "mail", "яндекс": "yandex",
                   "бк": "bk", "инбокс": "inbox", "лист": "list", "рамблер": "rambler", "ру": "ru", "ком": "com",
                   "нет": "net", "рф": "рф"}


def spoken_email(text: str) -> str | None:
    """'смирнов точка р собака бк ру' → 'смирнов.р@bk.ru' (the local part as heard)."""
    m = re.search(r"((?:[a-zа-я0-9]+\s+(?:точка|тире|подчеркивание)\s+)*[a-zа-я0-9]+)\s+собака\s+"
                  r"([a-zа-я]+)(?:\s+точка)?\s+(ру|ком|нет|рф|ru|com|net)\b", text)
    if not m:
        return None
    local = m.group(1).split()[-1] if "точка" not in m.group(1) else m.group(1)
    local = re.sub(r"\s*точка\s*", ".", local)
    local = re.sub(r"\s*тире\s*", "-", local)
    local = re.sub(r"\s*подчеркивание\s*", "_", local)
    domain = _SPOKEN_DOMAINS.get(m.group(2), m.group(2))
    return f"{local}@{domain}.{_SPOKEN_DOMAINS.get(m.group(3), m.group(3))}"


def device(turns, matches, filler) -> dict[str, str]:
    """{модель}: a brand and the model tokens after it ('самсунг а 51' → 'Samsung A51')."""
    for i, rule, start, end in matches:
        if rule == "MODEM":
            return {"модель": "роутер" if turns[i].lemmas[start] == "роутер" else "USB-модем"}
        if rule not in ("BRAND", "ONEPLUS"):
            continue
        words = turns[i].words
        brand = "ванплюс" if rule == "ONEPLUS" else words[start].lower()
        parts: list[str] = []
        for w in words[end:end + 4]:
            wl = w.lower()
            if wl.isdigit() and len(wl) <= 3:
                parts.append(wl)
            elif re.fullmatch(r"[a-z]{1,2}\d{1,3}[a-z]?", wl):
                parts.append(wl.upper())
            elif wl in MODEL_WORDS and not (wl == "а" and not _next_is_digit(words, words.index(w, end))):
                parts.append(MODEL_WORDS[wl])
            else:
                break
        if brand in AMBIGUOUS_BRANDS and not any(p.isdigit() for p in parts):
            continue
        text = " ".join(parts)
        for letter in JOIN_LETTERS:
            text = re.sub(rf"\b{letter} (\d)", rf"{letter}\1", text)
        return {"модель": f"{BRANDS[brand]} {text}".strip()}
    for k, turn in enumerate(turns[:-1]):  # "модель телефона?" — "ну редми девять": the answer as said
        answer = turns[k + 1]
        if turn.role == "operator" and "модель" in turn.lemmas[-4:] and answer.role == "client" \
                and 1 <= len(answer.words) <= 5 and any(w.isdigit() for w in answer.words):
            return {"модель": " ".join(answer.words)}
    return {}


def _next_is_digit(words, k):
    return k + 1 < len(words) and words[k + 1].isdigit()


def topics(turns, matches, filler) -> dict[str, str]:
    """{интернет_MMS}, {коды}, {причина_блокировки}, {счет_детализация}, {период}."""
    text = " ".join(t.text for t in turns)
    out: dict[str, str] = {}
    kinds = []
    if re.search(r"\b(интернет\w*|гиг\w*|гигабайт\w*|мегабайт\w*|4g|3g|lte|gprs|wap|раздач\w+|модем\w*|роутер\w*|"
                 r"сайт\w*|браузер\w*|трафик\w*|apn|точк\w+ доступа|\d джи)\b", text):
        kinds.append("мобильному интернету")
    if re.search(r"\b(mms|ммс|ммс)\b", text):
        kinds.append("MMS")
    if kinds:
        out["интернет_MMS"] = " и ".join(kinds)
    codes = [name for pattern, name in ((r"\b(пин|pin)\b|пин-код", "PIN-код"), (r"\b(пук|пак|puk)\b|пук-код|пак-код",
             "PUK-код"), (r"секретн\w+ код", "секретный код")) if re.search(pattern, text)]
    if codes:
        out["коды"] = ", ".join(codes)
    for pattern, reason in ((r"\b(потерял\w*|утер\w+|потеря\w*)\b", "утере"), (r"\b(украл\w*|краж\w+|украден\w*)\b",
                            "краже"), (r"по желанию|блокировк\w+ по заявлени", "желанию")):
        if re.search(pattern, text):
            out["причина_блокировки"] = reason
            break
    for stem, name in BILL_DOCS:
        if stem in text:
            out["счет_детализация"] = name
            break
    if m := _PERIOD.search(text):
        out["период"] = re.sub(r"\s+", " ", m.group(1)).strip()
    return out


def identification(turns, matches, filler) -> dict[str, str]:
    """{идентификация} and {вопросы}: what the operator asked to identify the client (if answered)."""
    asked: list[str] = []
    for k, turn in enumerate(turns):
        if turn.role != "operator":
            continue
        answered = any(t.role == "client" for t in turns[k + 1:k + 3])
        for lemmas, name in IDENT:
            if answered and name not in asked and (set(lemmas) & set(turn.lemmas)):
                if name == "номер договора" and "номер" not in turn.lemmas:
                    continue
                asked.append(name)
    if not asked:
        return {}
    return {"идентификация": ", ".join(asked), "вопросы": "идент. " + ", ".join(asked)}


def actions(turns, matches, filler) -> dict[str, str]:
    """{действия}, {действие}, {подключена_отключена}, {рекомендации}, {рекомендация}."""
    done: list[str] = []
    on_off = None
    for i, rule, start, end in matches:
        turn = turns[i]
        if turn.role != "operator" or rule != "ACTION" or not _done_by_operator(filler, turn.words[start]):
            continue
        lemma = turn.lemmas[start]
        window = set(turn.lemmas[max(0, start - 6):start + 8])
        for verbs, objects, phrase in ACTIONS:
            if lemma in verbs and (not objects or window & set(objects)) and phrase not in done:
                if phrase in ("отключена услуга", "подключена услуга") and window & {"тариф", "настройка"}:
                    continue
                done.append(phrase)
                if phrase in ("отключена услуга", "подключена услуга"):
                    on_off = "Отключена" if lemma == "отключить" else "Подключена"
                break
    out: dict[str, str] = {}
    if done:
        out["действия"] = out["действие"] = ", ".join(done)
    if on_off:
        out["подключена_отключена"] = on_off
    tips = []
    for turn in _ops(turns):
        for m in RECOMMEND.finditer(turn.text):
            clause = re.split(r"[.!?;]| а | но ", turn.text[m.start():])[0].split()[:10]
            tips.append(" ".join(clause))
    if tips:
        out["рекомендации"] = out["рекомендация"] = "; ".join(dict.fromkeys(tips[:2]))
        out.setdefault("действие", "даны рекомендации: " + out["рекомендации"])
    return out


def _done_by_operator(filler, word: str) -> bool:
    """A past form ('отключила'), a passive participle ('отключено') or a first-person future
    ('отключу', 'переключаю'); not an infinitive ('могу отключить') or an imperative."""
    for parse in filler.morph.parse(word)[:2]:
        tag = parse.tag
        if "PRTS" in tag or ("VERB" in tag and ("past" in tag or ("1per" in tag and "sing" in tag))):
            return True
    return False


def transfer(turns, matches, filler) -> dict[str, str]:
    """{куда}, {отдел}, {кому}: where the operator transferred the client or the appeal."""
    for i, rule, start, end in matches:
        turn = turns[i]
        if rule != "TRANSFER" or turn.role != "operator":
            continue
        words, lemmas = turn.words, turn.lemmas
        k = end
        while k < len(words) and lemmas[k] in {"вас", "вы", "ваш", "обращение", "диалог", "информация", "вопрос",
                                               "заявка", "отзыв", "пожелание", "звонок", "это", "его", "её"}:
            k += 1
        if k < len(words) and lemmas[k] in {"на", "в", "к"}:
            k += 1
        target: list[str] = []
        for j in range(k, min(k + 6, len(words))):
            if not re.fullmatch(r"[\w-]+", words[j]):
                break
            if lemmas[j] in TARGET_STOP and not (lemmas[j] in TARGET_KEEP_PREP and target):
                break
            target.append(words[j])
        if target and not set(lemmas[k:k + len(target)]) & TRANSFER_HEADS:
            # a dative addressee: "передам продавцу"
            continue
        if target:
            value = " ".join(target)
            return {"куда": value, "отдел": value, "кому": value}
    return {}


def offers(turns, matches, filler) -> dict[str, str]:
    """{услуга}, {тариф}, {льгота_скидка_ФК}, {размер}."""
    out: dict[str, str] = {}
    text = " ".join(t.text for t in turns)
    for name in SERVICES:
        if re.search(rf"\b{name}\b", text):
            out["услуга"] = f"«{name}»"
            break
    if m := re.search(r"(?:услуг|опци|подписк)\w*\s+«([^»]{2,40})»", " ".join(t.raw for t in turns).lower()):
        out["услуга"] = f"«{m.group(1)}»"
    for turn in reversed(turns):
        if quoted := re.search(r"тариф\w*\s+(«[^»]{2,40}»|\"[^\"]{2,40}\")", turn.raw.lower()):
            out["тариф"] = quoted.group(1)
            break
        m = re.search(r"тариф\w*\s+(«[^»]+»|\"[^\"]+\"|за \d+(?: руб\w*)?|" + "|".join(TARIFF_NAMES) + ")", turn.text)
        if m:
            value = m.group(1)
            value = re.sub(r"^за (\d+)(?: руб\w*)?$", r"за \1 руб.", value)
            out["тариф"] = value if value.startswith(("«", '"')) else f"«{value}»" if value in TARIFF_NAMES[:3] \
                else f"тариф {value}"
            break
    for turn in _ops(turns):
        for stem, name in LOYALTY:
            if stem in turn.text:
                out.setdefault("льгота_скидка_ФК", name)
                if m := _AMOUNT.search(turn.text):
                    out.setdefault("размер", f"{m.group(1).strip()} руб.")
    return out


def task(turns, matches, filler) -> dict[str, str]:
    """{тип_задания}, {срок}, {что_запрошено}, {цель}."""
    out: dict[str, str] = {}
    for turn in turns:
        if turn.role == "client":
            continue
        if (m := _TASK.search(turn.text)) and "тип_задания" not in out:
            out["тип_задания"] = m.group(1)
        if (m := _TERM.search(turn.text)) and "срок" not in out:
            out["срок"] = m.group(1)
        if turn.role == "operator" and REQUEST_VERBS.search(turn.text) and "что_запрошено" not in out:
            asked = [name for stem, name in REQUESTS if re.search(rf"\b{stem}", turn.text)]
            if asked:
                out["что_запрошено"] = ", ".join(dict.fromkeys(asked))
                if m := re.search(r"\bдля\s+((?:[а-я]+\s+){0,2}[а-я]+ции|[а-я]+ки|[а-я]+ния|[а-я]+та)\b", turn.text):
                    out["цель"] = m.group(1)
    return out


def gist(turns, matches, filler) -> dict[str, str]:
    """{суть}, {вопрос}: the client's first substantive words, as said (trimmed)."""
    words: list[str] = []
    for turn in turns:
        if turn.role != "client":
            if words and turn.role == "operator":
                break
            continue
        text = GREETING.sub("", turn.raw.strip().split("\n", 1)[-1] if turn.raw.startswith("Тема:") else turn.raw.strip())
        words += text.split()
        if len(words) >= 6:
            break
    if len(words) < 3:
        return {}
    value = " ".join(words[:25]).rstrip(" ,.!?") + ("…" if len(words) > 25 else "")
    return {"суть": value, "вопрос": value}


EXTRACTORS: list[Callable] = [ids, device, topics, identification, actions, transfer, offers, task, gist]
