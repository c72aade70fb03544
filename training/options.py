"""Command-line option parsing shared by ``podskazka`` and ``podskazka relabel`` (no heavy imports)."""

from __future__ import annotations

import typer


def parse_columns(columns: list[str] | None) -> dict[str, str]:
    """``--column OURS=THEIRS`` options as a mapping; a malformed one is a usage error naming the fix."""
    mapping = {}
    for item in columns or []:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r}: use OURS=THEIRS, e.g. text=message_body")
        ours, theirs = item.split("=", 1)
        mapping[ours.strip()] = theirs.strip()
    return mapping
