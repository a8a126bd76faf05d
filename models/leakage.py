"""Leakage detector: a single input column that predicts the label too well stops training.

The name-based guard (leadq.features.columns.assert_no_leakage) refuses configured deal and feedback
columns; this one catches what names cannot: a sales-feedback or outcome column copied into the
leads table under another name ("sales_status", "first_call_at"). Nothing known when a lead
becomes an MQL predicts a won deal 90 days later with ROC AUC 0.9 on its own, so a column that
does (by its values or by whether it is filled in) is almost surely written after the outcome.

Checked: every raw column the model reads (a leaky column must be a configured feature to leak).
Categories are scored by an out-of-fold conversion rate per value, so a high-cardinality column
cannot look predictive by memorising its training rows; numbers and dates by their rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadq.errors import GateError
from leadq.settings import setting


@dataclass(frozen=True)
class ColumnLeak:
    column: str
    kind: str  # "values" or "missingness"
    auc: float

    def describe(self) -> str:
        what = "alone" if self.kind == "values" else "by whether it is filled in alone"
        return f"column {self.column!r} {what} predicts the label with ROC AUC {self.auc:.3f}"


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Direction-free ROC AUC (a column predicting non-conversion leaks just as much)."""
    if len(np.unique(y)) < 2 or len(np.unique(score)) < 2:
        return 0.5
    auc = roc_auc_score(y, score)
    return float(max(auc, 1.0 - auc))


def _out_of_fold_rate(values: pd.Series, y: np.ndarray, folds: int = 5, seed: int = 0,
                      prior_weight: float = 10.0) -> np.ndarray:
    """Each row's category conversion rate learnt on the other folds (smoothed to the mean):
    scikit-learn's cross-fitted TargetEncoder, missing values a category of their own."""
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import TargetEncoder

    text = values.astype("string").str.strip().str.lower().fillna("\x00missing")
    if len(text) < folds or len(np.unique(y)) < 2:
        return np.full(len(text), float(np.mean(y)) if len(y) else 0.5)
    encoder = TargetEncoder(target_type="binary", smooth=prior_weight,
                            cv=KFold(n_splits=folds, shuffle=True, random_state=seed))
    frame = pd.DataFrame({"value": text.to_numpy(dtype=object)})
    # binary target: the encoding is the smoothed mean of y, so the rate itself
    return encoder.fit_transform(frame, np.asarray(y, int))[:, 0]


def _numeric(values: pd.Series) -> pd.Series | None:
    """The column as numbers (datetimes as epoch), or None when it is text."""
    if pd.api.types.is_datetime64_any_dtype(values):
        epoch = values.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        return pd.Series(epoch, index=values.index).where(values.notna().to_numpy())
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    return None


def column_aucs(frame: pd.DataFrame, y: pd.Series | np.ndarray) -> list[ColumnLeak]:
    """ROC AUC of each column alone and of its missingness alone, for every column of `frame`."""
    y = np.asarray(y, int)
    found: list[ColumnLeak] = []
    for col in dict.fromkeys(frame.columns):
        values = frame[col]
        missing = values.isna().to_numpy()
        if missing.any() and not missing.all():
            found.append(ColumnLeak(col, "missingness", _auc(y, missing.astype(float))))
        numbers = _numeric(values)
        if numbers is not None:
            present = ~missing
            # Ranks, not the values: a CSV's "inf" reads as infinity, which roc_auc_score
            # refuses; the ROC AUC of the ranks is the same, infinities ranked last.
            ranks = numbers.rank(method="average").to_numpy()
            auc = _auc(y[present], ranks[present]) if present.sum() > 1 else 0.5
        else:
            auc = _auc(y, _out_of_fold_rate(values, y))
        found.append(ColumnLeak(col, "values", auc))
    return found


def find_leaks(frame: pd.DataFrame, y: pd.Series | np.ndarray, params: dict) -> list[ColumnLeak]:
    """Columns over params leakage.max_single_column_auc, except those in leakage.allow."""
    limit = setting(params, "leakage.max_single_column_auc", float)
    allowed = set(setting(params, "leakage.allow") or [])
    cols = [c for c in frame.columns if c not in allowed]
    leaks = [leak for leak in column_aucs(frame[cols], y) if leak.auc > limit]
    return sorted(leaks, key=lambda leak: -leak.auc)


def check_leakage(frame: pd.DataFrame, y: pd.Series | np.ndarray, params: dict) -> None:
    """Stop training (GateError, exit 2) when a model input column leaks the label."""
    if not setting(params, "leakage.enabled"):
        return
    leaks = find_leaks(frame, y, params)
    if leaks:
        limit = setting(params, "leakage.max_single_column_auc", float)
        detail = "; ".join(leak.describe() for leak in leaks)
        raise GateError(
            f"leakage detector: {detail} (limit {limit}, params leakage.max_single_column_auc). "
            "No lead attribute known at MQL time predicts a won deal that well: the column is "
            "probably written after sales worked the lead (feedback, deal stage, call date). "
            "Remove it from params.yaml features, or list it under leakage.allow if it truly "
            "is known when the lead arrives."
        )
