"""Russian text normalisation, in one place, shared by training and serving.

- ё → е, lower case, whitespace collapsed;
- personal data and identifiers masked: e-mails, URLs, card numbers, phone numbers, order numbers;
- remaining digit runs mapped to a number token (amounts and dates keep their shape, not their value);
- speaker roles kept as tokens (``__client__``, ``__operator__``, ``__bot__``) so a model can tell who
  said what.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from model.conversation.record import CHANNELS, ROLES, Interaction, Turn
from model.text.pii import EMAIL_PATTERN, PLACEHOLDERS

# str keys: a turn's role and a conversation's channel are looked up as the strings they are read as
ROLE_TOKENS: dict[str, str] = {role: f"__{role}__" for role in ROLES}
CHANNEL_TOKENS: dict[str, str] = {channel: f"__{channel}__" for channel in CHANNELS}

# Every pattern here runs on every request, on text a client controls: each repetition is bounded (or is
# a greedy run of one character class that nothing after it can fail), so a match attempt costs a bounded
# number of steps at each position and a text is read in linear time (tests/model/text/test_linear_time.py).
_EMAIL = re.compile(EMAIL_PATTERN)
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]{1,63}\.(?:ru|com|рф|net|org|io|me)(?:/\S{0,200})?\b")
_CARD = re.compile(r"(?<!\d)(?:\d{4}[ -]?){3}\d{1,7}(?!\d)")
_ORDER = re.compile(r"(?<!\d)\d{6,10}-\d{3,5}(?:-\d{1,3})?(?!\d)")
_PHONE = re.compile(r"(?<![\w])(?:\+7|8|7)[\s(-]{0,6}\d{3}[\s)-]{0,6}\d{3}[\s-]{0,6}\d{2}[\s-]{0,6}\d{2}(?!\d)")
# a digit run touching a Latin letter is part of a technical token and stays (3g, 4g, 5g, a51, mp3: 3g != 4g);
# Cyrillic units still split off (100мб -> __num__ мб)
_NUMBER = re.compile(r"(?<![a-z\d])\d+(?:[.,]\d+)?(?![a-z\d])")
_SPACE = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
# the placeholders of model.text.pii.mask_pii (stored and exported texts) read as the model's own mask tokens
_PII_TOKENS = {PLACEHOLDERS[kind]: f" __{kind}__ " for kind in ("phone", "email", "card")}
_PII_PLACEHOLDER = re.compile("|".join(re.escape(placeholder) for placeholder in _PII_TOKENS))


def mask_personal_data(text: str) -> str:
    """Replace e-mails, URLs, card, order and phone numbers by mask tokens (keeps the case of the rest)."""
    return _SPACE.sub(" ", _mask(text)).strip()


def _mask(text: str) -> str:
    """:func:`mask_personal_data` before the white space is collapsed."""
    if "[" in text:
        text = _PII_PLACEHOLDER.sub(lambda m: _PII_TOKENS[m.group(0)], text)
    # each pattern runs only where the text holds what it needs (the same result, a fraction of the scans)
    if "@" in text:
        text = _EMAIL.sub(" __email__ ", text)
    if "." in text:
        text = _URL.sub(" __url__ ", text)
    if _DIGIT.search(text):
        if "-" in text:
            text = _ORDER.sub(" __order__ ", text)
        text = _CARD.sub(" __card__ ", text)
        text = _PHONE.sub(" __phone__ ", text)
    return text


CACHED_CHARS = 2_000  # turns up to this long are remembered: at most 8,192 x 2,000 characters held


def normalize_text(text: str) -> str:
    """Normalise one utterance for the models (short turns from a cache: a live session sends the
    same turns again and again; long ones are not kept, so the cache's memory stays bounded)."""
    return _normalize_cached(text) if len(text) <= CACHED_CHARS else _normalize(text)


@lru_cache(maxsize=8_192)
def _normalize_cached(text: str) -> str:
    return _normalize(text)


def _normalize(text: str) -> str:
    text = text.replace("ё", "е").replace("Ё", "Е")
    text = _mask(text).lower()
    if _DIGIT.search(text):
        text = _NUMBER.sub(" __num__ ", text)
    return _SPACE.sub(" ", text).strip()


def render_turns(turns: Iterable[Turn]) -> str:
    """The whole conversation as one normalised string with role tokens."""
    parts = []
    for turn in turns:
        normalized = normalize_text(turn.text)
        if normalized:
            parts.append(f"{ROLE_TOKENS[turn.role]} {normalized}")
    return " ".join(parts)


def render_interaction(interaction: Interaction) -> str:
    """The conversation as one normalised string: the channel token, then the turns with role tokens."""
    return f"{CHANNEL_TOKENS.get(interaction.channel, '')} {render_turns(interaction.turns)}".strip()


def client_text(interaction: Interaction) -> str:
    """Only what the client wrote or said, normalised (the strongest signal of the contact reason)."""
    return " ".join(normalize_text(t.text) for t in interaction.turns if t.role == "client").strip()
