"""Corpus tools: statistics for the data card, the duplicate check, and the bootstrap sample."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from model.conversation.taxonomy import Taxonomy
from model.text.normalize import render_turns
from training.data.load import LoadedData, Row


def normalized_key(row: Row) -> str:
    """The row's turns normalised as the model reads them (role tokens, texts normalised, whitespace
    collapsed): two rows with the same key are duplicates; channel, labels and ids are not compared."""
    return " ".join(render_turns(row.interaction.turns).split())


def find_duplicates(data: LoadedData) -> list[tuple[str, str]]:
    """Pairs of rows (sources) that are identical after normalisation."""
    seen: dict[str, str] = {}
    pairs = []
    for row in data.rows:
        key = normalized_key(row)
        if key in seen:
            pairs.append((seen[key], row.source))
        else:
            seen[key] = row.source
    return pairs


def corpus_stats(data: LoadedData) -> dict[str, Any]:
    """The data card's figures: rows, rows per channel, rows with macros, rows per label (also split by
    channel), distinct groups per label, and percentiles of length in characters and in turns."""
    by_label: dict[str, Counter] = defaultdict(Counter)
    by_channel: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    scenarios: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    lengths: list[int] = []
    turns: list[int] = []
    channels: Counter[str] = Counter()
    with_macros = 0
    for row in data.rows:
        x = row.interaction
        channels[x.channel] += 1
        chars = sum(len(t.text) for t in x.turns)
        lengths.append(chars)
        turns.append(len(x.turns))
        with_macros += bool(x.macros)
        for task, label in x.labels.items():
            by_label[task][label] += 1
            by_channel[task][label][x.channel] += 1
            scenarios[task][label].add(row.group)
    q = [0, 10, 25, 50, 75, 90, 100]
    return {
        "rows": len(data.rows),
        "channels": dict(channels),
        "with_macros": with_macros,
        "labels": {t: dict(c) for t, c in by_label.items()},
        "labels_by_channel": {t: {label: dict(c) for label, c in v.items()} for t, v in by_channel.items()},
        "scenarios": {t: {label: len(s) for label, s in v.items()} for t, v in scenarios.items()},
        "chars_percentiles": dict(zip(map(str, q), np.percentile(lengths, q).round().astype(int).tolist())),
        "turns_percentiles": dict(zip(map(str, q), np.percentile(turns, q).round().astype(int).tolist())),
    }


def stats_markdown(stats: dict[str, Any], taxonomy: Taxonomy) -> str:
    """``corpus_stats`` as the data card's Markdown: one table per task (labels in taxonomy order, rows per
    channel, scenarios) and the length percentiles."""
    lines = [
        f"Rows: {stats['rows']}; channels: {stats['channels']}; rows with macros: "
        f"{stats['with_macros']} ({100 * stats['with_macros'] / stats['rows']:.0f} %)",
        "",
    ]
    for task in taxonomy.task_names:
        if task not in stats["labels"]:
            continue
        lines += [
            f"### {task}",
            "",
            "| label | rows | call | chat | email | scenarios |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label in taxonomy.tasks[task].labels:
            ch = stats["labels_by_channel"][task].get(label, {})
            lines.append(
                f"| {label} | {stats['labels'][task].get(label, 0)} | {ch.get('call', 0)} | {ch.get('chat', 0)} "
                f"| {ch.get('email', 0)} | {stats['scenarios'][task].get(label, 0)} |"
            )
        lines.append("")
    lines.append(
        "Length in characters (percentiles 0/10/25/50/75/90/100): "
        + " / ".join(str(v) for v in stats["chars_percentiles"].values())
    )
    lines.append("Turns (same percentiles): " + " / ".join(str(v) for v in stats["turns_percentiles"].values()))
    return "\n".join(lines)


def sample_per_label(data: LoadedData, per_label: int, seed: int = 13) -> list[int]:
    """Row indices such that every label of every task has at least ``per_label`` rows (where the data
    has them), taking rows from distinct scenarios first. Deterministic for a seed."""
    rng = random.Random(seed)
    order = list(range(len(data.rows)))
    rng.shuffle(order)
    chosen: list[int] = []
    chosen_set: set[int] = set()
    counts: dict[tuple[str, str], int] = Counter()
    # rarest labels first, so rows picked for them also count towards the frequent ones
    label_sizes = Counter((t, x.labels[t]) for x in data.interactions for t in x.labels)
    for task, label in sorted(label_sizes, key=lambda k: (label_sizes[k], k)):
        used_groups = {data.rows[i].group for i in chosen if data.rows[i].interaction.labels.get(task) == label}
        for prefer_new_group in (True, False):
            for i in order:
                if counts[(task, label)] >= per_label:
                    break
                row = data.rows[i]
                if i in chosen_set or row.interaction.labels.get(task) != label:
                    continue
                if prefer_new_group and row.group in used_groups:
                    continue
                chosen.append(i)
                chosen_set.add(i)
                used_groups.add(row.group)
                for t, lab in row.interaction.labels.items():
                    counts[(t, lab)] += 1
    return sorted(chosen)


def write_rows(data: LoadedData, indices: list[int], out: Path) -> None:
    """Copy the chosen rows from their source files, unchanged, to one JSONL file."""
    by_file: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        path, line = data.rows[i].source.rsplit(":", 1)
        by_file[path].append(int(line))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for path, lines in sorted(by_file.items()):
            wanted = set(lines)
            with open(path, encoding="utf-8") as src:
                for n, text in enumerate((t for t in src if t.strip()), 1):
                    if n in wanted:
                        fh.write(json.dumps(json.loads(text), ensure_ascii=False) + "\n")
