"""The leakage detector: one column that alone predicts the label stops training (exit 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.errors import GateError
from leadq.models.leakage import check_leakage, column_aucs, find_leaks
from leadq.pipelines.cli import main as cli
from tests.helpers import crm_labels


def _leads_with(small_crm, tmp_path, **columns) -> dict:
    """The small CRM with extra columns in the leads table, built from its feedback and deals."""
    leads = pd.read_csv(small_crm["leads"], dtype=str)
    feedback = pd.read_csv(small_crm["feedback"], dtype=str).drop_duplicates("lead_id")
    deals = pd.read_csv(small_crm["deals"], dtype=str)
    won = set(deals.loc[deals["outcome"] == "won", "lead_id"])
    for name, kind in columns.items():
        if kind == "sales_status":  # the feedback status copied into the CRM's lead record
            status = leads["lead_id"].map(feedback.set_index("lead_id")["status"])
            leads[name] = np.where(leads["lead_id"].isin(won), "sql", status.fillna("open"))
        elif kind == "first_call_at":  # only filled in for leads that became deals
            leads[name] = np.where(leads["lead_id"].isin(won), "3", None)
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False)
    return {**small_crm, "leads": path}


def test_ordinary_lead_columns_stay_well_below_the_bar(small_crm, base_params):
    from leadq.features.columns import raw_input_columns

    leads, label = crm_labels(small_crm, base_params)
    known = label.notna()
    aucs = column_aucs(leads.loc[known, raw_input_columns(base_params)],
                       label.loc[known])
    assert len(aucs) >= len(raw_input_columns(base_params))
    assert max(a.auc for a in aucs) < 0.85, max(aucs, key=lambda a: a.auc)


def test_planted_feedback_column_stops_training_with_its_name(tmp_path, small_crm, make_params,
                                                              capsys):
    crm = _leads_with(small_crm, tmp_path, sales_status="sales_status")
    base = make_params(tmp_path, crm)
    import yaml

    params = yaml.safe_load(base.read_text())
    params["features"]["categorical"].append("sales_status")
    base.write_text(yaml.safe_dump(params))
    code = cli(["train", "--params", str(base)])
    err = capsys.readouterr().err
    assert code == 2
    assert "'sales_status'" in err and "ROC AUC" in err and "leakage.allow" in err
    assert not (tmp_path / "mlruns").exists() or not any((tmp_path / "mlruns").rglob("MLmodel"))


def test_missingness_alone_is_caught_and_allow_lets_it_through(tmp_path, small_crm, base_params):
    from leadq.features.tables import (
        build_labels,
        canonical_deals,
        canonical_feedback,
        coerce_leads,
    )
    from leadq.pipelines.params.loader import agreement_of

    crm = _leads_with(small_crm, tmp_path, first_call_at="first_call_at")
    params = {**base_params, "features": {**base_params["features"],
                                          "numeric": [*base_params["features"]["numeric"],
                                                      "first_call_at"]}}
    leads = coerce_leads(pd.read_csv(crm["leads"], dtype=str), params)
    labels, _ = build_labels(
        leads, canonical_deals(pd.read_csv(crm["deals"], dtype=str), params["data"]["deals"]),
        canonical_feedback(pd.read_csv(crm["feedback"], dtype=str),
            params["data"]["feedback"], agreement_of(params).feedback),
        params)
    known = labels["label"].notna()
    frame, y = leads.loc[known, ["industry", "first_call_at"]], labels.loc[known, "label"]
    leaks = find_leaks(frame, y, params)
    assert [(leak.column, leak.kind) for leak in leaks] == [("first_call_at", "missingness")]
    with pytest.raises(GateError, match="first_call_at.*filled in"):
        check_leakage(frame, y, params)
    allowed = {**params, "leakage": {**params["leakage"], "allow": ["first_call_at"]}}
    check_leakage(frame, y, allowed)  # explicitly allowed: no error


def test_high_cardinality_noise_is_not_mistaken_for_a_leak():
    """Out-of-fold rates: a column of unique random ids cannot look predictive."""
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.1).astype(int)
    frame = pd.DataFrame({"noise_id": [f"x{i}" for i in range(5000)],
                          "leak": np.where(y == 1, "won", "open")})
    aucs = {(a.column, a.kind): a.auc for a in column_aucs(frame, y)}
    assert aucs[("noise_id", "values")] < 0.6
    assert aucs[("leak", "values")] > 0.99


def test_infinite_values_are_ranked_not_a_crash():
    """A CSV cell "inf" reads as infinity; the detector ranks it (last) instead of crashing,
    and a column whose ranking alone gives the label away is still caught."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    leaky = pd.Series(pd.to_numeric(np.where(y == 1, "inf", rng.normal(size=400).astype(str))))
    noise = pd.Series(np.where(rng.random(400) < 0.1, np.inf, rng.normal(size=400)))
    noise[:5] = -np.inf
    aucs = {a.column: a.auc for a in column_aucs(pd.DataFrame({"leaky": leaky, "noise": noise}),
                                                  y) if a.kind == "values"}
    assert aucs["leaky"] == pytest.approx(1.0)
    assert aucs["noise"] < 0.6
