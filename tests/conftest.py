"""Shared fixtures: a tiny labelled corpus made here, and a model trained on it once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.factories import make_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "datasets" / "taxonomy.yaml"
SHARED = ROOT.parent / "shared"

@pytest.fixture(scope="session")
def taxonomy_path() -> Path:
    return TAXONOMY


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "tiny.jsonl", make_rows())


@pytest.fixture(scope="session")
def trained_bundle_dir(tmp_path_factory, tiny_corpus) -> Path:
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    train([str(tiny_corpus)], out, TrainConfig(taxonomy=str(TAXONOMY)))
    return out


@pytest.fixture
def bundle_copy(tmp_path, trained_bundle_dir) -> Path:
    """A private copy of the trained bundle that a test may damage."""
    target = tmp_path / "bundle"
    shutil.copytree(trained_bundle_dir, target)
    return target


@pytest.fixture(scope="session")
def predictor(trained_bundle_dir):
    from model.predictor import Predictor

    return Predictor.load(trained_bundle_dir)
