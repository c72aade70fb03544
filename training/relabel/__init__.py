"""Batch re-labelling of history: stream JSONL/CSV/Parquet through a model bundle into Parquet parts,
resumable after any kill, with rejects and a diff report; on local cores or on Ray.

    from training.relabel import RelabelConfig, relabel
    report = relabel(RelabelConfig(model="models/default", inputs=["history/"], output="out/relabel"))
"""

from typing import TYPE_CHECKING

__all__ = ["RelabelConfig", "output_schema", "read_output", "relabel", "relabel_batch"]

# imported on first use, so that ``podskazka --help`` (which registers the relabel command from
# training.relabel.cli) does not pull in pyarrow, the model and scikit-learn
_LAZY = {
    "output_schema": "batch",
    "relabel_batch": "batch",
    "RelabelConfig": "job",
    "relabel": "job",
    "read_output": "outputs",
}

if TYPE_CHECKING:  # pragma: no cover
    from training.relabel.batch import output_schema, relabel_batch
    from training.relabel.job import RelabelConfig, relabel
    from training.relabel.outputs import read_output


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"training.relabel.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'training.relabel' has no attribute {name!r}")
