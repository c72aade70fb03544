"""Issue #11, finding 6: personal data masked before it is stored — :func:`model.text.pii.mask_pii` on the
labelled set (tests/data/pii_cases.jsonl, figures by bench/pii.py) and on the finding's own examples."""

from __future__ import annotations

import pytest

from bench.pii import evaluate, load_cases
from model.assist.slots import SlotFiller
from model.conversation.record import Interaction, Turn
from model.text.pii import mask_pii

CASES = load_cases()


@pytest.fixture(scope="module")
def report():
    return evaluate(CASES)


def test_labelled_set_is_large_and_has_traps():
    assert len(CASES) >= 200
    assert sum(1 for c in CASES if not c.gold) >= 100  # traps: nothing personal in them
    assert {kind for c in CASES for _, _, kind in c.gold} == {
        "phone",
        "email",
        "passport",
        "snils",
        "inn",
        "card",
        "birth_date",
        "address",
        "name",
    }


def test_recall_and_precision_floors(report):
    """Floors a little under what bench/pii.py measures (recall 0.99, precision 1.00 on the whole set, on
    which the rules were developed; 0.96 / 0.96 on the 40 snippets written after them and not tuned on)."""
    assert report["recall"] >= 0.97 and report["precision"] >= 0.97, {k: report[k] for k in ("recall", "precision")}
    for kind, row in report["by_kind"].items():
        assert row["recall"] >= 0.9 and row["precision"] >= 0.9, (kind, row)
    assert report["leaks"] <= 5


def test_untuned_holdout_floors():
    import json

    from bench.pii import DATA, parse_case

    rows = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    holdout = evaluate([parse_case(r) for r in rows if r.get("split") == "holdout"])
    assert holdout["cases"] >= 40 and holdout["recall"] >= 0.9 and holdout["precision"] >= 0.9


def test_every_trap_keeps_its_slot_values(report):
    destroyed = [e for e in report["errors"] if e[0] == "destroyed"]
    assert report["kept"] == report["keep_total"] >= 100, destroyed


@pytest.mark.parametrize(
    "text, masked",
    [
        ("9161234567", "[ТЕЛЕФОН]"),
        ("916 123 45 67", "[ТЕЛЕФОН]"),
        ("мой номер +7 (916) 123-45-67", "мой номер [ТЕЛЕФОН]"),
        ("восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь", "[ТЕЛЕФОН]"),
        ("иван точка петров собака мэйл точка ру", "[EMAIL]"),
        ("почта ivan.petrov@mail.ru", "почта [EMAIL]"),
        ("паспорт 4510 123456", "паспорт [ПАСПОРТ]"),
        ("серия 45 10 номер 123456", "серия [ПАСПОРТ]"),
        ("снилс 123-456-789 01", "снилс [СНИЛС]"),
        ("инн 770123456789", "инн [ИНН]"),
        ("карта 4276 1600 1234 5678", "карта [КАРТА]"),
        ("Иванов Иван Иванович", "[ФИО]"),
        ("адрес ул. Ленина, д. 5, кв. 12", "адрес [АДРЕС]"),
        ("дата рождения 12.03.1985", "дата рождения [ДАТА_РОЖДЕНИЯ]"),
        # what the macros need stays
        (
            "заказ 12345678-0012 на 1 500 рублей, тариф за 450 рублей",
            "заказ 12345678-0012 на 1 500 рублей, тариф за 450 рублей",
        ),
        ("у меня iPhone 13 и Redmi Note 12, доставка 12 марта", "у меня iPhone 13 и Redmi Note 12, доставка 12 марта"),
        ("у меня кошка белка и роза на окне", "у меня кошка белка и роза на окне"),
    ],
)
def test_finding_examples(text, masked):
    assert mask_pii(text) == masked


def test_masking_is_idempotent():
    for case in CASES:
        once = mask_pii(case.text)
        assert mask_pii(once) == once, case.text


@pytest.mark.parametrize(
    "text",
    [
        # a cue before a masked number reached the number after it: the masked one no longer stood between
        "ошибочно указан ИНН 5032118740 вместо правильного 5032118704",
        # masking shortened the text, bringing «рождения» within reach of the contract's date
        "Договор № 7700123456 от 01.02.2023 у Петровой Анны Сергеевны день рождения, подарок не пришел",
        # the placeholder «[ДАТА_РОЖДЕНИЯ]» read as a birth cue for the delivery date after it
        "мой день рождения 12.03.1985, проверьте: доставка была 12 марта, адрес ул. Ленина, д. 5, кв. 12",
        "родилась 12.03.1985 в Москве, заказ оформлен 14 марта",
    ],
)
def test_masked_text_masked_again_stays_as_it_is(text):
    """The store masks old rows again on upgrade (serve.feedback_store): placeholders change nothing around them."""
    once = mask_pii(text)
    assert once != text and mask_pii(once) == once


def test_slots_survive_masking():
    """The slot filler reads the unmasked text in memory; masking at storage time still leaves the values
    macros are built from (order number, amount, tariff, phone model) where they were."""
    filler = SlotFiller()
    turns = (
        Turn("client", "заказ 12345678-0012, у меня самсунг а пятьдесят один, мой номер 89161234567"),
        Turn("operator", "Тариф за 450 рублей, компенсация 150 рублей, Иванов Иван Иванович"),
    )
    plain = filler.extract(Interaction(turns=turns, channel="chat"))
    masked = filler.extract(Interaction(turns=tuple(Turn(t.role, mask_pii(t.text)) for t in turns), channel="chat"))
    for slot in ("номер_заказа", "модель", "тариф"):
        assert plain[slot] == masked[slot], slot
    assert plain["телефон"] == "+7 916 123-45-67" and "телефон" not in masked


def test_stored_placeholders_read_as_model_mask_tokens():
    """An exported (masked) turn normalises like the live one: [ТЕЛЕФОН] → __phone__, [EMAIL] → __email__."""
    from model.text.normalize import normalize_text

    live = normalize_text("мой номер 89161234567, почта ivan@mail.ru")
    stored = normalize_text(mask_pii("мой номер 89161234567, почта ivan@mail.ru"))
    assert live == stored == "мой номер __phone__ , почта __email__"
