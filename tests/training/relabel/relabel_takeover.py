"""The shared case of the cluster-engine tests: a job the local engine stopped after two chunks is
finished by another engine, whose output must equal the local engine's, row for row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.factories import make_rows, write_jsonl
from training.relabel import RelabelConfig, read_output, relabel
from training.relabel.outputs import MANIFEST, PARTS, REJECTS


def check_takeover(tmp_path: Path, bundle_dir: Path, engine: str, **engine_options) -> None:
    rows = [dict(r, id=f"r{i}") for i, r in enumerate(make_rows() * 2)]
    jsonl = write_jsonl(tmp_path / "in" / "a.jsonl", rows[:70])
    with open(jsonl, "ab") as fh:
        fh.write(b'{"id": "broken", "text": \n{"text": "no id"}\n')
    pq.write_table(pa.Table.from_pylist(rows[70:]), tmp_path / "in" / "b.parquet", row_group_size=16)
    common = {"model": bundle_dir, "inputs": [str(tmp_path / "in")], "batch_size": 16, "progress": False}
    local = relabel(RelabelConfig(output=tmp_path / "local", workers=1, **common))
    assert local["rejected_by_reason"] == {"broken_json": 1, "missing_id": 1}

    # the other engine takes over a job the local engine stopped after two chunks
    out = tmp_path / engine
    shutil.copytree(tmp_path / "local", out)
    lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    kept = {json.loads(line)["part"] for line in lines[:2]}
    for part in [*(out / PARTS).iterdir(), *(out / REJECTS).iterdir()]:
        if part.name not in kept:
            part.unlink()
    taken_over = relabel(RelabelConfig(output=out, engine=engine, **engine_options, **common))

    assert taken_over == {**local, "output": str(out)}
    manifest = [json.loads(line) for line in (out / MANIFEST).read_text(encoding="utf-8").splitlines()]
    assert len(manifest) == len(lines) and len({(e["file"], e["chunk"]) for e in manifest}) == len(lines)
    engine_rows = pa.concat_tables(list(read_output(out))).to_pylist()
    assert engine_rows == pa.concat_tables(list(read_output(tmp_path / "local"))).to_pylist()
    assert len(engine_rows) == len(rows) and len(lines) > 6
    assert (out / "rejects.jsonl").read_text() == (tmp_path / "local" / "rejects.jsonl").read_text()
