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
from typing import TYPE_CHECKING, NamedTuple

from model.assist.slot_lexicon import MATCHER_PATTERNS
from model.assist.slot_rules import EXTRACTORS, SlotMatch
from model.conversation.record import Interaction
from model.conversation.taxonomy import SLOT_PATTERN, template_slots
from model.text.ru_numbers import NumberWords, morph_safe

if TYPE_CHECKING:  # spaCy is imported on first use (SlotFiller._ready)
    import pymorphy3
    from spacy.lang.ru.lemmatizer import RussianLemmatizer
    from spacy.language import Language
    from spacy.matcher import Matcher
    from spacy.tokens import Doc

VOCAB_LIMIT = 100_000
"""Word forms spaCy's vocabulary may hold before the pipeline is built afresh: spaCy adds every new
form it tokenizes and never lets one go, so a server reading names, numbers and typos for months
would grow without bound. A new pipeline reads every turn exactly as the old one did."""
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


class _Pipeline(NamedTuple):
    """What :meth:`SlotFiller._ready` builds once: the blank Russian pipeline, its lemmatizer, the lemma
    ``Matcher`` over :data:`MATCHER_PATTERNS` and the number-word reader sharing the lemmatizer's pymorphy3."""

    nlp: Language
    lemmatizer: RussianLemmatizer
    matcher: Matcher
    numbers: NumberWords


class SlotFiller:
    """Extracts slot values from a conversation. Builds its spaCy pipeline on first use; thread-safe."""

    def __init__(self, *, vocab_limit: int = VOCAB_LIMIT) -> None:
        self.vocab_limit = vocab_limit
        self.renewals = 0  # how many times the pipeline was built afresh (its vocabulary was full)
        self._lock = threading.Lock()
        self._pipeline: _Pipeline | None = None
        self._lemmas: dict[str, str] = {}
        self._turn_cache: OrderedDict[tuple[str, str], tuple[ReadTurn, list[tuple[str, int, int]]]] = OrderedDict()

    def _ready(self) -> _Pipeline:
        with self._lock:
            if self._pipeline is None:
                import spacy
                from spacy.lang.ru.lemmatizer import RussianLemmatizer
                from spacy.matcher import Matcher

                nlp = spacy.blank("ru")
                nlp.add_pipe("lemmatizer", config={"mode": "pymorphy3"})
                nlp.initialize()
                matcher = Matcher(nlp.vocab)
                for name, patterns in MATCHER_PATTERNS.items():
                    matcher.add(name, patterns)
                lemmatizer = nlp.get_pipe("lemmatizer")
                if not isinstance(lemmatizer, RussianLemmatizer):
                    raise RuntimeError(
                        f"spaCy's 'ru' lemmatizer is a {type(lemmatizer).__name__}, not its RussianLemmatizer; "
                        "install the spacy version pinned in pyproject.toml"
                    )
                morph = lemmatizer._morph
                # one pymorphy3 parse per word form, shared by the lemmatizer and the number reader
                # (both ask for it; parsing a new form is the costliest step of reading a turn)
                morph.parse = lru_cache(maxsize=100_000)(morph.parse)
                self._pipeline = _Pipeline(nlp, lemmatizer, matcher, NumberWords(morph))
            return self._pipeline

    def _renew(self, full: Language) -> None:
        """Drop the pipeline whose vocabulary passed :data:`VOCAB_LIMIT` (the next turn builds a new one;
        calls already reading with the old one finish with it). The lemma cache is kept: a lemma
        depends on the word form alone."""
        with self._lock:
            if self._pipeline is not None and self._pipeline.nlp is full:
                self._pipeline = None
                self.renewals += 1

    def _lemmatized(self, nlp: Language, lemmatizer: RussianLemmatizer, text: str) -> Doc:
        """``nlp(text)`` with the pymorphy3 lemmatizer's answers cached per word form (with no tagger in
        the pipeline a lemma depends on the form alone, so the cache changes nothing but the time)."""
        doc = nlp.make_doc(text)
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
    def morph(self) -> pymorphy3.MorphAnalyzer:
        """The pipeline's pymorphy3 analyser (parses cached), for extractors that read a word's grammar."""
        return self._ready().numbers.morph

    def _turn(self, role: str, text: str) -> tuple[ReadTurn, list[tuple[str, int, int]]]:
        """One turn read and matched, cached by (role, text): a live update reads only its new turn."""
        key = (role, text)
        with self._lock:
            hit = self._turn_cache.get(key)
            if hit is not None:
                self._turn_cache.move_to_end(key)
                return hit
        nlp, lemmatizer, matcher, numbers = self._ready()
        raw = text.replace("ё", "е").replace("Ё", "Е")
        words = numbers.digitise(_TOKEN.findall(raw.lower()))
        joined = " ".join(words)
        doc = self._lemmatized(nlp, lemmatizer, joined)
        turn = ReadTurn(role, raw, joined, [t.text for t in doc], [t.lemma_ for t in doc])
        found = [(nlp.vocab.strings[m], s, e) for m, s, e in matcher(doc)]
        if len(nlp.vocab) > self.vocab_limit:
            self._renew(nlp)
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
        matches: list[SlotMatch] = []
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

    def sub(match: re.Match[str]) -> str:
        slot: str = match.group(1)
        whole: str = match.group(0)
        return filled.get(slot, whole)

    return SLOT_PATTERN.sub(sub, text), filled, missing
