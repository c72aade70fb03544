"""The comment rules of the CRM rule book (seed 000_…, «Комментарии в Interaction»), one by one."""

from __future__ import annotations

import pytest

from model.assist.comments import comment_required
from model.conversation.record import interaction_from_dict


def _call(*turns: tuple[str, str]):
    return interaction_from_dict({"channel": "call", "turns": [{"role": r, "text": t} for r, t in turns]})


def _rules(result) -> list[str]:
    return [r["rule"] for r in result["reasons"]]


NEUTRAL = _call(
    ("operator", "билайн здравствуйте"),
    ("client", "подскажите адрес ближайшего офиса"),
    ("operator", "ближайший офис на улице ленина дом пять"),
)


def test_comment_not_required_for_a_plain_consultation():
    assert comment_required(NEUTRAL, {"reason2": "Другое"}) == {"required": False, "reasons": []}


def test_comment_rule_1_claim_from_text_and_from_label():
    claim = _call(
        ("client", "безобразие сняли двести рублей а я ничего не подключал"), ("operator", "проверю начисления")
    )
    result = comment_required(claim)
    assert result["required"] and _rules(result) == ["claim"]
    assert result["reasons"][0]["seed_rule"] == 1
    by_label = comment_required(_call(("client", "а за что эти девять рублей в день")), {"reason2": "За что списание?"})
    assert _rules(by_label) == ["claim"]


def test_comment_rule_2_transfer_to_experts():
    call = _call(("client", "хочу перенести номер от вас"), ("operator", "переключу вас на специалистов по переносу"))
    result = comment_required(call)
    assert _rules(result) == ["expert_transfer"]
    assert "специалистов по переносу" in result["reasons"][0]["because"]


def test_comment_rule_3_agreement_or_compensation():
    call = _call(
        ("client", "мне надо чтобы номер работал"),
        ("operator", "предоставлю доверительный платеж в качестве исключения"),
    )
    assert "agreement" in _rules(comment_required(call))


def test_comment_rule_4_internet_or_mms_question():
    assert _rules(comment_required(_call(("client", "как мне настроить ммс на телефоне")))) == ["internet_mms"]
    assert _rules(comment_required(_call(("client", "а где это в меню")), {"reason2": "Настройки"})) == ["internet_mms"]


@pytest.mark.parametrize(
    "operator, action",
    [
        ("готово тариф изменен со следующего дня", "tariff change"),
        ("хорошо услугу отключила", "service on/off"),
        ("адрес доставки счетов изменен", "bill delivery address"),
        ("отправила детализацию за месяц на вашу почту", "bill or detail to e-mail/fax"),
        ("записывайте пак-код семь четыре ноль один", "PIN/PUK"),
    ],
)
def test_comment_rule_5_identification_backed_action(operator, action):
    call = _call(("operator", "назовите пожалуйста фио владельца"), ("client", "иванов иван"), ("operator", operator))
    reasons = [r for r in comment_required(call)["reasons"] if r["rule"] == "identified_action"]
    assert len(reasons) == 1 and reasons[0]["seed_rule"] == 5
    assert action in reasons[0]["because"] and "identification (done)" in reasons[0]["because"]


def test_comment_rule_5_needs_the_operator_to_act():
    offer = _call(("client", "как отключить гудок"), ("operator", "отключить можно командой в приложении"))
    assert "identified_action" not in _rules(comment_required(offer))


def test_comment_rule_6_legal_entity_block():
    call = _call(
        ("client", "ооо вектор сотрудник потерял телефон заблокируйте номер"),
        ("operator", "заблокировала номер по утере"),
    )
    assert "legal_entity_block" in _rules(comment_required(call))
    private = _call(("client", "я телефон потеряла заблокируйте номер"), ("operator", "заблокировала номер"))
    assert "legal_entity_block" not in _rules(comment_required(private))


def test_comment_rule_7_refusal():
    call = _call(
        ("client", "скажите какой тариф у мужа"),
        ("operator", "информацию по тарифу могу сообщить только владельцу номера"),
    )
    result = comment_required(call)
    assert _rules(result) == ["refusal"]
    assert result["reasons"][0]["seed_rule"] == 7


def test_comment_rule_8_transfer_to_asis():
    call = _call(
        ("client", "хочу поставить кодовое слово"), ("operator", "переключаю вас на автоинформатор следуйте подсказкам")
    )
    assert _rules(comment_required(call)) == ["asis_transfer"]


def test_comment_dropped_call_category():
    call = _call(
        ("client", "у меня абонентскую плату сняли два раза"), ("operator", "алло"), ("operator", "вас не слышно")
    )
    rules = _rules(comment_required(call))
    assert "dropped_call" in rules
    assert "dropped_call" in _rules(comment_required(NEUTRAL, {"reason2": "Сорвался/тишина"}))


def test_comment_marketplace_conversation_never_required():
    chat = interaction_from_dict(
        {
            "channel": "chat",
            "turns": [
                {"role": "client", "text": "верните деньги безобразие"},
                {"role": "operator", "text": "перевожу обращение на специалиста"},
            ],
        }
    )
    assert comment_required(chat, {"topic": "Возврат денег"}) == {"required": False, "reasons": []}
    assert comment_required(chat, domain="marketplace")["required"] is False
