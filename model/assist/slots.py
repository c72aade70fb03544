"""Slot filling: the values of the macros' ``{slots}`` found in the conversation, never invented.

A spaCy pipeline (``blank("ru")`` + the pymorphy3 lemmatizer + a ``Matcher`` over lemmas) reads every
turn after number words were turned into digits (:mod:`model.text.ru_numbers`), so speech-recognition text
("самсунг а пятьдесят один", "двести девяносто девять рублей") and typed chats are read alike.
Each extractor is extractive: a value is a phone model, an order number, an amount, a phrase the
operator said... taken from the text; a slot nothing supports is left out, and
:func:`fill_template` keeps it as ``{slot}`` and lists it as missing.

Slot names are those of the taxonomy's macros (``{модель}``, ``{номер_заказа}``, ``{email}``...);
a taxonomy with other slots gets the ones this module knows and leaves the rest missing.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from model.assist.slot_lexicon import MATCHER_PATTERNS
from model.assist.slot_rules import EXTRACTORS
from model.conversation.record import Interaction
from model.conversation.taxonomy import SLOT_PATTERN, template_slots
from model.text.ru_numbers import NumberWords, morph_safe

TURN_CACHE = 4096  # turns kept read and matched (a live session re-sends its turns on every update)
TURN_CACHE_CHARS = 2_000  # only turns up to this long are kept, so the cache stays small
# a word (with the e-mail and dotted-number characters inside it) or one other sign; a word longer than
# 64 characters is read in pieces, so no token is long enough to make a pattern or pymorphy3 slow
_TOKEN = re.compile(r"[\w@.+-]{0,63}\w|[^\w\s]", re.UNICODE)


@dataclass
class ReadTurn:
    """One turn as the extractors see it: role, original text, digitised text, tokens and lemmas."""

    role: str
    raw: str
    text: str  # lower case, ё → е, number words → digits
    words: list[str]
    lemmas: list[str]
    doc: object = None  # the spaCy Doc


class SlotFiller:
    """Extracts slot values from a conversation. Builds its spaCy pipeline on first use; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nlp = None
        self._matcher = None
        self._numbers: NumberWords | None = None
        self._lemmas: dict[str, str] = {}
        self._turn_cache: OrderedDict[tuple[str, str], tuple[ReadTurn, list]] = OrderedDict()

    def _ready(self):
        with self._lock:
            if self._nlp is None:
                import spacy
                from spacy.matcher import Matcher

                nlp = spacy.blank("ru")
                nlp.add_pipe("lemmatizer", config={"mode": "pymorphy3"})
                nlp.initialize()
                matcher = Matcher(nlp.vocab)
                for name, patterns in MATCHER_PATTERNS.items():
                    matcher.add(name, patterns)
                morph = nlp.get_pipe("lemmatizer")._morph
                # one pymorphy3 parse per word form, shared by the lemmatizer and the number reader
                # (both ask for it; parsing a new form is the costliest step of reading a turn)
                morph.parse = lru_cache(maxsize=100_000)(morph.parse)
                self._numbers = NumberWords(morph)
                self._nlp, self._matcher = nlp, matcher
        return self._nlp, self._matcher, self._numbers

    def _lemmatized(self, nlp, text: str):
        """``nlp(text)`` with the pymorphy3 lemmatizer's answers cached per word form (with no tagger in
        the pipeline a lemma depends on the form alone, so the cache changes nothing but the time)."""
        doc = nlp.make_doc(text)
        lemmatizer = nlp.get_pipe("lemmatizer")
        cache = self._lemmas
        for token in doc:
            lemma = cache.get(token.text)
            if lemma is None:
                # pymorphy3 raises on letters that have no Unicode name (Tangut...): such a word is its own lemma
                lemma = lemmatizer.pymorphy3_lemmatize(token)[0] if morph_safe(token.text) else token.lower_
                if len(cache) < 200_000:
                    cache[token.text] = lemma
            token.lemma_ = lemma
        return doc

    @property
    def morph(self):
        return self._ready()[2].morph

    def _turn(self, role: str, text: str) -> tuple[ReadTurn, list[tuple[str, int, int]]]:
        """One turn read and matched, cached by (role, text): a live update reads only its new turn."""
        key = (role, text)
        with self._lock:
            hit = self._turn_cache.get(key)
            if hit is not None:
                self._turn_cache.move_to_end(key)
                return hit
        nlp, matcher, numbers = self._ready()
        raw = text.replace("ё", "е").replace("Ё", "Е")
        words = numbers.digitise(_TOKEN.findall(raw.lower()))
        joined = " ".join(words)
        doc = self._lemmatized(nlp, joined)
        turn = ReadTurn(role, raw, joined, [t.text for t in doc], [t.lemma_ for t in doc], doc)
        found = [(nlp.vocab.strings[m], s, e) for m, s, e in matcher(doc)]
        if len(text) <= TURN_CACHE_CHARS:  # long turns are read again rather than held
            with self._lock:
                self._turn_cache[key] = (turn, found)
                if len(self._turn_cache) > TURN_CACHE:
                    self._turn_cache.popitem(last=False)
        return turn, found

    def turns(self, interaction: Interaction) -> list[ReadTurn]:
        """Every turn of the conversation as the extractors read it."""
        return [self._turn(t.role, t.text)[0] for t in interaction.turns]

    def extract(self, interaction: Interaction) -> dict[str, str]:
        """Every slot value the conversation supports: ``{slot: value}``."""
        read = [self._turn(t.role, t.text) for t in interaction.turns]
        turns = [turn for turn, _ in read]
        matches: list[tuple[int, str, int, int]] = []  # (turn index, rule, start, end)
        for i, (_, found) in enumerate(read):
            matches += [(i, rule, s, e) for rule, s, e in found]
        values: dict[str, str] = {}
        for extractor in EXTRACTORS:
            for slot, value in extractor(turns, matches, self).items():
                if value and slot not in values:
                    values[slot] = value
        return values


def fill_template(text: str, values: dict[str, str]) -> tuple[str, dict[str, str], list[str]]:
    """``(text with the known slots filled, {slot: value} used, [slots left as {slot}])``."""
    filled: dict[str, str] = {}
    missing: list[str] = []
    for slot in template_slots(text):
        value = values.get(slot)
        if value:
            filled[slot] = value
        else:
            missing.append(slot)

    def sub(match: re.Match) -> str:
        return filled.get(match.group(1), match.group(0))

    return SLOT_PATTERN.sub(sub, text), filled, missing
