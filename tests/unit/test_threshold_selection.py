"""Picking per-category thresholds on validation data."""

import numpy as np
import pytest

from guard.training.thresholds import fpr_threshold, precision_threshold


def test_flag_threshold_keeps_benign_false_alarms_within_the_budget():
    rng = np.random.default_rng(0)
    benign = rng.uniform(0, 1, 1000)
    t = fpr_threshold(benign, budget=0.01)
    assert (benign >= t).mean() <= 0.01
    assert (benign >= t - 0.01).mean() > 0.005  # and not much stricter than needed
    assert fpr_threshold(np.array([0.01, 0.02, 0.03]), budget=0.0) == pytest.approx(0.15)  # the floor
    assert fpr_threshold(np.array([0.2, 0.9, 0.3]), budget=0.0) > 0.9


def test_block_threshold_reaches_the_precision_target_and_never_undercuts_flag():
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    t = precision_threshold(y, p, target=0.99, floor=0.45)
    assert t == pytest.approx(0.7)
    assert precision_threshold(y, p, target=0.99, floor=0.85) == pytest.approx(0.9)


def _validation(positives_llm: int):
    """Scores that separate at 0.6 for user texts and at 0.3 for llm texts, for every category."""
    from guard.training.sources import CATEGORIES

    rows, labels, sources = [], [], []
    for source, cut, positives in (("user", 0.6, 40), ("llm", 0.3, positives_llm)):
        for i in range(120):
            unsafe = i < positives
            score = (cut + 0.2 if unsafe else cut - 0.2) + (i % 7) * 0.01
            rows.append([score] * len(CATEGORIES))
            labels.append([float(unsafe)] * len(CATEGORIES))
            sources.append(source)
    return np.array(labels), np.array(rows), np.array(sources)


def test_thresholds_are_picked_per_source_and_injection_is_off_for_llm_output():
    from guard.training.thresholds import pick_thresholds

    y, p, sources = _validation(positives_llm=40)
    picked = pick_thresholds(y, p, sources)
    assert 0.4 < picked["user"]["violence"]["flag"] <= 0.8
    assert 0.1 < picked["llm"]["violence"]["flag"] <= 0.5
    assert picked["llm"]["prompt_injection"] == {"flag": None, "block": None, "positives": 0}


def test_block_is_picked_on_both_sources_and_never_below_the_source_flag():
    from guard.training.thresholds import pick_thresholds

    y, p, sources = _validation(positives_llm=5)
    picked = pick_thresholds(y, p, sources)
    user, llm = picked["user"]["hate"], picked["llm"]["hate"]
    assert llm["positives"] == 5 and user["positives"] == 40
    assert llm["flag"] < user["flag"]  # FLAG from each source's own benign texts
    assert user["block"] >= user["flag"] and llm["block"] >= llm["flag"]
    assert llm["block"] == user["block"] or llm["block"] == llm["flag"]


def test_the_policy_carries_user_thresholds_and_llm_overrides_that_the_service_applies():
    from guard.decision import Action, Source
    from guard.policy import Policy, PolicyConfig
    from guard.training.thresholds import pick_thresholds, policy_config

    y, p, sources = _validation(positives_llm=40)
    config = policy_config(pick_thresholds(y, p, sources), version="t-1")
    policy = Policy("default", PolicyConfig(**config))
    scores = {"violence": 0.45}
    assert policy.decide(scores, Source.USER).action is Action.ALLOW
    assert policy.decide(scores, Source.LLM).action is not Action.ALLOW
    assert policy.decide({"prompt_injection": 0.99}, Source.LLM).action is Action.ALLOW
    assert policy.decide({"prompt_injection": 0.99}, Source.USER).action is not Action.ALLOW
