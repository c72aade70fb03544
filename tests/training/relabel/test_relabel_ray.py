"""The Ray Data engine on a local Ray cluster gives the local engine's output, row for row."""

from __future__ import annotations

import pytest

from tests.training.relabel.relabel_takeover import check_takeover

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # actors claim half a CPU each: Ray can hang when workers claim every CPU of a small machine
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_relabel_ray_engine_equals_local_engine_row_for_row(tmp_path, trained_bundle_dir, local_ray):
    check_takeover(tmp_path, trained_bundle_dir, "ray", workers=2, cpus_per_worker=0.5)
