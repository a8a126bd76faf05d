"""Routing by the value of the call (issue 29 item 4): agreement.route_by / call_value, the
comparison of both policies at the same capacity on randomised leads
(models/uplift.compare_routing, `leadq lift --data … --uplift-features`), route() deciding
MQLs by the call's value, and the scorer's refusal to do so without an uplift model and its
bar (the scoring itself: tests/model/test_uplift_registry.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.models.uplift import call_gain, compare_routing
from leadq.pipelines.cli import main as cli


def _world(n: int, seed: int) -> dict:
    """Hot leads (a quarter) buy anyway: the best scores, no gain from a call. Warm leads (a
    quarter) buy only when called. Cold leads (half) rarely buy either way. 50/50 test."""
    rng = np.random.default_rng(seed)
    group = rng.choice(np.array(["hot", "warm", "cold", "cold"]), n)
    p1 = np.select([group == "hot", group == "warm"], [0.45, 0.22], 0.02)
    p0 = np.select([group == "hot", group == "warm"], [0.45, 0.04], 0.02)
    t = rng.random(n) < 0.5
    y = (rng.random(n) < np.where(t, p1, p0)).astype(int)
    return {"group": group, "score": p1 + rng.normal(0, 0.01, n), "uplift": p1 - p0, "t": t,
            "y": y}


def test_call_gain_is_uplift_times_deal_value_minus_the_cost():
    u = np.array([0.1, 0.02, -0.01])
    assert np.allclose(call_gain(u), u)
    assert np.allclose(call_gain(u, 5000.0, 200.0), [300.0, -100.0, -250.0])


def test_same_capacity_the_call_value_policy_finds_the_incremental_wins():
    w = _world(12000, seed=1)
    r = compare_routing(w["score"], w["uplift"], w["t"], w["y"], capacity=0.25,
                        deal_value=10000.0, call_cost=300.0)
    prob, value = r["probability"], r["call_value"]
    assert prob["n_called"] == value["n_called"] == 3000  # the same capacity
    assert r["overlap"] < 0.1  # the hot leads and the warm leads barely overlap
    # Scores call the hot leads (no gain), call value the warm ones (+18 points).
    assert prob["low"] < 0 < prob["high"] and prob["high"] < 5
    assert value["low"] <= 18 <= value["high"] and value["low"] > prob["high"]
    assert value["value_per_100_calls"] == pytest.approx(
        value["wins_per_100_calls"] * 10000 - 100 * 300)
    assert value["value_low"] < value["value_per_100_calls"] < value["value_high"]
    without_value = compare_routing(w["score"], w["uplift"], w["t"], w["y"], capacity=0.25)
    assert "value_per_100_calls" not in without_value["call_value"]


def test_a_policy_with_too_few_randomised_leads_is_refused_saying_how_many_more():
    w = _world(600, seed=2)
    r = compare_routing(w["score"], w["uplift"], w["t"], w["y"], capacity=0.25,
                        min_group=100)
    assert "refused" in r["probability"] and r["probability"]["more_leads"] > 0


def _params(tmp_path, **agreement) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"agreement": agreement, "lift": {"capacity_share": 0.25}}))
    return str(path)


@pytest.mark.slow
def test_lift_data_compares_both_policies_with_the_agreed_deal_value(tmp_path, capsys):
    w = _world(12000, seed=3)
    table = tmp_path / "test.csv"
    pd.DataFrame({"segment": w["group"], "score": w["score"], "called": w["t"].astype(int),
                  "won": w["y"]}).to_csv(table, index=False)
    argv = ["lift", "--data", str(table), "--treatment-column", "called", "--outcome-column",
            "won", "--uplift-features", "segment", "--score-column", "score",
            "--params", _params(tmp_path, call_value={"deal_value": 8000, "call_cost": 100})]
    assert cli(["--json", *argv]) == 0
    out = capsys.readouterr().out
    routing = json.loads(out[out.index("{"):])["uplift"]["routing"]
    assert routing["capacity"] == 0.25 and routing["deal_value"] == 8000
    assert routing["score"] == "the data's score column"
    assert (routing["call_value"]["wins_per_100_calls"]
            > routing["probability"]["wins_per_100_calls"] + 10)
    assert "value_per_100_calls" in routing["probability"]
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert "by call value (uplift × 8,000 − 100" in printed
    assert "incremental conversions per 100 calls" in printed


def test_route_by_is_typed_and_scoring_refuses_call_value_without_the_bar(tmp_path):
    from leadq.errors import ConfigError
    from leadq.pipelines.params.loader import agreement_of, load_params
    from leadq.pipelines.scoring.core import score_leads
    from leadq.pipelines.scoring.model import ScoringModel

    params = load_params(_params(tmp_path, route_by="call_value",
                                 call_value={"deal_value": 5000, "call_cost": 50}))
    agreement = agreement_of(params)
    assert (agreement.route_by, agreement.deal_value, agreement.call_cost) == (
        "call_value", 5000.0, 50.0)
    assert any("gains most" in line for line in agreement.words())
    at = pd.Timestamp("2026-01-01")
    no_uplift = ScoringModel(pyfunc=None, uri="models:/leadq/3", version="3", threshold=0.5,
                             tags={})
    with pytest.raises(ConfigError, match=r"route_by: call_value: no uplift model .* version 3"
                                          r".*leadq lift --fit-uplift"):
        score_leads(pd.DataFrame(), no_uplift, params, scored_at=at)
    # An uplift model registered before the bar existed cannot route either.
    no_bar = ScoringModel(pyfunc=None, uri="models:/leadq/3", version="3", threshold=0.5,
                          tags={}, uplift=object(), uplift_version="1")
    with pytest.raises(ConfigError, match="registered without a bar.*leadq lift --fit-uplift"):
        score_leads(pd.DataFrame(), no_bar, params, scored_at=at)
    for bad in ({"route_by": "uplift"}, {"call_value": {"deal_value": -1}},
                {"call_value": {"call_cost": -5}}):
        with pytest.raises(ConfigError, match="agreement"):
            agreement_of(load_params(_params(tmp_path, **bad)))


def test_route_by_value_decides_mqls_and_keeps_tiers_exploration_and_holdout_on_their_rules():
    from leadq.models.routing import route

    ids = np.array(["a", "b", "c"], dtype=object)
    score = np.array([0.9, 0.2, 0.5])  # a sure thing, a persuadable, a middling lead
    value = np.array([-20.0, 400.0, 100.0])
    kw = {"threshold": 0.6, "cutoffs": (0.8, 0.6, 0.3), "correction": None,
          "explore_rate": 0.0}
    by_score = route(ids, score, **kw)
    by_value = route(ids, score, value=value, value_cutoff=100.0, **kw)
    assert by_score["is_mql"].tolist() == [True, False, False]
    assert by_value["is_mql"].tolist() == [False, True, True]  # value ≥ bar; ties pass
    assert list(by_value["tier"]) == list(by_score["tier"]) == ["A", "D", "C"]  # on the score
    assert by_value["treatment"].tolist() == [0, 1, 1]
    assert by_value["propensity"].tolist() == [0.0, 1.0, 1.0]
    # Exploration below the value bar, the holdout above it, each with its propensity.
    almost_all = route(ids, score, value=value, value_cutoff=100.0,
                       **{**kw, "explore_rate": 0.999999}, holdout_rate=0.999999)
    assert almost_all["explore"].tolist() == [True, False, False]
    assert almost_all["holdout"].tolist() == [False, True, True]
    assert almost_all["treatment"].tolist() == [1, 0, 0]
    assert np.allclose(almost_all["propensity"], [0.999999, 1e-6, 1e-6])
    with pytest.raises(ValueError, match="both value and value_cutoff"):
        route(ids, score, value=value, **kw)


def test_value_bar_keeps_the_share_of_the_probability_bar():
    from leadq.models.uplift import value_bar

    gains = np.array([5.0, -1.0, 3.0, 3.0, 0.5, 2.0, np.nan, 4.0])
    assert value_bar(gains, 0.3) == 4.0  # round(0.3 × 7) = 2 of the 7 known values
    assert value_bar(gains, 3 / 7) == 3.0 and (gains >= 3.0).sum() == 4  # ties all pass
    assert value_bar(gains, 0.0) == float("inf")
    assert value_bar(gains, 1.0) == -1.0
