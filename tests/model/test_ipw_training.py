"""Training on outcomes that only exist for leads sales worked: IPW removes the feedback bias.

The world is made biased on purpose: leads below the MQL bar that were not explored were
never called, so they never won and got no feedback. Trained naively on that history a model
learns that below-bar leads never convert; trained with the scorer's routing as inverse-
propensity weights it stays calibrated for all leads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.pipelines.io.crm import load_crm
from leadq.pipelines.params.loader import load_params
from leadq.pipelines.train import train_models

EXPLORE = 0.2


def biased_world(crm: dict, directory) -> tuple[dict, pd.DataFrame, np.ndarray]:
    truth = pd.read_csv(crm["truth"], dtype={"lead_id": str})
    rng = np.random.default_rng(11)
    mql = truth["true_probability"].to_numpy() >= np.quantile(truth["true_probability"], 0.7)
    explore = ~mql & (rng.random(len(truth)) < EXPLORE)
    routing = pd.DataFrame({"lead_id": truth["lead_id"], "is_mql": mql, "explore": explore,
                            "sales_propensity": np.where(mql, 1.0, EXPLORE)})
    worked = set(truth.loc[mql | explore, "lead_id"])
    out = dict(crm)
    for table in ("deals", "feedback"):
        frame = pd.read_csv(crm[table], dtype=str)
        out[table] = directory / f"{table}.csv"
        frame[frame["lead_id"].isin(worked)].to_csv(out[table], index=False)
    routing_path = directory / "scores_history.csv"
    routing.to_csv(routing_path, index=False)
    return out, routing, ~(mql | explore)


def test_ipw_training_leaves_out_unworked_leads_and_stays_calibrated(tmp_path, small_crm,
                                                                     make_params):
    crm, routing, unworked = biased_world(small_crm, tmp_path)
    naive = load_params(make_params(tmp_path, crm))
    ipw = load_params(make_params(tmp_path, crm, train__routing_scores="scores_history.csv"))

    naive_result = train_models(load_crm(naive), naive)
    ipw_tables = load_crm(ipw)
    assert ipw_tables.routing is not None and len(ipw_tables.routing) == len(routing)
    ipw_result = train_models(ipw_tables, ipw)

    # Every labelled lead that was routed but never worked is left out, none other.
    fp = ipw_result.fingerprint
    labelled_unworked = int((naive_result.labels["label"].notna().to_numpy() & unworked).sum())
    assert labelled_unworked > 0
    assert fp["ipw_unworked_left_out"] == labelled_unworked
    assert fp["ipw_max_weight"] == 1 / EXPLORE

    leads = ipw_tables.leads
    truth = pd.read_csv(small_crm["truth"], dtype={"lead_id": str}).set_index("lead_id")
    true_p = truth.loc[leads["lead_id"], "true_probability"].to_numpy()
    cols = ipw_result.sample.columns
    p_naive = naive_result.model.predict_proba(leads[cols])[:, 1]
    p_ipw = ipw_result.model.predict_proba(leads[cols])[:, 1]
    assert len(unworked) == len(leads)  # the truth and the leads are in the same order
    below = unworked
    naive_gap = true_p.mean() - p_naive.mean()
    ipw_gap = abs(true_p.mean() - p_ipw.mean())
    # The naive model has learnt that never-called leads rarely convert: it under-predicts.
    assert naive_gap > 0.08 * true_p.mean()
    # IPW removes most of that bias, overall and below the bar where the outcomes were missing.
    assert ipw_gap < 0.5 * naive_gap
    assert abs(p_ipw[below].mean() - true_p[below].mean()) < (
        true_p[below].mean() - p_naive[below].mean())
