"""How often each comment rule fires on the telecom corpus, against the macros operators inserted.

    python bench/comment_rules.py [--data datasets/corpus]

The corpus's macros were assigned by the taxonomy's ``when`` rules, which mirror the rule book
(M01 claim, M02 transfer to experts, M03 agreement, M04 internet/MMS, M05–M09 identified actions,
M10 legal-entity block, M11 refusal, M12 ASIS, M14 dropped call). For each rule: recall on rows whose
operator used its macro, and how often it fires on rows that did not. The row's own reason2 label is
given to the rules (as a decided label would be in serving). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.assist.comments import comment_required  # noqa: E402
from model.conversation.record import interaction_from_dict  # noqa: E402
from model.conversation.taxonomy import load_taxonomy  # noqa: E402

RULE_OF_MACRO = {
    "M01": "claim",
    "M02": "expert_transfer",
    "M03": "agreement",
    "M04": "internet_mms",
    "M05": "identified_action",
    "M06": "identified_action",
    "M07": "identified_action",
    "M08": "identified_action",
    "M09": "identified_action",
    "M10": "legal_entity_block",
    "M11": "refusal",
    "M12": "asis_transfer",
    "M14": "dropped_call",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "datasets" / "corpus"))
    parser.add_argument("--taxonomy", default=str(ROOT / "datasets" / "taxonomy.yaml"), help="its comment_rules run")
    args = parser.parse_args()
    rules = load_taxonomy(args.taxonomy).comment_rules
    if rules is None:
        raise SystemExit(f"{args.taxonomy} has no comment_rules section: nothing to measure")
    files = sorted(Path(args.data).glob("*.jsonl")) if Path(args.data).is_dir() else [Path(args.data)]
    rows = [json.loads(line) for f in files for line in f.open(encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r.get("reason2") and r.get("macros") is not None]
    hit, pos, fired_neg, neg = (collections.Counter() for _ in range(4))
    required = {True: [0, 0], False: [0, 0]}
    for row in rows:
        result = comment_required(rules, interaction_from_dict(row), {"reason2": row["reason2"]})
        fired = {r["rule"] for r in result["reasons"]}
        wanted = {RULE_OF_MACRO[m] for m in row["macros"] if m in RULE_OF_MACRO}
        for rule in set(RULE_OF_MACRO.values()):
            if rule in wanted:
                pos[rule] += 1
                hit[rule] += rule in fired
            else:
                neg[rule] += 1
                fired_neg[rule] += rule in fired
        required[bool(wanted)][0] += result["required"]
        required[bool(wanted)][1] += 1
    print(f"telecom rows with reason2 and macros: {len(rows)}")
    for rule in sorted(pos):
        print(
            f"{rule:20s} recall {hit[rule]:4d}/{pos[rule]:<4d} = {hit[rule] / pos[rule]:.2f}   "
            f"fires without its macro {fired_neg[rule]:4d}/{neg[rule]:<4d} = {fired_neg[rule] / neg[rule]:.2f}"
        )
    for wanted, (n_required, n) in required.items():
        print(
            f"required = true on rows {'with' if wanted else 'without'} a comment macro: "
            f"{n_required}/{n} = {n_required / max(n, 1):.2f}"
        )


if __name__ == "__main__":
    main()
