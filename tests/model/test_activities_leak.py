"""Export-day counters against point-in-time activity features, on the synthetic CRM.

The CRM's leads file counts each lead's engagement on the export day, so a lead that converted
(and kept visiting after sales called) has inflated counters; its activity log says when each
event happened. One model is trained on the counters, one on the log's point-in-time features.
Both are then judged on the out-of-time test leads as scoring meets them: counters as they stood
at each lead's cut-off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadq.models.metrics import expected_calibration_error

COUNTERS = {"web_visits": "web_visit", "content_downloads": "content_download",
            "email_opens": "email_open"}


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    from leadq.pipelines.synthetic.crm import write_crm

    return write_crm(tmp_path_factory.mktemp("crm_act"), n_leads=12_000, seed=11)


def _train(params: dict):
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.train import train_models

    return train_models(load_crm(params, quarantine=False), params)


def _params(crm, **over):
    from leadq.pipelines.params.loader import load_params
    from tests.conftest import REPO

    base = {"data.leads.path": str(crm["leads"]), "data.deals.path": str(crm["deals"]),
            "data.feedback.path": str(crm["feedback"]),
            "data.activities.path": str(crm["activities"]),
            "train.search.enabled": False, "train.candidates": ["hgb"]}
    return load_params(REPO / "params.yaml", {**base, **over})


def _counters_at_cutoff(crm, leads: pd.DataFrame) -> pd.DataFrame:
    """The leads' counters recomputed from the log as of each lead's created_at."""
    events = pd.read_csv(crm["activities"], parse_dates=["occurred_at"], dtype={"lead_id": str})
    created = leads.set_index("lead_id")["created_at"]
    events = events[events["lead_id"].isin(created.index)]
    events = events[events["occurred_at"] < created.loc[events["lead_id"]].to_numpy()]
    out = leads.copy()
    for col, kind in COUNTERS.items():
        n = events[events["activity_type"] == kind].groupby("lead_id").size()
        out[col] = out["lead_id"].map(n).fillna(0).astype(float).to_numpy()
    pages = events[events["activity_type"] == "web_visit"].groupby("lead_id")["value"].sum()
    out["pages_viewed"] = out["lead_id"].map(pages).fillna(0).astype(float).to_numpy()
    return out


def test_point_in_time_beats_export_day_counters(crm, caplog):
    snap_params = _params(crm, **{
        "data.activities.path": None, "features.snapshot_columns": [],
        "features.numeric": ["employees", "demo_requested", *COUNTERS, "pages_viewed"]})
    snap = _train(snap_params)
    pit = _train(_params(crm))

    truth = pd.read_csv(crm["truth"], dtype={"lead_id": str}).set_index("lead_id")
    test = snap.test_frame
    assert (pit.test_frame["lead_id"].to_numpy() == test["lead_id"].to_numpy()).all()
    y = test["label"].to_numpy()
    oracle = roc_auc_score(y, truth.loc[test["lead_id"], "true_probability"])

    leaky_auc = snap.metrics["test_roc_auc"]  # on its own export-day counters
    as_scored = _counters_at_cutoff(crm, snap.test_inputs.reset_index(drop=True))
    snap_score = snap.model.predict_proba(as_scored[snap.test_inputs.columns])[:, 1]
    snap_auc = roc_auc_score(y, snap_score)
    snap_ece = expected_calibration_error(y, snap_score)
    pit_auc, pit_ece = pit.metrics["test_roc_auc"], pit.metrics["test_ece"]
    print(f"\noracle {oracle:.4f}; export-day counters: own features {leaky_auc:.4f}, as "
          f"scored {snap_auc:.4f} (ECE {snap_ece:.4f}); point in time {pit_auc:.4f} "
          f"(ECE {pit_ece:.4f})")

    # The snapshot model's own evaluation overstates what it does on leads as scored.
    assert leaky_auc - snap_auc > 0.03
    assert leaky_auc > oracle  # it sees the future: better than the true probability
    # As scoring meets the leads, the point-in-time model is closer to the oracle and
    # better calibrated (the counters' model under-scores new leads).
    assert abs(oracle - pit_auc) < abs(oracle - snap_auc)
    assert oracle - pit_auc < 0.03
    assert pit_ece < snap_ece
    assert snap_score.mean() < y.mean()


def test_training_names_export_day_counters(crm, caplog):
    """With the log configured, counters left among the inputs are named in a warning."""
    params = _params(crm, **{"features.snapshot_columns": [],
                             "features.numeric": ["employees", "demo_requested", "web_visits"]})
    with caplog.at_level("WARNING", logger="leadq"):
        result = _train(params)
    assert result.fingerprint["snapshot_suspects"] == ["web_visits"]
    assert any("'web_visits' looks like an export-day counter" in r.getMessage()
               for r in caplog.records)


def test_listed_snapshot_columns_are_refused_as_inputs(crm):
    from leadq.errors import ConfigError

    params = _params(crm, **{"features.numeric": ["employees", "web_visits"]})
    with pytest.raises(ConfigError, match="web_visits.*export-day counter"):
        _train(params)


def test_activity_features_see_only_events_before_the_cutoff(crm):
    """A lead's features ignore its events at or after the cut-off (and any sales action)."""
    from leadq.pipelines.io.activities import add_features
    from leadq.pipelines.io.crm import load_events

    params = _params(crm)
    events, _, _ = load_events(params, reference=None, quarantine=False)
    leads = pd.read_csv(crm["leads"], parse_dates=["created_at"], dtype={"lead_id": str})
    leads = leads.iloc[:500].reset_index(drop=True)
    before = add_features(leads, events, params)
    # Move every event of these leads to after their cut-off: every count drops to zero.
    later = events.copy()
    mine = later["ev_lead"].isin(leads["lead_id"])
    cut = leads.set_index("lead_id")["created_at"]
    later.loc[mine, "ev_t"] = ((cut.loc[later.loc[mine, "ev_lead"]] - pd.Timestamp("1970-01-01"))
                               .dt.total_seconds().to_numpy() + 1.0)
    after = add_features(leads, later, params)
    assert before["act_web_visit_90d"].sum() > 0
    assert (after.filter(regex=r"^act_.*_\d+d$").to_numpy() == 0).all()
    assert after["act_days_since_last"].isna().all()
    assert np.isfinite(before["act_days_since_last"]).any()


def test_scoring_without_the_activity_log_is_a_clear_exit_2(trained_store, tmp_path, capsys):
    """A model trained with activity features, scored with params that lack data.activities,
    stops before reading a lead and says what to configure."""
    import yaml

    from leadq.pipelines.cli import main as cli

    params = yaml.safe_load(trained_store["params_path"].read_text())
    params["data"]["activities"]["path"] = None
    path = trained_store["dir"] / "no_activities.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "scores.csv"
    code = cli(["score", "--input", str(trained_store["crm"]["leads"]), "--output", str(out),
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "act_web_visit_7d" in err and "data.activities" in err
    assert not out.exists()


def test_a_later_cutoff_leaves_out_leads_worked_before_it(crm, caplog):
    """label.cutoff_days: a lead sales touched (or that converted) before its cut-off is not
    trained on, so the engagement after the touch cannot leak into the features."""
    truth = pd.read_csv(crm["truth"], dtype={"lead_id": str}).set_index("lead_id")
    with caplog.at_level("INFO", logger="leadq"):
        result = _train(_params(crm, **{"label.cutoff_days": 0.25}))
    assert any("before their cut-off" in r.getMessage() for r in caplog.records)
    test = result.test_frame
    oracle = roc_auc_score(test["label"], truth.loc[test["lead_id"], "true_probability"])
    assert result.metrics["test_roc_auc"] < oracle + 0.02


def test_a_listed_type_with_no_events_is_a_clear_error(crm):
    from leadq.errors import ConfigError

    params = _params(crm, **{"data.activities.types": ["web_visit", "trade_show"]})
    with pytest.raises(ConfigError, match="'trade_show' before its cut-off"):
        _train(params)


def test_an_event_exported_twice_is_counted_once(crm, tmp_path):
    """With data.activities.id, a repeated event id is quarantined, not counted again."""
    from leadq.pipelines.io.crm import load_crm

    log = pd.read_csv(crm["activities"], dtype=str)
    twice = pd.concat([log, log.iloc[:100]], ignore_index=True)
    path = tmp_path / "activities.csv"
    twice.to_csv(path, index=False)
    params = _params(crm, **{"data.activities.path": str(path)})
    tables = load_crm(params, quarantine=False)
    acct = tables.accounting["activities"]
    assert acct.read == len(twice) and acct.used == len(log)
    assert acct.rejected == {"activity_id: duplicate id": 100}


def test_a_value_column_missing_from_the_log_is_exit_2(crm, tmp_path):
    from leadq.errors import BadInputError
    from leadq.pipelines.io.crm import load_crm

    log = pd.read_csv(crm["activities"], dtype=str).drop(columns=["value"])
    path = tmp_path / "activities.csv"
    log.to_csv(path, index=False)
    with pytest.raises(BadInputError, match="missing required column.*value"):
        load_crm(_params(crm, **{"data.activities.path": str(path)}), quarantine=False)


def test_a_sales_action_listed_as_a_feature_type_is_refused(crm):
    """A type named like sales' own work is refused, as deal columns are; leakage.allow lets
    a type marketing really logs through."""
    from leadq.errors import ConfigError

    params = _params(crm, **{"data.activities.types": ["web_visit", "Sales Call"],
                             "data.activities.sales_types": ["meeting"]})
    with pytest.raises(ConfigError, match="'Sales Call' named like sales' own actions"):
        _train(params)
