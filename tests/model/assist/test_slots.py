"""Slot filling on real-looking calls (speech recognition: lower case, numbers as words) and chats."""

from __future__ import annotations

import pytest

from model.assist.slots import SlotFiller, fill_template
from model.conversation.record import interaction_from_dict
from model.text.ru_numbers import NumberWords, read_run


@pytest.fixture(scope="module")
def filler() -> SlotFiller:
    return SlotFiller()


@pytest.fixture(scope="module")
def numbers(filler) -> NumberWords:
    return NumberWords(filler.morph)


def _call(*turns: tuple[str, str]):
    return interaction_from_dict({"channel": "call", "turns": [{"role": r, "text": t} for r, t in turns]})


def _chat(*turns: tuple[str, str]):
    return interaction_from_dict({"channel": "chat", "turns": [{"role": r, "text": t} for r, t in turns]})


@pytest.mark.parametrize(
    "words, expected",
    [
        ("двести девяносто девять рублей", "299 рублей"),
        ("две тысячи триста на балансе", "2300 на балансе"),
        ("тысячу рублей", "1000 рублей"),
        ("самсунг а пятьдесят один", "самсунг а 51"),
        ("сорок один два девять тридцать два шестьдесят восемь тире ноль ноль ноль шесть", "41293268-0006"),
        ("девятьсот шестьдесят три пятьсот пятьдесят сорок сорок", "9635504040"),
        ("семь четыре ноль мм один два", "74012"),
        ("двенадцатого числа", "12 числа"),
        ("в течение трех дней", "в течение 3 дней"),
    ],
)
def test_number_words_digitise_asr_text(numbers, words, expected):
    assert " ".join(numbers.digitise(words.split())) == expected


def test_number_words_read_run_tells_number_from_dictation():
    assert read_run([("hundred", 200), ("ten", 90), ("unit", 9)]) == "299"
    assert read_run([("unit", 1), ("ten", 60), ("unit", 7)]) == "167"
    assert read_run([("ten", 40), ("unit", 5), ("zero", 0), ("unit", 8)]) == "4508"


def test_slots_asr_call_internet_settings(filler):
    call = _call(
        ("operator", "билайн здравствуйте меня зовут анна чем могу помочь"),
        ("client", "алло девушка у меня интернет не работает на телефоне самсунг а пятьдесят один"),
        ("operator", "назовите пожалуйста фио владельца номера"),
        ("client", "петрова анна сергеевна"),
        ("operator", "спасибо отправила вам автоматические настройки интернета перезагрузите телефон"),
    )
    values = filler.extract(call)
    assert values["модель"] == "Samsung A51"
    assert values["интернет_MMS"] == "мобильному интернету"
    assert "отправлены настройки" in values["действие"]
    assert values["идентификация"] == "ФИО"
    assert values["рекомендации"].startswith("перезагрузите телефон")
    text, filled, missing = fill_template(
        "Вопрос по {интернет_MMS}. Модель телефона: {модель}. Выполнено: {действие}.", values
    )
    assert text.startswith(
        "Вопрос по мобильному интернету. Модель телефона: Samsung A51. Выполнено: отправлены настройки"
    )
    assert missing == [] and set(filled) == {"интернет_MMS", "модель", "действие"}


def test_slots_iphone_and_no_invented_model(filler):
    values = filler.extract(_call(("client", "у меня айфон тринадцать про не ловит ммс")))
    assert values["модель"] == "iPhone 13 Pro"
    assert values["интернет_MMS"] == "MMS"
    # "пиксель" without a model number is a pixel on the screen, not a Google Pixel
    assert "модель" not in filler.extract(_call(("client", "у меня пиксель горит посередине экрана")))


def test_slots_chat_order_and_shipment_numbers(filler):
    chat = _chat(
        ("bot", "Здравствуйте! Я виртуальный помощник. Опишите вопрос"),
        ("client", "заказ 12345678-0012 пишет что получен а я его не забирала!!"),
        (
            "operator",
            "Понимаю ваше беспокойство. По отправлению 12345678-0012-1 создала запрос в службу доставки, "
            "ответ придет в течение 3 дней",
        ),
    )
    values = filler.extract(chat)
    assert values["номер_заказа"] == "12345678-0012"
    assert values["номер_отправления"] == "12345678-0012-1"
    assert values["срок"] == "в течение 3 дней"
    assert values["тип_задания"].startswith("в службу доставки")
    assert values["суть"] == "заказ 12345678-0012 пишет что получен а я его не забирала"


def test_slots_dictated_order_number_in_a_call(filler):
    call = _call(
        ("operator", "назовите номер заказа"),
        ("client", "сорок один два девять тридцать два шестьдесят восемь тире ноль ноль ноль шесть"),
    )
    values = filler.extract(call)
    assert values["номер_заказа"] == "41293268-0006"
    assert "номер_отправления" not in values


def test_slots_bill_to_email_period_and_amount(filler):
    call = _call(
        ("client", "пришлите мне детализацию за прошлый месяц"),
        ("operator", "назовите адрес электронной почты"),
        ("client", "смирнов точка р собака бк ру"),
        ("operator", "отправила детализацию за прошлый месяц"),
    )
    values = filler.extract(call)
    assert values["email"] == "смирнов.р@bk.ru"
    assert values["счет_детализация"] == "детализация"
    assert values["период"] == "прошлый месяц"
    chat = _chat(("client", "Счет за октябрь пришлите на buh@vector-nsk.ru пожалуйста"))
    assert filler.extract(chat)["email"] == "buh@vector-nsk.ru"
    assert filler.extract(chat)["период"] == "октябрь"


def test_slots_compensation_amount_in_words(filler):
    call = _call(
        ("client", "с меня сняли двести девяносто девять рублей за подписку"),
        ("operator", "приношу извинения начислю компенсацию двести девяносто девять рублей"),
    )
    values = filler.extract(call)
    assert values["льгота_скидка_ФК"] == "финансовая компенсация"
    assert values["размер"] == "299 руб."


def test_slots_transfer_target_and_legal_entity_block(filler):
    transfer = _call(
        ("client", "заявку на перенос номера оформляли неделю назад"),
        ("operator", "переключу на специалистов по переносу они запросят статус"),
    )
    assert filler.extract(transfer)["куда"] == "специалистов по переносу"
    block = _call(
        ("client", "компания автодом у нас сотрудник потерял корпоративный телефон надо заблокировать номер"),
        ("operator", "заблокировала номер по утере укажите контактный телефон"),
        ("client", "восемь девятьсот шестнадцать пятьсот пятьдесят сорок сорок"),
        ("operator", "записала пароль на разовую разблокировку четыре семь два один"),
    )
    values = filler.extract(block)
    assert values["причина_блокировки"] == "утере"
    assert values["телефон"] == "+7 916 550-40-40"
    assert values["пароль"] == "4721"


def test_slots_service_switched_off(filler):
    call = _call(
        ("client", "у меня каждый день снимают по девять рублей"),
        ("operator", "это плата за услугу гудок я ее отключила"),
    )
    values = filler.extract(call)
    assert values["услуга"] == "«гудок»"
    assert values["подключена_отключена"] == "Отключена"
    # an offer is not an action: "могу отключить" does not fill {подключена_отключена}
    offer = filler.extract(_call(("operator", "могу отключить услугу гудок если хотите")))
    assert "подключена_отключена" not in offer


def test_fill_template_keeps_unknown_slots():
    text, filled, missing = fill_template(
        "Заказ № {номер_заказа}, отправление № {номер_отправления}.", {"номер_заказа": "12345678-0012"}
    )
    assert text == "Заказ № 12345678-0012, отправление № {номер_отправления}."
    assert filled == {"номер_заказа": "12345678-0012"}
    assert missing == ["номер_отправления"]


def test_slots_empty_conversation_fills_nothing_personal(filler):
    values = filler.extract(_chat(("client", "спасибо")))
    assert not {"номер_заказа", "email", "телефон", "модель", "тариф", "услуга"} & set(values)


def test_slots_vocabulary_stays_bounded_and_reading_is_unchanged():
    """spaCy keeps every word form it ever tokenized; a long-running server reads endless new ones
    (names, numbers, typos). Past ``vocab_limit`` the pipeline is built afresh, and it reads the same."""
    import random

    rng = random.Random(7)
    letters = "абвгдежзиклмнопрстуфхцчшщыэюя"
    call = interaction_from_dict(
        {
            "channel": "call",
            "turns": [
                {"role": "client", "text": "у меня самсунг а пятьдесят один, заказ номер 12345678-0001"},
                {"role": "operator", "text": "списали двести девяносто девять рублей за подписку"},
                {"role": "client", "text": "пришлите счёт на почту ivan.petrov@mail.ru за март"},
            ],
        }
    )
    limit = 3_000
    filler = SlotFiller(vocab_limit=limit)
    before = filler.extract(call)
    assert before  # the call supports several slots
    for _ in range(60):  # about 6,000 new word forms
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(100)]
        filler.extract(interaction_from_dict({"channel": "chat", "text": " ".join(words)}))
        assert len(filler._ready().nlp.vocab) <= limit + 200  # at most one turn's new forms past the limit
    assert filler.renewals >= 1
    filler._turn_cache.clear()  # read the call again with the renewed pipeline, not from the turn cache
    assert filler.extract(call) == before == SlotFiller(vocab_limit=limit).extract(call)
