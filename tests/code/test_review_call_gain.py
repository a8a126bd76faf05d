"""`leadq review` shows who gains from a call and who converts anyway (issue 29), per tier,
from the randomised matured leads only (models/review.call_gain_by), escaped in the HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.models.review import call_gain_by


def _matured(seed: int = 0) -> pd.DataFrame:
    """Tier A buys anyway (40% either way), tier B only when called (25% vs 5%), tier D is
    low either way; 20% of MQLs held out, 30% of below-bar leads explored."""
    rng = np.random.default_rng(seed)
    tier = np.repeat(np.array(["A", "B", "D"]), [1500, 1500, 3000])
    mql = tier != "D"
    p = np.where(mql, 0.8, 0.3)
    t = rng.random(len(tier)) < p
    rate1 = np.select([tier == "A", tier == "B"], [0.4, 0.25], 0.01)
    rate0 = np.select([tier == "A", tier == "B"], [0.4, 0.05], 0.01)
    y = rng.random(len(tier)) < np.where(t, rate1, rate0)
    return pd.DataFrame({"tier": tier, "is_mql": mql, "treatment": t.astype(int),
                         "propensity": p, "label": y.astype(float)})


def test_tiers_are_judged_from_their_randomised_leads():
    matured = _matured()
    rows = {r["group"]: r for r in call_gain_by(matured, matured["tier"], min_group=100)}
    assert rows["A"]["verdict"] == "anyway" and rows["A"]["rate_not_called"] > 0.3
    assert rows["B"]["verdict"] == "gains" and rows["B"]["low"] > 0.1
    assert rows["D"]["verdict"] in {"none", "anyway"}

    assert rows["B"]["n_called"] + rows["B"]["n_not_called"] == rows["B"]["n_randomised"]


def test_a_tier_without_enough_randomised_leads_says_how_many_more():
    matured = _matured().iloc[:1700]  # tier A and 200 leads of B
    rows = {r["group"]: r for r in call_gain_by(matured, matured["tier"], min_group=100)}
    assert rows["B"]["verdict"] == "too_few" and rows["B"]["more_leads"] > 0
    assert "effect" not in rows["B"]


def test_scores_without_randomised_routing_give_no_verdict():
    matured = _matured().drop(columns=["treatment", "propensity"])
    assert call_gain_by(matured, matured["tier"]) == []


def test_the_review_page_shows_the_verdicts_escaped():
    from leadq.features.agreement import Agreement, period_figures
    from leadq.pipelines.review import render_review

    matured = _matured()
    matured.loc[matured["tier"] == "B", "tier"] = "<script>alert(1)</script>"
    rows = call_gain_by(matured, matured["tier"], min_group=100)
    leads = pd.DataFrame({"lead_id": ["a"], "is_mql": [True],
                          "created_at": pd.to_datetime(["2026-06-29"])})
    now = period_figures(leads, None, as_of=pd.Timestamp("2026-06-30"), agreement=Agreement())
    html = render_review({
        "period": {"start": "2026-06-02", "end": "2026-06-30", "days": 28},
        "model_version": "1", "agreement": Agreement().words(), "now": now, "before": None,
        "sla_by_tier": [], "sla_by_rep": None, "campaigns": None, "campaign_column": None,
        "flagged": [], "rejection_reasons": [], "realised": {"n_matured": 0}, "goal": None,
        "bars": [], "drift": None, "changed": [], "call_gain": rows})
    assert "Who gains from a call" in html
    assert "gains from a call (persuadables)" in html
    assert "converts about as often without a call (sure things)" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert ">nan<" not in html.lower()


def test_scores_without_tiers_are_judged_as_mqls_and_below_the_bar():
    from leadq.models.review import call_gain_by_tier

    matured = _matured().drop(columns=["tier"])
    groups = {r["group"] for r in call_gain_by_tier(matured, min_group=100)}
    assert groups == {"MQL", "below the bar"}


def test_scores_with_the_uplift_models_column_add_its_top_fifth_against_the_rest():
    from leadq.models.review import call_gain_by_tier

    matured = _matured()
    rng = np.random.default_rng(3)
    # The model's uplift is high for tier B (gains from a call) and low elsewhere.
    matured["uplift"] = np.where(matured["tier"] == "B", 0.2, 0.0) + rng.normal(0, 0.01,
                                                                                 len(matured))
    rows = {r["group"]: r for r in call_gain_by_tier(matured, min_group=100)}
    top, rest = rows["uplift model: top 20%"], rows["uplift model: other 80%"]
    assert top["verdict"] == "gains" and top["low"] > rest["high"]
    assert top["n_randomised"] + rest["n_randomised"] == len(matured)


def test_a_wide_interval_is_not_called_sure_things():
    """100 called at 30% against 100 not called at 20%: +10 points, interval about −2 to +22.
    The data cannot say the leads convert as often without a call."""
    y = np.r_[np.ones(30), np.zeros(70), np.ones(20), np.zeros(80)]
    t = np.r_[np.ones(100), np.zeros(100)].astype(int)
    matured = pd.DataFrame({"tier": "A", "is_mql": True, "treatment": t, "propensity": 0.5,
                            "label": y})
    (row,) = call_gain_by(matured, matured["tier"], min_group=50)
    assert row["low"] < 0 < row["high"]
    assert row["verdict"] == "unclear" and "not conclusive" in row["words"]
