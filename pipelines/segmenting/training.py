"""`leadq train` with segments.column set: a model per segment where it pays, pooled elsewhere.

For each segment with at least segments.min_leads labelled leads and segments.min_conversions
conversions before the test set, the same procedure as the pooled model (hyperparameter search,
time-ordered out-of-fold selection, calibration from out-of-fold scores) runs on that segment's
leads alone. The segment keeps its own model only when, on the leads both models scored out of
fold, it ranks them better than the pooled model beyond noise (leadq.models.segments
.keep_own_model); otherwise, and for small segments, the pooled model scores it.

The training procedure itself (train.py's `_fit_on_history` and hyperparameter search) is
handed in as functions: this module adds the segment loop, not a second copy of training.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from leadq.models.calibration_choice import (
    base_pipeline,
    calibrate_oof_by_span,
    cross_fitted_scores,
)
from leadq.models.explain import calibrated_probability, unwrap
from leadq.models.metrics import classification_metrics
from leadq.models.segments import SegmentChoice, SegmentedModel, keep_own_model, segment_keys
from leadq.pipelines.io.progress import log, step
from leadq.settings import setting

SUMMARY_METRICS = ("roc_auc", "pr_auc", "ece", "log_loss")


@dataclass
class SegmentedFit:
    """What the segment loop hands back to train_models."""

    model: BaseEstimator                 # a SegmentedModel, or the pooled model unchanged
    table: pd.DataFrame                  # one row per segment: sizes, both models' OOF figures
    bar_scores: np.ndarray               # out-of-fold scores of the served model: the MQL bar
    bar_y: np.ndarray
    column: str
    large: list[str] = field(default_factory=list)    # segments that met the minimums
    members: list[str] = field(default_factory=list)  # segments that kept their own model


def oof_calibrated(fit) -> pd.Series:
    """A FinalFit's out-of-fold scores through its final calibration map, by lead index: the
    scores the served model would give had it been fitted on the older leads only."""
    _, calibrators = unwrap(fit.model)
    return pd.Series(calibrated_probability(calibrators, fit.oof.decision), index=fit.oof_index)


def member_params(params: dict) -> dict:
    """The params a segment's own model is searched and fitted with: the pooled model's, but
    without the season and weekday of created_at unless segments.date_parts is true.

    Estimated on one segment's few thousand leads, their coefficients are mostly noise, and
    that noise moves every score of the segment once leads arrive in a new season: the
    synthetic SMB segment (no season in its truth) scored its test leads 0.04 below their true
    rate, which no calibration map learnt on older out-of-fold leads can see. The pooled model
    keeps them; where a segment's own seasonality matters, its model's out-of-fold log loss
    loses to the pooled one and the keep rule leaves the segment pooled."""
    if setting(params, "segments.date_parts", bool):
        return params
    out = copy.deepcopy(params)
    out["features"]["date_parts"] = False
    return out


def recalibrate_member(own, params: dict) -> tuple[object, pd.Series]:
    """A segment's FinalFit with its calibration map chosen on more evidence, and its
    out-of-fold probabilities through cross-fitted maps (for the keep rule's log loss).

    train.py calibrates on the out-of-fold scores of the validation span alone: for the pooled
    model thousands of leads, for one segment a few hundred, whose noise moved the synthetic
    SMB segment's mean score 0.05 below its true rate. Here the span (recent leads, or every
    out-of-fold lead) is chosen with the method, by log loss on held-out recent leads
    (leadq.models.calibration_choice.calibrate_oof_by_span)."""
    cal = params.get("calibration") or {}
    if not setting(cal, "enabled") or setting(cal, "method") == "none" or own.oof is None:
        return own, oof_calibrated(own)
    X_fit, y_fit = own.fit_rows  # noqa: N806
    oof = own.oof
    recent = np.isin(own.oof_index, own.bar_index)
    init = X_fit.iloc[oof.rows[:2000]], y_fit.iloc[oof.rows[:2000]]
    if init[1].nunique() < 2:
        init = X_fit.iloc[oof.rows], y_fit.iloc[oof.rows]
    model, method, span, losses, scores = calibrate_oof_by_span(
        base_pipeline(own.model), *init, oof.decision, oof.proba, oof.y, recent,
        method=setting(cal, "method"), folds=setting(cal, "folds", int),
        seed=setting(params, "train.random_state", int), sample_weight=oof.weight)
    log.info("  calibration %s on %s out-of-fold leads (held-out recent log loss %s)", method,
             f"{int(recent.sum()):,} recent" if span == "recent" else f"all {len(recent):,}",
             ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    held_out = cross_fitted_scores(oof.decision, oof.proba, oof.y, recent, method, span,
                                   folds=setting(cal, "folds", int),
                                   seed=setting(params, "train.random_state", int),
                                   sample_weight=oof.weight)
    return replace(own, model=model, method=f"{method} ({span})" if method != "none" else method,
                   losses=losses, bar_scores=scores), pd.Series(held_out, index=own.oof_index)


def _display_names(values: pd.Series, keys: np.ndarray) -> dict[str, str]:
    """Each routing key's most frequent spelling in the export, for the summary."""
    frame = pd.DataFrame({"key": keys, "value": values.astype("string").str.strip()})
    frame = frame[frame["key"].notna()]
    return {k: str(g["value"].mode().iloc[0]) for k, g in frame.groupby("key")}


def fit_segments(pooled, data: pd.DataFrame, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                 split: pd.Series, weights: pd.Series | None, params: dict, *,
                 tune: Callable[[dict], dict], fit_history: Callable[..., object],
                 ) -> SegmentedFit:
    """The segment loop over the pooled FinalFit `pooled` (train.py)."""
    cfg = params["segments"]
    column = cfg["column"]
    min_leads, min_conv = int(cfg["min_leads"]), int(cfg["min_conversions"])
    seed = setting(params, "train.random_state", int)
    keys = pd.Series(segment_keys(data[column]), index=data.index)
    names = _display_names(data[column], keys.to_numpy())
    history = split.isin(["train", "validation"])
    counts = {k: (int((history & (keys == k)).sum()), int(y[history & (keys == k)].sum()))
              for k in names}
    large = [k for k, (n, c) in counts.items() if n >= min_leads and c >= min_conv]
    pooled_oof = oof_calibrated(pooled)
    bar = pd.Series(pooled.bar_scores, index=pooled.bar_index)
    rows: list[dict] = []
    members: dict[str, BaseEstimator] = {}
    for key in sorted(names, key=lambda k: -counts[k][0]):
        n, conv = counts[key]
        name = names[key]
        if key not in large:
            rows.append(_small_row(name, n, conv, min_leads, min_conv))
            continue
        idx = keys.index[keys == key]
        parts = {p: (X.loc[idx[split.loc[idx] == p]], y.loc[idx[split.loc[idx] == p]])
                 for p in ("train", "validation", "test")}
        if any(parts[p][1].nunique() < 2 for p in ("train", "validation")):
            rows.append(_pooled_row(name, n, conv, "one class in its train or validation "
                                                    "span: nothing to fit apart"))
            continue
        part_weights = {p: None if weights is None else weights.loc[parts[p][0].index]
                        .to_numpy() for p in parts}
        with step(f"segment {column} = {name}: its own model on {n:,} leads "
                  f"({conv:,} conversions)"):
            try:
                own = fit_history(tune(parts), parts, part_weights)
            except ValueError as exc:  # no out-of-fold block with both classes
                rows.append(_pooled_row(name, n, conv, f"could not be fitted apart ({exc})"))
                continue
            own, own_held_out = recalibrate_member(own, params)
        own_oof = oof_calibrated(own)
        common = own_oof.index.intersection(pooled_oof.index)
        yc = y.loc[common].to_numpy()
        keep, lo, hi, why = keep_own_model(
            yc, own_oof.loc[common].to_numpy(), pooled_oof.loc[common].to_numpy(),
            compared=len(large), confidence=float(cfg["confidence"]), seed=seed,
            own_calibrated=own_held_out.loc[common].to_numpy())
        choice = SegmentChoice(
            segment=name, leads=n, conversions=conv, compared=len(common),
            pooled=_figures(yc, pooled_oof.loc[common]),
            # calibration figures through maps that never saw the lead (ranking: the map's)
            own={**_figures(yc, own_oof.loc[common]),
                 **{k: v for k, v in _figures(yc, own_held_out.loc[common]).items()
                    if k in ("ece", "log_loss")}},
            gap_low=lo, gap_high=hi, keep=keep, why=why)
        rows.append({**choice.row(), "own_candidate": own.candidate})
        log.info("  segment %s: pooled OOF roc_auc %.4f, own %.4f → %s (%s)", name,
                 choice.pooled["roc_auc"], choice.own["roc_auc"],
                 "own model" if keep else "pooled model", why)
        if keep:
            members[name] = own.model
            mine = pd.Series(own.bar_scores, index=own.bar_index)
            shared = mine.index.intersection(bar.index)
            bar.loc[shared] = mine.loc[shared]
    table = pd.DataFrame(rows)
    if not members:
        return SegmentedFit(pooled.model, table, pooled.bar_scores, pooled.bar_y, column,
                            large=[names[k] for k in large])
    model = SegmentedModel.from_fitted(column, pooled.model, members,
                                       known=list(names.values()))
    return SegmentedFit(model, table, bar.to_numpy(), y.loc[bar.index].to_numpy(), column,
                        large=[names[k] for k in large], members=list(members))


def _figures(y: np.ndarray, score: pd.Series) -> dict[str, float]:
    m = classification_metrics(y, score.to_numpy())
    return {k: m[k] for k in SUMMARY_METRICS}


def _pooled_row(name: str, n: int, conv: int, why: str) -> dict:
    return {"segment": name, "leads": n, "conversions": conv, "model": "pooled", "why": why}


def _small_row(name: str, n: int, conv: int, min_leads: int, min_conv: int) -> dict:
    return _pooled_row(name, n, conv, f"below the minimums ({n:,} leads / {conv:,} conversions; "
                                      f"segments.min_leads {min_leads:,}, "
                                      f"min_conversions {min_conv:,})")


def format_segment_table(table: pd.DataFrame) -> str:
    """The per-segment summary `leadq train` prints."""
    if table is None or table.empty:
        return ""
    lines = []
    for r in table.to_dict("records"):
        head = f"  {r['segment']}: {int(r['leads']):,} leads, {int(r['conversions']):,} conv."
        if pd.notna(r.get("pooled_roc_auc", np.nan)):
            head += (f" · pooled OOF ROC AUC {r['pooled_roc_auc']:.4f} / PR AUC "
                     f"{r['pooled_pr_auc']:.4f} / ECE {r['pooled_ece']:.4f}"
                     f" · own {r['own_roc_auc']:.4f} / {r['own_pr_auc']:.4f} / "
                     f"{r['own_ece']:.4f}")
            if pd.notna(r.get("pooled_log_loss", np.nan)):
                head += (f" · log loss pooled {r['pooled_log_loss']:.4f}, own "
                         f"{r['own_log_loss']:.4f}")
        lines.append(f"{head}\n    → {r['model']} model: {r['why']}")
    return "\n".join(lines)
