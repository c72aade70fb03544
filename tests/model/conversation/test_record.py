import pytest

from model.conversation.record import MAX_CHARS, MAX_TURNS, interaction_from_dict
from model.errors import InputError


def test_record_plain_text_is_one_client_turn():
    x = interaction_from_dict({"text": "где мой заказ", "channel": "chat"})
    assert [(t.role, t.text) for t in x.turns] == [("client", "где мой заказ")]


def test_record_labels_and_macros_read():
    x = interaction_from_dict(
        {"text": "x", "reason2": "Другое", "topic": None, "macros": "M01, M02"}, label_tasks=("reason2", "topic")
    )
    assert x.labels == {"reason2": "Другое"}
    assert x.macros == ("M01", "M02")
    assert interaction_from_dict({"text": "x"}).macros is None


@pytest.mark.parametrize(
    "row, message",
    [
        ({}, "give 'turns'"),
        ({"turns": [{"role": "robot", "text": "x"}]}, "turns\\[0\\].role is 'robot'"),
        ({"turns": [{"role": "client", "text": 5}]}, "must be a string"),
        ({"turns": [{"role": "client", "text": "   "}]}, "every turn's text is empty"),
        ({"text": "x", "channel": "fax"}, "channel is 'fax'"),
        ({"turns": [{"role": "client", "text": "a"}] * (MAX_TURNS + 1)}, "the limit is 200"),
        ({"text": "я" * (MAX_CHARS + 1)}, "the limit is 20000"),
        ({"turns": "hello"}, "must be a list"),
    ],
)
def test_record_bad_input_says_what_to_fix(row, message):
    with pytest.raises(InputError, match=message):
        interaction_from_dict(row)
