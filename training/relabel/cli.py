"""``podskazka relabel``: the typer wrapper; the work is in :func:`training.relabel.relabel`."""

from __future__ import annotations

from pathlib import Path

import typer


def relabel_command(
    model: Path = typer.Option(..., "--model", help="bundle folder"),
    inputs: list[Path] = typer.Option(..., "--input", help="JSONL/CSV/Parquet files or folders (repeat)"),
    output: Path = typer.Option(..., "--output", help="output folder (run the same command again to resume)"),
    engine: str = typer.Option("local", "--engine", help="local | ray | spark"),
    tasks: list[str] | None = typer.Option(None, "--tasks", help="tasks to label (repeat; default: every task)"),
    workers: int | None = typer.Option(None, "--workers", help="worker processes or actors (default: every core)"),
    batch_size: int = typer.Option(2048, "--batch-size", help="rows per chunk (the unit of resumption)"),
    column: list[str] | None = typer.Option(None, "--column", help="column mapping OURS=THEIRS, e.g. id=call_id"),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="ray: CPUs each actor claims"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="ray: address of an existing cluster"),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: on a terminal)"
    ),
) -> None:
    """Re-label history with a model: Parquet parts, rejects, a diff report; resumable after any kill."""
    from training.options import parse_columns
    from training.relabel import RelabelConfig, relabel

    report = relabel(
        RelabelConfig(
            model=model,
            inputs=list(inputs),
            output=output,
            engine=engine,
            tasks=tasks or None,
            workers=workers,
            batch_size=batch_size,
            column_map=parse_columns(column),
            progress=progress,
            cpus_per_worker=cpus_per_worker,
            ray_address=ray_address,
        )
    )
    typer.echo(
        f"{report['rows']:,} rows: {report['labelled']:,} labelled, {report['rejected']:,} rejected"
        + (f" {report['rejected_by_reason']}" if report["rejected"] else "")
    )
    for task, t in report["tasks"].items():
        if t["compared"]:
            typer.echo(f"{task}: {t['changed']:,} of {t['compared']:,} labels changed")
        if t.get("unknown_old_labels"):
            shown = ", ".join(f"{label!r} ({n:,})" for label, n in list(t["unknown_old_labels"].items())[:10])
            typer.secho(
                f"WARNING: {task}: {sum(t['unknown_old_labels'].values()):,} rows carry old labels not in the "
                f"model's taxonomy: {shown}; training would refuse them: add them to the taxonomy or "
                "correct the rows",
                err=True,
                fg="yellow",
            )
    typer.echo(f"output in {output} (diff report: {output / 'diff.md'})")
