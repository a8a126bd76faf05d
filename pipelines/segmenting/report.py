"""The marketer report's view per segment, for a segmented model (leadq.models.segments).

Each segment that kept its own model, beside the leads the pooled model scores: its test leads,
conversion, mean score, ROC AUC / PR AUC / ECE, and what drives its scores (the columns with the
largest mean absolute contribution among its leads, from the report's exact per-lead SHAP
values, which each lead's own model produced); its reliability (predicted vs observed by score
band) and its best personas among its own leads. This is where "enterprise leads convert on demo
requests, SMB leads on pricing-page visits" shows, when that is what the models learnt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.models.metrics import calibration_table, classification_metrics

TOP_DRIVERS = 3


def segment_report(model, X: pd.DataFrame, y: np.ndarray, score: np.ndarray,  # noqa: N803
                   shap_values: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per model that scores test leads (each own segment model, then the pooled);
    None for a model without segments."""
    if not hasattr(model, "members_"):
        return None
    y, score = np.asarray(y, int), np.asarray(score, float)
    rows = []
    for name, kind, mask in segment_groups(model, X):
        m = classification_metrics(y[mask], score[mask])
        drivers = ""
        if shap_values is not None and len(shap_values):
            seg_rows = shap_values.index.intersection(X.index[mask])
            if len(seg_rows):
                strength = shap_values.loc[seg_rows].abs().mean().sort_values(ascending=False)
                drivers = ", ".join(strength.index[:TOP_DRIVERS])
        rows.append({"segment": name, "model": kind, "leads": int(mask.sum()),
                     "conversion_rate": float(y[mask].mean()),
                     "mean_score": float(score[mask].mean()), "roc_auc": m["roc_auc"],
                     "pr_auc": m["pr_auc"], "ece": m["ece"], "drivers": drivers})
    return pd.DataFrame(rows)


POOLED_GROUP = "all other leads"


def segment_groups(model, X: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:  # noqa: N803
    """(name, "own" or "pooled", row mask) per model of a segmented model that scores some of
    these rows: each own segment model, then the leads the pooled model scores."""
    route = model.route(X)
    groups = [(model.segment_names_.get(k, k), "own", np.asarray(route == k, bool))
              for k in model.members_]
    groups.append((POOLED_GROUP, "pooled", np.asarray(pd.isna(route), bool)))
    return [g for g in groups if g[2].any()]


def segment_reliability(model, X: pd.DataFrame, y: np.ndarray, score: np.ndarray,  # noqa: N803
                        n_bins: int = 10) -> dict[str, pd.DataFrame] | None:
    """Predicted vs observed conversion by score band, per segment group (segment_groups):
    one calibration map per segment model, so one reliability curve each. Fewer bands for a
    small group (at least 30 leads a band), so a curve is not drawn through noise."""
    if not hasattr(model, "members_"):
        return None
    y, score = np.asarray(y, int), np.asarray(score, float)
    out = {}
    for name, _, mask in segment_groups(model, X):
        bins = int(min(n_bins, mask.sum() // 30))
        if bins >= 2:
            out[name] = calibration_table(y[mask], score[mask], n_bins=bins)
    return out


def segment_personas(model, segment_values: pd.Series, attrs: pd.DataFrame, y: pd.Series, *,
                     min_share: float, min_rows: int, top: int = 3,
                     ) -> dict[str, pd.DataFrame] | None:
    """The best personas (leadq.models.insights.persona_segments) among each own segment's
    labelled leads, beside the pooled view of all leads: a segment's ideal customer is often
    not the average one. The segment column itself is left out (constant within a segment);
    the minimum size is min_share of the segment's leads (at least min_rows)."""
    from leadq.models.insights import persona_segments

    if not hasattr(model, "members_"):
        return None
    keys = pd.Series(model.route(pd.DataFrame({model.column: segment_values})),
                     index=segment_values.index)
    attrs = attrs.drop(columns=[c for c in attrs.columns if c == model.column])
    out = {}
    for key in model.members_:
        rows = keys.index[(keys == key).to_numpy()]
        if not len(rows):
            continue
        least = max(int(min_rows), int(min_share * len(rows)))
        best, _ = persona_segments(attrs.loc[rows], y.loc[rows], min_rows=least, top=top)
        out[model.segment_names_.get(key, key)] = best
    return out
