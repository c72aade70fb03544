"""Live scoring by running sums gives what a full prediction gives, whatever edits the turns went through."""

import random

import pytest

from model.conversation.record import Interaction, Turn
from model.suggestion import Suggestion

WORDS = (
    "сняли деньги непонятно интернет не грузит где мой заказ вернут на карту перейти с номером "
    "билайн здравствуйте оператор переключу вас специалист 4g тариф 350 рублей"
).split()


def _turn(rng: random.Random) -> Turn:
    role = rng.choice(["client", "client", "operator", "bot"])
    n = rng.choice([0, 1, 2, 5, 12])
    return Turn(role, " ".join(rng.choice(WORDS) for _ in range(n)))


def _same(live: Suggestion, full: Suggestion) -> None:
    for task, ranked in full.predictions.items():
        got = {p.label: p.confidence for p in live.predictions[task]}
        for p in ranked:
            assert got[p.label] == pytest.approx(p.confidence, abs=1e-5), task
    assert [d.label for d in live.domains] == [d.label for d in full.domains]
    live_conf = [m.confidence for m in live.macros]
    full_conf = [m.confidence for m in full.macros]
    assert live_conf == pytest.approx(full_conf, abs=1e-5)  # the same ranking (ids may swap only on ties)
    for a, b in zip(live.macros, full.macros):
        assert a.id == b.id or a.confidence == pytest.approx(b.confidence, abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_live_running_sums_equal_full_prediction(predictor, seed):
    rng = random.Random(seed)
    channel = rng.choice(["call", "chat", "email"])
    state = predictor.live_state(channel)
    assert state is not None  # the TF-IDF kind scores incrementally
    turns: list[Turn] = []
    for _step in range(40):
        op = rng.random()
        if op < 0.6 or not turns:
            turns.append(_turn(rng))  # a new turn
        elif op < 0.8:
            turns[-1] = Turn(turns[-1].role, turns[-1].text + " " + rng.choice(WORDS))  # a partial grows
        elif op < 0.9:
            turns = turns[rng.randint(1, 3) :]  # the window slides
        else:
            turns = turns[:-1]  # a partial withdrawn
        x = Interaction(turns=tuple(turns), channel=channel)
        if not turns:
            continue
        live = predictor.predict_live(state, x, top_k=None)
        full = predictor.predict([x], top_k=None)[0]
        _same(live, full)


def test_live_update_touches_only_the_new_turn(predictor):
    """The state after N turns holds N parts; adding one turn adds one part (no recomputation)."""
    state = predictor.live_state("call")
    turns = tuple(Turn("client", f"сняли деньги {i}") for i in range(30))
    predictor.predict_live(state, Interaction(turns=turns, channel="call"))
    model_state = state.model
    parts_before = [id(p) for p in model_state.full["word"].parts]
    predictor.predict_live(state, Interaction(turns=turns + (Turn("operator", "сейчас проверю"),), channel="call"))
    parts_after = [id(p) for p in model_state.full["word"].parts]
    assert parts_after[:-1] == parts_before and len(parts_after) == len(parts_before) + 1


def test_live_comment_hint_keeps_what_older_turns_triggered(predictor):
    """The live comment rules read a window of recent turns; a claim made early in a long call stays."""
    state = predictor.live_state("call")
    turns = [Turn("client", "у меня сняли деньги непонятно за что, верните")]
    turns += [Turn("operator" if i % 2 else "client", f"хорошо понятно минуту {i}") for i in range(40)]
    for n in range(1, len(turns) + 1):
        live = predictor.predict_live(state, Interaction(turns=tuple(turns[:n]), channel="call"))
    full = predictor.predict([Interaction(turns=tuple(turns), channel="call")])[0]
    if full.comment_required is None:
        pytest.skip("the served taxonomy has no comment rules")
    full_rules = {r.rule for r in full.comment_required.reasons}
    assert "claim" in full_rules
    assert live.comment_required is not None and live.comment_required.required
    assert "claim" in {r.rule for r in live.comment_required.reasons}


def test_live_running_sums_without_the_channel_token(tmp_path_factory, taxonomy_path):
    """``channel_token: false`` (views without __call__/__chat__): the live sums still equal a full prediction."""
    from model.predictor import Predictor
    from tests.factories import train_kind

    _, out = train_kind(tmp_path_factory, taxonomy_path, "tfidf", {"channel_token": False})
    predictor = Predictor.load(out)
    state = predictor.live_state("call")
    turns: list[Turn] = []
    rng = random.Random(5)
    for _ in range(12):
        turns.append(_turn(rng))
        x = Interaction(turns=tuple(turns), channel="call")
        _same(predictor.predict_live(state, x, top_k=None), predictor.predict([x], top_k=None)[0])
