"""``Manifest``: the typed manifest.json. Bundles on disk round-trip unchanged (keys, order, unknown
keys); another format version is refused with the version and what to do."""

import json
from pathlib import Path

import pytest

from model.assist.decision import DecisionPolicy
from model.errors import BundleError
from model.storage.bundle import load_bundle, save_bundle, verify_bundle
from model.storage.manifest import FORMAT_VERSION, Manifest, TaxonomyStamp

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BUNDLE = ROOT / "models" / "default"


def _raw(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def _minimal(**more) -> dict:
    return {"model_id": "m", "format_version": FORMAT_VERSION, "tasks": {"t": ["a", "b"]}, "files": {}, **more}


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(), reason="no default bundle")
def test_default_bundle_manifest_round_trips_byte_for_byte():
    raw = _raw(DEFAULT_BUNDLE)
    manifest = verify_bundle(DEFAULT_BUNDLE)
    assert _dumps(manifest.to_dict()) == _dumps(raw)
    assert manifest.model_id == raw["model_id"] and manifest.model_kind == "tfidf"
    assert manifest.taxonomy == TaxonomyStamp(**raw["taxonomy"])
    assert manifest.decision == DecisionPolicy.from_dict(raw["decision"])


def test_trained_bundle_manifest_round_trips(trained_bundle_dir):
    raw = _raw(trained_bundle_dir)
    manifest = Manifest.from_dict(raw)
    assert _dumps(manifest.to_dict()) == _dumps(raw)
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_derived_keys_and_unknown_keys_keep_their_place():
    raw = _minimal(
        created_at="2026-01-01T00:00:00+00:00",
        git_revision=None,  # written as null: kept as null
        future_key={"x": 1},
        derived_from="base",
        history=[{"step": "priors"}],
    )
    manifest = Manifest.from_dict(raw)
    assert manifest.extra == {"future_key": {"x": 1}} and manifest.derived_from == "base"
    out = manifest.to_dict()
    assert _dumps({k: out[k] for k in raw}) == _dumps(raw) and list(out)[: len(raw)] == list(raw)
    assert set(out) - set(raw) == {"model_kind", "libraries", "weights", "decision"}  # the contents, filled in


def test_new_manifest_writes_provenance_then_contents():
    manifest = Manifest(model_id="m", created_at="now", metrics={}, warnings=[])
    out = manifest.to_dict()
    assert list(out) == [
        "model_id",
        "created_at",
        "metrics",
        "warnings",
        "format_version",
        "model_kind",
        "libraries",
        "tasks",
        "weights",
        "decision",
        "files",
    ]
    assert out["format_version"] == FORMAT_VERSION and out["decision"] == {"tasks": {}}


@pytest.mark.parametrize(
    "version, message",
    [
        (FORMAT_VERSION + 1, r"bundle format 4 \(written by podskazka 9\.0\) is newer than this podskazka reads"),
        (2, r"bundle format 2 \(written by podskazka 9\.0\) is older .* retrain the model"),
        (None, r"'format_version' is None, not a format number"),
        ("3", r"'format_version' is '3', not a format number"),
    ],
)
def test_other_format_versions_are_refused_with_what_to_do(version, message):
    raw = _minimal(format_version=version, libraries={"podskazka": "9.0"})
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(raw, where="b/manifest.json")


def test_newer_bundle_refused_before_anything_is_read(bundle_copy):
    raw = _raw(bundle_copy)
    raw["format_version"] = FORMAT_VERSION + 1
    raw["files"] = "a newer layout"  # what a newer format holds is not looked at
    (bundle_copy / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(BundleError, match="is newer than this podskazka reads.*upgrade podskazka"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tasks": ["a"]}, "'tasks' is not a mapping of task → labels"),
        ({"files": ["a"]}, "'files' is not a mapping"),
        ({"model_id": 7}, "'model_id' is 7, not a name"),
        ({"metrics": []}, "'metrics' is list, not dict"),
        ({"decision": {"tasks": {"t": {"threshold": "x"}}}}, "decision.tasks.t.threshold is 'x', not a number"),
    ],
)
def test_damaged_fields_are_refused(change, message):
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(_minimal(**change))
    with pytest.raises(BundleError, match="lacks 'model_id' or 'files'"):
        Manifest.from_dict({"format_version": FORMAT_VERSION, "tasks": {}})


def test_save_stamps_the_contents_over_the_provenance(trained_bundle_dir, tmp_path):
    bundle = load_bundle(trained_bundle_dir)
    bundle.manifest = Manifest(model_id="again", created_at="then", warnings=["w"])
    save_bundle(bundle, tmp_path / "b", trained_bundle_dir / "taxonomy.yaml")
    raw = _raw(tmp_path / "b")
    assert list(raw)[:3] == ["model_id", "created_at", "warnings"] and raw["warnings"] == ["w"]
    assert raw["tasks"] == _raw(trained_bundle_dir)["tasks"] and "git_revision" not in raw
    assert raw["decision"] == _raw(trained_bundle_dir)["decision"]
    assert bundle.manifest.files == raw["files"] and load_bundle(tmp_path / "b").model_id == "again"
