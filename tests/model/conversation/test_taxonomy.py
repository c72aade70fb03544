import pytest

from model.conversation.taxonomy import load_taxonomy, parse_taxonomy
from model.errors import TaxonomyError


def test_taxonomy_project_copy_loads(taxonomy_path):
    tax = load_taxonomy(taxonomy_path)
    assert set(tax.task_names) == {"reason2", "topic", "resolution"}
    assert len(tax.tasks["reason2"].labels) == 26
    assert len(tax.tasks["topic"].labels) == 27
    assert "Не решено - Эскалировать" in tax.tasks["resolution"].labels
    assert tax.tasks["reason2"].group_of("Не могу выйти в интернет") == "Неработоспособность"
    assert tax.macros["M04"].slots == ("интернет_MMS", "модель", "действие")
    assert len(tax.sha256) == 64


def _raw(**task_overrides):
    task = {"labels": {"a": "A", "b": "B"}, "groups": {"g": ["a"]}}
    task.update(task_overrides)
    return {"version": 1, "tasks": {"t": task}, "macros": {}}


def test_taxonomy_duplicate_labels_refused():
    with pytest.raises(TaxonomyError, match="duplicate labels"):
        parse_taxonomy(_raw(labels=["a", "b", "a"]))


def test_taxonomy_group_with_unknown_label_refused():
    with pytest.raises(TaxonomyError, match=r"group 'g' names unknown labels \['zz'\]"):
        parse_taxonomy(_raw(groups={"g": ["a", "zz"]}))


def test_taxonomy_empty_task_refused():
    with pytest.raises(TaxonomyError, match="task 't' has no labels"):
        parse_taxonomy(_raw(labels={}))


def test_taxonomy_no_tasks_refused():
    with pytest.raises(TaxonomyError, match="'tasks' must be a non-empty mapping"):
        parse_taxonomy({"version": 1, "tasks": {}})


def test_taxonomy_label_in_two_groups_refused():
    with pytest.raises(TaxonomyError, match="is in two groups"):
        parse_taxonomy(_raw(groups={"g": ["a"], "h": ["a"]}))


def test_taxonomy_unreadable_file_names_path(tmp_path):
    with pytest.raises(TaxonomyError, match="cannot read the taxonomy file"):
        load_taxonomy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="not valid UTF-8 YAML"):
        load_taxonomy(bad)


def test_taxonomy_project_copy_has_its_domain_rules(taxonomy_path):
    tax = load_taxonomy(taxonomy_path)
    assert tax.problems == {"telecom": "reason2", "marketplace": "topic"}
    assert tax.problem_tasks == ("reason2", "topic")
    assert tax.closing is not None and tax.closing.task == "resolution"
    assert tax.closing.labels == ("Решено", "НТО", "Спам", "Дубликат")
    policy = tax.duplicates
    assert policy is not None and (policy.task, policy.label, policy.macro) == ("resolution", "Дубликат", "M23")
    assert policy.slot == "номер_обращения" and policy.skip_channels == ("chat",)
    assert tax.comment_rules is not None and tax.comment_rules.domain == "telecom"
    assert [r.id for r in tax.comment_rules.rules] == [
        "claim",
        "asis_transfer",
        "expert_transfer",
        "agreement",
        "internet_mms",
        "identified_action",
        "legal_entity_block",
        "refusal",
        "dropped_call",
    ]
    assert "domains" not in tax.to_dict()  # GET /v1/taxonomy keeps its body


def _with_rules(**sections):
    """Two domains (telecom: reason, marketplace: topic and resolution), a macro, and the given sections."""
    raw = {
        "version": 1,
        "tasks": {
            "reason": {"domain": "telecom", "labels": ["Списание", "Другое"]},
            "topic": {"domain": "marketplace", "labels": ["Заказ", "Другое"]},
            "resolution": {"domain": "marketplace", "labels": ["Решено", "Дубликат"]},
        },
        "macros": {"M1": {"title": "Дубликат", "text": "Дубликат № {номер}."}},
        "domains": {"telecom": {"problem": "reason"}, "marketplace": {"problem": "topic"}},
    }
    raw.update(sections)
    return {k: v for k, v in raw.items() if v is not None}


def _rule(**case):
    return {"domain": "telecom", "rules": [{"id": "r", "when": [{"because": "x", **case}]}]}


def test_taxonomy_domain_rules_parse_and_absent_sections_mean_no_rules():
    tax = parse_taxonomy(
        _with_rules(
            closing={"task": "resolution", "labels": ["Решено"]},
            duplicates={"task": "resolution", "label": "Дубликат", "macro": "M1", "slot": "номер"},
            comment_rules=_rule(label={"task": "reason", "labels": ["Списание"]}),
        )
    )
    assert tax.duplicates is not None and tax.duplicates.skip_channels == ()
    assert tax.comment_rules is not None and tax.comment_rules.domain_tasks == {"reason"}
    assert tax.comment_rules.other_tasks == {"topic", "resolution"}
    bare = parse_taxonomy(_with_rules(domains=None))
    assert (bare.problems, bare.closing, bare.duplicates, bare.comment_rules) == ({}, None, None, None)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"domains": {"retail": {"problem": "topic"}}}, r"domains: 'retail' is not the domain of any task"),
        ({"domains": {"telecom": {"problem": "topic"}}}, r"domains.telecom.problem: task 'topic' is of domain"),
        ({"domains": {"telecom": {"problem": "intent"}}}, r"'intent' is not a task of this taxonomy"),
        (
            {"closing": {"task": "resolution", "labels": ["Закрыто"]}},
            r"closing.labels names unknown labels \['Закрыто'\]",
        ),
        ({"closing": {"task": "resolution"}}, r"closing lacks \['labels'\]"),
        ({"duplicates": {"task": "resolution", "label": "Повтор"}}, r"duplicates.label names unknown labels"),
        ({"duplicates": {"task": "resolution", "label": "Дубликат", "macro": "M23"}}, r"'M23' is not a macro"),
        (
            {"duplicates": {"task": "resolution", "label": "Дубликат", "macro": "M1", "slot": "id"}},
            r"macro 'M1' has no \{id\} slot; use one of \['номер'\]",
        ),
        (
            {"duplicates": {"task": "resolution", "label": "Дубликат", "skip_channels": ["fax"]}},
            r"skip_channels must list some of",
        ),
        ({"domains": None, "duplicates": {"task": "resolution", "label": "Дубликат"}}, r"add 'domains:"),
        ({"comment_rules": {"domain": "rutube", "rules": []}}, r"comment_rules.domain: 'rutube' is not the domain"),
        ({"comment_rules": _rule(label={"task": "reason2", "labels": ["x"]})}, r"'reason2' is not a task"),
        (
            {"comment_rules": _rule(label={"task": "reason", "labels": ["Претензия"]})},
            r"unknown labels \['Претензия'\]",
        ),
        ({"comment_rules": _rule(text={"in": "client", "pattern": "(unclosed"})}, r"not a valid regular expression"),
        ({"comment_rules": _rule(text={"in": "clients", "pattern": "x"})}, r"\.in is 'clients'; use one of"),
        ({"comment_rules": _rule(text={"in": "client"})}, r"needs either 'pattern' or 'patterns'"),
        ({"comment_rules": _rule(text={"in": "client", "pattern": "x", "count": 2})}, r"count goes with"),
        ({"comment_rules": _rule()}, r"has no condition; give it 'text', 'label' or both"),
        ({"comment_rules": _rule(text={"in": "client", "pattern": "x"}, because="«{label}»")}, r"uses \['label'\]"),
        ({"comment_rules": _rule(text={"in": "client", "pattern": "x"}, when="x")}, r"unknown keys \['when'\]"),
        (
            {"comment_rules": {"domain": "telecom", "rules": [{"id": "a", "unless": ["b"], "when": []}]}},
            r"rules\[0\] \(a\)\.unless must list ids of rules above this one",
        ),
    ],
)
def test_taxonomy_domain_rule_errors_name_the_key(sections, message):
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy(_with_rules(**sections))
