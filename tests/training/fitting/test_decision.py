import numpy as np
import pytest

from model.assist.decision import DecisionPolicy
from model.conversation.taxonomy import load_taxonomy
from tests.conftest import TAXONOMY
from training.fitting.decision import coverage_report, fit_policy, precision_threshold


def test_decision_precision_threshold_reaches_target():
    conf = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0])
    # top 5 are all right (precision 1.0); the 6th brings it to 5/6 < 0.9; 7th: 6/7 < 0.9
    assert precision_threshold(conf, correct, 0.9, min_support=3) == pytest.approx(0.7)
    assert precision_threshold(conf, correct, 0.8, min_support=3) == pytest.approx(0.5)
    assert precision_threshold(conf[:2], correct[:2], 0.9, min_support=5) is None
    assert precision_threshold(conf, np.zeros(8), 0.9, min_support=1) is None


def test_decision_policy_and_coverage(taxonomy_path):
    task = load_taxonomy(taxonomy_path).tasks["reason2"]
    classes = ["Не могу выйти в интернет", "Низкая скорость. Почему?", "Другое"]
    rng = np.random.default_rng(0)
    y, probs = [], []
    for i in range(300):
        truth = i % 3
        p = rng.dirichlet([1, 1, 1])
        if i % 4:  # three in four rows: confident and right
            p = np.full(3, 0.05)
            p[truth] = 0.9
        y.append(classes[truth])
        probs.append(p)
    probs = np.asarray(probs)
    policy = fit_policy(task, classes, probs, y, target_precision=0.9)
    assert set(policy.thresholds) == set(classes)
    cov = coverage_report(task, classes, probs, y, DecisionPolicy(tasks={"reason2": policy}))
    assert cov["label_precision"] >= 0.9
    assert 0.5 <= cov["label_coverage"] <= 1.0
    assert cov["label_coverage"] + cov["group_coverage"] + cov["abstained"] == pytest.approx(1.0)


def test_decision_policy_never_reached_is_none():
    """A label or group no threshold brings to the target precision is never decided: None (stored 1.01)."""
    task = load_taxonomy(TAXONOMY).tasks["reason2"]
    classes = ["Не могу выйти в интернет", "Низкая скорость. Почему?", "Другое"]
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], size=60)
    y = [classes[int(i)] for i in rng.integers(0, 3, size=60)]  # unrelated to probs: nothing is 99% precise
    policy = fit_policy(task, classes, probs, y, target_precision=0.99)
    assert policy.threshold is None and set(policy.thresholds.values()) == {None}
    assert policy.group_threshold is None and set(policy.group_thresholds.values()) <= {None}
    stored = policy.to_dict()
    assert stored["threshold"] == 1.01 and set(stored["thresholds"].values()) == {1.01}
    cov = coverage_report(task, classes, probs, y, DecisionPolicy(tasks={"reason2": policy}))
    assert cov["abstained"] == 1.0


def test_decision_policy_stored_in_bundle(predictor):
    decision = predictor.bundle.decision
    assert decision.target_precision == 0.9
    assert set(decision.tasks) == {"reason2", "topic", "resolution"}
    manifest = predictor.bundle.manifest
    assert manifest.decision == decision
    cov = manifest.metrics["holdout"]["tasks"]["reason2"]["coverage"]
    assert {"label_coverage", "label_precision", "abstained"} <= set(cov)
    assert "ece_uncalibrated" in manifest.metrics["holdout"]["tasks"]["reason2"]
