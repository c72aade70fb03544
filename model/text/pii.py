"""Personal data (152-ФЗ) masked out of what Podskazka stores, exports or logs.

:func:`mask_pii` returns the text with each piece of personal data replaced by a typed placeholder:

==================  ==========================================================================
``[ТЕЛЕФОН]``       phone numbers in any spacing (``+7 (916) 123-45-67``, ``9161234567``,
                    ``916 123 45 67``) and dictated in words («восемь девятьсот шестнадцать…»)
``[EMAIL]``         e-mails, typed or dictated («иван точка петров собака мэйл точка ру»)
``[ПАСПОРТ]``       passport series and number («4510 123456», «серия 45 10 номер 123456»)
``[СНИЛС]``         SNILS («123-456-789 01», or 11 digits after «снилс»)
``[ИНН]``           INN (12 digits, or 10 after «инн»)
``[КАРТА]``         bank card numbers (13–19 digits)
``[ДАТА_РОЖДЕНИЯ]`` a date next to «рождения», «родился», «д.р.»
``[АДРЕС]``         a street address with a house number («ул. Ленина, д. 5, кв. 12»)
``[ФИО]``           full names (name + patronymic, name + surname in agreement) and the name after
                    «меня зовут», «фамилия», «ФИО», «на имя»
==================  ==========================================================================

Numbers dictated in words are read first (:mod:`model.text.ru_numbers`), so a dictated phone is found like a
typed one; each kind of number is told by its length, its grouping and the words before it («инн»,
«паспорт», «снилс», «карта», «телефон»; «заказ», «трек», «договор» keep a number as it is). What the
macros need stays: order numbers (``12345678-0012``), amounts and tariff prices, phone models
(«iPhone 13»), order and delivery dates. Names are told by pymorphy3's Name/Surn/Patr grammemes, never
alone: a first name needs a patronymic or an agreeing surname next to it, or a cue before it, so common
words that are also names («роза», «вера», «белка») stay.

This is for storage and logs, not for every request: the model's own normalisation
(:func:`model.text.normalize.mask_personal_data`) stays a few fast patterns. The text is read in one pass
of bounded steps per token (every pattern here has bounded repetitions), so any input takes linear time.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from model.text.ru_numbers import DASHES, FILLERS, NumberWords, read_run

PLACEHOLDERS = {
    "phone": "[ТЕЛЕФОН]",
    "email": "[EMAIL]",
    "passport": "[ПАСПОРТ]",
    "snils": "[СНИЛС]",
    "inn": "[ИНН]",
    "card": "[КАРТА]",
    "birth_date": "[ДАТА_РОЖДЕНИЯ]",
    "address": "[АДРЕС]",
    "name": "[ФИО]",
}
KINDS = tuple(PLACEHOLDERS)
# placeholders that stand where a number was: a cue word before one no longer reaches the numbers after it, as
# the number did not (a second pass over masked text masks nothing more)
_NUMBER_PLACEHOLDERS = frozenset(
    PLACEHOLDERS[kind].lower() for kind in ("phone", "passport", "snils", "inn", "card", "birth_date", "address")
)
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()), re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A piece of personal data found in a text: ``text[start:end]`` of ``kind`` (a key of :data:`PLACEHOLDERS`)."""

    start: int
    end: int
    kind: str


# ----------------------------------------------------------------------------- tokens
# an e-mail address: the one definition, also used by the model's normalisation (model.text.normalize) and by
# slot filling (model.assist.slot_rules); here it must start where a local part starts
EMAIL_PATTERN = r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"
_EMAIL = re.compile(r"(?<![\w.+-])" + EMAIL_PATTERN)
_MASKED_CARD = re.compile(r"(?<!\d)\d{4}[ -]?(?:[*xXхХ•]{2,6}[ -]?){1,3}\d{4}(?!\d)|(?<!\d)\d{6}[*xXхХ•]{6}\d{4}(?!\d)")
_TOKEN = re.compile(r"\[[A-ZА-ЯЁ_]{2,20}\]|\d{1,40}|[^\W\d_]{1,64}|\S")
_CYRILLIC = re.compile(r"[а-яё]{2,64}")
_NAME_WORD = re.compile(r"[а-яё]{2,40}")
_LOCAL_WORD = re.compile(r"[a-zа-яё0-9][a-zа-яё0-9_-]{0,63}")
_DOMAIN_WORD = re.compile(r"[a-zа-яё0-9-]{2,63}")
_BIRTH_CUE = re.compile(r"рожд|родил|\b[дг]\s?\.\s?р\b|\bдр\b|\b[дг]/р\b|\bгр\b")


@dataclass
class _Item:
    kind: str  # "num", "word", "punct", "mask" (a placeholder already there), "taken" (inside a found span)
    text: str  # lower case
    start: int
    end: int
    digits: str = ""

    @property
    def is_num(self) -> bool:
        return self.kind == "num"


_lock = threading.Lock()
_reader: NumberWords | None = None


def _number_words() -> NumberWords:
    global _reader
    if _reader is None:
        with _lock:
            if _reader is None:
                _reader = NumberWords()
    return _reader


def _items(text: str, taken: list[Span]) -> list[_Item]:
    """Tokens of ``text`` with runs of number words read as one number (its digits), e.g. «восемь
    девятьсот шестнадцать» → ``8916``; tokens inside ``taken`` spans are marked and skipped."""
    numbers = _number_words()
    raw: list[_Item] = []
    spans = iter(sorted(taken, key=lambda s: s.start))
    current = next(spans, None)
    for m in _TOKEN.finditer(text):
        start, end = m.span()
        while current is not None and current.end <= start:
            current = next(spans, None)
        token = m.group(0)
        if current is not None and current.start < end:
            kind = "taken"
        elif token[0].isdigit():
            kind = "num"
        elif token[0] == "[" and len(token) > 2:
            kind = "mask"
        elif token.isalpha():
            kind = "word"
        else:
            kind = "punct"
        lower = token.lower().replace("ё", "е")
        raw.append(_Item(kind, lower, start, end, token if kind == "num" else ""))
    out: list[_Item] = []
    i = 0
    while i < len(raw):
        item = raw[i]
        number = numbers.kind(item.text) if item.kind == "word" and _CYRILLIC.fullmatch(item.text) else None
        if number is None:
            out.append(item)
            i += 1
            continue
        run, j, end = [number], i + 1, item.end
        while j < len(raw):
            nxt = raw[j]
            word_number = numbers.kind(nxt.text) if nxt.kind == "word" and _CYRILLIC.fullmatch(nxt.text) else None
            if word_number is not None:
                run.append(word_number)
                end = nxt.end
                j += 1
            elif (
                nxt.text in FILLERS
                and j + 1 < len(raw)
                and raw[j + 1].kind == "word"
                and _CYRILLIC.fullmatch(raw[j + 1].text)
                and numbers.kind(raw[j + 1].text) is not None
            ):
                j += 1
            else:
                break
        digits = read_run(run)
        out.append(_Item("num", text[item.start : end].lower(), item.start, end, digits))
        i = j
    return out


# ----------------------------------------------------------------------------- e-mails
_SPOKEN_AT = {"собака", "собачка", "собаку"}
_SPOKEN_DOT = {"точка", "."}
_SPOKEN_JOIN = {"точка", "тире", "дефис", "подчеркивание", "подчеркиванием", "нижнее", ".", "-", "_"}
_TLDS = {
    "ру",
    "ru",
    "ком",
    "com",
    "нет",
    "net",
    "рф",
    "орг",
    "org",
    "рус",
    "су",
    "su",
    "бай",
    "by",
    "кз",
    "kz",
    "юа",
    "ua",
    "инфо",
    "info",
    "ио",
    "io",
}
_MAX_EMAIL_WORDS = 8
_EMAIL_CUES = {"почта", "почту", "ящик", "email", "имейл", "емейл", "мейл", "адрес", "на", "мой", "моя", "это"}


def _spoken_emails(items: list[_Item]) -> list[Span]:
    """«иван точка петров собака мэйл точка ру», «ivan собака gmail.com»: the local part (words joined by
    точка/тире/подчеркивание), «собака», a domain and a top-level domain, read from the words."""
    found = []
    for i, item in enumerate(items):
        if item.text not in _SPOKEN_AT or i == 0:
            continue
        # the domain: word (точка word){0,3}, ending in a top-level domain
        j, end, parts = i + 1, None, 0
        while j < len(items) and parts < 4:
            if items[j].kind not in ("word", "num") or not _DOMAIN_WORD.fullmatch(items[j].text):
                break
            if parts > 0 and items[j].text in _TLDS:
                end = items[j].end
            parts += 1
            j += 1
            if j < len(items) and items[j].text in _SPOKEN_DOT:
                j += 1
        if end is None:
            continue
        # the local part: a word, then (joiner word)* backwards
        k = i - 1
        if items[k].kind not in ("word", "num") or not _LOCAL_WORD.fullmatch(items[k].digits or items[k].text):
            continue
        if (
            items[k].is_num
            and k >= 2
            and items[k - 1].kind == "word"
            and items[k - 1].text not in _SPOKEN_JOIN
            and _LOCAL_WORD.fullmatch(items[k - 1].text)
            and items[k - 1].text not in _EMAIL_CUES
        ):
            k -= 1  # «морозов восемьдесят пять собака…»: a name then its number
        start = items[k].start
        steps = 0
        while (
            k >= 2
            and steps < _MAX_EMAIL_WORDS
            and items[k - 1].text in _SPOKEN_JOIN
            and items[k - 2].kind in ("word", "num")
        ):
            k -= 2
            if items[k].text == "нижнее" and k >= 1:  # «нижнее подчеркивание»
                k -= 1
            start = items[k].start
            steps += 1
        found.append(Span(start, end, "email"))
    return found


# ----------------------------------------------------------------------------- numbers
_SEPARATORS = {"-", "(", ")", "тире", "дефис"} | DASHES
_PHONE_CUES = (
    "телефон",
    "тел",
    "мобильн",
    "сотов",
    "звон",
    "связ",
    "ватсап",
    "whatsapp",
    "вайбер",
    "viber",
    "телеграм",
    "смс",
)
_CUES = [  # (word prefix, what a number after it is); None: an identifier that is not personal data
    ("инн", "inn"),
    ("паспорт", "passport"),
    ("серия", "passport"),
    ("серии", "passport"),
    ("снилс", "snils"),
    ("страхов", "snils"),
    ("карт", "card"),
    ("карточк", "card"),
    *((cue, "phone") for cue in _PHONE_CUES),
    ("заказ", None),
    ("отправлени", None),
    ("трек", None),
    ("посылк", None),
    ("договор", None),
    ("счет", None),
    ("лицев", None),
    ("заявк", None),
    ("обращени", None),
    ("артикул", None),
    ("штрихкод", None),
    ("штрих", None),
    ("накладн", None),
    ("чек", None),
    ("код", None),
    ("пароль", None),
    ("огрн", None),
    ("imei", None),
    ("имей", None),
    ("бик", None),
    ("кпп", None),
    ("окпо", None),
    ("окато", None),
    ("октмо", None),
    ("р/с", None),
]
_NOT_CUES = ("картин", "картинк", "картош", "картон", "картридж", "кодов", "звонок")  # prefixes that are not cues
_CUE_WINDOW = 6


def _cue(items: list[_Item], i: int) -> str | None:
    """What the nearest cue word before ``items[i]`` says the number is (``"none"``: an identifier that is
    not personal data, when its word is at most two words before the number)."""
    words = 0
    for k in range(i - 1, max(-1, i - 1 - _CUE_WINDOW), -1):
        word = items[k].text
        if (items[k].kind == "num" or items[k].text in _NUMBER_PLACEHOLDERS) and k < i - 2:
            break  # another number (or a masked one) stands between
        if items[k].kind != "word":
            continue
        words += 1
        if word.startswith(_NOT_CUES):
            continue
        for prefix, kind in _CUES:
            if word.startswith(prefix):
                if prefix == "карт" and len(word) > 7:
                    continue  # картридж, картинками...
                if prefix in ("тел", "чек", "код") and word not in (prefix, prefix + "а", prefix + "у"):
                    continue
                if kind is None and words > 2:
                    break  # «в заказе не мой 8999…»: a far identifier word says nothing of this number
                return kind or "none"
    return None


def _phone_shape(sizes: list[int]) -> bool:
    """Groups a phone number is written in: one run, or a country/trunk digit and groups of 2–4 digits."""
    if len(sizes) == 1:
        return True
    body = sizes[1:] if sizes[0] == 1 else sizes
    return all(2 <= s <= 4 or s in (7, 10) for s in body)


def _classify(digits: str, sizes: list[int], cue: str | None, plus: bool) -> str | None:
    n = len(digits)
    if cue == "none":
        return None
    if plus and ((n == 11 and digits[0] == "7") or (11 <= n <= 15 and digits[0] != "7")):
        return "phone"
    if cue in ("inn", "passport", "snils", "card", "phone"):
        if cue == "inn" and n in (10, 12):
            return "inn"
        if cue == "passport" and n == 10:
            return "passport"
        if cue == "snils" and n == 11:
            return "snils"
        if cue == "card" and 13 <= n <= 19:
            return "card"
        if cue == "phone" and n in (7, 10, 11) and _phone_shape(sizes):
            return "phone"
    if n in (16, 18, 19) and (len(sizes) == 1 or all(s == 4 for s in sizes[:-1])):
        return "card"
    if n == 12 and len(sizes) == 1:
        return "inn"
    if n == 11:
        if sizes == [3, 3, 3, 2]:
            return "snils"
        if digits[0] in "78" and _phone_shape(sizes):
            return "phone"
        if len(sizes) == 1:
            return "snils"
    if n == 10:
        if sizes in ([4, 6], [2, 2, 6]):
            return "passport"
        if digits[0] in "3489" and _phone_shape(sizes):
            return "phone"
    if n == 7 and sizes == [3, 2, 2]:
        return "phone"
    return None


def _is_order(items: list[_Item], i: int) -> int:
    """How many items an order or shipment number starting at ``items[i]`` takes (``12345678-0012``,
    dictated with «тире»), 0 when there is none: such a number is kept."""
    if not (items[i].is_num and 6 <= len(items[i].digits) <= 10):
        return 0
    if (
        i + 2 < len(items)
        and items[i + 1].text in _SEPARATORS
        and items[i + 2].is_num
        and 3 <= len(items[i + 2].digits) <= 5
        and items[i + 1].start - items[i].end <= 1
    ):
        if (
            i + 4 < len(items)
            and items[i + 3].text in _SEPARATORS
            and items[i + 4].is_num
            and len(items[i + 4].digits) <= 3
        ):
            return 5
        return 3
    return 0


def _numbers(items: list[_Item]) -> list[Span]:
    found: list[Span] = []
    i = 0
    while i < len(items):
        if not items[i].is_num:
            i += 1
            continue
        if skip := _is_order(items, i):
            i += skip
            continue
        # a group: numbers joined by nothing but spaces, dashes and brackets
        group = [i]
        j = i + 1
        while j < len(items):
            if items[j].is_num and not _is_order(items, j):
                group.append(j)
                j += 1
            elif (
                items[j].text in _SEPARATORS
                and j + 1 < len(items)
                and items[j + 1].is_num
                and not _is_order(items, j + 1)
            ):
                j += 1
            elif items[j].text in (")", "(") and j + 1 < len(items) and items[j + 1].text in _SEPARATORS:
                j += 1
            else:
                break
        digits = "".join(items[k].digits for k in group)
        sizes = [len(items[k].digits) for k in group]
        first = i
        while first > 0 and items[first - 1].text in ("(", "+", "плюс") and i - first < 2:
            first -= 1
        plus = any(items[k].text in ("+", "плюс") for k in range(first, i))
        cue = _cue(items, first)
        kind = _classify(digits, sizes, cue, plus)
        if kind is not None:
            end = items[group[-1]].end
            if kind == "phone" and j < len(items) and items[j].text == ")" and items[j].start == end:
                end = items[j].end
            found.append(Span(items[first].start if kind == "phone" else items[i].start, end, kind))
        elif cue == "passport" and len(digits) == 4:
            # the series, then «номер» (or №) and a 6-digit number
            k = j
            while k < len(items) and k - j < 3 and not items[k].is_num:
                if items[k].text not in ("номер", "№", ",", ":", "-", "и"):
                    break
                k += 1
            if k < len(items) and items[k].is_num and len(items[k].digits) == 6:
                found.append(Span(items[i].start, items[k].end, "passport"))
                j = k + 1
        i = j
    return found


# ----------------------------------------------------------------------------- birth dates
_MONTHS = (
    "январ",
    "феврал",
    "март",
    "апрел",
    "мая",
    "май",
    "июн",
    "июл",
    "август",
    "сентябр",
    "октябр",
    "ноябр",
    "декабр",
)
_DATE_SEPARATORS = {".", "/", "-"}


def _is_month(word: str) -> bool:
    return any(word.startswith(m) for m in _MONTHS) and len(word) <= 9


def _dates(items: list[_Item]) -> list[tuple[int, int]]:
    """(first, last) item of each date: 12.03.1985, 1985-03-12, «12 марта 1985», «двенадцатого марта
    восемьдесят пятого», «марта 1985», a year of four digits."""
    found = []
    i = 0
    while i < len(items):
        it = items[i]
        if (
            it.is_num
            and len(it.digits) <= 2
            and i + 4 < len(items)
            and items[i + 1].text in _DATE_SEPARATORS
            and items[i + 2].is_num
            and len(items[i + 2].digits) <= 2
            and items[i + 3].text == items[i + 1].text
            and items[i + 4].is_num
            and len(items[i + 4].digits) in (2, 4)
        ):
            found.append((i, i + 4))
            i += 5
            continue
        if (
            it.is_num
            and len(it.digits) == 4
            and i + 4 < len(items)
            and items[i + 1].text == "-"
            and items[i + 2].is_num
            and items[i + 3].text == "-"
            and items[i + 4].is_num
        ):
            found.append((i, i + 4))
            i += 5
            continue
        if (
            it.is_num
            and len(it.digits) <= 2
            and i + 1 < len(items)
            and items[i + 1].kind == "word"
            and _is_month(items[i + 1].text)
        ):
            last = i + 1
            if i + 2 < len(items) and items[i + 2].is_num and len(items[i + 2].digits) in (2, 4):
                last = i + 2
            found.append((i, last))
            i = last + 1
            continue
        if (
            it.kind == "word"
            and _is_month(it.text)
            and i + 1 < len(items)
            and items[i + 1].is_num
            and len(items[i + 1].digits) == 4
        ):
            found.append((i, i + 1))
            i += 2
            continue
        if (
            it.is_num
            and len(it.digits) in (2, 4)
            and i + 1 < len(items)
            and items[i + 1].text in ("года", "год", "г", "году")
        ):
            if len(it.digits) == 2 or it.digits[:2] in ("19", "20"):
                found.append((i, i))
        elif it.is_num and len(it.digits) == 4 and it.digits[:2] in ("19", "20"):
            found.append((i, i))
        i += 1
    return found


def _birth_dates(text: str, items: list[_Item]) -> list[Span]:
    found: list[Span] = []
    dates = _dates(items)
    if not dates:
        return found
    # placeholders blanked (same length): «[ДАТА_РОЖДЕНИЯ]» is no cue, and no cue beyond one is taken (masking
    # shortened the text between, so it may have come nearer): masked text masked again stays as it is
    blanked = _PLACEHOLDER.sub(lambda m: "\0" * len(m.group()), text)
    for first, last in dates:
        start, end = items[first].start, items[last].end
        before = blanked[max(0, start - 40) : start].lower().rsplit("\0", 1)[-1]
        after = blanked[end : end + 25].lower().split("\0", 1)[0]
        if _BIRTH_CUE.search(before) or _BIRTH_CUE.search(after):
            found.append(Span(start, end, "birth_date"))
    return found


# ----------------------------------------------------------------------------- addresses
_STREETS = (
    "улиц",
    "проспект",
    "переул",
    "бульвар",
    "шоссе",
    "набережн",
    "площад",
    "проезд",
    "тупик",
    "микрорайон",
    "аллея",
    "аллее",
    "тракт",
)
_STREET_ABBR = {"ул", "пр", "пр-т", "пер", "наб", "пл", "мкр", "б-р", "просп", "ш"}
_CITY = {"г", "город", "городе", "гор", "пос", "поселок", "поселке", "село", "селе", "деревня", "деревне", "д"}
_HOUSE = {"дом", "д", "доме", "дома"}
_PARTS = {
    "корпус",
    "корп",
    "к",
    "строение",
    "стр",
    "квартира",
    "кв",
    "квартире",
    "офис",
    "оф",
    "подъезд",
    "литера",
    "лит",
}
_REGIONS = {"обл", "область", "области", "край", "края", "республика", "респ", "район", "р-н", "округ", "ао"}
_ADJECTIVE_ENDINGS = ("ий", "ый", "ой", "ая", "яя", "ое", "ее", "ом", "ем")
_ADDRESS_CUES = ("адрес", "прожива", "прописан", "прописк", "зарегистрирован", "живу")


def _is_street(items: list[_Item], i: int) -> int:
    """How many items the street word at ``i`` takes (1, or 2 with the dot of «ул.»), 0 if none."""
    it = items[i]
    if it.kind != "word":
        return 0
    if it.text in _STREET_ABBR:
        if i + 1 < len(items) and items[i + 1].text == ".":
            return 2
        if it.text == "пр" and i + 2 < len(items) and items[i + 1].text == "-" and items[i + 2].text == "т":
            return 4 if i + 3 < len(items) and items[i + 3].text == "." else 3  # пр-т
        return 1 if it.text in ("ул", "мкр", "просп") else 0
    return 1 if any(it.text.startswith(s) for s in _STREETS) else 0


def _house(items: list[_Item], k: int) -> int | None:
    """The last item of «[,] [дом|д.] 5[а|/2] [, корпус 1] [, кв. 12]» starting at ``k``, or None."""
    while k < len(items) and items[k].text in (",", ":"):
        k += 1
    if k < len(items) and items[k].text in _HOUSE:
        k += 1
        if k < len(items) and items[k].text == ".":
            k += 1
    if not (k < len(items) and items[k].is_num and len(items[k].digits) <= 4):
        return None
    last = k
    k += 1
    while k < len(items):
        if items[k].text in ("/", "-") and k + 1 < len(items) and items[k + 1].is_num:
            last = k = k + 1
            k += 1
            continue
        if items[k].kind == "word" and len(items[k].text) == 1 and items[k].start == items[last].end:
            last = k  # 5а
            k += 1
            continue
        m = k
        while m < len(items) and items[m].text in (",", "."):
            m += 1
        if m < len(items) and items[m].text in _PARTS:
            m += 1
            if m < len(items) and items[m].text == ".":
                m += 1
            if m < len(items) and items[m].is_num and len(items[m].digits) <= 4:
                last = k = m
                k += 1
                continue
        break
    return last


def _addresses(items: list[_Item]) -> list[Span]:
    found = []
    i = 0
    while i < len(items):
        width = _is_street(items, i)
        if width:
            k = i + width
            name_end = None
            for step in range(2):  # the street's name: one or two words (or «8 марта», «1-я»)
                if (
                    k < len(items)
                    and (items[k].kind == "word" or (items[k].is_num and step == 0))
                    and items[k].text not in _HOUSE
                ):
                    name_end = k
                    k += 1
                    if k < len(items) and items[k].text == "-" and k + 1 < len(items) and items[k + 1].kind == "word":
                        k += 2  # 1-я
                        name_end = k - 1
                else:
                    break
            last = _house(items, k) if name_end is not None else None
            start = i
            if (
                last is None
                and i >= 1
                and items[i - 1].kind == "word"
                and len(items[i - 1].text) >= 4
                and items[i - 1].text.endswith(_ADJECTIVE_ENDINGS)
            ):  # «Невский пр-т, д. 28»: the name before
                last, start = _house(items, i + width), i - 1
            if last is not None:
                # «г. Москва, ул. …» / «город Казань улица …»: the city before belongs to it
                s = start - 1
                while s >= 0 and items[s].text in (",", "."):
                    s -= 1
                if (
                    s >= 1
                    and items[s].kind == "word"
                    and (
                        items[s - 1].text in _CITY
                        or (items[s - 1].text == "." and s >= 2 and items[s - 2].text in _CITY)
                    )
                ):
                    start = s - 1 if items[s - 1].text in _CITY else s - 2
                    # «Московская обл., г. Химки»: the region before the city
                    r = start - 1
                    while r >= 0 and items[r].text in (",", "."):
                        r -= 1
                    if r >= 1 and items[r].text in _REGIONS and items[r - 1].kind == "word":
                        start = r - 1
                found.append(Span(items[start].start, items[last].end, "address"))
                i = last + 1
                continue
        if items[i].kind == "word" and items[i].text.startswith(_ADDRESS_CUES):
            # «адрес: Казань, Баумана 12 - 5»: after the cue, a few words then a house number
            k = i + 1
            while (
                k < len(items)
                and k - i <= 3
                and (
                    items[k].text
                    in (":", ",", "-", "по", "такой", "мой", "доставки", "регистрации", "проживания", "прописки")
                )
            ):
                k += 1
            words = 0
            first = k
            while (
                k < len(items)
                and items[k].kind == "word"
                and words < 4
                and items[k].text not in _HOUSE
                and not _is_street(items, k)
            ):
                words += 1
                k += 1
                while k < len(items) and items[k].text == ",":
                    k += 1
            if words and not (k < len(items) and _is_street(items, k)):
                last = _house(items, k)
                if last is not None:
                    found.append(Span(items[first].start, items[last].end, "address"))
                    i = last + 1
                    continue
        i += 1
    return found


# ----------------------------------------------------------------------------- names
_NAME_CUES = {"зовут", "фамилия", "фамилию", "фамилии", "фио", "имя", "отчество", "отчеству", "фамилией"}
_NAME_SKIP = {
    ":",
    ",",
    "-",
    "меня",
    "моя",
    "мое",
    "мои",
    "у",
    "его",
    "ее",
    "ваша",
    "клиента",
    "клиентки",
    "полностью",
    "это",
}
_NAME_MIN, _SURN_MIN, _PATR_MIN = 0.3, 0.1, 0.3


@lru_cache(maxsize=100_000)
def _name_parses(word: str) -> dict[str, tuple[tuple[str, str, float], ...]]:
    """``{"Name"|"Surn"|"Patr": ((gender, case, score), ...)}`` of a Cyrillic word, from pymorphy3."""
    out: dict[str, list[tuple[str, str, float]]] = {"Name": [], "Surn": [], "Patr": []}
    for parse in _number_words().morph.parse(word):
        grammemes = parse.tag.grammemes
        for kind in out:
            if kind in grammemes and "plur" not in grammemes:
                out[kind].append((str(parse.tag.gender), str(parse.tag.case), parse.score))
    return {k: tuple(v) for k, v in out.items()}


def _score(word: str, kind: str) -> float:
    return sum(s for _, _, s in _name_parses(word)[kind]) if _NAME_WORD.fullmatch(word) else 0.0


def _agree(a: str, ka: str, b: str, kb: str) -> bool:
    for ga, ca, _ in _name_parses(a)[ka]:
        for gb, cb, _ in _name_parses(b)[kb]:
            if ca == cb and (ga == gb or "ms-f" in (ga, gb)):
                return True
    return False


def _initial(items: list[_Item], k: int) -> bool:
    """Whether ``items[k]`` is an initial: one capital letter and a dot."""
    return (
        k + 1 < len(items)
        and items[k].kind == "word"
        and len(items[k].text) == 1
        and items[k + 1].text == "."
        and items[k].start + 1 == items[k + 1].start
    )


def _initials(items: list[_Item], i: int, word: list[bool]) -> tuple[int, int] | None:
    if not (word[i] and _score(items[i].text, "Surn") >= _SURN_MIN):
        return None
    k = i + 1
    while _initial(items, k) and k - i < 4:
        k += 2
    if k > i + 1:
        return (i, k - 1)
    k = i
    while k >= 2 and _initial(items, k - 2) and i - k < 4:
        k -= 2
    return (k, i) if k < i else None


def _names(items: list[_Item]) -> list[Span]:
    found = []
    n = len(items)
    word = [it.kind == "word" and _NAME_WORD.fullmatch(it.text) is not None for it in items]
    i = 0
    while i < n:
        if not word[i]:
            i += 1
            continue
        t = items[i].text
        span = None
        # name + patronymic, with a surname before or after
        if (
            i + 1 < n
            and word[i + 1]
            and _score(t, "Name") >= 0.05
            and _score(items[i + 1].text, "Patr") >= _PATR_MIN
            and _agree(t, "Name", items[i + 1].text, "Patr")
        ):
            first, last = i, i + 1
            if (
                i >= 1
                and word[i - 1]
                and _score(items[i - 1].text, "Surn") >= 0.05
                and _agree(items[i - 1].text, "Surn", t, "Name")
            ):
                first = i - 1
            elif (
                i + 2 < n
                and word[i + 2]
                and _score(items[i + 2].text, "Surn") >= 0.05
                and _agree(items[i + 2].text, "Surn", t, "Name")
            ):
                last = i + 2
            span = (first, last)
        # name + surname, surname + name (agreeing in gender and case)
        elif i + 1 < n and word[i + 1]:
            a, b = t, items[i + 1].text
            if _score(a, "Name") >= _NAME_MIN and _score(b, "Surn") >= _SURN_MIN and _agree(a, "Name", b, "Surn"):
                span = (i, i + 1)
            elif _score(a, "Surn") >= _SURN_MIN and _score(b, "Name") >= _NAME_MIN and _agree(a, "Surn", b, "Name"):
                span = (i, i + 1)
                if i + 2 < n and word[i + 2] and _score(items[i + 2].text, "Patr") >= _PATR_MIN:
                    span = (i, i + 2)
        # a surname with initials: «Волкова Т.», «Иванов И. И.», «И.И. Иванов»
        if span is None:
            span = _initials(items, i, word)
        # the words after a cue: «меня зовут анна», «фамилия белкина», «ФИО: …», «на имя …»
        # «меня галина зовут»: a first name right before «зовут»
        if span is None and i + 1 < n and items[i + 1].text == "зовут" and _score(t, "Name") >= _NAME_MIN:
            span = (i, i)
        if span is None and t in _NAME_CUES:
            k = i + 1
            while k < n and items[k].text in _NAME_SKIP and k - i <= 3:
                k += 1
            first = k
            while (
                k < n
                and k - first < 3
                and word[k]
                and (
                    _score(items[k].text, "Name") + _score(items[k].text, "Surn") + _score(items[k].text, "Patr") > 0.05
                    or not _number_words().morph.word_is_known(items[k].text)
                )
            ):
                k += 1
            if k > first:
                span = (first, k - 1)
        if span is not None:
            found.append(Span(items[span[0]].start, items[span[1]].end, "name"))
            i = span[1] + 1
        else:
            i += 1
    return found


# ----------------------------------------------------------------------------- entry points
def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if out and span.start < out[-1].end:
            if span.end > out[-1].end and span.kind == out[-1].kind:
                out[-1] = Span(out[-1].start, span.end, span.kind)
            continue
        out.append(span)
    return out


def find_pii(text: str) -> list[Span]:
    """Every piece of personal data in ``text``: ``Span(start, end, kind)``, sorted, not overlapping."""
    if not text:
        return []
    emails = [Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
    emails += [Span(m.start(), m.end(), "card") for m in _MASKED_CARD.finditer(text)]
    items = _items(text, emails)
    spans = emails + _spoken_emails(items)
    spans += _numbers(items) + _birth_dates(text, items) + _addresses(items)
    taken = _merge(spans)
    # names last, and never inside what is already found (a street named after a person)
    spans_by_item = iter(taken)
    current = next(spans_by_item, None)
    for it in items:
        while current is not None and current.end <= it.start:
            current = next(spans_by_item, None)
        if current is not None and current.start < it.end and it.kind == "word":
            it.kind = "taken"
    return _merge(taken + _names(items))


def mask_pii(text: str) -> str:
    """``text`` with its personal data replaced by typed placeholders (``[ТЕЛЕФОН]``, ``[ФИО]``...)."""
    spans = find_pii(text)
    if not spans:
        return text
    parts, pos = [], 0
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(PLACEHOLDERS[span.kind])
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)
