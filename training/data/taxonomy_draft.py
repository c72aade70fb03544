"""``podskazka taxonomy-from-data``: draft a taxonomy YAML from the label columns of a data set.

The draft is for a person to review, so it says what it saw: every label with its row count (as a
comment), a description to write (the label's most telling words as a start), and, when one label
column nests in another (every ``label_l2`` under mostly one ``label_l1``), the coarser column as the
finer one's groups. Labels are whitespace-normalised (a trailing NBSP from a spreadsheet is not a new
label), as :func:`training.data.load.load_data` does when it matches rows to the taxonomy.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from model.errors import DataError
from training.data.load import expand_paths, normalize_label, read_records

NEST_PURITY = 0.8  # a finer label belongs to a coarser one when this share of its rows carry it
TOP_WORDS = 6
_WORD = re.compile(r"[а-яёa-z][а-яёa-z-]{3,}", re.IGNORECASE)
_STOP = frozenset(
    """
    этот эта это эти того тому том тем чтобы когда если тоже также только можно нужно надо было были была
    будет буду есть нет него неё ней них мне меня вас вам ваш ваша ваше ваши свой свою своих который которая
    которые очень просто почему почему-то какой какая какие как-то здравствуйте добрый день спасибо пожалуйста
    подскажите скажите могу может могут хочу хотел хотела сделать делать после перед через более менее уже ещё
    еще всё все всех всем даже вообще where what with this that have from your there their would could about
""".split()
)


def label_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Columns that look like labels: ``label``, ``label_l1``, ``category_label``…"""
    names = dict.fromkeys(k for row in rows[:100] for k in row)
    return [n for n in names if n.lower().startswith("label") or n.lower().endswith("label")]


def draft_taxonomy(
    paths: list[str], tasks: list[str] | None, column_map: dict[str, str] | None = None
) -> dict[str, Any]:
    """Read every file; return the draft: per task the labels with counts, groups and descriptions."""
    rows: list[dict[str, Any]] = []
    for path in expand_paths(paths):
        rows.extend(read_records(path, column_map or {}))
    if not rows:
        raise DataError(f"no rows in {paths}")
    tasks = list(tasks or label_columns(rows))
    if not tasks:
        raise DataError(f"no label column found (columns: {sorted(rows[0])}); name them with --task COLUMN")
    missing = [t for t in tasks if not any(t in row for row in rows)]
    if missing:
        raise DataError(
            f"no column {missing} in the data (columns: {sorted(rows[0])}); "
            "name a label column with --task or map it with --column"
        )
    counts: dict[str, Counter[str]] = {t: Counter() for t in tasks}
    raw_forms: dict[str, dict[str, set[str]]] = {t: defaultdict(set) for t in tasks}
    words: dict[str, dict[str, Counter]] = {t: defaultdict(Counter) for t in tasks}
    pairs: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in rows:
        labels = {}
        for t in tasks:
            value = row.get(t)
            if value is None or (isinstance(value, float) and value != value):
                continue
            label = normalize_label(value)
            if not label:
                continue
            labels[t] = label
            counts[t][label] += 1
            raw_forms[t][label].add(str(value))
            words[t][label].update(_words(_text_of(row)))
        for a in labels:
            for b in labels:
                if a != b:
                    pairs[(a, b)][(labels[a], labels[b])] += 1
    thin = [t for t in tasks if len(counts[t]) < 2]
    if thin:
        raise DataError(f"columns {thin} have fewer than two distinct labels; a task needs at least two")
    draft: dict[str, Any] = {"tasks": {}, "rows": len(rows)}
    for t in tasks:
        draft["tasks"][t] = {
            "counts": dict(sorted(counts[t].items(), key=lambda kv: (-kv[1], kv[0]))),
            "descriptions": _descriptions(words[t]),
            "normalised": {label: sorted(forms - {label}) for label, forms in raw_forms[t].items() if forms - {label}},
            "groups": {},
            "group_task": None,
        }
    for fine in tasks:
        best = None
        for coarse in tasks:
            if coarse == fine or len(counts[coarse]) >= len(counts[fine]):
                continue
            groups, purity = _nest(pairs[(coarse, fine)], counts[fine])
            if purity >= NEST_PURITY and (best is None or purity > best[2]):
                best = (coarse, groups, purity)
        if best:
            draft["tasks"][fine].update(group_task=best[0], groups=best[1], group_purity=round(best[2], 3))
    return draft


def _text_of(row: dict[str, Any]) -> str:
    turns = row.get("turns")
    if isinstance(turns, list):
        return " ".join(str(t.get("text", "")) for t in turns if isinstance(t, dict))
    text = row.get("text")
    return text if isinstance(text, str) else ""


def _words(text: str) -> list[str]:
    return [w for w in (m.lower().replace("ё", "е") for m in _WORD.findall(text)) if w not in _STOP]


def _descriptions(words: dict[str, Counter]) -> dict[str, list[str]]:
    """Per label the words most telling of it: frequent in its rows, rare in the other labels' (tf-idf
    over labels)."""
    df = Counter(w for counter in words.values() for w in counter)
    n = len(words)
    out = {}
    for label, counter in words.items():
        scored = sorted(counter.items(), key=lambda kv: (-kv[1] * math.log((n + 1) / df[kv[0]]), kv[0]))
        out[label] = [w for w, c in scored if c >= 2 and df[w] < n][:TOP_WORDS]
    return out


def _nest(pairs: Counter, fine_counts: Counter) -> tuple[dict[str, list[str]], float]:
    """Each fine label under the coarse label most of its rows carry; the share of rows that agree."""
    by_fine: dict[str, Counter] = defaultdict(Counter)
    for (coarse, fine), n in pairs.items():
        by_fine[fine][coarse] += n
    groups: dict[str, list[str]] = defaultdict(list)
    agree = total = 0
    for fine in sorted(fine_counts, key=lambda f: (-fine_counts[f], f)):
        if fine not in by_fine:
            continue
        coarse, n = by_fine[fine].most_common(1)[0]
        groups[coarse].append(fine)
        agree += n
        total += sum(by_fine[fine].values())
    return dict(sorted(groups.items())), (agree / total if total else 0.0)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def draft_yaml(draft: dict[str, Any], sources: list[str]) -> str:
    """The draft as commented YAML that :func:`model.conversation.taxonomy.load_taxonomy` reads."""
    lines = [
        "# Drafted by `podskazka taxonomy-from-data` from " + ", ".join(sources) + f" ({draft['rows']} rows).",
        "# Review it: write a description for every label (the model and the operators read them), merge or",
        "# drop rare labels, check the groups. The comment after a label is its row count in the data.",
        "version: 1",
        "tasks:",
    ]
    for task, d in draft["tasks"].items():
        counts = d["counts"]
        lines += [
            f"  {_q(task)}:",
            f"    question: {_q(f'Which {task}?')}",
            f"    # {len(counts)} labels, {sum(counts.values())} rows",
            "    labels:",
        ]
        for label, n in counts.items():
            words = d["descriptions"].get(label) or []
            text = "TODO: describe this label" + (f" (frequent words: {', '.join(words)})" if words else "")
            note = f"  # {n} rows" + (
                f"; written in the data as {d['normalised'][label]}" if label in d["normalised"] else ""
            )
            lines.append(f"      {_q(label)}: {_q(text)}{note}")
        if d.get("groups"):
            lines.append(
                f"    # groups: each label under the {d['group_task']!r} label most of its rows carry "
                f"({d['group_purity']:.0%} of the rows agree)"
            )
            lines.append("    groups:")
            for group, members in d["groups"].items():
                lines.append(f"      {_q(group)}: [{', '.join(_q(m) for m in members)}]")
    lines += [
        "# Optional domain rules, as in the project's datasets/taxonomy.yaml: domains (the problem task of each",
        "# domain), closing, duplicates and comment_rules. Without them the service runs no duplicate check and",
        "# gives no comment hint (none of the telecom rules apply to this label set).",
        "macros: {}",
    ]
    return "\n".join(lines) + "\n"


def write_draft(
    paths: list[str], tasks: list[str] | None, out: str | Path, column_map: dict[str, str] | None = None
) -> dict[str, Any]:
    """Draft, write and re-read the YAML (so a draft that would not load is never left behind)."""
    import yaml

    from model.conversation.taxonomy import parse_taxonomy

    draft = draft_taxonomy(paths, tasks, column_map)
    text = draft_yaml(draft, [str(p) for p in paths])
    parse_taxonomy(yaml.safe_load(text), source=str(out))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return draft
