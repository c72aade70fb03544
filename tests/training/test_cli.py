"""Issue #13 (ML-engineer points 7–12): honest splits and calibration, a usable command line (one-line
errors, fast help, --version, --force), columns and config paths, CSV lines, taxonomy drafts, unseen
labels in evaluate, relabel's progress and old labels, the model card, per-fold spread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from model.conversation.taxonomy import load_taxonomy
from model.errors import ConfigError, DataError
from tests.factories import make_rows, write_jsonl
from training.cli import app
from training.data.load import load_data
from training.fitting.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sklearn", "torch", "pandas", "datasets", "spacy", "pyarrow", "scipy", "transformers")


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


# ----------------------------------------------------------------------------- 8: usage, help, version
@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["--version"], ["trian"], ["info", "--help"]])
def test_help_and_usage_errors_import_no_heavy_module(argv):
    """#8: --help answers without scikit-learn, pandas, datasets, torch, spaCy (heavy imports are lazy)."""
    code = (
        f"import sys\nfrom training.cli import main\nsys.argv = ['podskazka'] + {argv!r}\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY=\n" in proc.stderr or proc.stderr.rstrip().endswith("HEAVY="), proc.stderr[-500:]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["trian"], "No such command 'trian'. Did you mean 'train'?"),
        (["train"], "Missing option '--data'"),
        (["train", "--data", "x.jsonl", "--out", "m", "--bogus"], "No such option: --bogus"),
        (["crossval", "--data", "x.jsonl", "--folds", "1"], "'--folds'"),
        (["train", "--data", "missing.jsonl", "--out", "m"], "missing.jsonl: no such file or folder"),
    ],
)
def test_usage_errors_are_one_line_with_the_fix(argv, expected):
    """#8: a usage error is one line on stderr (what is wrong, where to look), exit 2, no traceback."""
    proc = _cli(*argv)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), proc.stderr
    assert expected in lines[0] and "Traceback" not in proc.stderr
    if argv[0] != "train" or "--bogus" in argv or len(argv) == 1:
        assert "--help" in lines[0]  # the usage errors say where the usage is


def test_no_arguments_prints_help_and_version_prints_version():
    proc = _cli()
    assert proc.returncode == 0 and "train" in proc.stdout and "Traceback" not in proc.stderr
    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("podskazka ")


# ----------------------------------------------------------------------------- 9: config
def test_config_paths_resolve_from_the_config_file(tmp_path):
    """#9: `taxonomy:` in a config is relative to the config file, wherever the command runs."""
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    (folder / "tax.yaml").write_text(
        (ROOT / "datasets" / "taxonomy.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (folder / "c.yaml").write_text("taxonomy: tax.yaml\n", encoding="utf-8")
    assert Path(TrainConfig.load(folder / "c.yaml").taxonomy) == folder / "tax.yaml"
    # the project's own configs work from any folder
    code = "from training.fitting.config import TrainConfig; print(TrainConfig.load({!r}).taxonomy)".format(
        str(ROOT / "training" / "configs" / "default.yaml")
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert Path(out) == ROOT / "datasets" / "taxonomy.yaml"


def test_set_checks_parameter_types_and_lists_valid_names():
    """#9: --set model.params.C=abc says what C must be; an unknown name lists the valid ones."""
    with pytest.raises(ConfigError, match=r"model.params.C .*must be a number, got 'abc'"):
        TrainConfig.load(None, ["model.params.C=abc"])
    with pytest.raises(
        ConfigError, match=r"unknown parameter 'Cx' \(did you mean 'C'\?\); valid parameters are \[.*'C'.*'tol'"
    ):
        TrainConfig.load(None, ["model.params.Cx=3"])
    assert TrainConfig.load(None, ["model.params.C=3", "model.params.class_weight=null"]).model.params["C"] == 3
    proc = _cli("train", "--data", "x.jsonl", "--out", "m", "--set", "model.params.C=abc")
    assert proc.returncode == 2 and "must be a number" in proc.stderr and "'<='" not in proc.stderr


# ----------------------------------------------------------------------------- 9: CSV lines
def test_broken_csv_names_the_line(tmp_path, taxonomy_path):
    """#9: an unreadable CSV names its line and the fix, not DatasetGenerationError."""
    tax = load_taxonomy(taxonomy_path)
    cases = {
        "extra.csv": (
            'text,reason2\nпривет,Другое\n"раз, два",Другое,лишнее\n',
            r"extra.csv:3: 3 fields, the header has 2",
        ),
        "quote.csv": ('text,reason2\nпривет,Другое\nок,Другое\n"не закрыта,Другое\n', r"quote.csv:4: .*quote"),
        "bytes.csv": (b"text,reason2\n\xd0\xbf\xd1\x80,\xd0\x94\n\xff\xfe,x\n", r"bytes.csv:3: not UTF-8"),
    }
    for name, (content, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        with pytest.raises(DataError, match=pattern) as err:
            load_data([path], tax)
        assert "DatasetGenerationError" not in err.value.message


def test_rows_are_named_by_the_line_they_start_on(tmp_path, taxonomy_path):
    """#9: rows are file:line (a CSV header is line 1; a quoted value may span lines), as audit prints them."""
    path = tmp_path / "multi.csv"
    path.write_text('text,reason2\n"первая строка\nвторая строка",Другое\nок,Нет такой\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"multi.csv:4: label 'Нет такой'"):
        load_data([path], load_taxonomy(taxonomy_path))


# ----------------------------------------------------------------------------- 7: grouping, calibration
def test_split_key_falls_back_to_client_id_and_warns_when_rows_are_split_one_by_one(tmp_path, taxonomy_path):
    """#7: the data says which key grouped it; without scenario and client_id rows are split one by one,
    loudly, with the column to use."""
    tax = load_taxonomy(taxonomy_path)
    rows = make_rows(4)
    with_client = [{**{k: v for k, v in r.items() if k != "scenario"}, "client_id": r["scenario"]} for r in rows]
    data = load_data([write_jsonl(tmp_path / "c.jsonl", with_client)], tax)
    assert data.group_key == "client_id" and data.split_info()["group_by"] == "client_id"
    assert any("grouped by 'client_id' instead" in w for w in data.warnings)
    bare = [{**{k: v for k, v in r.items() if k != "scenario"}, "group_id": r["scenario"]} for r in rows]
    data = load_data([write_jsonl(tmp_path / "b.jsonl", bare)], tax)
    assert data.group_key is None and data.split_info()["group_by"] == "row"
    assert data.n_groups == len(bare)
    [warning] = data.warnings
    assert "ROWS ARE SPLIT ONE BY ONE" in warning and "--set split.group_by=group_id" in warning


def test_train_manifest_says_row_by_row(tmp_path, taxonomy_path):
    """#7: the manifest and the printed table never say "grouped by scenario" for a row split."""
    rows = [{k: v for k, v in r.items() if k != "scenario"} for r in make_rows(6)]
    path = write_jsonl(tmp_path / "bare.jsonl", rows)
    result = CliRunner().invoke(
        app, ["train", "--data", str(path), "--out", str(tmp_path / "m"), "--set", f"taxonomy={taxonomy_path}"]
    )
    assert result.exit_code == 0, result.output
    assert "split: ROW BY ROW" in result.output and "WARNING: ROWS ARE SPLIT ONE BY ONE" in result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["metrics"]["holdout"]["split"]["group_by"] == "row"
    assert manifest["metrics"]["holdout"]["split"]["group_by_requested"] == "scenario"
    assert any("ONE BY ONE" in w for w in manifest["warnings"])
    card = CliRunner().invoke(app, ["info", str(tmp_path / "m")])
    assert "ROW BY ROW" in card.output and "ONE BY ONE" in card.output


def test_calibration_that_worsens_ece_is_flagged():
    """#7: ECE after calibration above ECE before is flagged in the report and the printed table."""
    from training.evaluation.metrics import flag_calibration, format_table

    task = {
        "n": 10,
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "top3_accuracy": 0.9,
        "ece": 0.340,
        "ece_uncalibrated": 0.093,
        "per_class": {},
    }
    good = dict(task, ece=0.05)
    report = {"tasks": {"a": task, "b": good}}
    warnings = flag_calibration(report)
    assert task["calibration_worse"] is True and good["calibration_worse"] is False
    assert len(warnings) == 1 and "0.093 before, 0.340 after" in warnings[0]
    table = format_table({**report, "warnings": warnings})
    assert "CALIBRATION MADE ECE WORSE" in table and "WARNING: a: calibration made" in table


# ----------------------------------------------------------------------------- 9, 12: crossval and audit
def test_crossval_with_column_mapping_reports_per_fold_mean_and_std(tmp_path, taxonomy_path):
    """#9: crossval takes --column; #12: per-fold mean ± std beside the pooled figures."""
    rows = [{("категория" if k == "reason2" else k): v for k, v in r.items()} for r in make_rows(6)]
    path = write_jsonl(tmp_path / "renamed.jsonl", rows)
    out = tmp_path / "cv.json"
    argv = ["crossval", "--data", str(path), "--folds", "3", "--column", "reason2=категория"]
    argv += ["--set", f"taxonomy={taxonomy_path}", "--json", str(out)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["split"]["group_by"] == "scenario" and report["folds"] == 3
    summary = report["per_fold_summary"]["reason2"]["accuracy"]
    assert len(summary["values"]) == 3 and summary["std"] >= 0
    assert "per fold (mean ± std over 3 folds)" in result.output
    again = CliRunner().invoke(app, argv)  # the same command again: the report is not overwritten
    assert again.exit_code != 0 and "--force" in str(again.exception or again.output)


def test_audit_accepts_column_mapping_and_names_rows_by_line(tmp_path, taxonomy_path):
    """#9: audit takes --column; suspects are named file:line."""
    rows = make_rows(8)
    for r in rows:
        r["текст"] = r.pop("turns")
    path = write_jsonl(tmp_path / "h.jsonl", rows)
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "--data",
            str(path),
            "--folds",
            "2",
            "--column",
            "turns=текст",
            "--set",
            f"taxonomy={taxonomy_path}",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for s in (json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()):
        line = int(s["source"].rsplit(":", 1)[1])
        assert json.loads(path.read_text(encoding="utf-8").splitlines()[line - 1])["id"] == s["id"]
        assert "__" not in s["text"]


# ----------------------------------------------------------------------------- 9, 12: writers
def test_train_out_is_not_overwritten_without_force(tmp_path, taxonomy_path, trained_bundle_dir):
    """#9/#12: train --out (and every other writer) refuses an existing target unless --force."""
    import shutil

    out = tmp_path / "m"
    shutil.copytree(trained_bundle_dir, out)
    before = (out / "manifest.json").read_bytes()
    proc = _cli("train", "--data", str(tmp_path), "--out", str(out))
    assert proc.returncode == 2 and "already exists; pass --force" in proc.stderr
    assert (out / "manifest.json").read_bytes() == before
    target = tmp_path / "tax.yaml"
    target.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(app, ["taxonomy-from-data", "--data", str(tmp_path / "x.csv"), "--out", str(target)])
    assert result.exit_code != 0 and target.read_text(encoding="utf-8") == "mine"


# ----------------------------------------------------------------------------- 10: taxonomy draft, unseen labels
def _helpdesk_csv(path: Path) -> Path:
    topics = {
        ("ВИДЕО", "Загрузка видео"): "не могу загрузить видео ошибка загрузки файла",
        ("ВИДЕО", "Плеер"): "плеер тормозит видео зависает воспроизведение",
        ("МОНЕТИЗАЦИЯ", "Подключение монетизации"): "как подключить монетизацию канала доход",
        ("ДОСТУП", "Приложение\xa0"): "приложение телевизор скачать магазин",
    }
    rows = []
    for (l1, l2), words in topics.items():
        for i in range(6):
            w = words.split()
            rows.append(
                {
                    "text": f"{w[i % len(w)]} {w[(i + 1) % len(w)]} {w[(i + 2) % len(w)]} вопрос {i}",
                    "label_l1": l1,
                    "label_l2": l2 if i else l2.strip() + " ",
                    "group_id": f"{l2.strip()}{i // 2}",
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_taxonomy_from_data_counts_groups_descriptions_and_nbsp(tmp_path):
    """#10: every label column by default, labels with NBSP/stray spaces merged, counts as comments,
    L1 -> L2 groups from co-occurrence, descriptions that say to write one (with telling words)."""
    data = _helpdesk_csv(tmp_path / "helpdesk.csv")
    out = tmp_path / "tax.yaml"
    result = CliRunner().invoke(app, ["taxonomy-from-data", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tax = load_taxonomy(out)
    assert set(tax.tasks) == {"label_l1", "label_l2"}
    assert "Приложение" in tax.tasks["label_l2"].labels and len(tax.tasks["label_l2"].labels) == 4
    assert tax.tasks["label_l2"].groups["ВИДЕО"] == ("Загрузка видео", "Плеер")
    text = out.read_text(encoding="utf-8")
    assert '"Приложение": "TODO: describe this label' in text and "# 6 rows" in text
    assert "монетизацию" in tax.tasks["label_l2"].descriptions["Подключение монетизации"]
    assert "1 spelling(s) with stray whitespace merged" in result.output or "spelling" in result.output


def test_evaluate_scores_labels_unseen_in_training_as_errors(tmp_path):
    """#10: train on a drafted taxonomy, evaluate on data with a label training never had: the row is
    an error, the label is listed, nothing points at datasets/taxonomy.yaml."""
    data = _helpdesk_csv(tmp_path / "train.csv")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["taxonomy-from-data", "--data", str(data), "--out", str(tmp_path / "t.yaml")]).exit_code
        == 0
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m"),
            "--set",
            f"taxonomy={tmp_path / 't.yaml'}",
            "--set",
            "split.group_by=group_id",
        ],
    )
    assert result.exit_code == 0, result.output
    test = tmp_path / "test.csv"
    pd.DataFrame(
        [
            {"text": "загрузить видео ошибка", "label_l1": "ВИДЕО", "label_l2": "Загрузка видео"},
            {"text": "поиск не находит канал", "label_l1": "ПОИСК", "label_l2": "Текстовый поиск"},
        ]
    ).to_csv(test, index=False)
    report_dir = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(test),
            "--json",
            str(tmp_path / "r.json"),
            "--report",
            str(report_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    tasks = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["tasks"]
    assert tasks["label_l1"]["unseen_labels"] == {"ПОИСК": 1} and tasks["label_l1"]["accuracy"] <= 0.5
    assert "ПОИСК" in tasks["label_l1"]["per_class"]  # in macro-F1, with F1 0
    assert "scored as errors" in result.output and "datasets/taxonomy.yaml" not in result.output
    errors = [json.loads(line) for line in (report_dir / "worst_errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert errors and all(e["id"] and e["source"].startswith(str(test)) for e in errors)
    assert all("__" not in e["text"] and e["text"].startswith("client: ") for e in errors)


# ----------------------------------------------------------------------------- 11: relabel
def test_relabel_progress_counts_rows_not_lines(tmp_path):
    """#11: a CSV whose values span lines counts its rows (the progress bar's total)."""
    from training.relabel.sources import count_rows, discover_inputs, iter_chunks

    path = tmp_path / "h.csv"
    pd.DataFrame([{"id": i, "text": "строка\n" * 5 + f"конец {i}"} for i in range(30)]).to_csv(path, index=False)
    blank = tmp_path / "h.jsonl"
    blank.write_text("\n".join(json.dumps({"id": i, "text": "т"}) + "\n" for i in range(7)), encoding="utf-8")
    for f in discover_inputs([path, blank]):
        assert count_rows(f) == sum(t.num_rows for _, t in iter_chunks(f, 8)) == (30 if f.format == "csv" else 7)


def test_relabel_reports_old_labels_missing_from_the_taxonomy(tmp_path, trained_bundle_dir):
    """#11: old labels the taxonomy lacks are counted in the diff and warned about; NBSP variants match."""
    rows = make_rows(3)
    rows[0]["reason2"] = "Старая метка"
    rows[1]["reason2"] = rows[1]["reason2"] + "\xa0"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    proc = _cli(
        "relabel",
        "--model",
        str(trained_bundle_dir),
        "--input",
        str(path),
        "--output",
        str(tmp_path / "out"),
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: reason2: 1 rows carry old labels not in the model's taxonomy: 'Старая метка' (1)" in proc.stderr
    diff = json.loads((tmp_path / "out" / "diff.json").read_text(encoding="utf-8"))
    assert diff["tasks"]["reason2"]["unknown_old_labels"] == {"Старая метка": 1}
    assert "not in the model's taxonomy" in (tmp_path / "out" / "diff.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- 12: model card
def test_info_prints_a_model_card_without_loading_the_model(trained_bundle_dir):
    """#12: info reads manifest.json only (no scikit-learn import) and prints every section."""
    code = (
        f"import sys\nfrom training.cli import main\nsys.argv = ['podskazka', 'info', {str(trained_bundle_dir)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-300:] + proc.stderr[-500:]
    for section in (
        "# Model card",
        "## Data",
        "## Metrics",
        "## Taxonomy",
        "## Thresholds",
        "## Intended use",
        "## Limits",
        "grouped by 'scenario'",
    ):
        assert section in proc.stdout
    card = json.loads(CliRunner().invoke(app, ["info", str(trained_bundle_dir), "--json"]).output)
    assert card["metrics"]["reason2"]["accuracy"] is not None and card["thresholds"]["target_precision"] == 0.9
    bad = _cli("info", str(ROOT / "no-such-bundle"))
    assert bad.returncode == 2 and "no such bundle folder" in bad.stderr


def test_store_upgrade_before_the_service_opens_an_old_database(tmp_path, monkeypatch):
    """`podskazka store upgrade` does the one-time privacy upgrade of a database an earlier version wrote
    (so the first request after a deploy does not wait for it), says what it did, and refuses a wrong path."""
    import sqlite3

    from serve.feedback_store import operator_key

    secret = "s" * 32
    monkeypatch.setenv("PODSKAZKA_PII_SECRET", secret)
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:  # the tables as versions before the upgrade left them: no meta
        conn.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, interaction_id"
            " TEXT NOT NULL, model_version TEXT NOT NULL, task TEXT NOT NULL, suggested TEXT, chosen TEXT, accepted"
            " INTEGER NOT NULL, operator_id TEXT, client_key TEXT, channel TEXT, confidence DOUBLE PRECISION,"
            " turns TEXT, comment TEXT)"
        )
        conn.execute(
            "INSERT INTO feedback (created_at, interaction_id, model_version, task, accepted, operator_id, turns,"
            " comment) VALUES ('2026-01-01', 'i-1', 'v1', 'topic', 1, 'op-ivanova', ?, 'пишите на anna@mail.ru')",
            (json.dumps([{"role": "client", "text": "мой номер +7 912 345-67-89"}], ensure_ascii=False),),
        )
    conn.close()
    result = CliRunner().invoke(app, ["store", "upgrade", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "1 operator ids pseudonymised, 1 of 1 feedback rows" in result.output
    with sqlite3.connect(db) as conn:
        operator, turns, comment = conn.execute("SELECT operator_id, turns, comment FROM feedback").fetchone()
    conn.close()
    assert operator == operator_key("op-ivanova", secret.encode())
    assert "912" not in turns and "anna@mail.ru" not in comment
    again = CliRunner().invoke(app, ["store", "upgrade", "--db", str(db)])
    assert again.exit_code == 0 and "already at privacy version" in again.output
    missing = CliRunner().invoke(app, ["store", "upgrade", "--db", str(tmp_path / "typo.sqlite3")])
    assert isinstance(missing.exception, ConfigError) and "no feedback database" in str(missing.exception)
    assert not (tmp_path / "typo.sqlite3").exists()
