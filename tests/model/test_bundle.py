import json

import numpy as np
import pytest
import skops.io as sio

from model.bundle import load_bundle, sha256_file, verify_bundle
from model.errors import BundleError
from model.predictor import Predictor
from tests.factories import make_rows
from model.record import interaction_from_dict


def _probs(bundle, rows):
    xs = [interaction_from_dict(r) for r in rows]
    probs, domain = bundle.model.predict_proba(xs)
    return {t: p for t, (_, p) in probs.items()}, domain[1]


def test_bundle_save_load_identical_probabilities(trained_bundle_dir):
    rows = make_rows(4, seed=7)
    first, second = load_bundle(trained_bundle_dir), load_bundle(trained_bundle_dir)
    a, da = _probs(first, rows)
    b, db = _probs(second, rows)
    for task in a:
        np.testing.assert_array_equal(a[task], b[task])
    np.testing.assert_array_equal(da, db)


def test_bundle_manifest_records_provenance(trained_bundle_dir):
    manifest = verify_bundle(trained_bundle_dir)
    for key in ("model_id", "created_at", "git_revision", "libraries", "taxonomy", "tasks", "files",
                "training_data", "metrics", "config"):
        assert key in manifest, key
    assert manifest["taxonomy"]["version"] == "1"
    assert len(manifest["training_data"]["sha256"]) == 64
    assert manifest["training_data"]["files"][0]["rows"] > 0
    assert set(manifest["tasks"]) == {"reason2", "topic", "resolution"}
    assert "accuracy" in manifest["metrics"]["holdout"]["tasks"]["reason2"]


def test_bundle_tampered_file_refused(bundle_copy):
    head = bundle_copy / "weights" / "heads" / "reason2.skops"
    head.write_bytes(head.read_bytes() + b"x")
    with pytest.raises(BundleError, match="checksum mismatch for weights/heads/reason2.skops"):
        load_bundle(bundle_copy)


def test_bundle_missing_and_extra_files_refused(bundle_copy):
    (bundle_copy / "notes.txt").write_text("hi")
    with pytest.raises(BundleError, match="files not listed in the manifest"):
        load_bundle(bundle_copy)
    (bundle_copy / "notes.txt").unlink()
    (bundle_copy / "macros.json").unlink()
    with pytest.raises(BundleError, match="macros.json listed in the manifest is missing"):
        load_bundle(bundle_copy)


def test_bundle_other_sklearn_version_refused(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="trained with scikit-learn 0.24.2"):
        load_bundle(bundle_copy)


def test_bundle_untrusted_type_refused_even_with_valid_checksum(bundle_copy):
    import os

    head = bundle_copy / "weights" / "heads" / "reason2.skops"
    sio.dump({"call": os.path.join}, head)
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["weights/heads/reason2.skops"] = sha256_file(head)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="refuses to load types outside"):
        load_bundle(bundle_copy)


def test_bundle_head_of_wrong_type_refused(bundle_copy):
    head = bundle_copy / "weights" / "heads" / "reason2.skops"
    sio.dump({"weights": [1, 2, 3]}, head)
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["weights/heads/reason2.skops"] = sha256_file(head)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="holds a dict, expected a calibrated classifier"):
        load_bundle(bundle_copy)


def test_bundle_missing_folder_says_how_to_train(tmp_path):
    with pytest.raises(BundleError, match="podskazka train"):
        Predictor.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(tmp_path / "empty")
