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
