from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from model.assist.adjust import adjust_probabilities
from model.assist.decision import Decision, DecisionPolicy, TaskPolicy, decide
from model.errors import InputError
from model.predictor import Predictor
from model.suggestion import Suggestion


def _call(text):
    return {
        "channel": "call",
        "turns": [{"role": "operator", "text": "билайн добрый день"}, {"role": "client", "text": text}],
    }


def _chat(text):
    return {"channel": "chat", "turns": [{"role": "client", "text": text}]}


def test_predictor_learned_the_tiny_corpus(predictor):
    # new sentences with each label's vocabulary: a model that learned nothing gets these wrong
    cases = [
        (_call("опять сняли деньги непонятно за что с баланса"), "reason2", "За что списание?"),
        (_call("интернет не грузит страницы уже час"), "reason2", "Не могу выйти в интернет"),
        (_call("хочу перейти с номером от мтс"), "reason2", "Смена оператора (MNP)"),
        (_chat("где мой заказ статус не меняется"), "topic", "Статус заказа"),
        (_chat("когда вернут деньги за возврат на карту"), "topic", "Возврат денег"),
        (_chat("не могу войти код не приходит"), "topic", "Вход в аккаунт"),
    ]
    results = predictor.predict([c[0] for c in cases])
    for (_, task, expected), result in zip(cases, results):
        assert result.predictions[task][0].label == expected
    assert results[0].top_domain == "telecom"
    assert results[3].top_domain == "marketplace"


def test_predictor_ranks_every_label_with_confidences(predictor):
    [result] = predictor.predict([_chat("где мой заказ")], top_k=None)
    topic = result.predictions["topic"]
    assert len(topic) == 27
    confidences = [item.confidence for item in topic]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-3)


def test_predictor_top_k_and_tasks(predictor):
    [result] = predictor.predict([_chat("где мой заказ")], tasks=["resolution"], top_k=2)
    assert list(result.predictions) == ["resolution"]
    assert len(result.predictions["resolution"]) == 2


def test_predictor_macros_follow_labels(predictor):
    [telecom, market] = predictor.predict(
        [_call("сняли деньги непонятно с баланса"), _chat("перевожу обращение на специалиста")], top_macros=3
    )
    assert telecom.macros[0].id == "M01"
    # the client's words fill {суть}; nothing the operator did is in the text, so the rest stay {slot}
    assert telecom.macros[0].filled_slots == {"суть": "сняли деньги непонятно с баланса"}
    assert telecom.macros[0].missing_slots == ("действия", "рекомендации")
    assert telecom.macros[0].text.startswith("Претензия: сняли деньги непонятно с баланса. Выполнено: {действия}")
    assert telecom.comment_required is not None and telecom.comment_required.required is True
    assert all(0 <= m.confidence <= 1 for m in market.macros)


def test_predictor_unknown_task_and_bad_top_k(predictor):
    with pytest.raises(InputError, match=r"unknown task\(s\) \['intent'\]"):
        predictor.predict([_chat("x")], tasks=["intent"])
    with pytest.raises(InputError, match="top_k must be >= 1"):
        predictor.predict([_chat("x")], top_k=0)


def test_predictor_batch_equals_single_and_threads(predictor):
    texts = [_chat(f"где мой заказ {i}") for i in range(20)] + [_call("интернет не грузит")] * 5
    batch = predictor.predict(texts)
    singles = [predictor.predict([t])[0] for t in texts]
    assert batch == singles
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda t: predictor.predict([t])[0], texts * 4))
    assert threaded == singles * 4


def test_predictor_decision_label_group_or_abstain(predictor):
    task = predictor.taxonomy.tasks["reason2"]
    classes = ["Не могу выйти в интернет", "Низкая скорость. Почему?", "Другое"]
    sure = decide(task, classes, np.array([0.9, 0.05, 0.05]), DecisionPolicy())
    assert sure == Decision(label="Не могу выйти в интернет", confidence=0.9, level="label")
    # the leaf is unsure, but both candidates are in one group
    group = decide(task, classes, np.array([0.45, 0.4, 0.15]), DecisionPolicy())
    assert group.level == "group" and group.label == "Неработоспособность"
    assert group.confidence == pytest.approx(0.85)
    policy = DecisionPolicy.from_dict({"tasks": {"reason2": {"threshold": 0.95, "group_threshold": 0.99}}})
    assert decide(task, classes, np.array([0.9, 0.05, 0.05]), policy).label is None
    near_tie = DecisionPolicy(margin=0.2)
    assert decide(task, ["Другое", "Процедуры"], np.array([0.55, 0.45]), near_tie).label is None
    # a threshold of None (stored 1.01): that level never decides, even at confidence 1
    never = DecisionPolicy(tasks={"reason2": TaskPolicy(threshold=None, group_threshold=None)})
    assert decide(task, classes, np.array([1.0, 0.0, 0.0]), never).level is None
    [result] = predictor.predict([_chat("где мой заказ статус не меняется")])
    assert set(result.decisions) == {"reason2", "topic", "resolution"}


def test_predictor_steps_prepare_score_postprocess(predictor):
    """predict is prepare → score → postprocess, each a public step."""
    rows = [_call("интернет не грузит страницы"), _chat("где мой заказ")]
    items = predictor.prepare(rows)
    assert [x.channel for x in items] == ["call", "chat"]
    assert predictor.prepare(items) == items  # records pass through
    scores = predictor.score(items)
    assert set(scores.task_probs) == set(predictor.tasks) and scores.macro_raw is not None
    assert predictor.score(items, with_macros=False).macro_raw is None
    stepwise = predictor.postprocess(items, scores, tasks=["topic"], top_k=2, top_macros=1)
    assert stepwise == predictor.predict(rows, tasks=["topic"], top_k=2, top_macros=1)
    with pytest.raises(InputError, match=r"interactions\[1\]"):
        predictor.prepare([rows[0], {"channel": "chat"}])


def test_suggestion_only_and_to_dict(predictor):
    [full] = predictor.predict([_call("сняли деньги непонятно с баланса")], top_k=None)
    assert isinstance(full, Suggestion)
    cut = full.only(["topic", "reason2"], top_k=2)
    assert list(cut.predictions) == list(cut.decisions) == ["topic", "reason2"]
    assert cut.predictions["reason2"] == full.predictions["reason2"][:2]
    assert cut.macros == full.macros and cut.domains == full.domains
    body = full.to_dict()
    assert list(body) == ["predictions", "decisions", "domains", "macros", "comment_required"]
    assert body["predictions"]["reason2"][0] == {"label": "За что списание?", "confidence": pytest.approx(0.5, abs=0.5)}
    assert all(list(d) == ["label", "confidence", "level", "reason"] for d in body["decisions"].values())
    assert list(body["macros"][0]) == ["id", "title", "text", "confidence", "filled_slots", "missing_slots"]
    assert body["comment_required"]["required"] is True
    assert {"rule", "seed_rule", "because"} == set(body["comment_required"]["reasons"][0])


def test_predictor_loads_from_a_path(trained_bundle_dir):
    assert Predictor.load(trained_bundle_dir).model_version.startswith("podskazka-tfidf-")


def test_predictor_by_label_macros_of_a_bundle_before_the_ranker(predictor):
    """A bundle written before the macro ranker holds the by-label table alone: no raw macro scores, the
    macros ranked by P(macro | labels), in a batch and in a live update alike."""
    stats = predictor.bundle.macros.stats_
    old = Predictor(replace(predictor.bundle, macros=stats))
    rows = [_call("сняли деньги непонятно с баланса"), _chat("перевожу обращение на специалиста")]
    items = old.prepare(rows)
    scores = old.score(items)
    assert scores.macro_raw is None
    task_probs = adjust_probabilities(old.taxonomy, old.bundle.decision, items, scores.task_probs)
    batch = old.predict(rows, top_macros=3)
    for row, result in enumerate(batch):
        by_label = stats.score(task_probs, scores.domain_probs, old.bundle.domains, row)
        expected = sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert [(m.id, m.confidence) for m in result.macros] == [(i, round(c, 6)) for i, c in expected]
    assert batch[0].macros != predictor.predict(rows[:1], top_macros=3)[0].macros  # the ranker mixes in more
    state = old.live_state("call")
    assert state is not None and state.macros is None  # live running sums for the model, none for macros
    live = old.predict_live(state, items[0], top_macros=3)
    assert [m.id for m in live.macros] == [m.id for m in batch[0].macros]
    assert [m.confidence for m in live.macros] == pytest.approx([m.confidence for m in batch[0].macros], abs=1e-5)
