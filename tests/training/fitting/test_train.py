import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from model.errors import ConfigError
from tests.factories import make_rows, write_jsonl
from training.cli import app
from training.evaluation.metrics import expected_calibration_error, task_metrics
from training.fitting.config import TrainConfig


def test_metrics_expected_calibration_error():
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([0, 0])) == pytest.approx(0.9)
    assert expected_calibration_error(np.array([0.6, 0.6, 0.6, 0.6, 0.6]), np.array([1, 1, 1, 0, 0])) == pytest.approx(
        0.0
    )


def test_metrics_task_metrics_known_values():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]])
    m = task_metrics(["a", "b", "c"], ["a", "b", "c"], probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["top3_accuracy"] == 1.0
    assert m["per_class"]["c"]["recall"] == 0.0
    assert m["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_config_validation_and_overrides(tmp_path):
    cfg = TrainConfig.load(None, ["model.params.C=3", "split.test_size=0.3"])
    assert cfg.model.params["C"] == 3 and cfg.split.test_size == 0.3
    with pytest.raises(ConfigError, match="model.C must be > 0"):
        TrainConfig.load(None, ["model.params.C=-1"])
    with pytest.raises(ConfigError, match="unknown config keys \\['epochs'\\]"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ConfigError, match="model.kind must be one of"):
        TrainConfig.load(None, ["model.kind=bert"])


def test_cli_train_then_evaluate(tmp_path, taxonomy_path):
    runner = CliRunner()
    data = write_jsonl(tmp_path / "train.jsonl", make_rows())
    test = write_jsonl(tmp_path / "test.jsonl", make_rows(4, seed=100))
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--set", f"taxonomy={taxonomy_path}"])
    assert result.exit_code == 0, result.output
    assert "reason2" in result.output and (out / "manifest.json").exists()
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(test), "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    r2 = report["tasks"]["reason2"]
    assert r2["accuracy"] >= 0.9 and r2["top3_accuracy"] == 1.0
    assert {"macro_f1", "ece", "per_class", "confusion"} <= set(r2)
    assert "macro-F1" in result.output


def test_cli_bad_data_exits_non_zero_with_rows(tmp_path, taxonomy_path):
    rows = make_rows(2)
    rows[0]["reason2"] = "Нет такой метки"
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m"),
            "--set",
            f"taxonomy={taxonomy_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "bad.jsonl:1: label 'Нет такой метки' is not in task 'reason2'" in proc.stderr
    assert not (tmp_path / "m").exists()


def test_first_turn_rows_teach_the_domain_head_only(taxonomy_path):
    """augment.first_turn adds each conversation's first client turn as a domain-only row: the task
    heads never train on an opening line that may not say the reason yet."""
    from model.conversation.record import interaction_from_dict
    from model.conversation.taxonomy import load_taxonomy
    from model.kinds.tfidf import DOMAIN_ONLY, _domain_only
    from tests.factories import make_rows
    from training.data.augment import AugmentConfig, augment

    taxonomy = load_taxonomy(taxonomy_path)
    rows = [interaction_from_dict(r, label_tasks=("reason2", "topic", "resolution")) for r in make_rows(2)]
    out = augment(rows, AugmentConfig(first_turn=True), taxonomy)
    extra = out[len(rows) :]
    assert extra and all(x.id.endswith(DOMAIN_ONLY) and _domain_only(x) for x in extra)
    assert all(len(x.turns) == 1 and x.turns[0].role == "client" for x in extra)
    with_tasks = augment(rows, AugmentConfig(first_turn=True, first_turn_tasks=True), taxonomy)[len(rows) :]
    assert not any(_domain_only(x) for x in with_tasks)


def test_augment_keeps_the_taxonomys_problem_tasks(taxonomy_path, caplog):
    """By default the extra views keep the labels of the taxonomy's problem tasks (``domains:``), never a
    hard-coded list: a taxonomy that names none gets no extra views, and says so."""
    from dataclasses import replace

    from model.conversation.record import interaction_from_dict
    from model.conversation.taxonomy import load_taxonomy
    from tests.factories import make_rows
    from training.data.augment import AugmentConfig, augment

    taxonomy = load_taxonomy(taxonomy_path)
    rows = [interaction_from_dict(r, label_tasks=("reason2", "topic", "resolution")) for r in make_rows(2)]
    extra = augment(rows, AugmentConfig(client_only=True), taxonomy)[len(rows) :]
    assert extra and {t for x in extra for t in x.labels} == {"reason2", "topic"}  # not the resolution
    only_topic = augment(rows, AugmentConfig(client_only=True, keep_tasks=["topic", "reason"]), taxonomy)[len(rows) :]
    assert only_topic and {t for x in only_topic for t in x.labels} == {"topic"}
    assert "augment.keep_tasks names ['reason']" in caplog.text
    bare = replace(taxonomy, problems={})
    assert augment(rows, AugmentConfig(client_only=True), bare) == rows
    assert "the taxonomy names no problem task" in caplog.text
    with pytest.raises(ConfigError, match="augment.keep_tasks must be a list"):
        AugmentConfig(keep_tasks="topic")
