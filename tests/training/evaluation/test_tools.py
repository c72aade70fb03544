"""evaluate --report, compare, audit, and training on a taxonomy the project has never seen."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from model.conversation.taxonomy import load_taxonomy
from model.storage.bundle import load_bundle
from tests.factories import SHARED, make_rows, write_jsonl
from training.cli import app
from training.data.load import load_data
from training.evaluation.compare import compare_models
from training.fitting.config import TrainConfig
from training.fitting.train import train


def test_evaluate_report_folder(tmp_path, trained_bundle_dir):
    test = write_jsonl(tmp_path / "test.jsonl", make_rows(4, seed=50))
    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(trained_bundle_dir), "--data", str(test), "--report", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    report = tmp_path / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"coverage", "reliability", "coverage_curve", "ece_uncalibrated"} <= set(metrics["tasks"]["reason2"])
    for name in ("confusion_reason2.png", "reliability_reason2.png", "coverage_topic.png"):
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert "## reason2" in (report / "summary.md").read_text()
    assert (report / "worst_errors.jsonl").exists()


def test_compare_detects_a_worse_model(tmp_path, taxonomy_path, trained_bundle_dir):
    rows = make_rows()
    labels = [r.get("reason2") for r in rows]
    shuffled = labels[3:] + labels[:3]  # a model trained on wrong telecom labels
    for r, label in zip(rows, shuffled):
        if label is not None and "reason2" in r:
            r["reason2"] = label
    bad = train(
        [str(write_jsonl(tmp_path / "bad.jsonl", rows))], tmp_path / "bad", TrainConfig(taxonomy=str(taxonomy_path))
    )
    good = load_bundle(trained_bundle_dir)
    test = load_data([write_jsonl(tmp_path / "test.jsonl", make_rows(6, seed=70))], good.taxonomy)
    report = compare_models(good, bad, test.interactions, n_boot=200)
    accuracy = report["tasks"]["reason2"]["metrics"]["accuracy"]
    assert accuracy["diff"] < 0 and accuracy["ci95"][1] < 0
    assert accuracy["verdict"] == "B worse"


def test_audit_finds_flipped_labels(tmp_path, taxonomy_path):
    rows = make_rows(12)
    flipped = []
    for _i, r in enumerate(rows):
        if r.get("reason2") == "За что списание?" and len(flipped) < 3:
            r["reason2"] = "Смена оператора (MNP)"
            flipped.append(r["id"])
    path = write_jsonl(tmp_path / "history.jsonl", rows)
    before = path.read_text()
    out = tmp_path / "suspects.jsonl"
    result = CliRunner().invoke(
        app, ["audit", "--data", str(path), "--folds", "3", "--out", str(out), "--set", f"taxonomy={taxonomy_path}"]
    )
    assert result.exit_code == 0, result.output
    suspects = [json.loads(line) for line in out.read_text().splitlines()]
    found = {s["id"] for s in suspects if s["task"] == "reason2"}
    assert set(flipped) <= found
    assert all(s["suggested"] == "За что списание?" for s in suspects if s["id"] in flipped)
    assert path.read_text() == before  # never changes the data


def test_unseen_taxonomy_from_config_alone(tmp_path):
    """Another contact centre: its own label columns, its own taxonomy file, no code change."""
    topics = {
        "billing": "счет оплата подписка деньги",
        "playback": "видео не грузится тормозит плеер",
        "account": "вход пароль аккаунт почта",
    }
    rows = []
    for label, words in topics.items():
        for i in range(15):
            w = words.split()
            rows.append(
                {"message": f"{w[i % 4]} {w[(i + 1) % 4]} вопрос {i}", "category": label, "ticket": f"{label}{i // 3}"}
            )
    pd.DataFrame(rows).to_csv(tmp_path / "helpdesk.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "taxonomy-from-data",
            "--data",
            str(tmp_path / "helpdesk.csv"),
            "--task",
            "category",
            "--out",
            str(tmp_path / "tax.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_taxonomy(tmp_path / "tax.yaml").tasks["category"].labels == ("account", "billing", "playback")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"taxonomy: {tmp_path / 'tax.yaml'}\ncolumn_map: {{text: message}}\nsplit: {{group_by: ticket}}\n"
    )
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path / "helpdesk.csv"), "--out", str(tmp_path / "m"), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    from model.predictor import Predictor

    [out] = Predictor.load(tmp_path / "m").predict([{"text": "не грузится видео плеер"}])
    assert out.predictions["category"][0].label == "playback"


@pytest.mark.skipif(not (SHARED / "benchmarks" / "rutube_support").is_dir(), reason="../shared/benchmarks is absent")
def test_unseen_taxonomy_rutube_benchmark(tmp_path):
    """Proof on real helpdesk text (evaluation only): 11 and 39 topics, from a config alone."""
    bench = SHARED / "benchmarks" / "rutube_support"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "taxonomy-from-data",
            "--data",
            str(bench / "train.csv"),
            "--data",
            str(bench / "test.csv"),
            "--task",
            "label_l1",
            "--task",
            "label_l2",
            "--out",
            str(tmp_path / "tax.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    config = tmp_path / "config.yaml"
    config.write_text(
        f"taxonomy: {tmp_path / 'tax.yaml'}\nsplit: {{group_by: group_id, test_size: 0.2}}\n"
        "model: {kind: tfidf, params: {estimator: linear_svc, C: 0.5}}\n"
    )
    result = runner.invoke(
        app, ["train", "--data", str(bench / "train.csv"), "--out", str(tmp_path / "m"), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    report = tmp_path / "r.json"
    result = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "m"), "--data", str(bench / "test.csv"), "--json", str(report)]
    )
    assert result.exit_code == 0, result.output
    tasks = json.loads(report.read_text())["tasks"]
    # far above chance (1/11 and 1/39); the figures themselves go to bench/quality.py
    assert tasks["label_l1"]["accuracy"] > 0.4
    assert tasks["label_l2"]["accuracy"] > 0.2


def test_bench_quality_live_default_rule():
    """bench/quality.py picks the live default: best mean real-text macro-F1 within p99 30 ms."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_quality", Path(__file__).resolve().parents[3] / "bench" / "quality.py"
    )
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)

    def row(f1: float, p99: float) -> dict:
        return {
            "tweets": {"accuracy": f1, "macro_f1": f1, "top3_accuracy": f1},
            "rutube": {t: {"macro_f1": f1, "accuracy": f1} for t in ("label_l1", "label_l2")},
            "latency_ms": {"p50": p99 / 2, "p99": p99},
        }

    rows = {"tfidf": row(0.40, 25.0), "hybrid-use": row(0.45, 29.0), "transformer": row(0.60, 140.0)}
    assert "**hybrid-use**" in quality.choose_live_default(rows)  # the best real-text F1 is over budget
    rows["hybrid-use"]["latency_ms"]["p99"] = 31.0
    assert "**tfidf**" in quality.choose_live_default(rows)
    del rows["tfidf"]["rutube"]  # a row without every real-text column cannot win
    assert "none within p99 30 ms" in quality.choose_live_default(rows)
    text = quality.table(
        {"tfidf": row(0.4, 25.0), "transformer": {"model": "transformer", "skipped": "not built"}},
        list(quality.CONFIGS),
    )
    assert "| tfidf | not run | 0.400 / 0.400 / 0.400 |" in text and "- transformer: not built" in text
