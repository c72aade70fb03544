"""``comment_required``: does the CRM's rule book demand a comment for this conversation, and why.

The rules are data: the taxonomy's ``comment_rules`` section (parsed and checked by
:mod:`model.conversation.domain_rules`; the project's file carries the telecom rule book of seed 000_…,
«Комментарии в Interaction необходимо вносить в случаях»). This module only runs them: each rule's
cases read the text (client and operator turns apart) and the decided labels, and the first case that
holds gives the rule's reason. A taxonomy without the section has no rule book, and the predictor
gives no hint (``comment_required: null``) rather than another centre's rules firing on its conversations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.conversation.domain_rules import CommentRules, RuleCase, TextCondition
from model.conversation.record import Interaction


@dataclass(frozen=True)
class _Texts:
    """The conversation as the rules read it: lower case, ё → е, spaces collapsed."""

    client: str
    operator: str
    operator_turns: tuple[str, ...]
    # (pattern, scope) -> its first match: rules that share a pattern (a transfer, the actions) search once
    _found: dict[tuple[re.Pattern[str], str], re.Match[str] | None] = field(default_factory=dict)

    def of(self, scope: str) -> str:
        """The text a condition's ``in`` names: client, operator or conversation (client then operator)."""
        if scope == "client":
            return self.client
        if scope == "operator":
            return self.operator
        return f"{self.client} {self.operator}"

    def search(self, pattern: re.Pattern[str], scope: str) -> re.Match[str] | None:
        """``pattern.search`` in the text of ``scope``, each pattern searched once per conversation."""
        key = (pattern, scope)
        if key not in self._found:
            self._found[key] = pattern.search(self.of(scope))
        return self._found[key]


def comment_required(
    rules: CommentRules,
    interaction: Interaction,
    labels: Mapping[str, str | None] | None = None,
    domain: str | None = None,
) -> dict[str, Any]:
    """``{"required": bool, "reasons": [{"rule", "seed_rule", "because"}]}`` for one conversation.

    ``labels`` are the decided (or top) labels per task; ``domain`` the conversation's domain when
    known. A conversation of another domain than the rule book's never requires one; without a
    domain, one whose labels are all of tasks of other domains does not either.
    """
    decided = {task: label for task, label in (labels or {}).items() if label}
    if domain is not None and domain != rules.domain:
        return {"required": False, "reasons": []}
    if domain is None and not set(decided) & rules.domain_tasks and set(decided) & rules.other_tasks:
        return {"required": False, "reasons": []}
    operator_turns = tuple(_clean(t.text) for t in interaction.turns if t.role == "operator")
    texts = _Texts(
        client=" ".join(_clean(t.text) for t in interaction.turns if t.role == "client"),
        operator=" ".join(operator_turns),
        operator_turns=operator_turns,
    )
    reasons: list[dict[str, Any]] = []
    fired: set[str] = set()
    for rule in rules.rules:
        if fired.intersection(rule.unless):
            continue
        for case in rule.cases:
            because = _because(case, texts, decided)
            if because is not None:
                reasons.append({"rule": rule.id, "seed_rule": rule.seed_rule, "because": because})
                fired.add(rule.id)
                break
    return {"required": bool(reasons), "reasons": reasons}


def _because(case: RuleCase, texts: _Texts, labels: Mapping[str, str]) -> str | None:
    """The case's hint when it holds, else ``None``."""
    label = None
    if case.label is not None:
        label = labels.get(case.label.task)
        if label not in case.label.labels:
            return None
    match = None
    for condition in case.text:
        found = _search(condition, texts)
        if found is None:
            return None
        match = found if match is None else match
    return case.because.format(match=match, label=label)


def _search(cond: TextCondition, texts: _Texts) -> str | None:
    """What ``cond`` found (the text a hint quotes), or ``None`` when it does not hold."""
    if cond.scope == "last_operator_turns":
        pattern = cond.pattern
        last = texts.operator_turns[-cond.count :]
        found = [m for m in (pattern.search(t) for t in last) if m is not None] if pattern is not None else []
        return found[-1].group(0) if last and len(found) == len(last) else None
    if cond.named:
        names = [name for name, pattern in cond.named if texts.search(pattern, cond.scope)]
        return ", ".join(names) if names else None
    m = texts.search(cond.pattern, cond.scope) if cond.pattern is not None else None
    if m is None:
        return None
    if not cond.window and cond.then is None:
        return m.group(0)
    span = m.string[m.start() : m.end() + cond.window]
    if cond.then is not None and not cond.then.search(span):
        return None
    return span.strip()[: cond.window] if cond.window else m.group(0)


def _clean(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())
