from model.conversation.record import Interaction, Turn
from model.text.normalize import client_text, mask_personal_data, normalize_text, render_interaction


def test_normalize_text_folds_yo_case_and_space():
    assert normalize_text("  Ещё   ЁЖИК\tвсё ") == "еще ежик все"


def test_normalize_text_masks_personal_data():
    text = "Мой номер +7 (916) 123-45-67, почта ivan.petrov@mail.ru, карта 4276 1600 1234 5678, заказ 12345678-0012"
    out = normalize_text(text)
    assert "__phone__" in out and "__email__" in out and "__card__" in out and "__order__" in out
    assert "916" not in out and "ivan" not in out and "4276" not in out and "12345678" not in out


def test_normalize_text_numbers_become_tokens():
    assert normalize_text("списали 299,90 руб 8 числа") == "списали __num__ руб __num__ числа"


def test_mask_personal_data_keeps_case_of_rest():
    assert mask_personal_data("Звоните 8 800 555 35 35 Ивану") == "Звоните __phone__ Ивану"


def test_render_interaction_keeps_roles_and_channel():
    x = Interaction(turns=(Turn("operator", "Билайн, здравствуйте"), Turn("client", "Нет интернета")), channel="call")
    assert render_interaction(x) == "__call__ __operator__ билайн, здравствуйте __client__ нет интернета"
    assert client_text(x) == "нет интернета"
