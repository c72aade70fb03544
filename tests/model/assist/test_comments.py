"""The comment rules of the CRM rule book (seed 000_…, «Комментарии в Interaction»), one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from model.assist.comments import comment_required
from model.conversation.record import interaction_from_dict
from model.conversation.taxonomy import load_taxonomy, parse_taxonomy

TAXONOMY = Path(__file__).resolve().parents[3] / "datasets" / "taxonomy.yaml"
RULES = load_taxonomy(TAXONOMY).comment_rules


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
    assert comment_required(RULES, NEUTRAL, {"reason2": "Другое"}) == {"required": False, "reasons": []}


def test_comment_rule_1_claim_from_text_and_from_label():
    claim = _call(
        ("client", "безобразие сняли двести рублей а я ничего не подключал"), ("operator", "проверю начисления")
    )
    result = comment_required(RULES, claim)
    assert result["required"] and _rules(result) == ["claim"]
    assert result["reasons"][0]["seed_rule"] == 1
    by_label = comment_required(
        RULES, _call(("client", "а за что эти девять рублей в день")), {"reason2": "За что списание?"}
    )
    assert _rules(by_label) == ["claim"]


def test_comment_rule_2_transfer_to_experts():
    call = _call(("client", "хочу перенести номер от вас"), ("operator", "переключу вас на специалистов по переносу"))
    result = comment_required(RULES, call)
    assert _rules(result) == ["expert_transfer"]
    assert "специалистов по переносу" in result["reasons"][0]["because"]


def test_comment_rule_3_agreement_or_compensation():
    call = _call(
        ("client", "мне надо чтобы номер работал"),
        ("operator", "предоставлю доверительный платеж в качестве исключения"),
    )
    assert "agreement" in _rules(comment_required(RULES, call))


def test_comment_rule_4_internet_or_mms_question():
    assert _rules(comment_required(RULES, _call(("client", "как мне настроить ммс на телефоне")))) == ["internet_mms"]
    assert _rules(comment_required(RULES, _call(("client", "а где это в меню")), {"reason2": "Настройки"})) == [
        "internet_mms"
    ]


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
    reasons = [r for r in comment_required(RULES, call)["reasons"] if r["rule"] == "identified_action"]
    assert len(reasons) == 1 and reasons[0]["seed_rule"] == 5
    assert action in reasons[0]["because"] and "identification (done)" in reasons[0]["because"]


def test_comment_rule_5_needs_the_operator_to_act():
    offer = _call(("client", "как отключить гудок"), ("operator", "отключить можно командой в приложении"))
    assert "identified_action" not in _rules(comment_required(RULES, offer))


def test_comment_rule_6_legal_entity_block():
    call = _call(
        ("client", "ооо вектор сотрудник потерял телефон заблокируйте номер"),
        ("operator", "заблокировала номер по утере"),
    )
    assert "legal_entity_block" in _rules(comment_required(RULES, call))
    private = _call(("client", "я телефон потеряла заблокируйте номер"), ("operator", "заблокировала номер"))
    assert "legal_entity_block" not in _rules(comment_required(RULES, private))


def test_comment_rule_7_refusal():
    call = _call(
        ("client", "скажите какой тариф у мужа"),
        ("operator", "информацию по тарифу могу сообщить только владельцу номера"),
    )
    result = comment_required(RULES, call)
    assert _rules(result) == ["refusal"]
    assert result["reasons"][0]["seed_rule"] == 7


def test_comment_rule_8_transfer_to_asis():
    call = _call(
        ("client", "хочу поставить кодовое слово"), ("operator", "переключаю вас на автоинформатор следуйте подсказкам")
    )
    assert _rules(comment_required(RULES, call)) == ["asis_transfer"]


def test_comment_dropped_call_category():
    call = _call(
        ("client", "у меня абонентскую плату сняли два раза"), ("operator", "алло"), ("operator", "вас не слышно")
    )
    rules = _rules(comment_required(RULES, call))
    assert "dropped_call" in rules
    assert "dropped_call" in _rules(comment_required(RULES, NEUTRAL, {"reason2": "Сорвался/тишина"}))


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
    assert comment_required(RULES, chat, {"topic": "Возврат денег"}) == {"required": False, "reasons": []}
    assert comment_required(RULES, chat, domain="marketplace")["required"] is False


RUTUBE_LIKE = {
    "version": 1,
    "tasks": {
        "label_l1": {"labels": ["Монетизация", "Модерация", "Технические проблемы"]},
        "label_l2": {"labels": ["Вывод средств", "Блокировка канала", "Не грузит видео"]},
    },
    "macros": {},
}
CLAIM_CALL = _call(("client", "безобразие не могу войти сняли деньги"), ("operator", "переключаю на специалиста"))


def test_another_taxonomy_has_no_rule_book_and_no_telecom_rule_fires():
    """A taxonomy without comment_rules (a drafted one, an old bundle's copy) has none: no telecom fallback."""
    other = parse_taxonomy(RUTUBE_LIKE)
    assert other.comment_rules is None and other.duplicates is None and other.closing is None
    assert other.problem_tasks == ()
    # the project's own file without its rule sections, as in a bundle trained before they existed
    raw = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    old_copy = parse_taxonomy(
        {k: v for k, v in raw.items() if k not in {"domains", "closing", "duplicates", "comment_rules"}}
    )
    assert old_copy.comment_rules is None and old_copy.duplicates is None and old_copy.problems == {}
    # the same words under the project's rule book are a claim and a transfer (the rules work)
    assert _rules(comment_required(RULES, CLAIM_CALL)) == ["claim", "expert_transfer"]


def test_another_taxonomy_brings_its_own_rules():
    """A contact centre writes its own rule book in its taxonomy file: its words and labels, no Python."""
    raw = {
        **RUTUBE_LIKE,
        "comment_rules": {
            "domain": "label_l1",
            "rules": [
                {
                    "id": "payout",
                    "seed_rule": None,
                    "when": [
                        {"label": {"task": "label_l2", "labels": ["Вывод средств"]}, "because": "payout «{label}»"},
                        {
                            "text": {"in": "client", "pattern": ["вывест\\w{0,5} деньги", "выплат"]},
                            "because": "«{match}»",
                        },
                    ],
                }
            ],
        },
    }
    rules = parse_taxonomy(raw).comment_rules
    assert rules is not None and rules.domain == "label_l1"
    assert comment_required(rules, CLAIM_CALL) == {"required": False, "reasons": []}  # no «Претензия» here
    asked = comment_required(rules, _call(("client", "как вывести деньги с канала")))
    assert asked == {
        "required": True,
        "reasons": [{"rule": "payout", "seed_rule": None, "because": "«вывести деньги»"}],
    }
    both = {"label_l1": "Монетизация", "label_l2": "Вывод средств"}
    assert comment_required(rules, NEUTRAL, both)["reasons"][0]["because"] == "payout «Вывод средств»"
    # a conversation of another domain (a task without 'domain' is its own) gets none, given or told by its labels
    assert comment_required(rules, NEUTRAL, both, domain="label_l2")["required"] is False
    assert comment_required(rules, NEUTRAL, {"label_l2": "Вывод средств"})["required"] is False


def test_rule_unless_skips_a_rule_when_an_earlier_one_fired():
    ring = _call(("client", "хочу поставить кодовое слово"), ("operator", "переключаю вас на автоинформатор"))
    assert _rules(comment_required(RULES, ring, {"reason2": "Переключение/направление"})) == ["asis_transfer"]
    assert _rules(comment_required(RULES, NEUTRAL, {"reason2": "Переключение/направление"})) == ["expert_transfer"]


def test_a_bundle_whose_taxonomy_copy_lacks_the_rules_gives_no_hint(predictor):
    """A bundle trained before the rule sections existed keeps its copy of the taxonomy: it gets no comment
    hint (not the telecom rules by default); a bundle with the sections gives the same suggestion plus the hint."""
    from dataclasses import replace

    from model.predictor import Predictor

    raw = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    old_copy = parse_taxonomy(
        {k: v for k, v in raw.items() if k not in {"domains", "closing", "duplicates", "comment_rules"}}
    )
    old = Predictor(replace(predictor.bundle, taxonomy=old_copy))
    call = {"channel": "call", "turns": [{"role": "client", "text": "безобразие сняли деньги а я ничего не подключал"}]}
    [with_rules] = predictor.predict([call])
    [without] = old.predict([call])
    assert with_rules.comment_required is not None and "claim" in [r.rule for r in with_rules.comment_required.reasons]
    assert without.comment_required is None
    assert replace(with_rules, comment_required=None) == without
