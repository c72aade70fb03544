from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model.errors import InputError


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
        assert result["predictions"][task][0]["label"] == expected
    assert results[0]["domains"][0]["label"] == "telecom"
    assert results[3]["domains"][0]["label"] == "marketplace"


def test_predictor_ranks_every_label_with_confidences(predictor):
    [result] = predictor.predict([_chat("где мой заказ")], top_k=None)
    topic = result["predictions"]["topic"]
    assert len(topic) == 27
    confidences = [item["confidence"] for item in topic]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-3)


def test_predictor_top_k_and_tasks(predictor):
    [result] = predictor.predict([_chat("где мой заказ")], tasks=["resolution"], top_k=2)
    assert list(result["predictions"]) == ["resolution"]
    assert len(result["predictions"]["resolution"]) == 2


def test_predictor_macros_follow_labels(predictor):
    [telecom, market] = predictor.predict(
        [_call("сняли деньги непонятно с баланса"), _chat("перевожу обращение на специалиста")], top_macros=3
    )
    assert telecom["macros"][0]["id"] == "M01"
    # the client's words fill {суть}; nothing the operator did is in the text, so the rest stay {slot}
    assert telecom["macros"][0]["filled_slots"] == {"суть": "сняли деньги непонятно с баланса"}
    assert telecom["macros"][0]["missing_slots"] == ["действия", "рекомендации"]
    assert telecom["macros"][0]["text"].startswith("Претензия: сняли деньги непонятно с баланса. Выполнено: {действия}")
    assert telecom["comment_required"]["required"] is True
    assert all(0 <= m["confidence"] <= 1 for m in market["macros"])


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
    from model.assist.decision import decide

    task = predictor.taxonomy.tasks["reason2"]
    classes = ["Не могу выйти в интернет", "Низкая скорость. Почему?", "Другое"]
    sure = decide(task, classes, np.array([0.9, 0.05, 0.05]), {})
    assert sure == {"label": "Не могу выйти в интернет", "confidence": 0.9, "level": "label"}
    # the leaf is unsure, but both candidates are in one group
    group = decide(task, classes, np.array([0.45, 0.4, 0.15]), {})
    assert group["level"] == "group" and group["label"] == "Неработоспособность"
    assert group["confidence"] == pytest.approx(0.85)
    policy = {"tasks": {"reason2": {"threshold": 0.95, "group_threshold": 0.99}}}
    assert decide(task, classes, np.array([0.9, 0.05, 0.05]), policy)["label"] is None
    near_tie = {"margin": 0.2}
    assert decide(task, ["Другое", "Процедуры"], np.array([0.55, 0.45]), near_tie)["label"] is None
    [result] = predictor.predict([_chat("где мой заказ статус не меняется")])
    assert set(result["decisions"]) == {"reason2", "topic", "resolution"}
