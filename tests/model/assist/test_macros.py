"""Macro ranking learned on a tiny corpus: history, labels and ``when`` rules; saved and loaded safely."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.assist.macros import MacroRanker, MacroStats, RankerConfig, load_macros
from model.conversation.record import interaction_from_dict
from model.conversation.taxonomy import load_taxonomy
from model.errors import BundleError, ConfigError, NotFittedError
from model.suggestion import CommentHint
from tests.conftest import TAXONOMY
from tests.factories import make_rows

DOMAINS = {"reason2": "telecom", "topic": "marketplace", "resolution": "marketplace"}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(TAXONOMY)


@pytest.fixture(scope="module")
def rows():
    return [interaction_from_dict(r, label_tasks=("reason2", "topic", "resolution")) for r in make_rows()]


@pytest.fixture(scope="module")
def ranker(rows, taxonomy) -> MacroRanker:
    return MacroRanker().fit(rows, ["reason2", "topic", "resolution"], taxonomy)


def _chat(*turns: tuple[str, str]):
    return interaction_from_dict({"channel": "chat", "turns": [{"role": r, "text": t} for r, t in turns]})


def _top(ranker, interactions, task_probs=None, domain_probs=None) -> list[str]:
    scores = ranker.rank(interactions, task_probs or {}, domain_probs, DOMAINS)
    return [ranker.macro_ids_[int(np.argmax(row))] for row in scores]


def test_macro_ranker_learns_what_operators_used(ranker):
    created = _chat(("client", "где мой заказ трек"), ("operator", "создала задание ответ придет в течение трех дней"))
    escalated = _chat(
        ("client", "когда вернут деньги"), ("operator", "перевожу обращение на специалиста другого отдела")
    )
    charge = interaction_from_dict({"channel": "call", "turns": [{"role": "client", "text": "сняли деньги непонятно"}]})
    assert _top(ranker, [created, escalated, charge]) == ["M16", "M18", "M01"]


def test_macro_ranker_confidences_are_probabilities_in_library_order(ranker, taxonomy):
    scores = ranker.rank([_chat(("client", "здравствуйте"))], {}, None, DOMAINS)
    assert scores.shape == (1, len(taxonomy.macros))
    assert ranker.macro_ids_ == list(taxonomy.macros)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_macro_ranker_uses_predicted_labels(ranker):
    text = [_chat(("client", "вопрос"))]
    solved = {"resolution": (["Не решено", "Не решено - Эскалировать", "Решено"], np.array([[0.0, 0.0, 1.0]]))}
    escalated = {"resolution": (["Не решено", "Не решено - Эскалировать", "Решено"], np.array([[0.0, 1.0, 0.0]]))}
    signals_solved = ranker.signals(text, solved, None, DOMAINS)["labels"][0]
    signals_escalated = ranker.signals(text, escalated, None, DOMAINS)["labels"][0]
    m15, m18 = ranker.macro_ids_.index("M15"), ranker.macro_ids_.index("M18")
    assert signals_solved[m15] > signals_solved[m18]
    assert signals_escalated[m18] > signals_escalated[m15]


def test_macro_ranker_when_rule_signal_reads_the_text(ranker):
    # M22's rule: "Рекламные сообщения, ссылки, вопросы не по работе компании" — no training row used it
    spam = _chat(("client", "рекламные сообщения и ссылки: заработок в интернете, вопросы не по работе компании"))
    when = ranker.signals([spam], {}, None, DOMAINS)["when"][0]
    assert ranker.macro_ids_[int(np.argmax(when))] == "M22"


def test_macro_ranker_save_load_identical(tmp_path, ranker, taxonomy):
    ranker.save(tmp_path)
    assert {p.name for p in (tmp_path / "macros").iterdir()} == {
        "char.json",
        "char.idf.npy",
        "coef.npy",
        "intercept.npy",
    }
    loaded = load_macros(tmp_path, taxonomy)
    assert isinstance(loaded, MacroRanker)
    x = [_chat(("client", "когда вернут деньги за возврат"), ("operator", "создала задание"))]
    np.testing.assert_allclose(loaded.rank(x, {}, None, DOMAINS), ranker.rank(x, {}, None, DOMAINS), rtol=1e-6)


def test_load_macros_reads_by_label_bundles(tmp_path, rows, taxonomy):
    MacroStats.fit(rows, ["reason2"], taxonomy).save(tmp_path)
    assert isinstance(load_macros(tmp_path, taxonomy), MacroStats)


def test_load_macros_refuses_inconsistent_weights(tmp_path, ranker, taxonomy):
    ranker.save(tmp_path)
    np.save(tmp_path / "macros" / "coef.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(BundleError, match=r"macro weights have shape \(2, 3\)"):
        load_macros(tmp_path, taxonomy)
    (tmp_path / "macros.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="macros.json: cannot be read as JSON"):
        load_macros(tmp_path, taxonomy)


def test_ranker_config_and_fit_errors(taxonomy):
    with pytest.raises(ConfigError, match="macros.w_when must be >= 0, got -1"):
        RankerConfig(w_when=-1)
    with pytest.raises(ConfigError, match="must be > 0"):
        RankerConfig(w_history=0, w_labels=0, w_when=0)
    with pytest.raises(ConfigError, match="macros.C must be > 0"):
        RankerConfig(C=0)
    with pytest.raises(NotFittedError, match="MacroRanker is not trained yet"):
        MacroRanker().rank([_chat(("client", "x"))], {}, None, DOMAINS)


def test_bundle_holds_the_ranker_and_predictor_fills_slots(trained_bundle_dir, predictor):
    manifest = json.loads((trained_bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    assert {"macros.json", "macros/coef.npy", "macros/char.json"} <= set(manifest["files"])
    [result] = predictor.predict(
        [
            {
                "channel": "chat",
                "turns": [
                    {"role": "client", "text": "где мой заказ 12345678-0012 трек не обновляется"},
                    {"role": "operator", "text": "создала задание в службу доставки ответ придет в течение 3 дней"},
                ],
            }
        ],
        top_macros=3,
    )
    top = result.macros[0]
    assert top.id == "M16"
    assert top.filled_slots["номер_заказа"] == "12345678-0012"
    assert top.text == (
        "Создано задание «в службу доставки» по заказу № 12345678-0012. Клиенту сообщен срок ответа: в течение 3 дней."
    )
    assert top.missing_slots == ()
    assert result.comment_required == CommentHint(required=False)


def test_suggest_schema_carries_new_fields(predictor):
    from serve.schemas import SuggestResponse

    [result] = predictor.predict([{"channel": "call", "text": "сняли деньги непонятно с баланса"}])
    response = SuggestResponse(interaction_id="x", model_version=predictor.model_version, **result.to_dict())
    body = response.model_dump()
    assert "filled_slots" in body["macros"][0] and "missing_slots" in body["macros"][0]
    assert body["comment_required"]["required"] is True
    assert body["comment_required"]["reasons"][0]["rule"] == "claim"
