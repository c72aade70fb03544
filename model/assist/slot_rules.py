"""The extractors behind :class:`model.assist.slots.SlotFiller` (lexicons in :mod:`model.assist.slot_lexicon`), one
function per family of slots. Every function takes the processed turns and returns ``{slot: value}`` for what
it found; values are taken from the text (digits as said, phrases as said), never made up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from model.assist.slot_lexicon import (
    ACTIONS,
    AMBIGUOUS_BRANDS,
    BILL_DOCS,
    BRANDS,
    GREETING,
    IDENT,
    JOIN_LETTERS,
    LOYALTY,
    MODEL_WORDS,
    MONTHS,
    RECOMMEND,
    REQUEST_VERBS,
    REQUESTS,
    SERVICES,
    TARGET_KEEP_PREP,
    TARGET_STOP,
    TARIFF_NAMES,
    TRANSFER_HEADS,
)
from model.text.pii import EMAIL_PATTERN

if TYPE_CHECKING:  # slots.py imports this module; the extractors only annotate with its classes
    from model.assist.slots import ReadTurn, SlotFiller

SlotMatch = tuple[int, str, int, int]
"""A ``Matcher`` hit the extractors read: ``(turn index, rule name, start token, end token)``."""

# Every pattern reads text a client controls: each repetition is bounded (``\w{0,20}``, not ``\w*``), so a match
# attempt costs a bounded number of steps at each position and a turn is read in linear time, whatever it holds
# (tests/model/text/test_linear_time.py audits every pattern of this module).
_ORDER = re.compile(r"(?<![\d-])(\d{6,10})-(\d{3,5})(?:-(\d{1,3}))?(?![\d-])")
_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE = re.compile(
    r"(?<![\w-])(?:\+7|8|7)?[\s(-]{0,6}9\d{2}[\s)-]{0,6}\d{3}[\s-]{0,6}\d{2}[\s-]{0,6}\d{2}(?![\d-])"
    r"|(?<![\w-])(?:\+7|8|7)[\s(-]{0,6}\d{3}[\s)-]{0,6}\d{3}[\s-]{0,6}\d{2}[\s-]{0,6}\d{2}(?![\d-])"
)
_ADDRESS = re.compile(
    r"((?:г\.?|город)\s{0,3}[а-я-]{1,40},?\s{0,3})?(?:ул\.?|улица|пр-т|проспект|пер\.?|переулок)\s{0,3}[а-я-]{1,40}"
    r"(?:\s[а-я-]{1,40})?,?\s{0,3}(?:д\.?|дом)\s{0,3}\d{1,5}\s?[а-я]?\b(?:,?\s{0,3}(?:корп\.?|корпус|к\.)\s{0,3}\d{1,4})?"
    r"(?:,?\s{0,3}(?:кв\.?|квартира)\s{0,3}\d{1,5})?"
)
_AMOUNT = re.compile(r"(?<![\d-])(\d[\d ]{0,9}(?:[.,]\d{1,2})?)\s{0,3}(?:руб\w{0,10}|р\.|₽)")
_TERM = re.compile(
    r"\b((?:в течение|до|через|не позднее)\s{1,3}(?:\d{1,6}\s{1,3})?(?:рабоч\w{1,20}\s{1,3}|"
    r"календарн\w{1,20}\s{1,3})?(?:час\w{0,20}|дн\w{1,20}|день|сут\w{0,20}|недел\w{1,20}|минут\w{0,20}|"
    r"месяц\w{0,20}))"
)
_PERIOD = re.compile(
    r"\bза\s{1,3}((?:(?:этот|прошлый|последн\w{1,20}|текущ\w{1,20}|весь|всю|предыдущ\w{1,20})\s{1,3})?"
    r"(?:\d{1,6}\s{1,3})?(?:месяц\w{0,20}|год\w{0,20}|квартал\w{0,20}|недел\w{1,20}|полгода|период)|"
    r"(?:(?:" + "|".join(MONTHS) + r")\w{0,20}(?:\s{0,3}(?:-|–|и|по)?\s{0,3})?){1,2}(?:\s\d{4})?)"
)
_ASSIGNMENT = re.compile(
    r"\b(?:создал\w{0,20}|оформил\w{0,20}|завел\w{0,20}|отправил\w{0,20}|создано|создан\w{0,20})\s{1,3}"
    r"(?:\w{1,40}\s{1,3})?(?:задание|заявк\w|запрос)\s{1,3}((?:в|на)\s{1,3}[\w-]{1,40}"
    r"(?:\s{1,3}(?!и\b|с\b|ответ)[\w-]{1,40}){0,3})"
)
_TICKET = re.compile(r"заявк\w{0,20}(?:\s{1,3}в\s{1,3}(?:it|ит))?\s{0,3}(?:№|номер)\s{0,3}([\w-]{0,30}\d[\w-]{0,30})")
_APPEAL = re.compile(r"обращени\w{0,20}\s{0,3}(?:№|номер)\s{0,3}([\w-]{0,30}\d[\w-]{0,30})")
_PASSWORD = re.compile(r"пароль\b(?:\s{1,3}\S{1,40}){0,5}?\s{1,3}(\d{4,8})\b")
_CONTACT = re.compile(r"контакт|для связи")
_CONTACT_ASKED = re.compile(r"контактн\w{1,20} (?:телефон|номер)|телефон для связи")
_NOT_DIGIT = re.compile(r"\D")
_MODEL_TOKEN = re.compile(r"[a-z]{1,2}\d{1,3}[a-z]?")
_JOIN = {letter: re.compile(rf"\b{letter} (\d)") for letter in JOIN_LETTERS}
_INTERNET = re.compile(
    r"\b(интернет\w{0,20}|гиг\w{0,20}|гигабайт\w{0,20}|мегабайт\w{0,20}|4g|3g|lte|gprs|wap|"
    r"раздач\w{1,20}|модем\w{0,20}|роутер\w{0,20}|сайт\w{0,20}|браузер\w{0,20}|трафик\w{0,20}|apn|"
    r"точк\w{1,20} доступа|\d джи)\b"
)
_MMS = re.compile(r"\b(mms|ммс)\b")
_CODES = [
    (re.compile(r"\b(пин|pin)\b|пин-код"), "PIN-код"),
    (re.compile(r"\b(пук|пак|puk)\b|пук-код|пак-код"), "PUK-код"),
    (re.compile(r"секретн\w{1,20} код"), "секретный код"),
]
_BLOCK_REASONS = [
    (re.compile(r"\b(потерял\w{0,20}|утер\w{1,20}|потеря\w{0,20})\b"), "утере"),
    (re.compile(r"\b(украл\w{0,20}|краж\w{1,20}|украден\w{0,20})\b"), "краже"),
    (re.compile(r"по желанию|блокировк\w{1,20} по заявлени"), "желанию"),
]
_CLAUSE_END = re.compile(r"[.!?;]| а | но ")
_SERVICES = [(re.compile(rf"\b{name}\b"), name) for name in SERVICES]
_QUOTED_SERVICE = re.compile(r"(?:услуг|опци|подписк)\w{0,20}\s{1,3}«([^»]{2,40})»")
_QUOTED_TARIFF = re.compile(r"тариф\w{0,20}\s{1,3}(«[^»]{2,40}»|\"[^\"]{2,40}\")")
_TARIFF = re.compile(
    r"тариф\w{0,20}\s{1,3}(«[^»]{1,80}»|\"[^\"]{1,80}\"|за \d{1,7}(?: руб\w{0,10})?|" + "|".join(TARIFF_NAMES) + ")"
)
_TARIFF_PRICE = re.compile(r"^за (\d{1,7})(?: руб\w{0,10})?$")
_REQUESTS = [(re.compile(rf"\b{stem}"), name) for stem, name in REQUESTS]
_PURPOSE = re.compile(
    r"\bдля\s{1,3}((?:[а-я]{1,40}\s{1,3}){0,2}[а-я]{1,40}ции|[а-я]{1,40}ки|[а-я]{1,40}ния|"
    r"[а-я]{1,40}та)\b"
)
_TARGET_WORD = re.compile(r"[\w-]+")
_CLAUSE_WINDOW = 400  # a recommendation is read from at most this many characters after its verb


def _ops(turns: list[ReadTurn]) -> list[ReadTurn]:
    return [t for t in turns if t.role == "operator"]


def ids(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """Order and shipment numbers, e-mail, phone, postal address, ticket and appeal numbers, password."""
    out: dict[str, str] = {}
    for turn in turns:
        for source in (turn.raw, turn.text):
            for order in _ORDER.finditer(source):
                out.setdefault("номер_заказа", f"{order.group(1)}-{order.group(2)}")
                if order.group(3):
                    out.setdefault("номер_отправления", order.group(0))
            if (email := _EMAIL.search(source)) and "email" not in out:
                out["email"] = email.group(0).rstrip(".")
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


def phone(turns: list[ReadTurn]) -> dict[str, str]:
    """{телефон}: the first phone number said, as ``+7 XXX XXX-XX-XX``; when the operator asked for a contact
    number, the first one in or right after a turn that says «контакт» / «для связи»."""
    found: list[tuple[bool, str]] = []
    for k, turn in enumerate(turns):
        contact = any(_CONTACT.search(t.text) for t in turns[max(0, k - 1) : k + 1])
        for source in (turn.raw, turn.text):
            for m in _PHONE.finditer(source):
                digits = _NOT_DIGIT.sub("", m.group(0))
                if len(digits) == 10:
                    digits = "7" + digits
                if len(digits) == 11:
                    found.append(
                        (contact, "+7 " + digits[1:4] + " " + digits[4:7] + "-" + digits[7:9] + "-" + digits[9:])
                    )
    if any(_CONTACT_ASKED.search(t.text) for t in _ops(turns)):
        found = [f for f in found if f[0]]  # a contact phone was asked for: only its answer will do
    return {"телефон": found[0][1]} if found else {}


_SPOKEN_DOMAINS = {
    "гмайл": "gmail",
    "джимейл": "gmail",
    "мейл": "mail",
    "мэйл": "mail",
    "яндекс": "yandex",
    "бк": "bk",
    "инбокс": "inbox",
    "лист": "list",
    "рамблер": "rambler",
    "ру": "ru",
    "ком": "com",
    "нет": "net",
    "рф": "рф",
}


_EMAIL_JOINERS = {"точка": ".", "тире": "-", "подчеркивание": "_"}
_SPOKEN_TLDS = {"ру", "ком", "нет", "рф", "ru", "com", "net"}
_EMAIL_WORD = re.compile(r"[a-zа-я0-9]{1,64}")
_EMAIL_LOCAL_WORD = re.compile(r"[a-zа-я0-9][a-zа-я0-9._-]{0,63}")
_MAX_LOCAL_WORDS = 5  # a local part is read from at most this many words before «собака»


def spoken_email(text: str) -> str | None:
    """'смирнов точка р собака бк ру' → 'смирнов.р@bk.ru' (the local part as heard).

    Read word by word (one pass, a bounded look back from each «собака»), never by a regular expression
    that could backtrack over a long text."""
    words = text.split()
    for i, word in enumerate(words):
        if word != "собака" or i == 0 or i + 2 >= len(words):
            continue
        domain, tld = words[i + 1], words[i + 2]
        if tld == "точка" and i + 3 < len(words):
            tld = words[i + 3]
        if (
            tld not in _SPOKEN_TLDS
            or not _EMAIL_WORD.fullmatch(domain)
            or not _EMAIL_LOCAL_WORD.fullmatch(words[i - 1])
        ):
            continue
        start = i - 1
        while (
            start >= 2
            and i - start < 2 * _MAX_LOCAL_WORDS
            and words[start - 1] in _EMAIL_JOINERS
            and _EMAIL_LOCAL_WORD.fullmatch(words[start - 2])
        ):
            start -= 2
        parts = words[start:i]
        if not any(p == "точка" for p in parts):  # without a dot only the last word is the local part
            parts = parts[-1:]
        local = "".join(_EMAIL_JOINERS.get(p, p) for p in parts)
        domain = _SPOKEN_DOMAINS.get(domain, domain)
        return f"{local}@{domain}.{_SPOKEN_DOMAINS.get(tld, tld)}"
    return None


def device(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{модель}: a brand and the model tokens after it ('самсунг а 51' → 'Samsung A51')."""
    for i, rule, start, end in matches:
        if rule == "MODEM":
            return {"модель": "роутер" if turns[i].lemmas[start] == "роутер" else "USB-модем"}
        if rule not in ("BRAND", "ONEPLUS"):
            continue
        words = turns[i].words
        brand = "ванплюс" if rule == "ONEPLUS" else words[start].lower()
        parts: list[str] = []
        for w in words[end : end + 4]:
            wl = w.lower()
            if wl.isdigit() and len(wl) <= 3:
                parts.append(wl)
            elif _MODEL_TOKEN.fullmatch(wl):
                parts.append(wl.upper())
            elif wl in MODEL_WORDS and not (wl == "а" and not _next_is_digit(words, words.index(w, end))):
                parts.append(MODEL_WORDS[wl])
            else:
                break
        if brand in AMBIGUOUS_BRANDS and not any(p.isdigit() for p in parts):
            continue
        text = " ".join(parts)
        for letter, pattern in _JOIN.items():
            text = pattern.sub(rf"{letter}\1", text)
        return {"модель": f"{BRANDS[brand]} {text}".strip()}
    for k, turn in enumerate(turns[:-1]):  # "модель телефона?" — "ну редми девять": the answer as said
        answer = turns[k + 1]
        if (
            turn.role == "operator"
            and "модель" in turn.lemmas[-4:]
            and answer.role == "client"
            and 1 <= len(answer.words) <= 5
            and any(w.isdigit() for w in answer.words)
        ):
            return {"модель": " ".join(answer.words)}
    return {}


def _next_is_digit(words: list[str], k: int) -> bool:
    return k + 1 < len(words) and words[k + 1].isdigit()


def topics(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{интернет_MMS}, {коды}, {причина_блокировки}, {счет_детализация}, {период}."""
    text = " ".join(t.text for t in turns)
    out: dict[str, str] = {}
    kinds = []
    if _INTERNET.search(text):
        kinds.append("мобильному интернету")
    if _MMS.search(text):
        kinds.append("MMS")
    if kinds:
        out["интернет_MMS"] = " и ".join(kinds)
    codes = [name for pattern, name in _CODES if pattern.search(text)]
    if codes:
        out["коды"] = ", ".join(codes)
    for pattern, reason in _BLOCK_REASONS:
        if pattern.search(text):
            out["причина_блокировки"] = reason
            break
    for stem, name in BILL_DOCS:
        if stem in text:
            out["счет_детализация"] = name
            break
    if m := _PERIOD.search(text):
        out["период"] = " ".join(m.group(1).split())
    return out


def identification(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{идентификация} and {вопросы}: what the operator asked to identify the client (if answered)."""
    asked: list[str] = []
    for k, turn in enumerate(turns):
        if turn.role != "operator":
            continue
        answered = any(t.role == "client" for t in turns[k + 1 : k + 3])
        for lemmas, name in IDENT:
            if answered and name not in asked and (set(lemmas) & set(turn.lemmas)):
                if name == "номер договора" and "номер" not in turn.lemmas:
                    continue
                asked.append(name)
    if not asked:
        return {}
    return {"идентификация": ", ".join(asked), "вопросы": "идент. " + ", ".join(asked)}


def actions(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{действия}, {действие}, {подключена_отключена}, {рекомендации}, {рекомендация}."""
    done: list[str] = []
    on_off = None
    for i, rule, start, _end in matches:
        turn = turns[i]
        if turn.role != "operator" or rule != "ACTION" or not _done_by_operator(filler, turn.words[start]):
            continue
        lemma = turn.lemmas[start]
        window = set(turn.lemmas[max(0, start - 6) : start + 8])
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
            clause = _CLAUSE_END.split(turn.text[m.start() : m.start() + _CLAUSE_WINDOW], maxsplit=1)[0].split()[:10]
            tips.append(" ".join(clause))
    if tips:
        out["рекомендации"] = out["рекомендация"] = "; ".join(dict.fromkeys(tips[:2]))
        out.setdefault("действие", "даны рекомендации: " + out["рекомендации"])
    return out


def _done_by_operator(filler: SlotFiller, word: str) -> bool:
    """A past form ('отключила'), a passive participle ('отключено') or a first-person future
    ('отключу', 'переключаю'); not an infinitive ('могу отключить') or an imperative."""
    for parse in filler.morph.parse(word)[:2]:
        tag = parse.tag
        if "PRTS" in tag or ("VERB" in tag and ("past" in tag or ("1per" in tag and "sing" in tag))):
            return True
    return False


def transfer(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{куда}, {отдел}, {кому}: where the operator transferred the client or the appeal."""
    for i, rule, _start, end in matches:
        turn = turns[i]
        if rule != "TRANSFER" or turn.role != "operator":
            continue
        words, lemmas = turn.words, turn.lemmas
        k = end
        while k < len(words) and lemmas[k] in {
            "вас",
            "вы",
            "ваш",
            "обращение",
            "диалог",
            "информация",
            "вопрос",
            "заявка",
            "отзыв",
            "пожелание",
            "звонок",
            "это",
            "его",
            "её",
        }:
            k += 1
        if k < len(words) and lemmas[k] in {"на", "в", "к"}:
            k += 1
        target: list[str] = []
        for j in range(k, min(k + 6, len(words))):
            if not _TARGET_WORD.fullmatch(words[j]):
                break
            if lemmas[j] in TARGET_STOP and not (lemmas[j] in TARGET_KEEP_PREP and target):
                break
            target.append(words[j])
        if target and not set(lemmas[k : k + len(target)]) & TRANSFER_HEADS:
            # a dative addressee: "передам продавцу"
            continue
        if target:
            value = " ".join(target)
            return {"куда": value, "отдел": value, "кому": value}
    return {}


def offers(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{услуга}, {тариф}, {льгота_скидка_ФК}, {размер}."""
    out: dict[str, str] = {}
    text = " ".join(t.text for t in turns)
    for pattern, name in _SERVICES:
        if pattern.search(text):
            out["услуга"] = f"«{name}»"
            break
    if m := _QUOTED_SERVICE.search(" ".join(t.raw for t in turns).lower()):
        out["услуга"] = f"«{m.group(1)}»"
    for turn in reversed(turns):
        if quoted := _QUOTED_TARIFF.search(turn.raw.lower()):
            out["тариф"] = quoted.group(1)
            break
        m = _TARIFF.search(turn.text)
        if m:
            value = m.group(1)
            value = _TARIFF_PRICE.sub(r"за \1 руб.", value)
            out["тариф"] = (
                value
                if value.startswith(("«", '"'))
                else f"«{value}»"
                if value in TARIFF_NAMES[:3]
                else f"тариф {value}"
            )
            break
    for turn in _ops(turns):
        for stem, name in LOYALTY:
            if stem in turn.text:
                out.setdefault("льгота_скидка_ФК", name)
                if m := _AMOUNT.search(turn.text):
                    out.setdefault("размер", f"{m.group(1).strip()} руб.")
    return out


def assignment(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """The work the operator set up: {тип_задания}, {срок}, {что_запрошено}, {цель}."""
    out: dict[str, str] = {}
    for turn in turns:
        if turn.role == "client":
            continue
        if (m := _ASSIGNMENT.search(turn.text)) and "тип_задания" not in out:
            out["тип_задания"] = m.group(1)
        if (m := _TERM.search(turn.text)) and "срок" not in out:
            out["срок"] = m.group(1)
        if turn.role == "operator" and REQUEST_VERBS.search(turn.text) and "что_запрошено" not in out:
            asked = [name for pattern, name in _REQUESTS if pattern.search(turn.text)]
            if asked:
                out["что_запрошено"] = ", ".join(dict.fromkeys(asked))
                if m := _PURPOSE.search(turn.text):
                    out["цель"] = m.group(1)
    return out


def gist(turns: list[ReadTurn], matches: list[SlotMatch], filler: SlotFiller) -> dict[str, str]:
    """{суть}, {вопрос}: the client's first substantive words, as said (trimmed)."""
    words: list[str] = []
    for turn in turns:
        if turn.role != "client":
            if words and turn.role == "operator":
                break
            continue
        text = GREETING.sub(
            "", turn.raw.strip().split("\n", 1)[-1] if turn.raw.startswith("Тема:") else turn.raw.strip()
        )
        words += text.split()
        if len(words) >= 6:
            break
    if len(words) < 3:
        return {}
    value = " ".join(words[:25]).rstrip(" ,.!?") + ("…" if len(words) > 25 else "")
    return {"суть": value, "вопрос": value}


EXTRACTORS: list[Callable[[list[ReadTurn], list[SlotMatch], SlotFiller], dict[str, str]]] = [
    ids,
    device,
    topics,
    identification,
    actions,
    transfer,
    offers,
    assignment,
    gist,
]
