"""Probability calibration on held-out validation leads (a switch in params.yaml)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

METHODS = ("isotonic", "sigmoid")


def calibrate(
    model: BaseEstimator,
    X: pd.DataFrame,  # noqa: N803
    y: pd.Series,
    method: str,
    sample_weight: np.ndarray | None = None,
) -> BaseEstimator:
    """Fit a calibration map on data the model has not seen; the fitted model stays frozen."""
    if method not in METHODS:
        raise ValueError(f"calibration.method must be one of {METHODS}, got {method!r}")
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method)
    return calibrated.fit(X, y, sample_weight=sample_weight)


def calibrate_with_map(model: BaseEstimator, X_init: pd.DataFrame, y_init: pd.Series,  # noqa: N803
                       method: str, d: np.ndarray, y: np.ndarray,
                       sample_weight: np.ndarray | None = None):
    """`model` (fitted on all the history) calibrated by a map learnt on out-of-fold decision
    values `d`: the same CalibratedClassifierCV(FrozenEstimator(model)) structure the
    explanations and the registry read, with its one map fitted on leads the fold models
    never saw instead of on the model's own (in-sample) responses.

    The wrapper is fitted on X_init / y_init first only to set it up (classes, feature
    names); its map is then replaced. Returns the calibrated model and the map."""
    from sklearn.calibration import _SigmoidCalibration
    from sklearn.isotonic import IsotonicRegression

    if method not in METHODS:
        raise ValueError(f"calibration.method must be one of {METHODS}, got {method!r}")
    w = None if sample_weight is None else np.asarray(sample_weight, float)
    if method == "isotonic":
        mapper = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    else:
        mapper = _SigmoidCalibration()  # the map CalibratedClassifierCV(method="sigmoid") fits
    mapper.fit(np.asarray(d, float), np.asarray(y, int), sample_weight=w)
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method)
    calibrated.fit(X_init, y_init)
    calibrated.calibrated_classifiers_[0].calibrators = [mapper]
    return calibrated, mapper
