"""Routing by the value of the call (issue 29 item 4): agreement.route_by / call_value, the
comparison of both policies at the same capacity on randomised leads
(models/uplift.compare_routing, `leadq lift --data … --uplift-features`), and the scorer's
refusal to route by a call value it cannot compute yet."""

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


def test_route_by_is_typed_and_scoring_refuses_call_value(tmp_path, capsys):
    from leadq.errors import ConfigError
    from leadq.pipelines.params.loader import agreement_of, load_params
    from leadq.pipelines.scoring.core import score_leads

    params = load_params(_params(tmp_path, route_by="call_value",
                                 call_value={"deal_value": 5000, "call_cost": 50}))
    agreement = agreement_of(params)
    assert (agreement.route_by, agreement.deal_value, agreement.call_cost) == (
        "call_value", 5000.0, 50.0)
    assert any("gains most" in line for line in agreement.words())
    with pytest.raises(ConfigError, match="route_by: call_value needs an uplift model"):
        score_leads(pd.DataFrame(), None, params, scored_at=pd.Timestamp("2026-01-01"))
    for bad in ({"route_by": "uplift"}, {"call_value": {"deal_value": -1}},
                {"call_value": {"call_cost": -5}}):
        with pytest.raises(ConfigError, match="agreement"):
            agreement_of(load_params(_params(tmp_path, **bad)))
