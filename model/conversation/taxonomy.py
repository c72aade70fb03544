"""The label sets, the macro library and the domain rules, loaded from data (``datasets/taxonomy.yaml``).

Nothing here knows any label: another contact centre swaps in its own file. Loading validates the
file and refuses an inconsistent one with a message that points at the offending entry. The domain
rules (problem tasks, closing labels, the duplicate policy, the comment rule book) are parsed by
:mod:`model.conversation.domain_rules`; a file without their sections has no such rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.conversation.domain_rules import (
    Closing,
    CommentRules,
    DuplicatePolicy,
    parse_closing,
    parse_comment_rules,
    parse_duplicates,
    parse_problems,
)
from model.conversation.record import CHANNELS, ROLES
from model.errors import TaxonomyError

# a macro text's ``{slot}`` placeholders: the one definition, used by the taxonomy and by slot filling
# (model.assist.slots); a slot name is 1 to 64 characters, so a text is read in linear time
SLOT_PATTERN = re.compile(r"\{([^{}]{1,64})\}")


def template_slots(text: str) -> tuple[str, ...]:
    """The ``{slot}`` names of a macro text, each once, in the order they first appear."""
    return tuple(dict.fromkeys(SLOT_PATTERN.findall(text)))


@dataclass(frozen=True)
class Task:
    """One classification task: its labels (with descriptions) and optional label groups."""

    name: str
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    domain: str = ""
    question: str = ""
    title: str = ""  # a short heading for people (the operator page); question: what the task asks
    # label -> the evidence it needs: alternatives, any of which suffices, each {"roles": (...), "channel": (...)}
    # whose keys must all hold; see model/assist/adjust.py
    needs: dict[str, tuple[dict[str, tuple[str, ...]], ...]] = field(default_factory=dict)

    def group_of(self, label: str) -> str | None:
        """The group ``label`` belongs to (a decision falls back to it), or ``None``."""
        for group, members in self.groups.items():
            if label in members:
                return group
        return None


@dataclass(frozen=True)
class Macro:
    """A comment template with ``{slot}`` placeholders."""

    id: str
    title: str
    text: str
    when: str

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots the macro's text holds, in order (:func:`template_slots`)."""
        return template_slots(self.text)


@dataclass(frozen=True)
class Taxonomy:
    """A contact centre's taxonomy file: tasks and labels, the macro library, the content-check lexicon
    and the domain rules (problem tasks, closing, duplicates, comment rules)."""

    version: str
    tasks: dict[str, Task]
    macros: dict[str, Macro]
    sha256: str = ""
    # the content check's lexicon: a conversation whose client words are all in it gets no decision
    filler_words: frozenset[str] = frozenset()
    # domain rules (model/conversation/domain_rules.py); a taxonomy without their sections has none
    problems: dict[str, str] = field(default_factory=dict)  # domain -> its problem task
    closing: Closing | None = None
    duplicates: DuplicatePolicy | None = None
    comment_rules: CommentRules | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks' names, in the file's order."""
        return tuple(self.tasks)

    @property
    def problem_tasks(self) -> tuple[str, ...]:
        """The problem task of each domain (``domains:`` in the file), in the file's order."""
        return tuple(self.problems.values())

    def to_dict(self) -> dict[str, Any]:
        """The taxonomy as the API's ``GET /v1/taxonomy`` shows it: tasks with labels, groups and evidence rules,
        the macros with their slots, the content check's lexicon."""
        return {
            "version": self.version,
            "tasks": {
                name: {
                    "domain": task.domain,
                    "title": task.title,
                    "question": task.question,
                    "labels": [
                        {"label": label, "description": task.descriptions.get(label, ""), "group": task.group_of(label)}
                        for label in task.labels
                    ],
                    "groups": {g: list(m) for g, m in task.groups.items()},
                    "needs": {
                        label: [{k: list(v) for k, v in alt.items()} for alt in alts]
                        for label, alts in task.needs.items()
                    },
                }
                for name, task in self.tasks.items()
            },
            "macros": [
                {"id": m.id, "title": m.title, "text": m.text, "when": m.when, "slots": list(m.slots)}
                for m in self.macros.values()
            ],
            "content_check": {"filler_words": sorted(self.filler_words)},
        }


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and validate a taxonomy YAML file."""
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(
            f"cannot read the taxonomy file {path}: {exc.strerror}. "
            "Pass the path of a taxonomy YAML (the project's is datasets/taxonomy.yaml)."
        ) from exc
    try:
        raw = yaml.safe_load(raw_bytes.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"the taxonomy file {path} is not valid UTF-8 YAML: {exc}") from exc
    taxonomy = parse_taxonomy(raw, source=str(path))
    return dataclasses.replace(taxonomy, sha256=hashlib.sha256(raw_bytes).hexdigest())


def parse_taxonomy(raw: Any, *, source: str = "taxonomy") -> Taxonomy:
    """Validate an already parsed taxonomy mapping."""
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{source}: expected a mapping with 'version', 'tasks' and 'macros' at the top")
    if "version" not in raw:
        raise TaxonomyError(f"{source}: missing 'version' (e.g. 'version: 1')")
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise TaxonomyError(f"{source}: 'tasks' must be a non-empty mapping of task name -> labels")
    tasks = {str(name): _parse_task(str(name), spec, source) for name, spec in tasks_raw.items()}
    macros = _parse_macros(raw.get("macros") or {}, source)
    problems = parse_problems(raw.get("domains"), tasks, source)
    return Taxonomy(
        version=str(raw["version"]),
        tasks=tasks,
        macros=macros,
        filler_words=_parse_content_check(raw.get("content_check"), source),
        problems=problems,
        closing=parse_closing(raw.get("closing"), tasks, source),
        duplicates=parse_duplicates(raw.get("duplicates"), tasks, macros, problems, source),
        comment_rules=parse_comment_rules(raw.get("comment_rules"), tasks, source),
    )


NEED_KEYS: dict[str, tuple[str, ...]] = {"roles": ROLES, "channel": CHANNELS}


def _parse_needs(raw: Any, labels: list[str], where: str) -> dict[str, tuple[dict[str, tuple[str, ...]], ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where}: 'needs' must be a mapping label -> {{roles: [...], channel: [...]}}")
    needs = {}
    for label, spec in raw.items():
        if label not in labels:
            raise TaxonomyError(f"{where}: 'needs' names unknown label {label!r}; labels are matched byte for byte")
        alternatives = spec if isinstance(spec, list) else [spec]
        parsed = []
        for alt in alternatives:
            if not isinstance(alt, dict) or not alt:
                raise TaxonomyError(
                    f"{where}: needs[{label!r}] must be a mapping like {{roles: [operator]}} "
                    "or a list of such mappings (any of them suffices)"
                )
            need = {}
            for key, values in alt.items():
                if key not in NEED_KEYS:
                    raise TaxonomyError(f"{where}: needs[{label!r}] has unknown key {key!r}; use {sorted(NEED_KEYS)}")
                if not isinstance(values, list) or not values or any(v not in NEED_KEYS[key] for v in values):
                    raise TaxonomyError(f"{where}: needs[{label!r}].{key} must list some of {list(NEED_KEYS[key])}")
                need[key] = tuple(values)
            parsed.append(need)
        needs[str(label)] = tuple(parsed)
    return needs


def _parse_content_check(raw: Any, source: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    words = raw.get("filler_words") if isinstance(raw, dict) else None
    if not isinstance(words, list) or any(not isinstance(w, str) or not w.strip() for w in words):
        raise TaxonomyError(f"{source}: content_check.filler_words must be a list of words")
    return frozenset(w.strip().lower().replace("ё", "е") for w in words)


def _parse_task(name: str, spec: Any, source: str) -> Task:
    where = f"{source}: task '{name}'"
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{where}: expected a mapping with 'labels'")
    labels_raw = spec.get("labels")
    if isinstance(labels_raw, dict):
        items = list(labels_raw.items())
    elif isinstance(labels_raw, list):
        items = [(label, "") for label in labels_raw]
    else:
        raise TaxonomyError(f"{where}: 'labels' must be a mapping label -> description or a list of labels")
    if not items:
        raise TaxonomyError(f"{where} has no labels; add at least two under 'labels'")
    labels = [str(label) for label, _ in items]
    if any(not label.strip() for label in labels):
        raise TaxonomyError(f"{where}: a label is empty; every label needs a name")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise TaxonomyError(f"{where}: duplicate labels {duplicates}; each label must appear once")
    if len(labels) < 2:
        raise TaxonomyError(f"{where} has one label ({labels[0]!r}); a classifier needs at least two")
    groups_raw = spec.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise TaxonomyError(f"{where}: 'groups' must be a mapping group -> list of labels")
    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for group, members in groups_raw.items():
        if not isinstance(members, list) or not members:
            raise TaxonomyError(f"{where}: group '{group}' must list at least one label")
        unknown = [m for m in members if m not in labels]
        if unknown:
            raise TaxonomyError(
                f"{where}: group '{group}' names unknown labels {unknown}; "
                f"add them under 'labels' or fix the spelling (labels are matched byte for byte)"
            )
        for member in members:
            if member in seen:
                raise TaxonomyError(f"{where}: label '{member}' is in two groups ('{seen[member]}' and '{group}')")
            seen[member] = str(group)
        groups[str(group)] = tuple(str(m) for m in members)
    return Task(
        name=name,
        labels=tuple(labels),
        descriptions={str(k): str(v or "") for k, v in items},
        groups=groups,
        domain=str(spec.get("domain", "")),
        question=str(spec.get("question", "")),
        title=str(spec.get("title", "")),
        needs=_parse_needs(spec.get("needs"), labels, where),
    )


def _parse_macros(raw: Any, source: str) -> dict[str, Macro]:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{source}: 'macros' must be a mapping id -> {{title, text, when}}")
    macros = {}
    for macro_id, spec in raw.items():
        if not isinstance(spec, dict) or not str(spec.get("text", "")).strip():
            raise TaxonomyError(f"{source}: macro '{macro_id}' needs a non-empty 'text'")
        macros[str(macro_id)] = Macro(
            id=str(macro_id),
            title=str(spec.get("title", macro_id)),
            text=str(spec["text"]),
            when=str(spec.get("when", "")),
        )
    return macros
