"""Russian number words → digits, for speech-recognition text ("двести девяносто девять" → 299).

Speech recognition writes numbers as words. Two readings are told apart by shape:

- one number: "двести девяносто девять рублей" → ``299``, "две тысячи триста" → ``2300``;
- a dictated run of chunks (phone, order, passport numbers): "сорок один два девять тридцать два
  шестьдесят восемь тире ноль ноль ноль шесть" → ``41293268-0006``: a chunk that cannot continue the
  previous one (units after units, tens after units, "ноль") starts a new chunk, and a run of several
  chunks is read digit by digit.

Ordinals ("двенадцатого числа", "пиксель седьмой") become digits too. Words are recognised in any
case form through pymorphy3 lemmas.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pymorphy3

UNITS = {"один": 1, "два": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9}
TEENS = {
    "десять": 10,
    "одиннадцать": 11,
    "двенадцать": 12,
    "тринадцать": 13,
    "четырнадцать": 14,
    "пятнадцать": 15,
    "шестнадцать": 16,
    "семнадцать": 17,
    "восемнадцать": 18,
    "девятнадцать": 19,
}
TENS = {
    "двадцать": 20,
    "тридцать": 30,
    "сорок": 40,
    "пятьдесят": 50,
    "шестьдесят": 60,
    "семьдесят": 70,
    "восемьдесят": 80,
    "девяносто": 90,
}
HUNDREDS = {
    "сто": 100,
    "двести": 200,
    "триста": 300,
    "четыреста": 400,
    "пятьсот": 500,
    "шестьсот": 600,
    "семьсот": 700,
    "восемьсот": 800,
    "девятьсот": 900,
}
ORDINALS = {
    "первый": 1,
    "второй": 2,
    "третий": 3,
    "четвёртый": 4,
    "четвертый": 4,
    "пятый": 5,
    "шестой": 6,
    "седьмой": 7,
    "восьмой": 8,
    "девятый": 9,
    "десятый": 10,
    "одиннадцатый": 11,
    "двенадцатый": 12,
    "тринадцатый": 13,
    "четырнадцатый": 14,
    "пятнадцатый": 15,
    "шестнадцатый": 16,
    "семнадцатый": 17,
    "восемнадцатый": 18,
    "девятнадцатый": 19,
    "двадцатый": 20,
    "тридцатый": 30,
    "сороковой": 40,
    "пятидесятый": 50,
    "шестидесятый": 60,
    "семидесятый": 70,
    "восьмидесятый": 80,
    "девяностый": 90,
    "сотый": 100,
}
ZERO = ("ноль", "нуль")
THOUSAND = "тысяча"
# words a speaker drops inside a dictated number; skipped when number words stand on both sides
FILLERS = frozenset({"э", "ээ", "эээ", "мм", "ммм", "м", "эм", "хм"})
DASHES = frozenset({"тире", "дефис", "черточка"})
_RANK = {"unit": 1, "teen": 1, "ten": 2, "hundred": 3}
_WORD = re.compile(r"[а-яё]+", re.IGNORECASE)


_CYRILLIC = re.compile(r"[а-яёА-ЯЁ\w.,-]*", re.ASCII)


def morph_safe(word: str) -> bool:
    """Whether pymorphy3 can be given ``word``: it calls ``unicodedata.name`` on every letter and raises
    ``ValueError`` on letters that have none (Tangut U+17000–U+18AFF, Khitan, Nushu...)."""
    if word.isascii() or _CYRILLIC.fullmatch(word):
        return True
    return all(unicodedata.name(ch, None) is not None for ch in word if ch.isalpha())


class NumberWords:
    """Recognises number words through pymorphy3 and rewrites token lists with digits."""

    def __init__(self, morph: pymorphy3.MorphAnalyzer | None = None) -> None:
        self.morph = morph or pymorphy3.MorphAnalyzer()
        self.kind = lru_cache(maxsize=50_000)(self._kind)

    def _kind(self, word: str) -> tuple[str, int] | None:
        """``(kind, value)`` of a number word ('zero', 'unit', 'teen', 'ten', 'hundred', 'thousand',
        'ordinal'), or ``None``."""
        word = word.lower().replace("ё", "е")
        if not _WORD.fullmatch(word) or len(word) < 2:
            return None
        if word in ZERO:
            return ("zero", 0)
        for parse in self.morph.parse(word)[:3]:
            lemma = parse.normal_form.replace("ё", "е")
            if lemma in ZERO:
                return ("zero", 0)
            if {"NUMR", "ADJF", "NOUN"} & set(parse.tag.grammemes) or lemma == "один":
                for table, kind in ((UNITS, "unit"), (TEENS, "teen"), (TENS, "ten"), (HUNDREDS, "hundred")):
                    if lemma in table:
                        return (kind, table[lemma])
                if lemma == THOUSAND:
                    return ("thousand", 1000)
                if lemma in ORDINALS or lemma.replace("е", "ё") in ORDINALS:
                    return ("ordinal", ORDINALS.get(lemma, ORDINALS.get(lemma.replace("е", "ё"), 0)))
        return None

    def digitise(self, tokens: list[str]) -> list[str]:
        """Replace every run of number words in ``tokens`` by its digits ("тире" between two runs
        becomes '-': an order number "…восемь тире ноль ноль ноль шесть" → ``41293268-0006``)."""
        out: list[str] = []
        i = 0
        while i < len(tokens):
            if self.kind(tokens[i]) is None:
                out.append(tokens[i])
                i += 1
                continue
            j = i
            run: list[tuple[str, int]] = []
            while j < len(tokens):
                kind = self.kind(tokens[j])
                if kind is not None:
                    run.append(kind)
                    j += 1
                elif tokens[j].lower() in FILLERS and j + 1 < len(tokens) and self.kind(tokens[j + 1]) is not None:
                    j += 1
                else:
                    break
            out.append(read_run(run))
            i = j
        return _join_dashes(out)


def read_run(run: list[tuple[str, int]]) -> str:
    """One run of number words → a number ("двести девяносто девять") or, when the run holds several
    chunks, the digits of each chunk in order (a dictated phone or order number)."""
    chunks: list[int] = []
    base, current, stage = 0, None, 9
    for kind, value in run:
        if kind == "zero":
            if current is not None or base:
                chunks.append(base + (current or 0))
            chunks.append(0)
            base, current, stage = 0, None, 9
            continue
        if kind == "thousand":
            base, current, stage = (current or 1) * 1000, None, 4
            continue
        if kind == "ordinal":
            rank = 3 if value >= 100 else 2 if value >= 20 and value % 10 == 0 else 1
        else:
            rank = _RANK[kind]
        if (current is not None or base) and rank < stage:
            current = (current or 0) + value
            stage = rank
        else:
            if current is not None or base:
                chunks.append(base + (current or 0))
            base, current, stage = 0, value, rank
    if current is not None or base:
        chunks.append(base + (current or 0))
    if len(chunks) == 1:
        return str(chunks[0])
    return "".join(str(c) for c in chunks)


def _join_dashes(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (
            tok.lower() in DASHES
            and out
            and out[-1].replace("-", "").isdigit()
            and i + 1 < len(tokens)
            and tokens[i + 1].isdigit()
        ):
            out[-1] = f"{out[-1]}-{tokens[i + 1]}"
            i += 2
            continue
        out.append(tok)
        i += 1
    return out
