"""The MQL holdout (agreement.holdout_rate): a reproducible draw from the lead id, independent of
exploration, the same in one piece and in chunks, with and without precomputed hashes (the
pandas engine passes them; Spark and serve reach the same route() through score_leads)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from leadq.errors import ConfigError
from leadq.models.routing import explore_uniform, holdout_uniform, id_hashes, ipw_weights, route


def _ids(n: int) -> np.ndarray:
    return np.array([f"L{i:07d}" for i in range(n)], dtype=object)


def test_held_out_mqls_are_never_routed_and_are_marked():
    ids = _ids(30000)
    raw = np.random.default_rng(1).random(len(ids))
    r = route(ids, raw, threshold=0.6, cutoffs=None, correction=None, explore_rate=0.05,
              holdout_rate=0.1)
    mql, hold, treat = r["is_mql"], r["holdout"], r["treatment"]
    assert hold.any() and not (hold & ~mql).any(), "only MQLs are held out"
    assert (treat[hold] == 0).all(), "a held-out MQL is never routed"
    assert (treat[mql & ~hold] == 1).all()
    # Below the bar only explored leads are routed; explore never touches MQLs.
    np.testing.assert_array_equal(treat[~mql], r["explore"][~mql].astype(np.int8))
    assert hold[mql].mean() == pytest.approx(0.1, abs=0.01)
    np.testing.assert_allclose(r["propensity"], np.where(mql, 0.9, 0.05))
    np.testing.assert_array_equal(r["sales_propensity"], r["propensity"])
    # IPW: held-out MQLs weigh 0 (nobody called them), routed MQLs 1/0.9.
    w = ipw_weights(mql, r["explore"], r["propensity"], hold)
    assert (w[hold] == 0).all() and np.allclose(w[mql & ~hold], 1 / 0.9)


def test_holdout_draw_is_per_lead_chunk_invariant_and_independent_of_exploration():
    ids = _ids(40000)
    raw = np.random.default_rng(2).random(len(ids))
    kw = dict(threshold=0.5, cutoffs=None, correction=None, explore_rate=0.02,
              holdout_rate=0.05)
    whole = route(ids, raw, **kw)
    parts = [route(ids[i:i + 7000], raw[i:i + 7000], hashes=id_hashes(ids[i:i + 7000]), **kw)
             for i in range(0, len(ids), 7000)]
    for col in ("holdout", "treatment", "propensity", "explore"):
        np.testing.assert_array_equal(whole[col], np.concatenate([p[col] for p in parts]))
    # The same ids in another order get the same draw: it depends on the id alone.
    order = np.random.default_rng(3).permutation(len(ids))
    shuffled = route(ids[order], raw[order], **kw)
    np.testing.assert_array_equal(shuffled["holdout"], whole["holdout"][order])
    # A different hash key from exploration: the two uniforms are unrelated.
    u_e, u_h = explore_uniform(ids), holdout_uniform(ids)
    assert abs(np.corrcoef(u_e, u_h)[0, 1]) < 0.02
    assert not np.array_equal(u_e < 0.05, u_h < 0.05)


def test_holdout_off_by_default_changes_nothing():
    ids = _ids(5000)
    raw = np.random.default_rng(4).random(len(ids))
    r = route(ids, raw, threshold=0.5, cutoffs=None, correction=None, explore_rate=0.02)
    assert not r["holdout"].any()
    np.testing.assert_array_equal(r["treatment"], (r["is_mql"] | r["explore"]).astype(np.int8))
    np.testing.assert_array_equal(r["sales_propensity"], np.where(r["is_mql"], 1.0, 0.02))


def test_holdout_rate_out_of_range_is_refused(base_params):
    from leadq.pipelines.params.loader import agreement_of

    with pytest.raises(ValueError, match="holdout_rate"):
        route(_ids(3), np.zeros(3), threshold=0.5, cutoffs=None, correction=None,
              explore_rate=0.0, holdout_rate=1.0)
    params = copy.deepcopy(base_params)
    params["agreement"]["holdout_rate"] = 1.5
    with pytest.raises(ConfigError, match="agreement.holdout_rate"):
        agreement_of(params)


class _Stub:
    """A model whose score is the lead's `employees` column: any row, any chunk, same score."""

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        s = rows["employees"].to_numpy(float)
        return np.column_stack([1 - s, s])


def test_score_leads_writes_the_same_holdout_whole_chunked_and_without_hashes(base_params):
    from leadq.features.columns import raw_input_columns
    from leadq.pipelines.scoring.core import score_leads
    from leadq.pipelines.scoring.model import ScoringModel

    params = copy.deepcopy(base_params)
    params["agreement"]["holdout_rate"] = 0.2
    id_col = params["data"]["leads"]["id"]
    n = 3000
    leads = pd.DataFrame({c: np.nan for c in raw_input_columns(params)}, index=range(n))
    leads["employees"] = np.random.default_rng(5).random(n)
    leads[id_col] = pd.array([f"L{i}" for i in range(n)], dtype="string")
    model = ScoringModel(pyfunc=SimpleNamespace(), uri="test", version="1", threshold=0.5,
                         tags={})
    model._sk = _Stub()
    at = pd.Timestamp("2026-01-01", tz="UTC")
    # The pandas engine: chunks with the ids' hashes precomputed (stream.py, serve).
    chunked = pd.concat([score_leads(leads.iloc[i:i + 700], model, params, scored_at=at,
                                     id_hashes=id_hashes(leads[id_col].iloc[i:i + 700]))
                         for i in range(0, n, 700)], ignore_index=True)
    # Spark calls score_leads on its batches without hashes.
    whole = score_leads(leads, model, params, scored_at=at)
    for col in ("is_mql", "explore", "holdout", "treatment", "propensity", "sales_propensity"):
        np.testing.assert_array_equal(chunked[col].to_numpy(), whole[col].to_numpy(), col)
    mql = whole["is_mql"].to_numpy(bool)
    hold = whole["holdout"].to_numpy(bool)
    assert hold.sum() > 50 and not (hold & ~mql).any()
    assert (whole.loc[hold, "treatment"] == 0).all()
    np.testing.assert_allclose(whole.loc[mql, "propensity"], 0.8)


def test_check_and_score_holds_out_the_same_leads_in_one_request_or_many(base_params):
    """check_and_score is what `leadq score` runs per chunk and `leadq serve` per request:
    the holdout must not depend on the batch a lead arrives in, nor on padding of its id."""
    from leadq.pipelines.scoring.core import check_and_score
    from leadq.pipelines.scoring.model import ScoringModel
    from leadq.pipelines.synthetic.crm import generate_crm

    params = copy.deepcopy(base_params)
    params["agreement"]["holdout_rate"] = 0.3
    leads = generate_crm(600, seed=1)["leads"].astype(str)

    class Stub:
        def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
            s = pd.to_numeric(rows["employees"], errors="coerce").fillna(0).to_numpy() % 100
            return np.column_stack([1 - s / 100, s / 100])

    model = ScoringModel(pyfunc=SimpleNamespace(), uri="t", version="1", threshold=0.5, tags={})
    model._sk = Stub()
    at = pd.Timestamp("2026-07-01", tz="UTC")
    _, whole = check_and_score(leads, model, params, reference=None, scored_at=at,
                               explain=False)
    padded = leads.assign(lead_id=" " + leads["lead_id"] + " ")
    parts = [check_and_score(padded.iloc[i:i + 1 if i < 5 else i + 150], model, params,
                             reference=None, scored_at=at, explain=False)[1]
             for i in [0, 1, 2, 3, 4, *range(5, len(leads), 150)]]
    many = pd.concat(parts, ignore_index=True)
    assert len(many) == len(whole) == len(leads)
    for col in ("holdout", "treatment", "propensity", "explore"):
        np.testing.assert_array_equal(many[col].to_numpy(), whole[col].to_numpy(), col)
    assert whole["holdout"].sum() > 10
    assert (whole.loc[whole["holdout"], "treatment"] == 0).all()


def test_held_out_mqls_weigh_nothing_in_training_and_recalibration(tmp_path, base_params):
    """Nobody called a held-out MQL: its 'no deal' must not enter the IPW fit (train's
    routing_scores) nor the realised figures (recalibrate), while older files without a
    holdout column keep their weights."""
    from leadq.models.routing import lead_weights
    from leadq.pipelines.io.crm import load_routing
    from leadq.pipelines.recalibrate import worked_weights

    scores = pd.DataFrame({"lead_id": ["a", "b", "c", "d"],
                           "is_mql": [True, True, False, False],
                           "explore": [False, False, True, False],
                           "sales_propensity": [0.9, 0.9, 0.05, 0.05],
                           "holdout": [False, True, False, False]})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    scores.drop(columns="holdout").to_csv(tmp_path / "old.csv", index=False)
    params = copy.deepcopy(base_params)
    params["_base_dir"] = str(tmp_path)
    params["train"]["routing_scores"] = "scores.csv"
    routing = load_routing(params)
    expected = [1 / 0.9, 0.0, 1 / 0.05, 0.0]
    np.testing.assert_allclose(lead_weights(pd.Series(["a", "b", "c", "d"]), routing), expected)
    np.testing.assert_allclose(worked_weights(scores)[0], expected)
    params["train"]["routing_scores"] = "old.csv"
    old = load_routing(params)
    np.testing.assert_allclose(lead_weights(pd.Series(["a", "b"]), old), [1 / 0.9, 1 / 0.9])
