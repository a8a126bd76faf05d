"""Threshold policies, tiers, prior shift, drift and exploration: pure functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features.agreement import Agreement
from leadq.models.drift import drift_verdict, psi_categorical, psi_numeric
from leadq.models.prior_shift import Correction, adjust_prior, em_prior
from leadq.models.routing import explore_uniform, route
from leadq.models.thresholds import Policies, choose_threshold, resolve_threshold, tier_cutoffs
from leadq.models.tiers import assign_tiers
from leadq.pipelines.params.loader import effective_params


@pytest.fixture(scope="module")
def scores() -> np.ndarray:
    rng = np.random.default_rng(0)
    return 1 / (1 + np.exp(-(rng.normal(-2.5, 1.2, 10000))))  # 10,000 leads in one week


def test_capacity_fills_but_never_exceeds(scores):
    d = resolve_threshold(scores, Policies(capacity=800), weeks=1.0)
    assert 790 <= d.mql_per_week <= 800
    assert d.binding == "capacity" and not d.conflicts
    assert (scores >= d.threshold).sum() == round(d.mql_per_week)


def test_min_precision_is_the_lowest_bar_that_meets_it(scores):
    d = resolve_threshold(scores, Policies(min_precision=0.4), weeks=1.0)
    passed = scores >= d.threshold
    assert scores[passed].mean() >= 0.4
    lower = scores[scores < d.threshold].max()
    assert scores[scores >= lower].mean() < 0.4
    assert d.binding == "min_precision"


def test_expected_value_without_constraints_sits_at_break_even(scores):
    d = resolve_threshold(scores, Policies(objective="expected_value", won_value=10000,
                                           lead_cost=1500), weeks=1.0)
    assert d.threshold == pytest.approx(0.15, abs=0.01)
    # Capacity still caps the profit-maximising bar.
    capped = resolve_threshold(scores, Policies(capacity=200, objective="expected_value",
                                                won_value=10000, lead_cost=1500), weeks=1.0)
    assert capped.mql_per_week <= 200 and capped.binding == "capacity"


def test_conflicting_recall_and_capacity_names_the_gap_and_falls_back(scores):
    d = resolve_threshold(scores, Policies(capacity=500, min_recall=0.8), weeks=1.0)
    assert len(d.conflicts) == 1
    msg = d.conflicts[0]
    assert msg.startswith("min_recall 80.0% cannot be met together with capacity: "
                          "best achievable ")
    best = float(msg.split("best achievable ")[1].split("%")[0]) / 100
    assert best == pytest.approx(d.expected_recall, abs=1e-3)
    short = float(msg.split("(")[1].split(" points short")[0])
    assert short == pytest.approx(100 * (0.8 - d.expected_recall), abs=0.1)
    assert "fallback: min_recall relaxed to the closest bar" in msg
    # Documented fallback: capacity (first in priority) holds, recall is as high as it allows.
    assert 495 <= d.mql_per_week <= 500
    assert msg in d.reason


def test_priority_order_decides_which_constraint_gives(scores):
    d = resolve_threshold(scores, Policies(capacity=500, min_recall=0.8,
                                           priority=("min_recall", "capacity", "min_precision")),
                          weeks=1.0)
    assert d.expected_recall >= 0.8
    assert d.conflicts and d.conflicts[0].startswith("capacity 500/week cannot be met")
    assert d.mql_per_week > 500


def test_unreachable_precision_falls_back_to_the_best_achievable(scores):
    d = resolve_threshold(scores, Policies(min_precision=0.99), weeks=1.0)
    assert d.conflicts and "min_precision 99.0% cannot be met: best achievable" in d.conflicts[0]
    assert d.expected_precision == pytest.approx(scores.max())


def test_no_policy_is_an_error(scores):
    with pytest.raises(ValueError, match="at least one"):
        resolve_threshold(scores, Policies(), weeks=1.0)


def _agreement(**mql) -> Agreement:
    params = effective_params({"agreement": {"mql": mql}})
    return Agreement.from_params(params)


def test_policies_from_the_agreement_keep_its_one_policy_and_take_a_measured_capacity():
    ev = Policies.from_agreement(_agreement(policy="expected_value", won_value=5000,
                                            lead_cost=100))
    assert (ev.capacity, ev.top_share, ev.min_precision, ev.objective) == (
        None, None, None, "expected_value")
    mp = Policies.from_agreement(_agreement(policy="min_precision", min_precision=0.4),
                                 capacity=320)
    assert (mp.capacity, mp.top_share, mp.min_precision, mp.objective) == (
        320.0, None, 0.4, "max_recall")
    ts = Policies.from_agreement(_agreement(policy="top_share", top_share=0.2))
    assert (ts.top_share, ts.min_precision) == (0.2, None)
    with pytest.raises(ValueError, match="agreement.mql.policy"):
        _agreement(policy="nope")


def test_recalibration_under_top_share_keeps_top_share(scores):
    d = resolve_threshold(scores, Policies.from_agreement(_agreement(policy="top_share",
                                                                     top_share=0.2)),
                          weeks=1.0)
    assert d.binding == "top_share"
    assert d.mql_share == pytest.approx(0.2, abs=0.002)


def test_training_choose_threshold_applies_the_agreed_policy(scores):
    rng = np.random.default_rng(1)
    y = (rng.random(len(scores)) < scores).astype(int)
    d = choose_threshold(scores, y, _agreement(policy="top_share", top_share=0.2))
    assert d.mql_share == pytest.approx(0.2, abs=0.01)
    assert d.base_rate == pytest.approx(scores.mean())
    assert d.cutoffs[1] == d.threshold and d.cutoffs[0] >= d.threshold >= d.cutoffs[2]


def test_tiers_a_b_are_exactly_the_mqls(scores):
    bar = float(np.quantile(scores, 0.9))
    cut = tier_cutoffs(scores, bar, a_share=1 / 3, c_ratio=1.0)
    tiers = assign_tiers(scores, cut)
    mql = scores >= bar
    assert set(tiers[mql]) == {"A", "B"} and set(tiers[~mql]) == {"C", "D"}
    assert (tiers == "A").sum() == pytest.approx(mql.sum() / 3, abs=2)
    assert (tiers == "C").sum() == pytest.approx(mql.sum(), abs=2)
    with pytest.raises(ValueError, match="descending"):
        assign_tiers(scores, (0.1, 0.5, 0.2))


def test_em_recovers_a_halved_base_rate():
    rng = np.random.default_rng(2)
    n, mu = 50000, 1.5
    for prior in (0.10, 0.05, 0.20):
        y = rng.random(n) < prior
        z = rng.normal(np.where(y, mu, 0.0), 1.0)
        lr = np.exp(mu * z - mu ** 2 / 2)
        p_train = 0.10 * lr / (0.10 * lr + 0.90)  # calibrated at a 10% base rate
        est, _ = em_prior(p_train, 0.10)
        assert est == pytest.approx(prior, rel=0.08)
        truth = prior * lr / (prior * lr + 1 - prior)
        np.testing.assert_allclose(adjust_prior(p_train, 0.10, est), truth, atol=0.02)


def test_prior_adjustment_round_trips_and_identity():
    p = np.linspace(0.001, 0.999, 50)
    np.testing.assert_allclose(adjust_prior(adjust_prior(p, 0.1, 0.03), 0.03, 0.1), p, atol=1e-12)
    np.testing.assert_allclose(Correction(0.1, 0.1, "em").apply(p), p, atol=1e-12)
    c = Correction.from_dict(Correction(0.1, 0.05, "em").as_dict())
    assert c.apply(p)[25] < p[25]


def test_psi_is_zero_for_the_same_sample_and_large_for_a_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 20000)
    assert psi_numeric(a, rng.normal(0, 1, 20000)) < 0.01
    assert psi_numeric(a, rng.normal(1, 1, 20000)) > 0.25
    ref = pd.Series(rng.choice(["x", "y", "z"], 5000, p=[0.6, 0.3, 0.1]))
    assert psi_categorical(ref, ref.sample(frac=1, random_state=0)) < 1e-9
    assert psi_categorical(ref, pd.Series(["new"] * 3000 + ["x"] * 2000)) > 0.25
    assert drift_verdict({"a": 0.4}, 0.05)[0] == "retrain"
    assert drift_verdict({"a": 0.02}, 0.15)[0] == "recalibrate"
    assert drift_verdict({"a": 0.02}, 0.02)[0] == "stable"


def test_explore_draw_is_per_lead_and_chunk_invariant():
    ids = np.array([f"L{i:08d}" for i in range(40000)], dtype=object)
    raw = np.random.default_rng(4).random(len(ids)) * 0.2
    whole = route(ids, raw, threshold=0.15, cutoffs=None, correction=None, explore_rate=0.02)
    parts = [route(ids[i:i + 7000], raw[i:i + 7000], threshold=0.15, cutoffs=None,
                   correction=None, explore_rate=0.02)["explore"]
             for i in range(0, len(ids), 7000)]
    np.testing.assert_array_equal(whole["explore"], np.concatenate(parts))
    below = ~whole["is_mql"]
    assert not (whole["explore"] & whole["is_mql"]).any()
    assert whole["explore"][below].mean() == pytest.approx(0.02, abs=0.004)
    np.testing.assert_array_equal(whole["sales_propensity"], np.where(whole["is_mql"], 1, 0.02))
    u = explore_uniform(ids)
    assert u.min() >= 0 and u.max() < 1


def test_measured_capacity_applies_when_loaded_and_never_ratchets_down():
    from leadq.pipelines.recalibrate import choose_capacity

    def sla(share: float, worked: float) -> dict:
        return {"sla_hours": 24.0, "within_sla_share": share, "worked_within_sla_per_week": worked}

    # Offered its full capacity, sales reached only 45% in time: ~27/week is what it can do.
    cap, remembered, why = choose_capacity(60, sla(0.45, 27), 0.9, offered_per_week=60)
    assert (cap, remembered) == (27, 27) and why.startswith("measured")
    # At the lowered bar it still misses the SLA (slow, not overloaded): keep 27, not 0.45 × 27.
    cap, remembered, why = choose_capacity(60, sla(0.5, 13.5), 0.9, offered_per_week=27,
                                           carried=27)
    assert (cap, remembered) == (27, 27) and why.startswith("carried")
    # Sales meets the SLA again: back to the configured capacity.
    assert choose_capacity(60, sla(0.95, 26), 0.9, offered_per_week=27, carried=27)[:2] == (
        60, None)
    # Missed SLAs below the configured load are a process issue, not a capacity one.
    cap, remembered, why = choose_capacity(60, sla(0.5, 10), 0.9, offered_per_week=20)
    assert (cap, remembered) == (60, None) and "process issue" in why
    # A measurement above the configured capacity never raises it.
    assert choose_capacity(60, sla(0.8, 70), 0.9, offered_per_week=90)[0] == 60


def test_training_weights_follow_the_routing():
    from leadq.models.routing import lead_weights

    scored = pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "is_mql": [True, False, False, False],
                           "explore": [False, True, False, False],
                           "sales_propensity": [1.0, 0.02, 0.02, 0.02]})
    w = lead_weights(pd.Series(["a", "b", "c", "old"]), scored)
    np.testing.assert_allclose(w, [1.0, 50.0, 0.0, 1.0])
