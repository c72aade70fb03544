"""Shared fixtures: a tiny labelled corpus made here, and a model trained on it once per session."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "datasets" / "taxonomy.yaml"


@pytest.fixture(scope="session")
def taxonomy_path() -> Path:
    return TAXONOMY


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "tiny.jsonl", make_rows())


@pytest.fixture(scope="session")
def trained_bundle_dir(tmp_path_factory, tiny_corpus) -> Path:
    from training.fitting.config import TrainConfig
    from training.fitting.train import train

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


@dataclass(frozen=True)
class ApiKeys:
    """A key file with one key per role; ``headers(role)`` is what a client of that role sends."""

    file: Path
    keys: dict

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory) -> ApiKeys:
    """API keys for the service tests: pass ``api_keys_file=api_keys.file`` to Settings and
    ``headers=api_keys.headers()`` (admin: every role) or ``headers("operator")`` to the client;
    ``operator-2`` is a second operator (another person's key)."""
    from serve.auth import add_key

    path = tmp_path_factory.mktemp("keys") / "keys.json"
    keys = {role: add_key(path, role, [role]) for role in ("operator", "analyst", "admin")}
    keys["operator-2"] = add_key(path, "operator-2", ["operator"])
    return ApiKeys(path, keys)
