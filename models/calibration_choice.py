"""Choose the calibration method (none, sigmoid, isotonic) on validation by cross-fitted log loss.

Fitting a calibrator on the validation leads and scoring it on the same leads would always
favour isotonic (it memorises). Each method is instead fitted on K−1 folds of validation and
scored on the held-out fold; the method with the lowest pooled log loss wins and is then
fitted on all validation leads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from leadq.models.calibration import METHODS, calibrate

CHOICES = ("none", *METHODS)


def _response(model: BaseEstimator, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """What CalibratedClassifierCV calibrates: the decision function when there is one."""
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), float).ravel()
    return np.asarray(model.predict_proba(X), float)[:, 1]


def _fit_map(method: str, d: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
    """A calibration map on decision values, as CalibratedClassifierCV fits it."""
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        return iso.fit(d, y, sample_weight=w).predict
    platt = LogisticRegression(C=1e6).fit(d[:, None], y, sample_weight=w)  # Platt: a, b
    return lambda v: platt.predict_proba(v[:, None])[:, 1]


def cross_fitted_losses(model: BaseEstimator, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                        methods: tuple[str, ...], folds: int = 5,
                        seed: int = 0, sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """Log loss per method on validation, each row scored by a calibrator that never saw it.

    The model's responses are computed once; only the 1-D calibration maps are refitted per
    fold, so the choice costs milliseconds, not K×(methods) passes of the feature pipeline.
    """
    raw = model.predict_proba(X)[:, 1] if "none" in methods else None
    d = _response(model, X) if any(m != "none" for m in methods) else None
    return losses_on_responses(d, raw, y, methods, folds, seed, sample_weight)


def losses_on_responses(d: np.ndarray | None, raw: np.ndarray | None, y, methods: tuple[str, ...],
                        folds: int = 5, seed: int = 0, sample_weight: np.ndarray | None = None,
                        ) -> dict[str, float]:
    """cross_fitted_losses on responses already computed: `d` the decision values (what a map
    calibrates), `raw` the uncalibrated probabilities (scored as "none")."""
    y = np.asarray(y, int)
    # IPW weights (explored leads stand for the unworked ones) enter the losses and the maps.
    w = None if sample_weight is None else np.asarray(sample_weight, float)
    losses: dict[str, float] = {}
    if "none" in methods:
        losses["none"] = float(log_loss(y, np.clip(raw, 1e-15, 1 - 1e-15), labels=[0, 1],
                                        sample_weight=w))
    fitted = [m for m in methods if m != "none"]
    if not fitted:
        return losses
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return {**losses, **{m: float("inf") for m in fitted}}
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for method in fitted:
        pred = np.empty(len(y))
        for fit_idx, held_idx in cv.split(d, y):
            w_fit = None if w is None else w[fit_idx]
            pred[held_idx] = _fit_map(method, d[fit_idx], y[fit_idx], w_fit)(d[held_idx])
        losses[method] = float(log_loss(y, np.clip(pred, 1e-15, 1 - 1e-15), labels=[0, 1],
                                        sample_weight=w))
    return losses


def _methods(method: str) -> tuple[str, ...]:
    """The methods calibration.method asks to try (auto: all of them)."""
    tried = CHOICES if method == "auto" else (method,)
    if any(m not in CHOICES for m in tried):
        raise ValueError(f"calibration.method must be auto or one of {CHOICES}, got {method!r}")
    return tuple(tried)


def choose_calibration(model: BaseEstimator, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                       method: str = "auto", folds: int = 5, seed: int = 0,
                       sample_weight: np.ndarray | None = None,
                       ) -> tuple[BaseEstimator, str, dict[str, float]]:
    """The calibrated model, the method used and every tried method's cross-fitted log loss.

    `method` "auto" tries none, sigmoid and isotonic; a named method is used as is (its
    cross-fitted loss is still reported). "none" returns the fitted model unchanged.
    """
    losses = cross_fitted_losses(model, X, y, _methods(method), folds, seed, sample_weight)
    best = min(losses, key=losses.get)
    if best == "none":
        return model, best, losses
    return calibrate(model, X, y, method=best, sample_weight=sample_weight), best, losses


def base_pipeline(model: BaseEstimator) -> BaseEstimator:
    """The fitted feature→estimator Pipeline inside a model, calibrated or not (of a
    segmented model: its pooled model's; every member reads the same columns)."""
    model = getattr(model, "pooled_", model)
    inner = getattr(model, "calibrated_classifiers_", None)
    if inner:
        est = inner[0].estimator
        return getattr(est, "estimator", est)  # unwrap FrozenEstimator
    return model


def choose_calibration_oof(model: BaseEstimator, X_init: pd.DataFrame, y_init: pd.Series,  # noqa: N803
                           d: np.ndarray, raw: np.ndarray, y: np.ndarray, method: str = "auto",
                           folds: int = 5, seed: int = 0, sample_weight: np.ndarray | None = None,
                           ) -> tuple[BaseEstimator, str, dict[str, float], np.ndarray]:
    """choose_calibration for a model fitted on all the history, from out-of-fold responses.

    `d` / `raw` are decision values and probabilities of fold models on leads they never saw
    (leadq.models.oof); the method is chosen on them by cross-fitted log loss, its map is
    fitted on them and put on `model`. Also returns the calibrated out-of-fold scores, from
    which the first MQL bar is chosen. `X_init` / `y_init`: a few labelled rows of both
    classes on which the calibrated wrapper is set up before its map is replaced.
    """
    from leadq.models.calibration import calibrate_with_map

    losses = losses_on_responses(d, raw, y, _methods(method), folds, seed, sample_weight)
    best = min(losses, key=losses.get)
    if best == "none":
        return model, best, losses, np.asarray(raw, float)
    calibrated, mapper = calibrate_with_map(model, X_init, y_init, best, d, y, sample_weight)
    return calibrated, best, losses, np.asarray(mapper.predict(d), float)


SPANS = ("recent", "all")


def losses_by_span(d: np.ndarray, raw: np.ndarray, y, recent: np.ndarray,
                   methods: tuple[str, ...], folds: int = 5, seed: int = 0,
                   sample_weight: np.ndarray | None = None) -> dict[tuple[str, str], float]:
    """Log loss on the recent out-of-fold leads of each (method, span) calibration map, every
    recent lead scored by a map that never saw it.

    The span "recent" learns the map on the recent leads alone (closest to the base rate the
    model will meet, as the pooled model does); "all" also on every older out-of-fold lead.
    With a few hundred recent leads (one segment's) the recent map's noise can cost more than
    any drift it follows: both are judged on the same held-out recent leads, so the choice
    weighs one against the other on the leads that matter, not on the leads it learnt from."""
    y = np.asarray(y, int)
    recent = np.asarray(recent, bool)
    w = None if sample_weight is None else np.asarray(sample_weight, float)
    yr, wr = y[recent], None if w is None else w[recent]
    out: dict[tuple[str, str], float] = {}
    if "none" in methods:
        out[("none", "recent")] = float(log_loss(yr, np.clip(raw[recent], 1e-15, 1 - 1e-15),
                                                 labels=[0, 1], sample_weight=wr))
    fitted = [m for m in methods if m != "none"]
    n_splits = int(min(folds, np.bincount(yr, minlength=2).min()))
    if not fitted or n_splits < 2:
        return {**out, **{(m, s): float("inf") for m in fitted for s in SPANS}}
    pos = np.flatnonzero(recent)
    older = np.flatnonzero(~recent)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for method in fitted:
        for span in SPANS:
            pred = np.empty(len(pos))
            for fit_idx, held_idx in cv.split(pos, yr):
                rows = pos[fit_idx] if span == "recent" else np.concatenate([older, pos[fit_idx]])
                pred[held_idx] = _fit_map(method, d[rows], y[rows],
                                          None if w is None else w[rows])(d[pos[held_idx]])
            out[(method, span)] = float(log_loss(yr, np.clip(pred, 1e-15, 1 - 1e-15),
                                                 labels=[0, 1], sample_weight=wr))
    return out


def cross_fitted_scores(d: np.ndarray, raw: np.ndarray, y, recent: np.ndarray, method: str,
                        span: str, folds: int = 5, seed: int = 0,
                        sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Every out-of-fold lead's probability through a (method, span) map that never saw it:
    the leads the map learns from are cross-fitted, the others scored by the whole map."""
    if method == "none":
        return np.asarray(raw, float).copy()
    y, d = np.asarray(y, int), np.asarray(d, float)
    w = None if sample_weight is None else np.asarray(sample_weight, float)
    learn = np.asarray(recent, bool) if span == "recent" else np.ones(len(y), bool)
    pos = np.flatnonzero(learn)
    out = np.empty(len(y))
    wl = None if w is None else w[pos]
    if (~learn).any():
        out[~learn] = _fit_map(method, d[pos], y[pos], wl)(d[~learn])
    n_splits = int(min(folds, np.bincount(y[pos], minlength=2).min()))
    if n_splits < 2:
        out[pos] = _fit_map(method, d[pos], y[pos], wl)(d[pos])
        return out
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fit_idx, held_idx in cv.split(pos, y[pos]):
        rows = pos[fit_idx]
        out[pos[held_idx]] = _fit_map(method, d[rows], y[rows],
                                      None if w is None else w[rows])(d[pos[held_idx]])
    return out


def calibrate_oof_by_span(model: BaseEstimator, X_init: pd.DataFrame, y_init: pd.Series,  # noqa: N803
                          d: np.ndarray, raw: np.ndarray, y: np.ndarray, recent: np.ndarray,
                          method: str = "auto", folds: int = 5, seed: int = 0,
                          sample_weight: np.ndarray | None = None,
                          ) -> tuple[BaseEstimator, str, str, dict[str, float], np.ndarray]:
    """choose_calibration_oof choosing the span of out-of-fold leads as well as the method
    (losses_by_span). `model` is the uncalibrated fitted model. Returns the calibrated model,
    the method, the span, every tried (method/span)'s loss, and the calibrated scores of the
    recent leads (on which the MQL bar is chosen)."""
    from leadq.models.calibration import calibrate_with_map

    recent = np.asarray(recent, bool)
    losses = losses_by_span(d, raw, y, recent, _methods(method), folds, seed, sample_weight)
    (best, span) = min(losses, key=losses.get)
    named = {f"{m}/{s}": v for (m, s), v in losses.items()}
    if best == "none":
        return model, best, span, named, np.asarray(raw, float)[recent]
    rows = recent if span == "recent" else np.ones(len(recent), bool)
    w = None if sample_weight is None else np.asarray(sample_weight, float)[rows]
    calibrated, mapper = calibrate_with_map(model, X_init, y_init, best, np.asarray(d)[rows],
                                            np.asarray(y)[rows], w)
    return calibrated, best, span, named, np.asarray(mapper.predict(np.asarray(d)[recent]),
                                                    float)
