"""The taxonomy's domain rules, parsed and checked against its tasks and macros.

Four optional sections of the taxonomy file (``datasets/taxonomy.yaml`` documents them):

- ``domains``: the problem task of each domain (what the client's words say the contact is about);
- ``closing``: the labels of a task that close an interaction;
- ``duplicates``: the duplicate policy (the label and macro proposed, the channels left out);
- ``comment_rules``: when the CRM's rule book asks for a comment (text and label conditions → hint).

A taxonomy without a section has no such rule: nothing here knows a label, and nothing falls back to
another contact centre's values. Every name a rule uses is checked at load, with the key and the fix.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model.conversation.record import CHANNELS
from model.errors import TaxonomyError

if TYPE_CHECKING:
    from model.conversation.taxonomy import Macro, Task

TEXT_SCOPES = ("client", "operator", "conversation", "last_operator_turns")


@dataclass(frozen=True)
class Closing:
    """Labels of ``task`` that close an interaction (for the duplicate check) when feedback chooses one."""

    task: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DuplicatePolicy:
    """What the duplicate check proposes: ``label`` of ``task``, and ``macro`` with ``{slot}`` = the earlier id."""

    task: str
    label: str
    macro: str | None = None
    slot: str | None = None
    skip_channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextCondition:
    """A regular expression searched in one text of the conversation (lower-cased, ё → е).

    ``pattern`` or ``named`` (name → pattern: holds when any matches); ``window`` and ``then``: ``then``
    must match within the match and the ``window`` characters after it; ``count``: for
    ``last_operator_turns``, how many of the last operator turns must each match.
    """

    scope: str
    pattern: re.Pattern[str] | None = None
    named: tuple[tuple[str, re.Pattern[str]], ...] = ()
    window: int = 0
    then: re.Pattern[str] | None = None
    count: int = 1


@dataclass(frozen=True)
class LabelCondition:
    """The conversation's decided label of ``task`` is one of ``labels``."""

    task: str
    labels: frozenset[str]


@dataclass(frozen=True)
class RuleCase:
    """One way a rule holds: every text condition and the label condition (when given); ``because`` is
    the hint, with ``{match}`` (the first text condition's match) and ``{label}``."""

    because: str
    text: tuple[TextCondition, ...] = ()
    label: LabelCondition | None = None


@dataclass(frozen=True)
class CommentRule:
    """A rule of the comment rule book: the first of its ``cases`` that holds gives the reason."""

    id: str
    seed_rule: int | None
    cases: tuple[RuleCase, ...]
    unless: tuple[str, ...] = ()  # ids of earlier rules: this one is skipped when one of them fired


@dataclass(frozen=True)
class CommentRules:
    """The comment rule book of one domain; ``domain_tasks``/``other_tasks``: the taxonomy's tasks of that
    domain and of the others (to tell a conversation's domain from its labels when it is not given)."""

    domain: str
    rules: tuple[CommentRule, ...]
    domain_tasks: frozenset[str] = frozenset()
    other_tasks: frozenset[str] = frozenset()

    @property
    def patterns(self) -> list[re.Pattern[str]]:
        """Every regular expression the rules use (for audits)."""
        out: list[re.Pattern[str]] = []
        for rule in self.rules:
            for case in rule.cases:
                for cond in case.text:
                    out += [p for p in (cond.pattern, cond.then) if p is not None]
                    out += [p for _, p in cond.named]
        return out


def effective_domain(task: Task) -> str:
    """A task's domain as bundles and the domain head name it: its ``domain``, else its own name."""
    return task.domain or task.name


def parse_problems(raw: Any, tasks: Mapping[str, Task], source: str) -> dict[str, str]:
    """``domains:`` → {domain: its problem task}, in the file's order."""
    if raw is None:
        return {}
    where = f"{source}: domains"
    if not isinstance(raw, dict) or not raw:
        raise TaxonomyError(
            f"{where} must be a mapping domain -> {{problem: task}}, e.g. 'telecom: {{problem: reason2}}'"
        )
    domains = {effective_domain(t) for t in tasks.values()}
    problems: dict[str, str] = {}
    for domain, spec in raw.items():
        name = str(domain)
        if name not in domains:
            raise TaxonomyError(
                f"{where}: {name!r} is not the domain of any task; the tasks' domains are {sorted(domains)} "
                "(a task without 'domain' is its own domain)"
            )
        if not isinstance(spec, dict) or set(spec) != {"problem"}:
            raise TaxonomyError(
                f"{where}.{name} must be {{problem: task}}, the task that says what the contact is about"
            )
        task = _task(spec["problem"], tasks, f"{where}.{name}.problem")
        if effective_domain(tasks[task]) != name:
            raise TaxonomyError(
                f"{where}.{name}.problem: task {task!r} is of domain {effective_domain(tasks[task])!r}, "
                f"not {name!r}; name a task of this domain"
            )
        problems[name] = task
    return problems


def parse_closing(raw: Any, tasks: Mapping[str, Task], source: str) -> Closing | None:
    """``closing:`` → the labels that close an interaction, or ``None`` when the section is absent."""
    if raw is None:
        return None
    where = f"{source}: closing"
    spec = _mapping(raw, where, {"task", "labels"}, required={"task", "labels"})
    task = _task(spec["task"], tasks, f"{where}.task")
    labels = _labels(spec["labels"], tasks[task], f"{where}.labels")
    return Closing(task=task, labels=labels)


def parse_duplicates(
    raw: Any, tasks: Mapping[str, Task], macros: Mapping[str, Macro], problems: Mapping[str, str], source: str
) -> DuplicatePolicy | None:
    """``duplicates:`` → the duplicate policy, or ``None`` (no duplicate check) when the section is absent."""
    if raw is None:
        return None
    where = f"{source}: duplicates"
    spec = _mapping(raw, where, {"task", "label", "macro", "slot", "skip_channels"}, required={"task", "label"})
    if not problems:
        raise TaxonomyError(
            f"{where} needs the problem task of each domain to compare conversations on: "
            "add 'domains: {<domain>: {problem: <task>}}'"
        )
    task = _task(spec["task"], tasks, f"{where}.task")
    (label,) = _labels([spec["label"]], tasks[task], f"{where}.label")
    macro = spec.get("macro")
    slot = spec.get("slot")
    if macro is not None:
        macro = str(macro)
        if macro not in macros:
            raise TaxonomyError(f"{where}.macro: {macro!r} is not a macro of 'macros'; use one of {sorted(macros)}")
        if slot is not None and str(slot) not in macros[macro].slots:
            raise TaxonomyError(
                f"{where}.slot: macro {macro!r} has no {{{slot}}} slot; use one of {list(macros[macro].slots)}"
            )
    elif slot is not None:
        raise TaxonomyError(f"{where}.slot is set without 'macro'; name the macro whose slot takes the earlier id")
    channels = spec.get("skip_channels") or []
    if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
        raise TaxonomyError(f"{where}.skip_channels must list some of {list(CHANNELS)}")
    return DuplicatePolicy(
        task=task,
        label=label,
        macro=macro,
        slot=None if slot is None else str(slot),
        skip_channels=tuple(channels),
    )


def parse_comment_rules(raw: Any, tasks: Mapping[str, Task], source: str) -> CommentRules | None:
    """``comment_rules:`` → the rule book, or ``None`` (no comment hint at all) when the section is absent."""
    if raw is None:
        return None
    where = f"{source}: comment_rules"
    spec = _mapping(raw, where, {"domain", "rules"}, required={"domain", "rules"})
    domain = str(spec["domain"])
    domains = {effective_domain(t) for t in tasks.values()}
    if domain not in domains:
        raise TaxonomyError(f"{where}.domain: {domain!r} is not the domain of any task; use one of {sorted(domains)}")
    if not isinstance(spec["rules"], list) or not spec["rules"]:
        raise TaxonomyError(f"{where}.rules must be a non-empty list of rules (id, seed_rule, when)")
    rules: list[CommentRule] = []
    for i, rule_raw in enumerate(spec["rules"]):
        rules.append(_parse_rule(rule_raw, tasks, [r.id for r in rules], f"{where}.rules[{i}]"))
    own = frozenset(name for name, t in tasks.items() if effective_domain(t) == domain)
    return CommentRules(domain=domain, rules=tuple(rules), domain_tasks=own, other_tasks=frozenset(tasks) - own)


def _parse_rule(raw: Any, tasks: Mapping[str, Task], earlier: list[str], where: str) -> CommentRule:
    spec = _mapping(raw, where, {"id", "seed_rule", "unless", "when"}, required={"id", "when"})
    rule_id = str(spec["id"])
    where = f"{where} ({rule_id})"
    if rule_id in earlier:
        raise TaxonomyError(f"{where}: the id {rule_id!r} is used twice; give each rule its own id")
    seed_rule = spec.get("seed_rule")
    if seed_rule is not None and (not isinstance(seed_rule, int) or isinstance(seed_rule, bool)):
        raise TaxonomyError(f"{where}.seed_rule must be a number (the rule's number in the rule book) or null")
    unless = spec.get("unless") or []
    if not isinstance(unless, list) or any(str(u) not in earlier for u in unless):
        raise TaxonomyError(f"{where}.unless must list ids of rules above this one; they are {earlier}")
    cases_raw = spec["when"]
    if not isinstance(cases_raw, list) or not cases_raw:
        raise TaxonomyError(f"{where}.when must be a non-empty list of cases (text and/or label, and because)")
    cases = tuple(_parse_case(c, tasks, f"{where}.when[{k}]") for k, c in enumerate(cases_raw))
    return CommentRule(id=rule_id, seed_rule=seed_rule, cases=cases, unless=tuple(str(u) for u in unless))


def _parse_case(raw: Any, tasks: Mapping[str, Task], where: str) -> RuleCase:
    spec = _mapping(raw, where, {"text", "label", "because"}, required={"because"})
    text_raw = spec.get("text")
    text_list = [] if text_raw is None else text_raw if isinstance(text_raw, list) else [text_raw]
    text = tuple(_parse_text(t, f"{where}.text[{k}]") for k, t in enumerate(text_list))
    label = None
    if spec.get("label") is not None:
        label_spec = _mapping(spec["label"], f"{where}.label", {"task", "labels"}, required={"task", "labels"})
        task = _task(label_spec["task"], tasks, f"{where}.label.task")
        label = LabelCondition(
            task=task, labels=frozenset(_labels(label_spec["labels"], tasks[task], f"{where}.label"))
        )
    if not text and label is None:
        raise TaxonomyError(f"{where} has no condition; give it 'text', 'label' or both")
    because = spec["because"]
    if not isinstance(because, str) or not because.strip():
        raise TaxonomyError(f"{where}.because must be the hint's text")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(because) if name is not None}
    except ValueError as exc:
        raise TaxonomyError(f"{where}.because: {exc}; write a literal brace as {{{{ or }}}}") from exc
    known = ({"match"} if text else set()) | ({"label"} if label is not None else set())
    if fields - known:
        raise TaxonomyError(
            f"{where}.because uses {sorted(fields - known)}; this case offers {sorted(known) or 'no fields'} "
            "({match}: needs a text condition, {label}: a label condition)"
        )
    return RuleCase(because=because, text=text, label=label)


def _parse_text(raw: Any, where: str) -> TextCondition:
    spec = _mapping(raw, where, {"in", "pattern", "patterns", "window", "then", "count"}, required={"in"})
    scope = spec["in"]
    if scope not in TEXT_SCOPES:
        raise TaxonomyError(f"{where}.in is {scope!r}; use one of {list(TEXT_SCOPES)}")
    if ("pattern" in spec) == ("patterns" in spec):
        raise TaxonomyError(f"{where} needs either 'pattern' or 'patterns' (name -> pattern), not both or neither")
    named: tuple[tuple[str, re.Pattern[str]], ...] = ()
    pattern = None
    if "patterns" in spec:
        if not isinstance(spec["patterns"], dict) or not spec["patterns"]:
            raise TaxonomyError(f"{where}.patterns must be a mapping name -> pattern")
        if "window" in spec or "then" in spec:
            raise TaxonomyError(f"{where}: 'window' and 'then' go with 'pattern', not 'patterns'")
        named = tuple((str(n), _regex(p, f"{where}.patterns[{n!r}]")) for n, p in spec["patterns"].items())
    else:
        pattern = _regex(spec["pattern"], f"{where}.pattern")
    window = spec.get("window", 0)
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise TaxonomyError(f"{where}.window must be a number of characters (0 or more)")
    then = _regex(spec["then"], f"{where}.then") if spec.get("then") is not None else None
    count = spec.get("count", 1)
    if "count" in spec and scope != "last_operator_turns":
        raise TaxonomyError(f"{where}.count goes with 'in: last_operator_turns' only")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise TaxonomyError(f"{where}.count must be a number of turns (1 or more)")
    if scope == "last_operator_turns" and (named or window or then is not None):
        raise TaxonomyError(f"{where}: 'in: last_operator_turns' takes 'pattern' and 'count' only")
    return TextCondition(scope=scope, pattern=pattern, named=named, window=window, then=then, count=count)


def _regex(raw: Any, where: str) -> re.Pattern[str]:
    """A pattern, or a list of alternatives joined with ``|``, compiled."""
    if isinstance(raw, list) and raw and all(isinstance(p, str) and p for p in raw):
        text = "|".join(raw)
    elif isinstance(raw, str) and raw:
        text = raw
    else:
        raise TaxonomyError(f"{where} must be a regular expression or a non-empty list of alternatives")
    try:
        return re.compile(text)
    except re.error as exc:
        raise TaxonomyError(f"{where}: not a valid regular expression ({exc}): {text!r}") from exc


def _mapping(raw: Any, where: str, keys: set[str], *, required: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where} must be a mapping with {sorted(required)}")
    unknown = sorted(str(k) for k in raw if k not in keys)
    if unknown:
        raise TaxonomyError(f"{where} has unknown keys {unknown}; known keys are {sorted(keys)}")
    missing = sorted(required - set(raw))
    if missing:
        raise TaxonomyError(f"{where} lacks {missing}")
    return raw


def _task(raw: Any, tasks: Mapping[str, Task], where: str) -> str:
    name = str(raw)
    if name not in tasks:
        raise TaxonomyError(f"{where}: {name!r} is not a task of this taxonomy; use one of {sorted(tasks)}")
    return name


def _labels(raw: Any, task: Task, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise TaxonomyError(f"{where} must be a non-empty list of labels of task {task.name!r}")
    unknown = [str(label) for label in raw if str(label) not in task.labels]
    if unknown:
        raise TaxonomyError(
            f"{where} names unknown labels {unknown} of task {task.name!r}; "
            "labels are matched byte for byte: copy them from the task's 'labels'"
        )
    return tuple(str(label) for label in raw)
