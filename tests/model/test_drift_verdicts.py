"""Drift verdicts of `leadq recalibrate`: the retrain advice when the ranking itself decayed.

README step 5: retraining is advised when the realised ROC AUC on matured leads falls below
registry.criteria.min_test_roc_auc, whatever the PSI says. The planted situation: the scorer's
output with its score columns (score, MQL flag, tier, routing) dealt out to the leads in a
random order, so a lead's score says nothing about it any more; the inputs are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli
from tests.helpers import cli_json, recalibration_params

AS_OF = "2026-06-30"
FLOOR = 0.70  # params.yaml registry.criteria.min_test_roc_auc
SCORE_COLUMNS = ["score", "is_mql", "tier", "explore", "sales_propensity", "score_raw"]


def _dry_run(capsys, params: str, scores) -> dict:
    return cli_json(capsys, ["recalibrate", "--dry-run", "--as-of", AS_OF, "--scores",
                             str(scores), "--params", params])


@pytest.fixture(scope="module")
def scored(tmp_path_factory, base_params, small_crm):
    from leadq.pipelines.train import main as train_main

    d = tmp_path_factory.mktemp("drift")
    path = recalibration_params(
        d, base_params, small_crm, agreement__review_days=182,
        registry__criteria={"min_test_roc_auc": FLOOR, "max_test_ece": 0.05})
    assert train_main(str(path))["champion"]
    honest = d / "scores.parquet"
    assert cli(["score", "--input", str(small_crm["leads"]), "--output", str(honest),
                "--no-explain", "--params", str(path)]) == 0
    frame = pd.read_parquet(honest)
    # Each lead keeps its own row but gets another lead's score and routing.
    order = np.random.default_rng(0).permutation(len(frame))
    for col in SCORE_COLUMNS:
        frame[col] = frame[col].to_numpy()[order]
    decayed = d / "decayed.parquet"
    frame.to_parquet(decayed)
    return {"params": str(path), "honest": honest, "decayed": decayed}


def test_realised_auc_below_the_floor_advises_retraining(scored, capsys):
    entry = _dry_run(capsys, scored["params"], scored["decayed"])
    auc = entry["measured"]["roc_auc"]
    print(f"realised ROC AUC of the shuffled scores: {auc:.3f}")
    assert auc < FLOOR - 0.1
    drift = entry["drift"]
    # The inputs did not move more than the honest run's: only the AUC says retrain.
    assert max(drift["feature_psi"].values()) < 0.25
    assert drift["verdict"] == "retrain"
    assert f"realised ROC AUC on matured leads {auc:.3f} < {FLOOR:.2f}" in drift["advice"]


def test_realised_auc_above_the_floor_keeps_the_psi_verdict(scored, capsys):
    entry = _dry_run(capsys, scored["params"], scored["honest"])
    auc = entry["measured"]["roc_auc"]
    assert auc > FLOOR + 0.01
    drift = entry["drift"]
    # The giveaway campaign launched mid-period: the lead mix moved moderately since training.
    assert 0.10 <= drift["feature_psi"]["campaign"] < 0.25
    assert drift["verdict"] == "recalibrate"
    assert "realised ROC AUC" not in drift["advice"]
    assert np.isfinite(drift["score_psi"])
