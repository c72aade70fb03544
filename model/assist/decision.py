"""The decision layer: when to commit to a label, fall back to its group, or abstain.

A bundle's ``decision`` section (chosen on validation data at training time) holds per task and per
label the confidence needed to reach the target precision, the group thresholds, and a margin for
near ties. Without it every task uses ``default_threshold``.

    decide(...) -> {"label": str | None, "confidence": float, "level": "label" | "group" | None}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.conversation.taxonomy import Task

DEFAULT_THRESHOLD = 0.5


def decide(task: Task, classes: list[str], probs: np.ndarray, policy: dict[str, Any]) -> dict[str, Any]:
    """The decision for one row's probabilities ``probs`` over ``classes``."""
    task_policy = policy.get("tasks", {}).get(task.name, {})
    default = float(policy.get("default_threshold", DEFAULT_THRESHOLD))
    margin = float(task_policy.get("margin", policy.get("margin", 0.0)))
    order = np.argsort(-probs, kind="stable")
    top = int(order[0])
    label, confidence = classes[top], float(probs[top])
    second = float(probs[order[1]]) if len(order) > 1 else 0.0
    threshold = float(task_policy.get("thresholds", {}).get(label, task_policy.get("threshold", default)))
    if confidence >= threshold and confidence - second >= margin:
        return {"label": label, "confidence": round(confidence, 6), "level": "label"}
    if task.groups:
        group_scores: dict[str, float] = {}
        for cls, p in zip(classes, probs):
            group = task.group_of(cls)
            if group is not None:
                group_scores[group] = group_scores.get(group, 0.0) + float(p)
        if group_scores:
            group, score = max(group_scores.items(), key=lambda kv: kv[1])
            members = task.groups[group]
            group_threshold = float(
                task_policy.get("group_thresholds", {}).get(group, task_policy.get("group_threshold", default))
            )
            if len(members) > 1 and score >= group_threshold:
                return {"label": group, "confidence": round(score, 6), "level": "group"}
    return {"label": None, "confidence": round(confidence, 6), "level": None}
