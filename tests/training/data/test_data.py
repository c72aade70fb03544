import json

import pandas as pd
import pytest

from model.conversation.taxonomy import load_taxonomy
from model.errors import DataError
from tests.factories import make_rows, write_jsonl
from training.data.load import load_data


@pytest.fixture(scope="module")
def tax(taxonomy_path):
    return load_taxonomy(taxonomy_path)


def test_data_jsonl_rows_and_partial_labels(tmp_path, tax):
    path = write_jsonl(tmp_path / "a.jsonl", make_rows(2))
    data = load_data([path], tax)
    assert len(data.rows) == len(make_rows(2))
    telecom = [r.interaction for r in data.rows if "reason2" in r.interaction.labels]
    assert telecom and all("topic" not in x.labels for x in telecom)
    assert data.rows[0].group.startswith("t-")
    assert data.files[0]["rows"] == len(data.rows) and len(data.files[0]["sha256"]) == 64


def test_data_folder_is_expanded(tmp_path, tax):
    write_jsonl(tmp_path / "d" / "a.jsonl", make_rows(2)[:3])
    write_jsonl(tmp_path / "d" / "sub" / "b.jsonl", make_rows(2)[3:6])
    assert len(load_data([tmp_path / "d"], tax).rows) == 6


def test_data_csv_with_column_mapping_and_role_lines(tmp_path, tax):
    path = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "conversation": ["Клиент: у меня не грузит интернет\nОператор: перезагрузите телефон", "сняли деньги"],
            "label": ["Не могу выйти в интернет", "За что списание?"],
            "kanal": ["call", "chat"],
        }
    ).to_csv(path, index=False)
    data = load_data([path], tax, column_map={"text": "conversation", "reason2": "label", "channel": "kanal"})
    first = data.rows[0].interaction
    assert [t.role for t in first.turns] == ["client", "operator"]
    assert first.channel == "call" and first.labels == {"reason2": "Не могу выйти в интернет"}
    assert [t.role for t in data.rows[1].interaction.turns] == ["client"]


def test_data_parquet(tmp_path, tax):
    path = tmp_path / "h.parquet"
    rows = make_rows(2)[:4]
    pd.DataFrame(rows).to_parquet(path)
    data = load_data([path], tax)
    assert [r.interaction.labels for r in data.rows] == [
        {k: r[k] for k in ("reason2", "topic", "resolution") if k in r} for r in rows
    ]
    assert data.rows[0].interaction.turns[1].text == rows[0]["turns"][1]["text"]


def test_data_unknown_label_listed_with_rows_and_fix(tmp_path, tax):
    rows = make_rows(2)[:2]
    rows[1]["reason2"] = "Роуминг"
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(DataError, match=r"a.jsonl:2: label 'Роуминг' is not in task 'reason2'") as err:
        load_data([path], tax)
    assert "put it under tasks.<task>.labels" in err.value.message


def test_data_empty_text_names_row(tmp_path, tax):
    rows = make_rows(2)[:3]
    rows[2]["turns"] = [{"role": "client", "text": "  "}]
    with pytest.raises(DataError, match=r"a.jsonl:3: every turn's text is empty"):
        load_data([write_jsonl(tmp_path / "a.jsonl", rows)], tax)


def test_data_missing_text_column(tmp_path, tax):
    path = tmp_path / "x.csv"
    pd.DataFrame({"body": ["a"], "reason2": ["Другое"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"no 'turns' or 'text' column \(found \['body', 'reason2'\]\)"):
        load_data([path], tax)
    with pytest.raises(DataError, match="column 'message' .* is missing"):
        load_data([path], tax, column_map={"text": "message"})


def test_data_broken_json_line_named(tmp_path, tax):
    path = tmp_path / "a.jsonl"
    good = json.dumps(make_rows(2)[0], ensure_ascii=False)
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:2: not valid JSON"):
        load_data([path], tax)


def test_data_unreadable_and_missing_files(tmp_path, tax):
    with pytest.raises(DataError, match="no such file or folder"):
        load_data([tmp_path / "nope.jsonl"], tax)
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot be read as PARQUET"):
        load_data([bad], tax)
    odd = tmp_path / "c.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_data([odd], tax)
