"""The baselines every training run is measured against: library defaults, minimal encoding.

"Is this better than the HistGradientBoosting I'd fit in three lines?" is the first question a
data scientist asks of leadq. These are those three lines, on the same split and the same raw
input columns as leadq's model: text columns become categories (ordinal codes for the trees,
one-hot for the linear model, each capped at MAX_CATEGORIES columns: the rarest categories of a
column with more share one), numbers pass through (imputed and scaled for the linear model,
which needs it to converge), and nothing else: no derived features, no search, no calibration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

BASELINES = ("hgb", "logreg")
# HGB's default early stopping (on above 10,000 rows) holds out validation_fraction of the rows
# and stops when their loss has not improved for 10 iterations. With few positives there, that
# loss is noise: on a 0.23%-positive export of 100,000 rows (about 14 positives held out) the
# baseline stopped after 10 iterations at test ROC AUC 0.774, while CatBoost's defaults reached
# 0.986. Below this many held-out positives, the baseline fits the default max_iter (100)
# without stopping, as HGB does by default on 10,000 rows or fewer.
MIN_STOPPING_POSITIVES = 50
# The most codes (trees) or one-hot columns (linear model) one text column becomes; beyond it
# the rarest categories share one "infrequent" code. HGB bins at most 255 values anyway; for the
# linear model it bounds memory: a near-unique column (a URL per lead: 113k distinct values in
# 120k leads) one-hot encoded with a column per value died with a 10.8 GiB MemoryError (issue
# 30). A column with fewer categories is encoded exactly as the library default does.
MAX_CATEGORIES = 250


def _split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:  # noqa: N803
    """(text columns, number columns); dates become numbers (days since the epoch)."""
    text = [c for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c])
                                         or pd.api.types.is_datetime64_any_dtype(X[c]))]
    return text, [c for c in X.columns if c not in text]


def plain_frame(X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """The raw inputs as a default estimator can take them: dates as days, text as objects."""
    out = X.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = (out[c] - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
        elif not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def hgb_early_stopping(n_rows: int, positives: int | None) -> bool | str:
    """HGB's early_stopping for a fit on `n_rows` rows holding `positives`: the library
    default ("auto"), or False when its validation split would hold fewer than
    MIN_STOPPING_POSITIVES positives (or more negatives than that, for a rare negative)."""
    default = HistGradientBoostingClassifier()
    if positives is None or n_rows <= 10_000:  # "auto" does not stop on these anyway
        return default.early_stopping
    rarer = min(positives, n_rows - positives)
    return default.early_stopping if default.validation_fraction * rarer \
        >= MIN_STOPPING_POSITIVES else False


def make_baseline(name: str, X: pd.DataFrame, random_state: int = 0,  # noqa: N803
                  positives: int | None = None) -> Pipeline:
    """An unfitted baseline for these input columns (call on plain_frame(X)); `positives`,
    the fitting rows' positive count, keeps HGB from early-stopping on a handful of them."""
    text, numbers = _split_columns(X)
    if name == "hgb":
        encode = ColumnTransformer([
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                   encoded_missing_value=np.nan,
                                   max_categories=MAX_CATEGORIES), text),
            ("num", "passthrough", numbers)])
        model = HistGradientBoostingClassifier(
            categorical_features=[True] * len(text) + [False] * len(numbers),
            early_stopping=hgb_early_stopping(len(X), positives), random_state=random_state)
    elif name == "logreg":
        encode = ColumnTransformer([
            ("cat", Pipeline([("fill", SimpleImputer(strategy="constant", fill_value="")),
                              # infrequent_if_exist: an unseen category is all zeros, as
                              # with "ignore", when no category was pooled.
                              ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                       max_categories=MAX_CATEGORIES))]), text),
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                              ("scale", StandardScaler())]), numbers)])
        model = LogisticRegression(max_iter=1000)
    else:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return Pipeline([("encode", encode), ("model", model)])


def baseline_scores(X_fit: pd.DataFrame, y_fit: pd.Series, X_test: pd.DataFrame,  # noqa: N803
                    random_state: int = 0) -> dict[str, np.ndarray]:
    """Each baseline fitted on the training rows; its probabilities on the test rows."""
    fit, test = plain_frame(X_fit), plain_frame(X_test)
    y = np.asarray(y_fit, int)
    return {name: make_baseline(name, fit, random_state, positives=int(y.sum())).fit(fit, y)
            .predict_proba(test)[:, 1] for name in BASELINES}


def baseline_metrics(X_fit: pd.DataFrame, y_fit: pd.Series, X_test: pd.DataFrame,  # noqa: N803
                     y_test: pd.Series, random_state: int = 0,
                     scores: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """The MLflow metrics baseline_<name>_test_roc_auc / _pr_auc / _log_loss (from `scores`
    when the caller has them, else from baseline_scores)."""
    scores = scores or baseline_scores(X_fit, y_fit, X_test, random_state)
    y = np.asarray(y_test, int)
    out: dict[str, float] = {}
    for name, p in scores.items():
        out[f"baseline_{name}_test_roc_auc"] = float(roc_auc_score(y, p))
        out[f"baseline_{name}_test_pr_auc"] = float(average_precision_score(y, p))
        out[f"baseline_{name}_test_log_loss"] = float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15),
                                                               labels=[0, 1]))
    return out


def paired_auc_interval(y: np.ndarray, a: np.ndarray, b: np.ndarray, *, rounds: int = 500,
                        seed: int = 0, level: float = 0.9) -> tuple[float, float]:
    """A paired bootstrap interval of ROC AUC(a) − ROC AUC(b) on the same rows: whether a
    gap on a small test set is more than resampling noise."""
    rng = np.random.default_rng(seed)
    y, a, b = np.asarray(y, int), np.asarray(a, float), np.asarray(b, float)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def below_baseline(metrics: dict[str, float], tolerance: float) -> tuple[str, float] | None:
    """(the best baseline, its test ROC AUC) when leadq's test ROC AUC is lower by more than
    `tolerance`; None when leadq holds its own."""
    best = max(BASELINES, key=lambda n: metrics.get(f"baseline_{n}_test_roc_auc", -1.0))
    auc = metrics.get(f"baseline_{best}_test_roc_auc")
    if auc is None or metrics.get("test_roc_auc") is None:
        return None
    return (best, auc) if metrics["test_roc_auc"] < auc - tolerance else None
