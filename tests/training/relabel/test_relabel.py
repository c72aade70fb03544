"""Batch re-labelling: streaming of each format, rejects, the diff report, resumption after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.errors import ConfigError, DataError, InputError
from tests.factories import make_rows, write_jsonl
from training.relabel import RelabelConfig, read_output, relabel
from training.relabel.outputs import MANIFEST, PARTS, JobStore, part_name
from training.relabel.sources import InputFile, iter_chunks

ROOT = Path(__file__).resolve().parents[3]
TASKS = ["reason2", "topic", "resolution"]


def many_rows(n: int) -> list[dict]:
    base = make_rows()
    return [dict(base[i % len(base)], id=f"r{i}") for i in range(n)]


def run(model, inputs, out, **kwargs) -> dict:
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("progress", False)
    return relabel(RelabelConfig(model=model, inputs=[str(p) for p in inputs], output=out, **kwargs))


def output_rows(out) -> list[dict]:
    return pa.concat_tables(list(read_output(out))).to_pylist()


def rejects(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]


def test_relabel_jsonl_labels_every_row_once_in_order(tmp_path, trained_bundle_dir, predictor):
    rows = make_rows()
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    report = run(trained_bundle_dir, [path], tmp_path / "out", batch_size=7)
    out = output_rows(tmp_path / "out")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert report["rows"] == report["labelled"] == len(rows) and report["parts"] == -(-len(rows) // 7)
    expected = predictor.predict(rows, top_k=3, top_macros=0)
    for got, want, row in zip(out, expected, rows):
        assert got["model_version"] == predictor.model_version
        for task in TASKS:
            assert got[f"{task}_top3"] == [x.to_dict() for x in want.predictions[task]]
            other_domain = want.decisions[task].reason == "other_domain"  # issue #12: null, not a guess
            assert got[f"{task}_label"] == (None if other_domain else want.predictions[task][0].label)
            assert got[f"{task}_decision"] == want.decisions[task].label  # None when it abstains
            assert got[f"{task}_decision_level"] == want.decisions[task].level
            assert got[f"{task}_old"] == row.get(task)
            assert got[f"{task}_changed"] == (None if task not in row else row[task] != got[f"{task}_label"])
    assert any(r["reason2_decision"] is None for r in out)  # marketplace rows: reason2 abstains


def test_relabel_streams_each_format_in_chunks_of_batch_size(tmp_path):
    rows = many_rows(23)
    jsonl = write_jsonl(tmp_path / "a.jsonl", rows)
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=4)  # chunks cross row groups
    csv = tmp_path / "a.csv"
    pd.DataFrame({"id": [r["id"] for r in rows], "text": ["client: " + r["turns"][1]["text"] for r in rows]}).to_csv(
        csv, index=False
    )
    for path, fmt in ((jsonl, "json"), (parquet, "parquet"), (csv, "csv")):
        chunks = list(iter_chunks(InputFile(str(path), fmt, 0, 0), 5))
        assert [i for i, _ in chunks] == [0, 1, 2, 3, 4]
        assert [t.num_rows for _, t in chunks] == [5, 5, 5, 5, 3]
        assert [n for _, t in chunks for n in t.column("_source_row").to_pylist()] == list(range(1, 24))


def test_relabel_parquet_with_nested_turns_and_integer_ids(tmp_path, trained_bundle_dir):
    rows = [dict(r, id=i) for i, r in enumerate(make_rows(2))]
    path = tmp_path / "h.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
    run(trained_bundle_dir, [path], tmp_path / "out", batch_size=4, tasks=["topic"])
    out = output_rows(tmp_path / "out")
    assert [r["id"] for r in out] == [str(i) for i in range(len(rows))]
    assert "reason2_label" not in out[0] and out[0]["topic_top3"]


def test_relabel_csv_role_lines_column_map_and_bad_rows(tmp_path, trained_bundle_dir):
    path = tmp_path / "history.csv"
    path.write_bytes(
        "call_id,conversation,category\n"
        'c1,"Клиент: у меня интернет не грузит совсем\nОператор: перезагрузите",Не могу выйти в интернет\n'
        "c2,сняли деньги непонятно с баланса,Не могу выйти в интернет\n".encode()
        + b"c3,"
        + "сняли деньги".encode("cp1251")
        + b",\n"
        + b"c4,too,many,fields\n"
        + b"c5,,\n"
    )
    report = run(
        trained_bundle_dir,
        [path],
        tmp_path / "out",
        column_map={"id": "call_id", "text": "conversation", "reason2": "category"},
    )
    out = output_rows(tmp_path / "out")
    assert [r["id"] for r in out] == ["c1", "c2"]
    assert out[0]["reason2_label"] == "Не могу выйти в интернет" and out[0]["reason2_changed"] is False
    assert out[1]["reason2_label"] == "За что списание?" and out[1]["reason2_changed"] is True
    assert report["rejected_by_reason"] == {"empty_text": 1, "invalid_row": 1, "undecodable_bytes": 1}
    by_reason = {r["reason"]: r for r in rejects(tmp_path / "out")}
    assert by_reason["undecodable_bytes"]["id"] == "c3" and "conversation" in by_reason["undecodable_bytes"]["detail"]
    assert "expected 3" in by_reason["invalid_row"]["detail"]


def test_relabel_bad_rows_go_to_rejects_and_the_job_goes_on(tmp_path, trained_bundle_dir):
    path = write_jsonl(tmp_path / "in.jsonl", make_rows(2)[:3])
    with open(path, "ab") as fh:
        fh.write(b'{"id": "j", "text": \n')
        fh.write('{"id": "u", "text": "сняли деньги"}'.encode("cp1251") + b"\n")
        fh.write(b'{"text": "no id"}\n\n')
        fh.write(b'{"id": "e", "turns": [{"role": "client", "text": "  "}]}\n')
        fh.write(b'["not", "an object"]\n')
        fh.write(b'{"id": "ok", "text": "where is my order"}\n')
    report = run(trained_bundle_dir, [path], tmp_path / "out", batch_size=2)
    assert [r["id"] for r in output_rows(tmp_path / "out")][-1] == "ok"
    assert report["labelled"] == 4 and report["rejected"] == 5
    assert report["rejected_by_reason"] == {"broken_json": 2, "empty_text": 1, "missing_id": 1, "undecodable_bytes": 1}
    found = rejects(tmp_path / "out")
    assert [(r["source_row"], r["reason"]) for r in found] == [
        (4, "broken_json"),
        (5, "undecodable_bytes"),
        (6, "missing_id"),
        (8, "empty_text"),
        (9, "broken_json"),
    ]
    assert found[3]["id"] == "e" and "not UTF-8" in found[1]["detail"]


def test_relabel_duplicate_ids_first_kept_rest_rejected(tmp_path, trained_bundle_dir):
    """Issue #11 finding 10: a repeated id was written twice with different labels, unreported. The
    first row with an id is kept; later ones (in another chunk or file too) go to the rejects."""
    rows = make_rows(2)[:5]
    first = write_jsonl(
        tmp_path / "a.jsonl",
        rows
        + [
            {"id": rows[0]["id"], "channel": "chat", "text": "где мой заказ статус не меняется"},  # row 6, chunk 3
            {"id": "blank", "channel": "chat", "text": "   "},  # rejected as empty: claims no id
            {"id": "blank", "channel": "chat", "text": "где мой заказ"},
        ],
    )
    second = write_jsonl(tmp_path / "b.jsonl", [{"id": rows[1]["id"], "channel": "call", "text": "сняли деньги"}])
    report = run(trained_bundle_dir, [first, second], tmp_path / "out", batch_size=2)
    ids = [r["id"] for r in output_rows(tmp_path / "out")]
    assert ids == [r["id"] for r in rows] + ["blank"] and len(set(ids)) == len(ids)
    assert report["rejected_by_reason"] == {"duplicate_id": 2, "empty_text": 1}
    found = [r for r in rejects(tmp_path / "out") if r["reason"] == "duplicate_id"]
    assert [(Path(r["source_file"]).name, r["source_row"], r["id"]) for r in found] == [
        ("a.jsonl", 6, rows[0]["id"]),
        ("b.jsonl", 1, rows[1]["id"]),
    ]
    assert "a.jsonl row 1" in found[0]["detail"] and "the first is kept" in found[0]["detail"]
    again = run(trained_bundle_dir, [first, second], tmp_path / "out", batch_size=2)  # a resume changes nothing
    assert again["rejected_by_reason"] == report["rejected_by_reason"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "x.parquet").write_bytes(b"not parquet at all"), "cannot be opened as PARQUET"),
        (lambda d: (d / "x.csv").write_text("id,body\n1,hello\n"), "no 'turns' or 'text' column"),
        (lambda d: (d / "x.csv").write_text("key,text\n1,hello\n"), "no 'id' column"),
        (lambda d: (d / "x.txt").write_text("hello"), "unsupported file type"),
        (lambda d: None, "no such file or folder"),
    ],
)
def test_relabel_unreadable_input_stops_before_any_output(tmp_path, trained_bundle_dir, make, message):
    good = write_jsonl(tmp_path / "in" / "good.jsonl", make_rows(2)[:2])
    make(tmp_path / "in")
    bad = next((p for p in (tmp_path / "in").iterdir() if p.name.startswith("x.")), tmp_path / "in" / "x.jsonl")
    with pytest.raises(DataError, match=message):
        run(trained_bundle_dir, [good, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_relabel_diff_report_counts_old_to_new(tmp_path, trained_bundle_dir):
    rows = make_rows()
    swapped = [r["id"] for r in rows if r.get("reason2") == "За что списание?"][:4]
    for r in rows:
        if r["id"] in swapped:
            r["reason2"] = "Старая метка"  # a label of an older taxonomy
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    report = run(trained_bundle_dir, [path], tmp_path / "out", batch_size=8)
    saved = json.loads((tmp_path / "out" / "diff.json").read_text(encoding="utf-8"))
    assert saved == report
    reason2 = report["tasks"]["reason2"]
    assert reason2["compared"] == sum("reason2" in r for r in rows) and reason2["changed"] == 4
    assert {"old": "Старая метка", "new": "За что списание?", "count": 4} in reason2["old_to_new"]
    # marketplace rows are routed to their domain: no reason2 label is written for them (issue #12)
    assert sum(reason2["new_labels"].values()) == sum("reason2" in r for r in rows)
    markdown = (tmp_path / "out" / "diff.md").read_text(encoding="utf-8")
    assert "| Старая метка | За что списание? | 4 |" in markdown and "| reason2 | 30 | 4 |" in markdown


def test_relabel_resumes_after_sigkill_with_every_row_exactly_once(tmp_path, trained_bundle_dir):
    rows = many_rows(1200)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "training.cli",
        "relabel",
        "--model",
        str(trained_bundle_dir),
        "--input",
        str(path),
        "--output",
        str(out),
        "--batch-size",
        "40",
        "--workers",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ((out / MANIFEST).exists() and len((out / MANIFEST).read_bytes().splitlines()) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, "the job ended or never started"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers, mid-run
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "diff.json").exists()
    finished = len((out / MANIFEST).read_bytes().splitlines())
    assert finished < 30  # killed part-way
    report = run(trained_bundle_dir, [path], out, batch_size=40)
    resumed = output_rows(out)
    assert [r["source_row"] for r in resumed] == list(range(1, 1201))
    assert [r["id"] for r in resumed] == [r["id"] for r in rows] and report["rows"] == 1200
    run(trained_bundle_dir, [path], tmp_path / "clean", batch_size=40)
    assert resumed == output_rows(tmp_path / "clean")


def test_relabel_recovers_torn_manifest_stray_parts_and_temp_files(tmp_path, trained_bundle_dir):
    rows = many_rows(40)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    run(trained_bundle_dir, [path], out, batch_size=10)
    lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    # a kill between a part's rename and its manifest line, then one in the middle of the next line
    (out / MANIFEST).write_text("\n".join(lines[:2]) + "\n" + lines[2][:17], encoding="utf-8")
    (out / PARTS / f".{part_name(0, 3)}.999.tmp").write_bytes(b"half a parquet file")
    (out / "diff.json").unlink()
    report = run(trained_bundle_dir, [path], out, batch_size=10)
    assert [r["id"] for r in output_rows(out)] == [r["id"] for r in rows] and report["rows"] == 40
    assert len((out / MANIFEST).read_text(encoding="utf-8").splitlines()) == 4
    assert not list((out / PARTS).glob(".*.tmp"))


def test_relabel_refuses_an_output_folder_of_another_job(tmp_path, trained_bundle_dir):
    path = write_jsonl(tmp_path / "in.jsonl", make_rows(2)[:4])
    run(trained_bundle_dir, [path], tmp_path / "out", batch_size=2)
    with pytest.raises(ConfigError, match=r"another re-labelling job \(it differs in \['batch_size'\]\)"):
        run(trained_bundle_dir, [path], tmp_path / "out", batch_size=3)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no re-labelling job"):
        run(trained_bundle_dir, [path], tmp_path / "other")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "flink"}, "engine must be one of"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"inputs": []}, "at least one --input"),
    ],
)
def test_relabel_config_checks_each_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RelabelConfig(**{"model": "m", "inputs": ["x.jsonl"], "output": "o", **kwargs})


def test_relabel_workers_set_to_none_after_the_config_is_built_is_refused_before_output(tmp_path):
    config = RelabelConfig(model="m", inputs=["x.jsonl"], output=tmp_path / "out", workers=2)
    config.workers = None  # __post_init__ resolved None to the core count; this bypasses it
    with pytest.raises(ConfigError, match="workers was set to None after the config was built"):
        relabel(config)
    assert not (tmp_path / "out").exists()


def test_relabel_job_store_records_only_while_open(tmp_path):
    store = JobStore(tmp_path / "out")
    with pytest.raises(RuntimeError, match=r"needs an open job: call open\(\) first"):
        store.record({"file": 0, "chunk": 0, "part": part_name(0, 0)})
    store.open({"inputs": []})
    store.record({"file": 0, "chunk": 0, "part": part_name(0, 0)})
    store.close()
    with pytest.raises(RuntimeError, match="needs an open job"):
        store.record({"file": 0, "chunk": 1, "part": part_name(0, 1)})
    assert [(e["file"], e["chunk"]) for e in store.finished()] == [(0, 0)]


def test_relabel_job_store_refusal_releases_the_folder_lock(tmp_path):
    """A folder refused for holding another job is not left locked: the right job opens it next, in the same process."""
    first = JobStore(tmp_path / "out")
    first.open({"inputs": ["a.jsonl"]})
    first.close()
    refused = JobStore(tmp_path / "out")
    with pytest.raises(ConfigError, match="holds another re-labelling job"):
        refused.open({"inputs": ["b.jsonl"]})
    again = JobStore(tmp_path / "out")  # `refused` is still alive: its lock must be gone
    again.open({"inputs": ["a.jsonl"]})
    again.close()


def test_relabel_unknown_task_is_refused_before_output(tmp_path, trained_bundle_dir):
    path = write_jsonl(tmp_path / "in.jsonl", make_rows(2)[:2])
    with pytest.raises(InputError, match=r"unknown task\(s\) \['reason3'\]"):
        run(trained_bundle_dir, [path], tmp_path / "out", tasks=["reason3"])
    assert not (tmp_path / "out").exists()
