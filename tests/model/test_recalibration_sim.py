"""Weekly recalibration over synthetic weeks in which lead volume doubles and the base rate
halves half-way. Calls the pure recalibration step directly (no MLflow) for speed.

The world is a pure label shift: a lead's observable signal z depends only on whether it will
convert, so P(convert | z) moves with the base rate exactly as Saerens et al. assume. The model
sees z through noise and is calibrated for the training base rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.models.metrics import expected_calibration_error
from leadq.models.prior_shift import Correction
from leadq.pipelines.recalibrate import measure_realised, recalibrate_step

MU1, NOISE = 1.6, 0.5
TRAIN_PRIOR = 0.10
CAPACITY, MIN_PRECISION = 3000.0, 0.25
SHIFT_WEEK = 6
WEEKS = 12


def _posterior(z: np.ndarray, prior: float, var: float) -> np.ndarray:
    lr = np.exp((MU1 * z - 0.5 * MU1 ** 2) / var)  # f1(z) / f0(z) for N(MU1, var) vs N(0, var)
    return prior * lr / (prior * lr + 1 - prior)


def _week(rng: np.random.Generator, w: int) -> pd.DataFrame:
    n, prior = (20000, 0.10) if w < SHIFT_WEEK else (40000, 0.05)
    y = rng.random(n) < prior
    z = rng.normal(np.where(y, MU1, 0.0), 1.0)
    seen = z + rng.normal(0.0, NOISE, n)
    start = pd.Timestamp("2026-01-05") + pd.Timedelta(weeks=w)
    return pd.DataFrame({
        "lead_id": [f"W{w:02d}-{i:06d}" for i in range(n)],
        "created_at": start + pd.to_timedelta(rng.uniform(0, 7 * 86400, n), unit="s"),
        "true_p": _posterior(z, prior, 1.0),
        # The model only sees z through noise; calibrated for the training base rate.
        "score_raw": _posterior(seen, TRAIN_PRIOR, 1.0 + NOISE ** 2),
        "converted": y.astype(float),
    })


def _params() -> dict:
    from leadq.pipelines.params.loader import effective_params

    # The agreement: MQLs are leads down to a precision floor, capped by sales capacity.
    return effective_params({
        "agreement": {"mql": {"policy": "min_precision", "min_precision": MIN_PRECISION},
                      "capacity_per_week": CAPACITY, "sla_hours": 24},
        "recalibration": {"correction": "auto"},
        "scoring": {"explore_rate": 0.02},
    })


@pytest.fixture(scope="module")
def simulation() -> pd.DataFrame:
    rng = np.random.default_rng(20260101)
    params = _params()
    bar, correction = None, None
    rows = []
    reference = _week(rng, 0)["score_raw"].to_numpy()  # the model's training leads
    for w in range(WEEKS):
        week = _week(rng, w)
        raw = week["score_raw"].to_numpy()
        if bar is not None:
            # Score the week with the bar and correction set by last week's recalibration.
            score = correction.apply(raw) if correction is not None else raw
            mql = score >= bar
            y = week["converted"].to_numpy()
            rows.append({"week": w, "leads": len(week), "mqls": int(mql.sum()),
                         "precision": float(y[mql].mean()),
                         "ece": expected_calibration_error(week["true_p"].to_numpy(), score),
                         "ece_uncorrected": expected_calibration_error(
                             week["true_p"].to_numpy(), raw),
                         "bar": bar,
                         "prior_now": correction.prior_now if correction else TRAIN_PRIOR})
        recent = week.assign(score=raw, is_mql=False)
        entry = recalibrate_step(recent, None, None, params, as_of=recent["created_at"].max(),
                                 train_prior=TRAIN_PRIOR, weeks=1.0, ref_scores=reference)
        bar, correction = entry["threshold"], Correction.from_dict(entry["correction"])
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\n" + out.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return out


def test_mqls_track_capacity_after_each_recalibration(simulation):
    # The shift week is scored with the bar set on the old regime (nothing has seen the new
    # volume yet); every week after a recalibration that has seen it must fit.
    settled = simulation[simulation["week"] != SHIFT_WEEK]
    ratio = settled["mqls"] / CAPACITY
    assert ratio.between(0.9, 1.1).all(), settled[["week", "mqls"]]
    # The stale week really overshoots: the test would catch a recalibration that did nothing.
    assert simulation.loc[simulation["week"] == SHIFT_WEEK, "mqls"].iloc[0] > 1.3 * CAPACITY


def test_realised_precision_stays_above_the_minimum(simulation):
    settled = simulation[simulation["week"] != SHIFT_WEEK]
    assert (settled["precision"] >= MIN_PRECISION).all(), settled[["week", "precision"]]


def test_corrected_scores_stay_calibrated_against_the_truth(simulation):
    settled = simulation[simulation["week"] != SHIFT_WEEK]
    assert (settled["ece"] <= 0.03).all(), settled[["week", "ece"]]
    after = simulation[simulation["week"] > SHIFT_WEEK]
    # Without the prior-shift correction the same scores would be clearly off after the shift.
    assert (after["ece_uncorrected"] > 0.03).all()
    assert after["prior_now"].between(0.04, 0.06).all()


def test_ipw_recall_is_unbiased_with_exploration():
    rng = np.random.default_rng(5)
    week = _week(rng, 0)
    score = week["score_raw"].to_numpy()
    y = rng.random(len(week)) < week["true_p"].to_numpy()
    mql = score >= np.quantile(score, 0.85)
    explore = ~mql & (rng.random(len(week)) < 0.05)
    frame = pd.DataFrame({"score": score, "is_mql": mql, "explore": explore,
                          "sales_propensity": np.where(mql, 1.0, 0.05), "label": y.astype(float)})
    true_recall = y[mql].sum() / y.sum()
    m = measure_realised(frame)
    assert m["ipw"] is True
    assert abs(m["recall"] - true_recall) < 0.05
    # Counting explored outcomes at face value (no weights) overstates recall badly.
    naive = y[mql].sum() / (y[mql].sum() + y[explore].sum())
    assert naive - true_recall > 0.15
    assert abs(m["base_rate"] - y.mean()) < 0.01
