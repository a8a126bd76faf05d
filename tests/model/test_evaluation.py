"""Evaluation tables, the calibration choice and the search's time folds, on small arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from leadq.models.calibration_choice import base_pipeline, choose_calibration
from leadq.models.evaluation import capture_at, evaluate, segment_table, tier_table
from leadq.models.search import time_folds


def test_capture_and_tiers_add_up():
    rng = np.random.default_rng(0)
    score = rng.random(1000)
    y = (rng.random(1000) < score**3).astype(int)
    assert capture_at(y, y.astype(float), y.mean()) == 1.0  # a perfect ranking finds them all
    assert 0.1 < capture_at(y, rng.random(1000), 0.2) < 0.3  # a random one finds ~20 %
    tiers = tier_table(y, score, (0.8, 0.6, 0.3))
    assert list(tiers["tier"]) == ["A", "B", "C", "D"]
    assert tiers["leads_share"].sum() == 1.0
    assert abs(tiers["conversions_share"].sum() - 1.0) < 1e-9
    assert tiers["conversion_rate"].is_monotonic_decreasing
    ev = evaluate(y, score, cutoffs=(0.8, 0.6, 0.3))
    assert ev.metrics["test_top2_leads_share"] == tiers.loc[:1, "leads_share"].sum()
    assert ev.metrics["test_tier_a_vs_d_lift"] > 10
    assert {"gains", "calibration", "tiers"} <= set(ev.tables)


def test_segments_pool_small_values():
    y = np.array([0, 1] * 60)
    seg = pd.DataFrame({"source": ["big"] * 100 + [f"tiny{i}" for i in range(20)]})
    table = segment_table(y, np.linspace(0, 1, 120), seg, min_rows=50)
    assert set(table["value"]) == {"big", "(other)"}
    assert table["leads"].sum() == 120


def test_calibration_choice_fixes_a_balanced_model_and_keeps_a_calibrated_one():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=6000)})  # noqa: N806
    y = pd.Series((rng.random(6000) < 1 / (1 + np.exp(-(X["x"] * 1.5 - 2.5)))).astype(int))
    fit, val = slice(0, 3000), slice(3000, 6000)
    balanced = LogisticRegression(class_weight="balanced").fit(X[fit], y[fit])
    model, method, losses = choose_calibration(balanced, X[val], y[val])
    assert method in ("sigmoid", "isotonic") and losses[method] < losses["none"] - 0.05
    assert abs(model.predict_proba(X[val])[:, 1].mean() - y[val].mean()) < 0.01
    assert base_pipeline(model) is balanced
    plain = LogisticRegression().fit(X[fit], y[fit])
    _, _, plain_losses = choose_calibration(plain, X[val], y[val])
    # Already calibrated: doing nothing is within noise of the best map.
    assert plain_losses["none"] - min(plain_losses.values()) < 0.002


def test_time_folds_fit_on_the_past_only():
    folds = time_folds(100, 3)
    assert len(folds) == 3
    for fit_idx, held_idx in folds:
        assert fit_idx.max() < held_idx.min()
    assert folds[-1][1].max() == 99
