"""Classification and calibration metrics, with the names logged to MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(target: np.ndarray, score: np.ndarray, n_bins: int = 10) -> float:
    """Mean |observed − predicted| over equal-count score bins, weighted by bin size.

    `target` may be 0/1 outcomes or true probabilities (for synthetic data). Equal-count bins
    keep every bin populated when most leads sit at low scores.
    """
    target, score = np.asarray(target, float), np.asarray(score, float)
    if len(score) == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(n_bins, len(score))):
        total += len(chunk) * abs(target[chunk].mean() - score[chunk].mean())
    return float(total / len(score))


def classification_metrics(y: np.ndarray, score: np.ndarray, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier and ECE (NaN where a metric is undefined)."""
    y, score = np.asarray(y, int), np.clip(np.asarray(score, float), 1e-15, 1 - 1e-15)
    both = len(np.unique(y)) == 2
    metrics = {
        "roc_auc": roc_auc_score(y, score) if both else float("nan"),
        "pr_auc": average_precision_score(y, score) if both else float("nan"),
        "log_loss": log_loss(y, score, labels=[0, 1]),
        "brier": brier_score_loss(y, score),
        "ece": expected_calibration_error(y, score),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "n": float(len(y)),
    }
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def roc_auc_interval(y: np.ndarray, score: np.ndarray, *, level: float = 0.9,
                     rounds: int = 400, seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval of ROC AUC: whether a ranking is better than chance on this many
    leads."""
    rng = np.random.default_rng(seed)
    y, score = np.asarray(y, int), np.asarray(score, float)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            values.append(roc_auc_score(y[idx], score[idx]))
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def calibration_table(y: np.ndarray, score: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed conversion per equal-count score band."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    order = np.argsort(score, kind="stable")
    rows = []
    for band, chunk in enumerate(np.array_split(order, min(n_bins, max(len(score), 1)))):
        if len(chunk):
            rows.append({"band": band + 1, "n": len(chunk), "score_min": score[chunk].min(),
                         "score_max": score[chunk].max(), "predicted": score[chunk].mean(),
                         "observed": y[chunk].mean()})
    return pd.DataFrame(rows)


def calibration_bands(y: np.ndarray, s: np.ndarray, w: np.ndarray, n_bands: int = 10) -> list:
    """Predicted vs realised conversion per equal-count score band, weighted (recalibration
    weighs worked leads by 1/propensity); `calibration_table` is the unweighted view."""
    order = np.argsort(s, kind="stable")
    rows = []
    for band, idx in enumerate(np.array_split(order, min(n_bands, max(len(s), 1)))):
        if len(idx) and w[idx].sum() > 0:
            rows.append({"band": band + 1, "n": int(len(idx)),
                         "score_min": float(s[idx].min()), "score_max": float(s[idx].max()),
                         "predicted": float(np.average(s[idx], weights=w[idx])),
                         "realised": float(np.average(y[idx], weights=w[idx]))})
    return rows


def weighted_ece(y: np.ndarray, s: np.ndarray, w: np.ndarray, n_bands: int = 10) -> float:
    """expected_calibration_error with weights per lead (equal-count bands)."""
    bands = calibration_bands(y, s, w, n_bands)
    if not bands:
        return float("nan")
    n = sum(b["n"] for b in bands)
    return float(sum(b["n"] * abs(b["realised"] - b["predicted"]) for b in bands) / n)


def gains_table(y: np.ndarray, score: np.ndarray, n_groups: int = 10) -> pd.DataFrame:
    """Cumulative gains and lift by score decile, best leads first."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    order = np.argsort(-score, kind="stable")
    total_pos = max(y.sum(), 1e-12)
    base = y.mean() if len(y) else float("nan")
    rows, seen, pos = [], 0, 0.0
    for decile, chunk in enumerate(np.array_split(order, n_groups)):
        seen += len(chunk)
        pos += y[chunk].sum()
        rate = y[chunk].mean() if len(chunk) else float("nan")
        rows.append({"decile": decile + 1, "leads_share": seen / len(y),
                     "conversions_share": pos / total_pos, "conversion_rate": rate,
                     "lift": rate / base if base else float("nan")})
    return pd.DataFrame(rows)
