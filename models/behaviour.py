"""Behavioural guarantees of a lead model: what must (not) move a score, checked on raw rows.

`clamp_monotone_logreg` makes logistic regression respect features.monotonic_increasing the way
HistGradientBoosting's monotonic_cst does; the `*_drop` functions measure violations on any
fitted model (calibrated or not), for training logs and the behavioural tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadq.features.columns import DERIVED_SENIORITY


def clamp_monotone_logreg(pipeline: Pipeline, increasing: Sequence[str]) -> list[str]:
    """Set negative coefficients of monotone-increasing inputs to zero; returns what changed.

    The numeric branch is impute → signed log1p → standard scaling, all increasing maps, so a
    non-negative coefficient makes the score non-decreasing in that input. Zeroing (rather than
    refitting) is the conservative fix: the input then simply stops counting, and calibration
    on validation absorbs the small shift. Missing-value indicator columns are left alone.
    """
    encode, model = pipeline.named_steps["encode"], pipeline.named_steps["model"]
    names = list(encode.get_feature_names_out())
    clamped = []
    for col in increasing:
        key = f"num__{col}"
        if key in names:
            i = names.index(key)
            if model.coef_[0, i] < 0:
                model.coef_[0, i] = 0.0
                clamped.append(col)
    return clamped


def _score(model, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(rows))[:, 1]


def monotone_drop(model, rows: pd.DataFrame, column: str, low: object, high: object) -> float:
    """Largest score drop over `rows` when `column` goes from `low` to `high` (≤ 0 is fine)."""
    lo, hi = rows.copy(), rows.copy()
    lo[column], hi[column] = low, high
    return float(np.max(_score(model, lo) - _score(model, hi)))


def ordered_values_drop(model, rows: pd.DataFrame, column: str,
                        ordered: Sequence[object]) -> float:
    """Largest score drop when `column` steps up through `ordered` (e.g. titles by seniority)."""
    scores = []
    for value in ordered:
        changed = rows.copy()
        changed[column] = value
        scores.append(_score(model, changed))
    drops = [np.max(a - b) for a, b in zip(scores[:-1], scores[1:], strict=True)]
    return float(max(drops)) if drops else 0.0


# Titles in rising seniority as leadq.features.transform.seniority_rank reads them.
TITLE_LADDER = ("Student", "Intern", "Analyst", "Marketing Manager", "Finance Director", "CFO")


def behaviour_report(model, rows: pd.DataFrame, params: dict) -> dict[str, float]:
    """Max score drops for each monotone-increasing input, on the given raw rows."""
    feats = params["features"]
    out: dict[str, float] = {}
    for col in feats.get("monotonic_increasing") or []:
        if col == DERIVED_SENIORITY:
            title_col = feats.get("job_title_column")
            if title_col and title_col in rows:
                out[f"behaviour_max_drop_{col}"] = ordered_values_drop(
                    model, rows, title_col, TITLE_LADDER)
        elif col in rows:
            values = pd.to_numeric(rows[col], errors="coerce")
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            if np.isfinite(low) and high > low:
                out[f"behaviour_max_drop_{col}"] = monotone_drop(model, rows, col, low, high)
    return out
