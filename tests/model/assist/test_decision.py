"""The decision policy as data: what bundles store round-trips unchanged; "never" is None, not 1.01."""

import json
from pathlib import Path

import numpy as np
import pytest

from model.assist.decision import NEVER_STORED, Decision, DecisionPolicy, PriorEntry, TaskPolicy, decide
from model.conversation.taxonomy import load_taxonomy
from model.errors import BundleError

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BUNDLE = ROOT / "models" / "default"

STORED = {
    "target_precision": 0.9,
    "margin": 0.05,
    "tasks": {
        "reason2": {
            "threshold": 0.584446,
            "thresholds": {"Другое": 0.905807, "Настройки": NEVER_STORED},
            "group_threshold": NEVER_STORED,
            "group_thresholds": {"Неработоспособность": 0.881893, "Списания": NEVER_STORED},
            "margin": 0.05,
        },
        "resolution": {
            "threshold": NEVER_STORED,
            "thresholds": {},
            "group_threshold": NEVER_STORED,
            "group_thresholds": {},
            "margin": 0.0,
        },
    },
    "train_priors": {"resolution": {"Решено": 0.5, "Спам": 0.5}},
    "priors": {"resolution": {"train": {"Решено": 0.5}, "target": {"Решено": 0.9, "Спам": 0.1}, "source": "test"}},
}


def test_policy_round_trips_the_stored_json():
    policy = DecisionPolicy.from_dict(STORED)
    assert json.dumps(policy.to_dict(), ensure_ascii=False) == json.dumps(STORED, ensure_ascii=False)
    assert DecisionPolicy.from_dict(policy.to_dict()) == policy


def test_policy_reads_never_as_none():
    policy = DecisionPolicy.from_dict(STORED)
    reason2 = policy.for_task("reason2")
    assert reason2.label_threshold("Другое") == 0.905807
    assert reason2.label_threshold("Настройки") is None  # stored 1.01: never
    assert reason2.label_threshold("Процедуры") == 0.584446  # no own threshold: the task's
    assert reason2.group_threshold is None
    assert reason2.group_threshold_of("Неработоспособность") == 0.881893
    assert reason2.group_threshold_of("Услуги") is None
    assert policy.for_task("resolution").threshold is None
    assert policy.priors["resolution"] == PriorEntry(
        target={"Решено": 0.9, "Спам": 0.1}, train={"Решено": 0.5}, source="test"
    )
    assert policy.train_priors["resolution"] == {"Решено": 0.5, "Спам": 0.5}


def test_policy_defaults_for_unnamed_tasks_and_missing_keys():
    empty = DecisionPolicy.from_dict({})
    assert empty == DecisionPolicy() == DecisionPolicy.from_dict(None)
    assert empty.for_task("topic") == TaskPolicy(threshold=0.5, group_threshold=0.5, margin=0.0)
    partial = DecisionPolicy.from_dict(
        {"margin": 0.2, "default_threshold": 0.7, "tasks": {"topic": {"threshold": 0.95}}, "note": "kept"}
    )
    topic = partial.for_task("topic")
    assert (topic.threshold, topic.group_threshold, topic.margin) == (0.95, 0.7, 0.2)
    assert partial.for_task("reason2") == TaskPolicy(threshold=0.7, group_threshold=0.7, margin=0.2)
    assert partial.to_dict()["note"] == "kept"  # keys of a newer writer survive a rewrite


def test_policy_refuses_a_damaged_entry():
    with pytest.raises(BundleError, match=r"decision.tasks.topic.threshold is 'high', not a number"):
        DecisionPolicy.from_dict({"tasks": {"topic": {"threshold": "high"}}})
    with pytest.raises(BundleError, match="unknown keys"):
        DecisionPolicy.from_dict({"tasks": {"topic": {"treshold": 0.5}}})
    with pytest.raises(BundleError, match="not a mapping"):
        DecisionPolicy.from_dict({"tasks": ["topic"]})


def test_never_decides_even_at_full_confidence(taxonomy_path):
    task = load_taxonomy(taxonomy_path).tasks["reason2"]
    classes = ["Не могу выйти в интернет", "Низкая скорость. Почему?", "Другое"]
    never = DecisionPolicy(tasks={"reason2": TaskPolicy(threshold=None, group_threshold=None)})
    assert decide(task, classes, np.array([1.0, 0.0, 0.0]), never) == Decision(None, 1.0, None)
    # the same policy read from its stored form decides the same
    stored = DecisionPolicy.from_dict(never.to_dict())
    assert stored.to_dict()["tasks"]["reason2"]["threshold"] == NEVER_STORED
    assert decide(task, classes, np.array([1.0, 0.0, 0.0]), stored).level is None
    # a group threshold of its own decides the group when the leaf is unsure
    groups = DecisionPolicy(
        tasks={
            "reason2": TaskPolicy(threshold=None, group_threshold=None, group_thresholds={"Неработоспособность": 0.8})
        }
    )
    assert decide(task, classes, np.array([0.45, 0.4, 0.15]), groups).level == "group"


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(), reason="no default bundle")
def test_default_bundle_policy_round_trips():
    stored = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text(encoding="utf-8"))["decision"]
    policy = DecisionPolicy.from_dict(stored)
    assert json.dumps(policy.to_dict(), ensure_ascii=False) == json.dumps(stored, ensure_ascii=False)
    assert policy.target_precision == 0.9 and set(policy.tasks) == {"reason2", "topic", "resolution"}
    assert NEVER_STORED not in {
        t for task in policy.tasks.values() for t in (task.threshold, task.group_threshold, *task.thresholds.values())
    }
