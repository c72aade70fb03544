"""Batch re-labelling of history: stream JSONL/CSV/Parquet through a model bundle into Parquet parts,
resumable after any kill, with rejects and a diff report; on local cores or on Ray.

    from training.relabel import RelabelConfig, relabel
    report = relabel(RelabelConfig(model="models/default", inputs=["history/"], output="out/relabel"))
"""

from training.relabel.batch import output_schema, relabel_batch
from training.relabel.job import RelabelConfig, relabel
from training.relabel.store import read_output

__all__ = ["RelabelConfig", "output_schema", "read_output", "relabel", "relabel_batch"]
