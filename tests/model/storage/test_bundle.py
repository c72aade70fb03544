"""Bundles are data, never code: the compiled arrays reproduce the fitted scikit-learn model, every
file is listed, checksummed and inside the bundle, and crafted bundles are refused with nothing run."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from model.conversation.record import interaction_from_dict
from model.errors import BundleError
from model.predictor import Predictor
from model.storage.bundle import load_bundle, save_bundle, verify_bundle
from model.storage.files import sha256_file
from model.storage.manifest import Manifest
from tests.factories import make_rows

ROOT = Path(__file__).resolve().parents[3]


def _probs(bundle, rows):
    xs = [interaction_from_dict(r) for r in rows]
    probs, domain = bundle.model.predict_proba(xs)
    return {t: p for t, (_, p) in probs.items()}, domain[1]


def sklearn_reference(model, interactions):
    """The fitted scikit-learn objects' own probabilities (what training produced)."""
    views = model._views(interactions)
    X = sp.hstack([vec.transform(views[name]) for name, vec in model.vectorizers_.items()], format="csr")
    probs = {task: head.predict_proba(X) for task, head in model.heads_.items()}
    return probs, model.domain_head_.predict_proba(X)


def assert_reproduces(fitted, loaded, interactions, tol=1e-6):
    ref, ref_domain = sklearn_reference(fitted, interactions)
    got, domain = loaded.predict_proba(interactions)
    for task, p in ref.items():
        assert got[task][0] == list(fitted.heads_[task].classes_)
        np.testing.assert_allclose(got[task][1], p, atol=tol, rtol=0)
    np.testing.assert_allclose(domain[1], ref_domain, atol=tol, rtol=0)


def test_compiled_bundle_reproduces_the_fitted_model(tmp_path, taxonomy_path):
    from model.conversation.taxonomy import load_taxonomy
    from training.data.load import load_data
    from training.fitting.config import TrainConfig
    from training.fitting.train import fit_bundle

    taxonomy = load_taxonomy(taxonomy_path)
    rows = make_rows(seed=3)
    from tests.factories import write_jsonl

    data = load_data([write_jsonl(tmp_path / "d.jsonl", rows)], taxonomy)
    bundle = fit_bundle(data, TrainConfig(taxonomy=str(taxonomy_path)), taxonomy)
    bundle.manifest = Manifest(model_id="test")
    save_bundle(bundle, tmp_path / "b", taxonomy_path)
    loaded = load_bundle(tmp_path / "b")
    unseen = [interaction_from_dict(r) for r in make_rows(3, seed=11)]
    assert_reproduces(bundle.model, loaded.model, data.interactions + unseen)


@pytest.mark.skipif(not (ROOT / "datasets" / "bootstrap").is_dir(), reason="no bootstrap corpus")
def test_compiled_bundle_reproduces_the_fitted_model_on_the_corpus(tmp_path, taxonomy_path):
    """Fitted on the bootstrap sample, checked on every tenth corpus conversation to 1e-6."""
    from model.conversation.taxonomy import load_taxonomy
    from training.data.load import load_data
    from training.fitting.config import TrainConfig
    from training.fitting.train import fit_bundle

    taxonomy = load_taxonomy(taxonomy_path)
    data = load_data([ROOT / "datasets" / "bootstrap"], taxonomy)
    config = TrainConfig.from_dict({"taxonomy": str(taxonomy_path)})
    bundle = fit_bundle(data, config, taxonomy)
    bundle.manifest = Manifest(model_id="test")
    save_bundle(bundle, tmp_path / "b", taxonomy_path)
    loaded = load_bundle(tmp_path / "b")
    corpus = load_data([ROOT / "datasets" / "corpus"], taxonomy).interactions[::10]
    assert_reproduces(bundle.model, loaded.model, corpus)
    # the macro ranker's compiled view gives the same raw scores as its fitted vectorizer would
    ranker = loaded.macros
    sig = ranker.signals(corpus[:50], *loaded.model.predict_proba(corpus[:50]), loaded.domains)
    assert sig["history"].shape == (50, len(ranker.macro_ids_))
    assert np.all((sig["when"] >= 0) & (sig["when"] <= 1 + 1e-9))


def test_bundle_holds_only_arrays_json_and_yaml(trained_bundle_dir):
    suffixes = {p.suffix for p in trained_bundle_dir.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".npy", ".yaml"}, suffixes
    for npy in trained_bundle_dir.rglob("*.npy"):
        assert np.load(npy, allow_pickle=False).dtype.kind in "fiu"


def test_bundle_save_load_identical_probabilities(trained_bundle_dir, tmp_path):
    """Save → load → save again → load: the same probabilities (catches a lossy writer)."""
    first = load_bundle(trained_bundle_dir)
    save_bundle(first, tmp_path / "again", trained_bundle_dir / "taxonomy.yaml")
    second = load_bundle(tmp_path / "again")
    assert json.dumps(second.manifest.to_dict()) == json.dumps(first.manifest.to_dict())
    assert second.decision == first.decision
    rows = make_rows(4, seed=7)
    a, da = _probs(first, rows)
    b, db = _probs(second, rows)
    for task in a:
        np.testing.assert_array_equal(a[task], b[task])
    np.testing.assert_array_equal(da, db)


def test_bundle_manifest_records_provenance(trained_bundle_dir):
    manifest = verify_bundle(trained_bundle_dir)
    written = _manifest(trained_bundle_dir)
    assert manifest.to_dict() == written
    for key in (
        "model_id",
        "created_at",
        "git_revision",
        "libraries",
        "taxonomy",
        "tasks",
        "files",
        "training_data",
        "metrics",
        "config",
    ):
        assert key in written, key
    assert manifest.taxonomy is not None and manifest.taxonomy.version == "1"
    assert len(manifest.training_data["sha256"]) == 64
    assert manifest.training_data["files"][0]["rows"] > 0
    assert set(manifest.tasks) == {"reason2", "topic", "resolution"}
    assert "accuracy" in manifest.metrics["holdout"]["tasks"]["reason2"]
    assert manifest.decision.target_precision == 0.9 and manifest.writer_version


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _write_manifest(bundle: Path, manifest: dict) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _relist(bundle: Path, rel: str) -> None:
    manifest = _manifest(bundle)
    manifest["files"][rel] = sha256_file(bundle / rel)
    _write_manifest(bundle, manifest)


def test_bundle_tampered_file_refused(bundle_copy):
    head = bundle_copy / "weights" / "heads.coef.npy"
    head.write_bytes(head.read_bytes() + b"x")
    with pytest.raises(BundleError, match="checksum mismatch for weights/heads.coef.npy"):
        load_bundle(bundle_copy)


def test_bundle_missing_and_extra_files_refused(bundle_copy):
    (bundle_copy / "notes.txt").write_text("hi")
    with pytest.raises(BundleError, match="files not listed in the manifest"):
        load_bundle(bundle_copy)
    (bundle_copy / "notes.txt").unlink()
    (bundle_copy / "macros.json").unlink()
    with pytest.raises(BundleError, match="macros.json listed in the manifest is missing"):
        load_bundle(bundle_copy)


class _Payload:
    """Pickled, it writes a marker file when unpickled: the attack a bundle must never allow."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_bundle_code_running_head_refused_and_nothing_runs(bundle_copy, tmp_path):
    marker = tmp_path / "marker"
    head = bundle_copy / "weights" / "heads.coef.npy"
    np.save(head, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    _relist(bundle_copy, "weights/heads.coef.npy")
    with pytest.raises(BundleError, match="cannot be read as a plain array"):
        load_bundle(bundle_copy)
    assert not marker.exists()
    # a raw pickle under a name the loader reads is refused the same way
    head.write_bytes(pickle.dumps(_Payload(marker)))
    _relist(bundle_copy, "weights/heads.coef.npy")
    with pytest.raises(BundleError):
        load_bundle(bundle_copy)
    assert not marker.exists()


def test_bundle_skops_file_is_never_read(bundle_copy, tmp_path):
    """A head file of the old format (skops) listed with its checksum is not loaded: the loader only
    reads the compiled files."""
    marker = tmp_path / "marker"
    (bundle_copy / "weights" / "reason2.skops").write_bytes(pickle.dumps(_Payload(marker)))
    _relist(bundle_copy, "weights/reason2.skops")
    load_bundle(bundle_copy)
    assert not marker.exists()


@pytest.mark.parametrize(
    "entry", ["../outside.json", "weights/../../outside.json", "/etc/passwd", "./macros.json", "weights\\heads.json"]
)
def test_bundle_paths_outside_refused(bundle_copy, entry):
    manifest = _manifest(bundle_copy)
    manifest["files"][entry] = "0" * 64
    _write_manifest(bundle_copy, manifest)
    with pytest.raises(BundleError, match="refused") as info:
        load_bundle(bundle_copy)
    assert "0" * 12 not in str(info.value).replace(entry, "")  # no part of any hash is echoed


def test_bundle_view_name_cannot_traverse(bundle_copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    manifest = _manifest(bundle_copy)
    manifest["weights"]["views"] = ["../../../../outside/word"]
    _write_manifest(bundle_copy, manifest)
    with pytest.raises(BundleError, match="views"):
        load_bundle(bundle_copy)


def test_bundle_loader_reads_only_listed_files(bundle_copy):
    """A file the loader needs but the manifest does not list is refused, even if it exists."""
    manifest = _manifest(bundle_copy)
    del manifest["files"]["weights/view.word.json"]
    _write_manifest(bundle_copy, manifest)
    with pytest.raises(BundleError):
        load_bundle(bundle_copy)


def test_bundle_symlink_refused(bundle_copy, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    target = bundle_copy / "weights" / "view.word.json"
    target.unlink()
    os.symlink(secret, target)
    _relist(bundle_copy, "weights/view.word.json")
    with pytest.raises(BundleError, match="symbolic links"):
        load_bundle(bundle_copy)


def test_bundle_old_format_refused_with_the_fix(bundle_copy):
    manifest = _manifest(bundle_copy)
    manifest["format_version"] = 2
    _write_manifest(bundle_copy, manifest)
    with pytest.raises(BundleError, match="retrain the model"):
        load_bundle(bundle_copy)


def test_bundle_loads_without_scikit_learn(trained_bundle_dir):
    """The request path needs no scikit-learn: a fresh interpreter that cannot import it serves."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from model.predictor import Predictor\n"
        f"p = Predictor.load({str(trained_bundle_dir)!r})\n"
        "r = p.predict([{'text': 'сняли деньги с баланса'}])[0]\n"
        "print(r.predictions['reason2'][0].label)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


def test_bundle_missing_folder_says_how_to_train(tmp_path):
    with pytest.raises(BundleError, match="podskazka train"):
        Predictor.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(tmp_path / "empty")
