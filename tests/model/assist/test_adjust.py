"""Issue #12 at predict time: the content check (greetings alone get no decision), the evidence a label
needs, domain routing (tasks of another domain get no decision, with the reason), priors, and
normalisation that keeps technical tokens."""

import numpy as np
import pytest

from model.assist.adjust import adjust_task, allowed_mask, decisions_for, has_content, prior_ratio, with_priors
from model.assist.decision import Decision, DecisionPolicy, PriorEntry
from model.conversation.record import interaction_from_dict
from model.conversation.taxonomy import load_taxonomy, parse_taxonomy
from model.errors import InputError
from model.text.normalize import normalize_text


@pytest.fixture(scope="module")
def taxonomy(taxonomy_path):
    return load_taxonomy(taxonomy_path)


def x(**row):
    return interaction_from_dict(row)


GREETINGS = [
    {"text": "здравствуйте"},
    {"text": "Добрый день!"},
    {"text": "алло алло, есть кто?"},
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "билайн здравствуйте чем могу помочь"},
            {"role": "client", "text": "да здравствуйте"},
        ],
    },
    {"channel": "call", "turns": [{"role": "operator", "text": "добрый день слушаю вас"}]},
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "компания билайн здравствуйте"},
            {"role": "client", "text": "ааа да слушаю, аллло"},
        ],
    },
]


@pytest.mark.parametrize("row", GREETINGS)
def test_greeting_only_has_no_content(taxonomy, row):
    assert not has_content(x(**row), taxonomy)


def test_content_words_count(taxonomy):
    assert has_content(x(text="здравствуйте, хочу сменить тариф"), taxonomy)
    assert has_content(x(text="где мой заказ?? уже неделю жду"), taxonomy)


@pytest.mark.parametrize("row", GREETINGS)
def test_greeting_only_gets_no_decision_at_any_level(predictor, row):
    result = predictor.predict([row])[0]
    for task, decision in result.decisions.items():
        assert decision.label is None and decision.level is None, (task, decision)
        assert decision.reason == "no_content"
    assert result.predictions  # the ranked lists stay


def test_filler_lexicon_is_data(taxonomy):
    assert "здравствуйте" in taxonomy.filler_words
    assert taxonomy.to_dict()["content_check"]["filler_words"]


def test_evidence_rule_removes_labels_without_their_evidence(taxonomy):
    task = taxonomy.tasks["reason2"]
    classes = list(task.labels)
    tweet = x(channel="chat", text="сколько можно, опять нет связи")
    mask = allowed_mask(task, classes, tweet)
    for label in ("Сорвался/тишина", "Переключение/направление", "Телефонное хулиганство"):
        assert not mask[classes.index(label)], label
    assert mask.sum() == len(classes) - 3
    call = x(
        channel="call", turns=[{"role": "operator", "text": "билайн слушаю"}, {"role": "client", "text": "алло у меня"}]
    )
    assert allowed_mask(task, classes, call).all()
    # a sink label that leads without evidence is renormalised away
    probs = np.full((1, len(classes)), 0.01)
    probs[0, classes.index("Телефонное хулиганство")] = 0.9
    probs[0, classes.index("Другое")] = 0.05
    out = adjust_task(taxonomy, "reason2", classes, probs, [tweet], None)
    assert out[0, classes.index("Телефонное хулиганство")] == 0
    assert classes[int(out[0].argmax())] == "Другое"
    assert out[0].sum() == pytest.approx(1.0)


def test_needs_are_validated(tmp_path):
    from model.conversation.taxonomy import parse_taxonomy
    from model.errors import TaxonomyError

    raw = {"version": 1, "tasks": {"t": {"labels": {"a": "", "b": ""}, "needs": {"a": [{"roles": ["robot"]}]}}}}
    with pytest.raises(TaxonomyError, match="roles"):
        parse_taxonomy(raw)
    raw["tasks"]["t"]["needs"] = {"c": {"roles": ["operator"]}}
    with pytest.raises(TaxonomyError, match="unknown label"):
        parse_taxonomy(raw)


def test_other_domain_gets_null_with_reason(predictor):
    row = {"channel": "chat", "text": "где мой заказ уже неделю жду статус не меняется", "domain": "marketplace"}
    result = predictor.predict([row])[0]
    assert result.decisions["reason2"] == Decision(
        label=None, level=None, reason="other_domain", confidence=result.decisions["reason2"].confidence
    )
    assert result.decisions["topic"].reason != "other_domain"
    telecom = predictor.predict([dict(row, domain="telecom")])[0]
    assert telecom.decisions["topic"].reason == "other_domain"
    assert telecom.decisions["resolution"].reason == "other_domain"
    with pytest.raises(InputError, match="domain"):
        predictor.predict([dict(row, domain="bank")])


def test_domain_is_routed_by_content_without_a_domain(predictor):
    result = predictor.predict([{"channel": "chat", "text": "где мой заказ уже неделю жду трек статус не меняется"}])[0]
    assert result.top_domain == "marketplace"
    assert result.decisions["reason2"].reason == "other_domain"


def test_priors_reweight_and_renormalise():
    classes = ["a", "b", "c"]
    ratio = prior_ratio(
        classes, PriorEntry(train={"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, target={"a": 0.8, "b": 0.1, "c": 0.1})
    )
    out = with_priors(np.array([[0.4, 0.5, 0.1]]), ratio)
    assert out.sum() == pytest.approx(1.0)
    assert out[0].argmax() == 0
    assert prior_ratio(classes, None) is None
    assert prior_ratio(classes, PriorEntry(target={})) is None
    # a policy's priors reach adjust_task for their task only
    policy = DecisionPolicy(priors={"t": PriorEntry(target={"a": 0.8, "b": 0.1, "c": 0.1})})
    probs = np.array([[0.4, 0.5, 0.1]])
    taxonomy = parse_taxonomy({"version": 1, "tasks": {"t": {"labels": {"a": "", "b": "", "c": ""}}}})
    assert adjust_task(taxonomy, "t", classes, probs, [x(text="a")], policy)[0].argmax() == 0
    np.testing.assert_array_equal(adjust_task(taxonomy, "u", classes, probs, [x(text="a")], policy), probs)


def test_decisions_for_without_domain_head(taxonomy):
    classes = list(taxonomy.tasks["reason2"].labels)
    probs = np.zeros((1, len(classes)))
    probs[0, 0] = 1.0
    d = decisions_for(
        taxonomy, DecisionPolicy(), x(text="за что сняли сто рублей"), {"reason2": (classes, probs)}, 0, ["reason2"]
    )
    assert d["reason2"].label == classes[0] and d["reason2"].level == "label"


@pytest.mark.parametrize("a,b", [("нет 3G", "нет 4G"), ("только 4g", "только 5g"), ("Samsung A51", "Samsung A52")])
def test_technical_tokens_survive_normalisation(a, b):
    assert normalize_text(a) != normalize_text(b)


def test_numbers_still_masked():
    assert normalize_text("сняли 150 рублей 12.05") == "сняли __num__ рублей __num__"
    assert normalize_text("100мб") == "__num__ мб"
    assert "lte" in normalize_text("нет LTE") and "wi-fi" in normalize_text("Wi-Fi") and "h+" in normalize_text("H+")


def test_evidence_alternatives(taxonomy):
    task = taxonomy.tasks["reason2"]
    classes = list(task.labels)
    k = classes.index("Телефонное хулиганство")
    call_client_only = x(channel="call", text="девушка а вы замужем")
    chat_with_operator = x(
        turns=[{"role": "client", "text": "скучно"}, {"role": "operator", "text": "чем могу помочь?"}]
    )
    assert allowed_mask(task, classes, call_client_only)[k]  # a call reaches a person
    assert allowed_mask(task, classes, chat_with_operator)[k]
    assert not allowed_mask(task, classes, x(text="скучно, поговорите со мной"))[k]
    assert not allowed_mask(task, classes, chat_with_operator)[classes.index("Сорвался/тишина")]
