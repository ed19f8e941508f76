"""Picking per-category thresholds on validation data."""

import numpy as np
import pytest

from guard.training.evaluate import best_f1_threshold, precision_threshold


def test_separable_scores_give_a_central_threshold_on_the_plateau():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.95])
    t = best_f1_threshold(y, p)
    assert 0.3 < t <= 0.7  # any threshold in (0.3, 0.7] is perfect; the closest to 0.5 is 0.7
    assert ((p >= t) == y.astype(bool)).all()


def test_threshold_maximises_f1_when_classes_overlap():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)]
    p = np.r_[rng.normal(0.3, 0.15, 500), rng.normal(0.7, 0.15, 500)].clip(0, 1)
    t = best_f1_threshold(y, p, tolerance=0.0)
    f1 = lambda th: 2 * ((p >= th) & (y == 1)).sum() / ((p >= th).sum() + (y == 1).sum())  # noqa: E731
    assert f1(t) >= max(f1(x) for x in np.linspace(0.05, 0.95, 91)) - 1e-9


def test_block_threshold_reaches_the_precision_target_and_never_undercuts_flag():
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    t = precision_threshold(y, p, target=0.99, floor=0.45)
    assert t == pytest.approx(0.7)
    assert precision_threshold(y, p, target=0.99, floor=0.85) == pytest.approx(0.9)
