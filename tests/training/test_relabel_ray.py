"""The Ray Data engine on a local Ray cluster gives the local engine's output, row for row."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.factories import make_rows, write_jsonl
from training.relabel import RelabelConfig, read_output, relabel
from training.relabel.store import MANIFEST, PARTS, REJECTS

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # actors claim half a CPU each: Ray can hang when workers claim every CPU of a small machine
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_relabel_ray_engine_equals_local_engine_row_for_row(tmp_path, trained_bundle_dir, local_ray):
    rows = [dict(r, id=f"r{i}") for i, r in enumerate(make_rows() * 2)]
    jsonl = write_jsonl(tmp_path / "in" / "a.jsonl", rows[:70])
    with open(jsonl, "ab") as fh:
        fh.write(b'{"id": "broken", "text": \n{"text": "no id"}\n')
    pq.write_table(pa.Table.from_pylist(rows[70:]), tmp_path / "in" / "b.parquet", row_group_size=16)
    common = {"model": trained_bundle_dir, "inputs": [str(tmp_path / "in")], "batch_size": 16, "progress": False}
    local = relabel(RelabelConfig(output=tmp_path / "local", workers=1, **common))
    assert local["rejected_by_reason"] == {"broken_json": 1, "missing_id": 1}

    # Ray takes over a job the local engine stopped after two chunks, and does every other chunk
    out = tmp_path / "ray"
    shutil.copytree(tmp_path / "local", out)
    lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    kept = {json.loads(line)["part"] for line in lines[:2]}
    for part in [*(out / PARTS).iterdir(), *(out / REJECTS).iterdir()]:
        if part.name not in kept:
            part.unlink()
    on_ray = relabel(RelabelConfig(output=out, engine="ray", workers=2, cpus_per_worker=0.5, **common))

    assert on_ray == {**local, "output": str(out)}
    ray_rows = pa.concat_tables(list(read_output(out))).to_pylist()
    assert ray_rows == pa.concat_tables(list(read_output(tmp_path / "local"))).to_pylist()
    assert len(ray_rows) == len(rows) and len(lines) > 6
    assert (out / "rejects.jsonl").read_text() == (tmp_path / "local" / "rejects.jsonl").read_text()
