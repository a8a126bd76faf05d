"""The marketer report's view per segment, for a segmented model (leadq.models.segments).

Each segment that kept its own model, beside the leads the pooled model scores: its test leads,
conversion, ROC AUC / PR AUC / ECE, and what drives its scores (the columns with the largest mean
absolute contribution among its leads, from the report's exact per-lead SHAP values, which each
lead's own model produced). This is where "enterprise leads convert on demo requests, SMB
leads on pricing-page visits" shows, when that is what the models learnt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.models.metrics import classification_metrics

TOP_DRIVERS = 3


def segment_report(model, X: pd.DataFrame, y: np.ndarray, score: np.ndarray,  # noqa: N803
                   shap_values: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per model that scores test leads (each own segment model, then the pooled);
    None for a model without segments."""
    if not hasattr(model, "members_"):
        return None
    y, score = np.asarray(y, int), np.asarray(score, float)
    route = model.route(X)
    rows = []
    groups = [(model.segment_names_.get(k, k), "own", route == k) for k in model.members_]
    groups.append(("all other leads", "pooled", pd.isna(route)))
    for name, kind, mask in groups:
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        m = classification_metrics(y[mask], score[mask])
        drivers = ""
        if shap_values is not None and len(shap_values):
            seg_rows = shap_values.index.intersection(X.index[mask])
            if len(seg_rows):
                strength = shap_values.loc[seg_rows].abs().mean().sort_values(ascending=False)
                drivers = ", ".join(strength.index[:TOP_DRIVERS])
        rows.append({"segment": name, "model": kind, "leads": int(mask.sum()),
                     "conversion_rate": float(y[mask].mean()), "roc_auc": m["roc_auc"],
                     "pr_auc": m["pr_auc"], "ece": m["ece"], "drivers": drivers})
    return pd.DataFrame(rows)
