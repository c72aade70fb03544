"""``podskazka adapt``: the operators' loop end to end — feedback stored by the service, exported as
training records, adapted (audit, cross-fitted before/after, priors, thresholds), served. Small generated
data only; no ../shared."""

import json

import pandas as pd
import pytest

from model.predictor import Predictor
from model.storage.bundle import load_bundle
from serve.export import export_training_records
from serve.feedback_store import Feedback, SQLiteStore
from tests.factories import make_rows, write_jsonl
from training.fitting.adapt import adapt


@pytest.fixture
def feedback_export(tmp_path):
    """Operators' feedback on 36 telecom conversations (a skewed label mix), exported as JSONL."""
    store = SQLiteStore(tmp_path / "feedback.sqlite3")
    rows = [r for r in make_rows(n_per_label=24, seed=7) if "reason2" in r]
    rows = [r for r in rows if r["reason2"] == "За что списание?"] + rows[24:30] + rows[48:54]
    for i, r in enumerate(rows):
        store.add_feedback(
            Feedback(
                interaction_id=f"call-{i}",
                model_version="v1",
                task="reason2",
                suggested=r["reason2"],
                chosen=r["reason2"],
                accepted=True,
                client_id=f"c-{i}",
                channel="call",
                turns=tuple(r["turns"]),
            ),
            now=float(i),
        )
    records = list(export_training_records(store))
    store.close()
    assert len(records) == len(rows)
    return write_jsonl(tmp_path / "feedback.jsonl", records)


def test_feedback_export_adapt_serve(tmp_path, trained_bundle_dir, tiny_corpus, feedback_export):
    source = json.loads((trained_bundle_dir / "manifest.json").read_text())
    out = tmp_path / "adapted"
    report = adapt(
        trained_bundle_dir,
        [str(feedback_export)],
        out,
        corpus_paths=[str(tiny_corpus)],
        folds=3,
        weight=2,
        audit_out=tmp_path / "suspects.jsonl",
    )
    assert isinstance(report["audit"], list)
    cf = report["cross_fitted"]["tasks"]["reason2"]
    for side in ("before", "after"):
        assert 0.0 <= cf[side]["accuracy"] <= 1.0 and cf[side]["n"] == report["real_rows"] == 36
    assert cf["after"]["accuracy"] >= cf["before"]["accuracy"] - 0.1
    bundle = load_bundle(out)
    assert bundle.manifest.derived_from == source["model_id"]
    assert bundle.manifest.adaptation["cross_fitted"]["tasks"]["reason2"]["after"]["n"] == 36
    target = bundle.decision.priors["reason2"].target
    assert max(target, key=target.get) == "За что списание?"
    assert bundle.decision.tasks["reason2"].thresholds
    written = json.loads((out / "manifest.json").read_text())
    assert list(written)[:3] == ["model_id", "created_at", "derived_from"] and "adaptation" in written
    assert set(bundle.model.tasks) == {"reason2", "topic", "resolution"}  # every head is kept
    result = Predictor(bundle).predict([{"channel": "call", "text": "сняли деньги непонятно сто рублей"}])[0]
    assert result.predictions["reason2"][0].label == "За что списание?"
    assert json.loads((trained_bundle_dir / "manifest.json").read_text()) == source  # the source is untouched


def test_adapt_reads_a_csv_with_a_column_mapping(tmp_path, trained_bundle_dir, tiny_corpus):
    rows = [r for r in make_rows(n_per_label=8, seed=9) if "reason2" in r]
    csv = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "call_id": [r["id"] for r in rows],
            "body": [" ".join(t["text"] for t in r["turns"] if t["role"] == "client") for r in rows],
            "category": [r["reason2"] for r in rows],
        }
    ).to_csv(csv, index=False)
    report = adapt(
        trained_bundle_dir,
        [str(csv)],
        None,
        corpus_paths=[str(tiny_corpus)],
        folds=2,
        audit=False,
        column_map={"id": "call_id", "text": "body", "reason2": "category"},
    )
    assert report["real_rows"] == len(rows)
    assert report["cross_fitted"]["tasks"]["reason2"]["after"]["n"] == len(rows)
    assert "out" not in report
