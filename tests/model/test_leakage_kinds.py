"""The leakage detector on the column kinds the categorical and missingness tests leave out:
a number that is nearly the label, and a date written after the outcome. Each stops
`leadq train` with exit code 2 and a message naming the column, before a model is fitted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leadq.pipelines.cli import main as cli
from tests.helpers import crm_labels


def _train_refused(capsys, params: Path) -> str:
    code = cli(["train", "--params", str(params)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "leakage detector" in err and "leakage.allow" in err
    mlruns = params.parent / "mlruns"
    assert not mlruns.exists() or not any(mlruns.rglob("MLmodel")), "a model was saved"
    return err


def test_numeric_column_that_is_the_label_plus_noise_stops_training(
        tmp_path, small_crm, base_params, make_params, capsys):
    label = crm_labels(small_crm, base_params)[1]
    leads = pd.read_csv(small_crm["leads"], dtype=str)
    rng = np.random.default_rng(0)
    # A "call score" sales fills in after working the lead: 1 + outcome + noise. Every value
    # is distinct, so only ranking the numbers (not a rate per value) can see the leak.
    leads["call_score"] = np.clip(1 + label.fillna(0).to_numpy()
                                  + rng.normal(0, 0.3, len(leads)), 0, None)
    assert leads["call_score"].is_unique
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False)
    params = make_params(tmp_path, {**small_crm, "leads": path},
                         features__numeric=[*base_params["features"]["numeric"], "call_score"],
                         train__search__enabled=False, train__candidates=["logreg"])
    err = _train_refused(capsys, params)
    assert "column 'call_score' alone predicts the label with ROC AUC" in err
    assert "filled in" not in err  # by its values: it is never missing


def test_date_column_written_after_the_outcome_stops_training(
        tmp_path, small_crm, base_params, make_params, capsys):
    """created_at is the one date-typed model input (its season and weekday): an export whose
    created_at the CRM overwrote with the conversion date makes converted leads look recent."""
    label = crm_labels(small_crm, base_params)[1]
    leads = pd.read_csv(small_crm["leads"], dtype=str)
    created = pd.to_datetime(leads["created_at"])
    leads["converted"] = label.fillna(0).astype(int).astype(str).to_numpy()
    won = np.flatnonzero(leads["converted"] == "1")
    rng = np.random.default_rng(1)
    moved = won[rng.random(len(won)) < 0.92]  # a few keep their date: every split has positives
    late = created.quantile(0.92)
    span = (created.max() - late).total_seconds()
    leads.loc[moved, "created_at"] = (
        late + pd.to_timedelta(rng.random(len(moved)) * span, unit="s")).strftime(
        "%Y-%m-%d %H:%M:%S").to_numpy()
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False)
    params = make_params(tmp_path, {**small_crm, "leads": path},
                         data__leads__label="converted", data__deals=None, data__feedback=None,
                         train__search__enabled=False, train__candidates=["logreg"])
    err = _train_refused(capsys, params)
    assert "column 'created_at' alone predicts the label with ROC AUC" in err
