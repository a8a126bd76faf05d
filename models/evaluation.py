"""Out-of-time evaluation: headline metrics, gains, capture, tier quality and segments.

Pure functions of labels and scores (plus the segment columns), so training, benchmarks and the
champion/challenger gate compute the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from leadq.models.metrics import (
    calibration_table,
    classification_metrics,
    expected_calibration_error,
    gains_table,
)
from leadq.models.tiers import TIERS, assign_tiers

CAPTURE_SHARES = (0.1, 0.2, 0.3)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def capture_at(y: np.ndarray, score: np.ndarray, share: float) -> float:
    """Share of all conversions found in the best-scored `share` of leads."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    if not len(y) or y.sum() == 0:
        return float("nan")
    k = max(int(round(share * len(y))), 1)
    top = np.argsort(-score, kind="stable")[:k]
    return float(y[top].sum() / y.sum())


def tier_table(y: np.ndarray, score: np.ndarray, cutoffs: Sequence[float]) -> pd.DataFrame:
    """Per tier: leads, share of leads, conversion rate, share of conversions (MadKudu's view)."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    tiers = assign_tiers(score, cutoffs)
    total, total_pos = max(len(y), 1), max(y.sum(), 1e-12)
    rows = []
    for tier in TIERS:
        mask = tiers == tier
        n = int(mask.sum())
        rows.append({
            "tier": tier,
            # the lowest cut-off of the tier (one per lead with a bar per segment)
            "min_score": (float(np.min(np.asarray(cutoffs, float)[..., TIERS.index(tier)]))
                          if tier != "D" else 0.0),
            "leads": n,
            "leads_share": n / total,
            "conversions": int(y[mask].sum()),
            "conversion_rate": float(y[mask].mean()) if n else float("nan"),
            "conversions_share": float(y[mask].sum() / total_pos),
            "mean_score": float(score[mask].mean()) if n else float("nan"),
        })
    return pd.DataFrame(rows)


def tier_metrics(table: pd.DataFrame, prefix: str = "test_") -> dict[str, float]:
    """Flat tier figures for MLflow: per-tier shares and rates, top-two totals, A-vs-D lift."""
    out: dict[str, float] = {}
    by = table.set_index("tier")
    for tier in TIERS:
        t = tier.lower()
        out[f"{prefix}tier_{t}_leads_share"] = float(by.loc[tier, "leads_share"])
        out[f"{prefix}tier_{t}_conversion_rate"] = float(by.loc[tier, "conversion_rate"])
        out[f"{prefix}tier_{t}_conversions_share"] = float(by.loc[tier, "conversions_share"])
    out[f"{prefix}top2_leads_share"] = float(by.loc[["A", "B"], "leads_share"].sum())
    out[f"{prefix}top2_conversions_share"] = float(by.loc[["A", "B"], "conversions_share"].sum())
    a, d = by.loc["A", "conversion_rate"], by.loc["D", "conversion_rate"]
    out[f"{prefix}tier_a_vs_d_lift"] = float(a / d) if d and np.isfinite(d) else float("nan")
    return out


def segment_table(y: np.ndarray, score: np.ndarray, segments: pd.DataFrame,
                  min_rows: int = 50) -> pd.DataFrame:
    """Metrics per value of each segment column (source, campaign, ...), biggest first.

    Values with fewer than `min_rows` leads are pooled as "(other)" so a table stays readable
    and no metric rests on a handful of leads.
    """
    y, score = np.asarray(y, int), np.asarray(score, float)
    rows = []
    for col in segments.columns:
        values = segments[col].astype("string").fillna("(missing)").to_numpy()
        counts = pd.Series(values).value_counts()
        small = set(counts[counts < min_rows].index)
        values = np.where(np.isin(values, list(small)), "(other)", values)
        for value in pd.Series(values).value_counts().index:
            mask = values == value
            ys, ss = y[mask], score[mask]
            both = 0 < ys.sum() < len(ys)
            rows.append({
                "segment": col, "value": str(value), "leads": int(mask.sum()),
                "conversions": int(ys.sum()), "conversion_rate": float(ys.mean()),
                "mean_score": float(ss.mean()),
                "roc_auc": float(roc_auc_score(ys, ss)) if both else float("nan"),
                "pr_auc": float(average_precision_score(ys, ss)) if both else float("nan"),
                "ece": expected_calibration_error(ys, ss),
            })
    return pd.DataFrame(rows)


def evaluate(y: np.ndarray, score: np.ndarray, *, cutoffs: Sequence[float] | None = None,
             segments: pd.DataFrame | None = None, min_segment_rows: int = 50,
             prefix: str = "test_") -> Evaluation:
    """Everything the issue asks to see on the out-of-time test set, as metrics and tables."""
    y, score = np.asarray(y, int), np.asarray(score, float)
    metrics = classification_metrics(y, score, prefix=prefix)
    for share in CAPTURE_SHARES:
        metrics[f"{prefix}capture_top{int(share * 100)}"] = capture_at(y, score, share)
    gains = gains_table(y, score)
    metrics[f"{prefix}lift_top_decile"] = float(gains["lift"].iloc[0])
    tables = {"gains": gains, "calibration": calibration_table(y, score)}
    if cutoffs is not None:
        tiers = tier_table(y, score, cutoffs)
        tables["tiers"] = tiers
        metrics.update(tier_metrics(tiers, prefix))
    if segments is not None and len(segments.columns):
        tables["segments"] = segment_table(y, score, segments, min_segment_rows)
    return Evaluation(metrics=metrics, tables=tables)


def format_table(frame: pd.DataFrame) -> str:
    """A fixed-width text table for the terminal: shares as %, rates with 3 decimals."""
    shown = frame.copy()
    for col in shown.columns:
        if col.endswith("_share"):
            shown[col] = shown[col].map(lambda v: f"{100 * v:5.1f}%")
        elif shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(lambda v: f"{v:.3f}")
    return shown.to_string(index=False)
