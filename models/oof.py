"""Out-of-fold responses over all the history before the test set (pure: no I/O).

The final model is fitted on train + validation; its calibration map and first MQL bar need
scores on leads the scoring model never saw. With dates, expanding-window folds in time order
give them as the model is used: each block is scored by a model fitted only on older leads
(the oldest block has no out-of-fold score). Without dates, a stratified partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from leadq.models.calibration_choice import _response
from leadq.models.search import time_folds


@dataclass
class OutOfFold:
    rows: np.ndarray        # positions in X of the leads that have an out-of-fold score
    decision: np.ndarray    # fold models' decision values on those leads
    proba: np.ndarray       # ... and their (uncalibrated) probabilities
    y: np.ndarray
    weight: np.ndarray | None


def out_of_fold(fit: Callable[[pd.DataFrame, pd.Series, np.ndarray | None], object],
                X: pd.DataFrame, y: pd.Series, *, created: pd.Series | None,  # noqa: N803
                folds: int = 4, seed: int = 0, sample_weight: np.ndarray | None = None,
                ) -> OutOfFold:
    """`fit(X, y, w)` refitted per fold; each held-out block scored by its fold's model."""
    n = len(X)
    w = None if sample_weight is None else np.asarray(sample_weight, float)
    if created is not None:
        order = np.argsort(pd.to_datetime(created).to_numpy(), kind="stable")
        splits = [(order[a], order[b]) for a, b in time_folds(n, folds)]
    else:
        cv = StratifiedKFold(n_splits=folds + 1, shuffle=True, random_state=seed)
        splits = list(cv.split(np.zeros(n), np.asarray(y, int)))
    rows, dec, prob = [], [], []
    for fit_idx, held_idx in splits:
        y_fit = y.iloc[fit_idx]
        if y_fit.nunique() < 2 or len(held_idx) == 0:
            continue  # a block with one class cannot train a model
        model = fit(X.iloc[fit_idx], y_fit, None if w is None else w[fit_idx])
        held = X.iloc[held_idx]
        rows.append(held_idx)
        dec.append(_response(model, held))
        prob.append(np.asarray(model.predict_proba(held), float)[:, 1])
    if not rows:
        raise ValueError("no out-of-fold block could be fitted (one class in every fold)")
    idx = np.concatenate(rows)
    return OutOfFold(rows=idx, decision=np.concatenate(dec), proba=np.concatenate(prob),
                     y=np.asarray(y, int)[idx], weight=None if w is None else w[idx])
