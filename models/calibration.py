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
