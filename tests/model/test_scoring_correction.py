"""`leadq score` applies the prior-shift correction stored in the threshold version in force.

On the test CRM recalibration never stores a correction (the label-shift check refuses EM), so
a scorer that ignored it would still pass `score == score_raw` checks. Here non-null
corrections are stored through the real threshold store (tracking/thresholds.save) and the
scorer's output is checked against the README formulas, computed here from the stored
parameters alone:

    em:    p' = (π'/π · p) / (π'/π · p + (1−π')/(1−π) · (1−p))
    refit: q = 1 / (1 + exp(−(a · logit(p) + b))), then the em formula on q
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli

PRIOR_REF, PRIOR_NOW = 0.10, 0.30  # a tripled base rate: every corrected score moves up
PLATT = (0.8, 0.4)  # slope, intercept: far from the identity (1, 0)


def _em(p: np.ndarray, prior_ref: float, prior_now: float) -> np.ndarray:
    up = prior_now / prior_ref * p
    return up / (up + (1 - prior_now) / (1 - prior_ref) * (1 - p))


def _platt(p: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return 1 / (1 + np.exp(-(slope * np.log(p / (1 - p)) + intercept)))


def _tiers(score: np.ndarray, cutoffs) -> np.ndarray:
    a, b, c = cutoffs
    return np.select([score >= a, score >= b, score >= c], ["A", "B", "C"], "D")


@pytest.fixture(scope="module")
def scored(tmp_path_factory, base_params, small_crm):
    """One model; scored with threshold version 0, then with an em, a refit and a
    no-correction threshold version stored in turn."""
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.tracking.thresholds import save
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("correction")
    path = write_params(d, base_params, small_crm, train__candidates=["logreg"],
                        train__search__enabled=False)
    version = train_main(str(path))["version"]
    params = load_params(path)

    def score(tag: str) -> pd.DataFrame:
        out = d / f"scores_{tag}.parquet"
        assert cli(["score", "--input", str(small_crm["leads"]), "--output", str(out),
                    "--model-uri", f"models:/leadq/{version}", "--no-explain",
                    "--params", str(path)]) == 0
        return pd.read_parquet(out)

    base = score("v0")
    raw = base["score_raw"].to_numpy(float)

    def store(correction: dict | None, corrected: np.ndarray) -> dict:
        # A bar in the middle of the corrected scores, tiers around it.
        qs = np.quantile(corrected, [0.9, 0.7, 0.5])
        entry = {"threshold": float(qs[1]), "cutoffs": [float(q) for q in qs],
                 "correction": correction, "reason": "planted by test_scoring_correction",
                 "as_of": "2026-06-30", "window_days": 28.0, "policies": None}
        configure(params)
        return save(mlflow.MlflowClient(), params, "leadq", version, entry)

    em = {"prior_ref": PRIOR_REF, "prior_now": PRIOR_NOW, "method": "em", "platt": None}
    em_entry = store(em, _em(raw, PRIOR_REF, PRIOR_NOW))
    em_scores = score("em")
    refit = {"prior_ref": PRIOR_REF, "prior_now": PRIOR_NOW, "method": "refit+em",
             "platt": list(PLATT)}
    refit_entry = store(refit, _em(_platt(raw, *PLATT), PRIOR_REF, PRIOR_NOW))
    refit_scores = score("refit")
    # Raw-score quantiles: a bar the raw scores cross, so is_mql is not all-or-nothing.
    none_entry = store(None, raw)
    none_scores = score("none")
    return {"base": base, "em": (em_entry, em_scores), "refit": (refit_entry, refit_scores),
            "none": (none_entry, none_scores)}


def _check_routing(out: pd.DataFrame, entry: dict, expected: np.ndarray) -> None:
    assert (out["threshold_version"] == str(entry["threshold_version"])).all()
    np.testing.assert_allclose(out["score"].to_numpy(float), expected, rtol=0, atol=1e-9)
    assert (out["is_mql"].to_numpy(bool) == (expected >= entry["threshold"])).all()
    assert (out["tier"].to_numpy(str) == _tiers(expected, entry["cutoffs"])).all()
    assert (out["sales_propensity"][out["is_mql"]] == 1.0).all()


def test_version_0_scores_are_uncorrected(scored):
    base = scored["base"]
    assert (base["threshold_version"] == "0").all()
    np.testing.assert_array_equal(base["score"].to_numpy(), base["score_raw"].to_numpy())


def test_em_correction_is_applied_to_the_raw_score(scored):
    entry, out = scored["em"]
    assert entry["threshold_version"] == 1 and entry["correction"]["method"] == "em"
    raw = out["score_raw"].to_numpy(float)
    np.testing.assert_allclose(raw, scored["base"]["score_raw"], rtol=0, atol=1e-12)
    expected = _em(raw, PRIOR_REF, PRIOR_NOW)
    assert (np.abs(expected - raw) > 0.01).mean() > 0.5  # the correction really moves scores
    assert (np.abs(out["score"] - out["score_raw"]) > 0.01).mean() > 0.5
    _check_routing(out, entry, expected)
    # The planted bar separates the two: leads below it on the raw score are MQLs now.
    lifted = (raw < entry["threshold"]) & out["is_mql"].to_numpy(bool)
    assert lifted.sum() > 100


def test_refit_correction_applies_the_platt_map_then_the_prior_shift(scored):
    entry, out = scored["refit"]
    assert entry["threshold_version"] == 2 and entry["correction"]["platt"] == list(PLATT)
    raw = out["score_raw"].to_numpy(float)
    expected = _em(_platt(raw, *PLATT), PRIOR_REF, PRIOR_NOW)
    # Neither part alone gives these scores.
    assert np.abs(expected - _em(raw, PRIOR_REF, PRIOR_NOW)).max() > 0.01
    assert np.abs(expected - _platt(raw, *PLATT)).max() > 0.01
    _check_routing(out, entry, expected)


def test_a_version_without_correction_scores_raw(scored):
    entry, out = scored["none"]
    assert entry["threshold_version"] == 3 and entry["correction"] is None
    raw = out["score_raw"].to_numpy(float)
    np.testing.assert_array_equal(out["score"].to_numpy(float), raw)
    _check_routing(out, entry, raw)
    assert 0 < out["is_mql"].mean() < 1
