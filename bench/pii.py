"""Recall and precision of the personal-data masking (:func:`model.text.pii.mask_pii`) on the labelled set.

    python bench/pii.py [--data tests/data/pii_cases.jsonl] [--errors]

The set (tests/data/pii_cases.jsonl) holds hand-written Russian snippets (calls as speech recognition
writes them, chats, e-mails), each personal datum marked in place as ``{KIND:text}`` (``{ТЕЛЕФОН:8 916
123 45 67}``), and traps: snippets whose numbers, dates and words look like personal data but are not
(tariff prices, order numbers, amounts, delivery dates, phone models, «улица» without an address,
«роза», «белка»), with ``keep``: the values the macros need, which masking must leave as they are.

By entity: a marked datum is found when a masked span of the same kind overlaps it (``strict``: covers
it exactly); a masked span is right when it overlaps a marked datum of its kind. Also: ``leaks`` (marked
data with a digit or letter run of 4+ characters left in the masked text) and ``kept`` (trap values
still in the masked text). A leak is a 4+ character run of a marked datum (names aside) found in the masked
text and nowhere else in the snippet. Prints figures; asserts nothing (tests/model/text/test_pii.py holds the floors).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.text.pii import KINDS, PLACEHOLDERS, find_pii, mask_pii  # noqa: E402

DATA = ROOT / "tests" / "data" / "pii_cases.jsonl"
KIND_OF_LABEL = {placeholder[1:-1]: kind for kind, placeholder in PLACEHOLDERS.items()}
_MARK = re.compile(r"\{([A-ZА-Я_]{3,15}):([^{}]{1,300})\}")


@dataclass
class Case:
    text: str
    gold: list[tuple[int, int, str]]
    keep: list[str]
    channel: str


def parse_case(row: dict) -> Case:
    """``{"text": "мой номер {ТЕЛЕФОН:8 916 …}"}`` → the plain text and the marked spans."""
    text, gold, pos = [], [], 0
    plain_len = 0
    for m in _MARK.finditer(row["text"]):
        before = row["text"][pos : m.start()]
        text.append(before)
        plain_len += len(before)
        kind = KIND_OF_LABEL[m.group(1)]
        gold.append((plain_len, plain_len + len(m.group(2)), kind))
        text.append(m.group(2))
        plain_len += len(m.group(2))
        pos = m.end()
    text.append(row["text"][pos:])
    return Case("".join(text), gold, list(row.get("keep", [])), row.get("channel", "chat"))


def load_cases(path: Path = DATA) -> list[Case]:
    return [parse_case(json.loads(line)) for line in path.open(encoding="utf-8") if line.strip()]


def evaluate(cases: list[Case]) -> dict:
    found, total, right, predicted, strict = (collections.Counter() for _ in range(5))
    leaks, kept, keep_total, errors = 0, 0, 0, []
    for case in cases:
        spans = find_pii(case.text)
        masked = mask_pii(case.text)
        for start, end, kind in case.gold:
            total[kind] += 1
            hit = [s for s in spans if s.kind == kind and s.start < end and start < s.end]
            if hit:
                found[kind] += 1
                strict[kind] += any(s.start == start and s.end == end for s in hit)
            else:
                errors.append(("missed", kind, case.text[start:end], case.text))
            outside = case.text[:start] + " " + case.text[end:]
            for run in re.findall(r"\w{4,}", case.text[start:end]):
                pattern = rf"(?<!\w){re.escape(run)}(?!\w)"
                if kind != "name" and re.search(pattern, masked) and not re.search(pattern, outside):
                    leaks += 1
                    errors.append(("leaked", kind, run, masked))
                    break
        for s in spans:
            predicted[s.kind] += 1
            if any(kind == s.kind and s.start < end and start < s.end for start, end, kind in case.gold):
                right[s.kind] += 1
            else:
                errors.append(("wrong", s.kind, case.text[s.start : s.end], case.text))
        for value in case.keep:
            keep_total += 1
            if value in masked:
                kept += 1
            else:
                errors.append(("destroyed", "keep", value, masked))
    per_kind = {}
    for kind in KINDS:
        per_kind[kind] = {
            "gold": total[kind],
            "found": found[kind],
            "strict": strict[kind],
            "predicted": predicted[kind],
            "right": right[kind],
            "recall": round(found[kind] / total[kind], 3) if total[kind] else None,
            "precision": round(right[kind] / predicted[kind], 3) if predicted[kind] else None,
        }
    all_total, all_found, all_pred, all_right = (sum(c.values()) for c in (total, found, predicted, right))
    return {
        "cases": len(cases),
        "traps": sum(1 for c in cases if not c.gold),
        "entities": all_total,
        "recall": round(all_found / all_total, 3) if all_total else None,
        "strict_recall": round(sum(strict.values()) / all_total, 3) if all_total else None,
        "precision": round(all_right / all_pred, 3) if all_pred else None,
        "leaks": leaks,
        "kept": kept,
        "keep_total": keep_total,
        "by_kind": per_kind,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--errors", action="store_true", help="list every miss, wrong mask and destroyed value")
    args = parser.parse_args()
    cases = load_cases(Path(args.data))
    start = time.perf_counter()
    report = evaluate(cases)
    spent = time.perf_counter() - start
    print(
        f"{report['cases']} snippets ({report['traps']} traps without personal data), "
        f"{report['entities']} marked entities; {spent * 1000 / report['cases']:.1f} ms per snippet"
    )
    print(f"{'kind':<12}{'gold':>6}{'pred':>6}{'recall':>9}{'strict':>9}{'precision':>11}")
    for kind, row in report["by_kind"].items():
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        strict = "-" if not row["gold"] else f"{row['strict'] / row['gold']:.3f}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        print(f"{kind:<12}{row['gold']:>6}{row['predicted']:>6}{recall:>9}{strict:>9}{precision:>11}")
    print(
        f"{'all':<12}{report['entities']:>6}{sum(r['predicted'] for r in report['by_kind'].values()):>6}"
        f"{report['recall']:>9.3f}{report['strict_recall']:>9.3f}{report['precision']:>11.3f}"
    )
    print(f"leaks (a 4+ character run of a marked datum, names aside, left in the masked text): {report['leaks']}")
    print(f"trap values kept for the macros: {report['kept']}/{report['keep_total']}")
    if args.errors:
        for kind, label, value, text in report["errors"]:
            print(f"  {kind:<9} {label:<11} «{value}»  in  {text}")


if __name__ == "__main__":
    main()
