"""``podskazka priors``: EM (Saerens et al. 2002) recovers a shifted label mix and refuses to diverge;
label frequencies from labelled rows; the new bundle applies them at predict time."""

import json

import numpy as np
import pytest

from model.predictor import Predictor
from model.storage.bundle import load_bundle, verify_bundle
from tests.factories import make_rows, write_jsonl
from training.fitting.priors import PriorsError, em_priors, label_frequencies, priors_command


def synthetic(prior, n=6000, seed=0):
    """1-D Gaussian classes (means -2, 0, 2); exact posteriors under a uniform training prior."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), size=n, p=prior)
    xs = rng.normal(np.array([-2.0, 0.0, 2.0])[y], 1.0)
    dens = np.exp(-0.5 * (xs[:, None] - np.array([-2.0, 0.0, 2.0])[None, :]) ** 2)
    return dens / dens.sum(axis=1, keepdims=True)


def test_em_recovers_the_shifted_prior():
    true = np.array([0.7, 0.2, 0.1])
    pi, info = em_priors(synthetic(true), floor=0.0)
    assert np.abs(pi - true).max() < 0.03, pi
    assert info["iterations"] > 1
    # the naive estimate (mean posterior) is further off than EM's
    assert np.abs(synthetic(true).mean(axis=0) - true).max() > np.abs(pi - true).max()


def test_em_refuses_when_it_does_not_converge():
    with pytest.raises(PriorsError, match="did not converge"):
        em_priors(synthetic(np.array([0.7, 0.2, 0.1])), max_iter=2, tol=1e-12)


def test_em_refuses_a_collapsed_estimate():
    probs = np.tile([0.999, 0.0005, 0.0005], (200, 1))  # a classifier sure of one label on every row
    with pytest.raises(PriorsError, match="collapsed"):
        em_priors(probs)


def test_label_frequencies_are_smoothed_and_floored():
    freq = label_frequencies(["a"] * 8 + ["b"] * 2, ["a", "b", "c"])
    assert sum(freq.values()) == pytest.approx(1.0, abs=1e-5)
    assert freq["a"] > freq["b"] > freq["c"] > 0


def test_priors_command_writes_a_new_bundle(tmp_path, trained_bundle_dir):
    rows = [r for r in make_rows(n_per_label=20, seed=3) if "reason2" in r]
    skewed = [r for r in rows if r["reason2"] == "За что списание?"] + rows[:10]
    history = write_jsonl(tmp_path / "history.jsonl", skewed)
    before = json.loads((trained_bundle_dir / "manifest.json").read_text())
    out = tmp_path / "with_priors"
    result = priors_command(trained_bundle_dir, [str(history)], out)
    assert "reason2" in result["priors"] and "reason2" in result["thresholds_refitted"]
    assert result["priors"]["reason2"]["За что списание?"] > 0.5
    verify_bundle(out)
    adapted = load_bundle(out)
    assert adapted.decision.priors["reason2"].target["За что списание?"] > 0.5
    assert adapted.model_id != before["model_id"] and adapted.manifest.derived_from == before["model_id"]
    assert json.loads((trained_bundle_dir / "manifest.json").read_text()) == before  # the source is untouched
    # the rewritten manifest keeps every key of the source, in order, and appends the derivation
    written = json.loads((out / "manifest.json").read_text())
    assert list(written) == [*before, "derived_from", "history"]
    assert written["files"] == before["files"] and written["history"][0]["step"] == "priors"
    assert written["decision"]["train_priors"] == before["decision"]["train_priors"]
    # applied at predict time: an ambiguous text leans to the frequent label
    text = {"channel": "call", "text": "ну вот"}
    p0 = {
        d.label: d.confidence
        for d in Predictor.load(trained_bundle_dir).predict([text], top_k=None)[0].predictions["reason2"]
    }
    p1 = {d.label: d.confidence for d in Predictor(adapted).predict([text], top_k=None)[0].predictions["reason2"]}
    assert p1["За что списание?"] > p0["За что списание?"]


def test_priors_command_em_on_unlabelled_rows(tmp_path, trained_bundle_dir):
    rows = [
        {"id": r["id"], "channel": r["channel"], "turns": r["turns"]}
        for r in make_rows(n_per_label=30, seed=4)
        if r.get("reason2") == "Не могу выйти в интернет"
    ]
    rows += [
        {"id": r["id"], "channel": r["channel"], "turns": r["turns"]}
        for r in make_rows(n_per_label=10, seed=5)
        if r.get("reason2") == "За что списание?"
    ]
    history = write_jsonl(tmp_path / "unlabelled.jsonl", rows)
    result = priors_command(trained_bundle_dir, [str(history)], tmp_path / "em", unlabelled=True, tasks=["reason2"])
    pri = result["priors"]["reason2"]
    assert pri["Не могу выйти в интернет"] > pri["За что списание?"] > pri["Смена оператора (MNP)"]
    assert result["thresholds_refitted"] == []  # no labels: thresholds stay
    assert result["report"]["reason2"]["method"] == "em"


def test_priors_refuses_to_overwrite_the_source(tmp_path, bundle_copy):
    rows = [r for r in make_rows(n_per_label=12, seed=3) if "reason2" in r]
    history = write_jsonl(tmp_path / "h.jsonl", rows)
    with pytest.raises(PriorsError, match="source bundle"):
        priors_command(bundle_copy, [str(history)], bundle_copy)


def test_priors_and_adapt_are_commands(tmp_path, trained_bundle_dir):
    from typer.testing import CliRunner

    from training.cli import app

    rows = [r for r in make_rows(n_per_label=12, seed=3) if "reason2" in r]
    history = write_jsonl(tmp_path / "h.jsonl", rows)
    result = CliRunner().invoke(
        app, ["priors", "--model", str(trained_bundle_dir), "--data", str(history), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["thresholds_refitted"] == ["reason2"]
    assert CliRunner().invoke(app, ["adapt", "--help"]).exit_code == 0
