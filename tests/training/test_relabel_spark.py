"""The Spark engine in local mode gives the local engine's output, row for row."""

from __future__ import annotations

import json
import shutil
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.factories import make_rows, write_jsonl
from training.relabel import RelabelConfig, read_output, relabel
from training.relabel.store import MANIFEST, PARTS, REJECTS

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def local_spark():
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)  # the Python workers run this interpreter
        spark = (
            SparkSession.builder.master("local[2,4]").appName("test-relabel").config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        yield spark
        spark.stop()


def test_relabel_spark_engine_equals_local_engine_row_for_row(tmp_path, trained_bundle_dir, local_spark):
    rows = [dict(r, id=f"r{i}") for i, r in enumerate(make_rows() * 2)]
    jsonl = write_jsonl(tmp_path / "in" / "a.jsonl", rows[:70])
    with open(jsonl, "ab") as fh:
        fh.write(b'{"id": "broken", "text": \n{"text": "no id"}\n')
    pq.write_table(pa.Table.from_pylist(rows[70:]), tmp_path / "in" / "b.parquet", row_group_size=16)
    common = {"model": trained_bundle_dir, "inputs": [str(tmp_path / "in")], "batch_size": 16, "progress": False}
    local = relabel(RelabelConfig(output=tmp_path / "local", workers=1, **common))
    assert local["rejected_by_reason"] == {"broken_json": 1, "missing_id": 1}

    # Spark takes over a job the local engine stopped after two chunks, and does every other chunk
    out = tmp_path / "spark"
    shutil.copytree(tmp_path / "local", out)
    lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    kept = {json.loads(line)["part"] for line in lines[:2]}
    for part in [*(out / PARTS).iterdir(), *(out / REJECTS).iterdir()]:
        if part.name not in kept:
            part.unlink()
    on_spark = relabel(RelabelConfig(output=out, engine="spark", workers=2, **common))

    assert on_spark == {**local, "output": str(out)}
    manifest = [json.loads(line) for line in (out / MANIFEST).read_text(encoding="utf-8").splitlines()]
    assert len(manifest) == len(lines) and len({(e["file"], e["chunk"]) for e in manifest}) == len(lines)
    spark_rows = pa.concat_tables(list(read_output(out))).to_pylist()
    assert spark_rows == pa.concat_tables(list(read_output(tmp_path / "local"))).to_pylist()
    assert len(spark_rows) == len(rows) and len(lines) > 6
    assert (out / "rejects.jsonl").read_text() == (tmp_path / "local" / "rejects.jsonl").read_text()
