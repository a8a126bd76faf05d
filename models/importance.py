"""Permutation importance of the raw lead columns, computed on the encoded rows.

Shuffling a raw column and running the whole registered pipeline again is what
`sklearn.inspection.permutation_importance` does: per column and repeat, the feature
derivation (email kind, seniority from the job title, date parts) and the encoders run again
on every row, which made `leadq report` cost more than half of training on a 381k-lead export.

Every step before the estimator works row by row once fitted (LeadFeatures is stateless; the
one-hot, ordinal and target encoders and the imputer only look values up), so shuffling a raw
column's rows is the same as shuffling, with the same permutation, the rows of every encoded
column derived from it. The rows are therefore encoded once, and each shuffle only re-runs the
final estimator and the calibration: the same importance, computed at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadq.models.blend import Blocks, member_pipelines
from leadq.models.explain import encode_rows, group_matrix, predict_encoded, unwrap


def _shuffled(encoded, cols: np.ndarray, perm: np.ndarray):
    """A copy of the encoded rows with columns `cols` taken from the rows in `perm`."""
    if isinstance(encoded, pd.DataFrame):
        out = encoded.copy()
        out.iloc[:, cols] = encoded.iloc[perm, cols].to_numpy()
        return out
    out = encoded.copy()
    out[:, cols] = encoded[perm][:, cols]
    return out


def permutation_importance(model, X: pd.DataFrame, y: np.ndarray, *,  # noqa: N803
                           repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """ROC AUC lost when one raw column is shuffled: mean and spread over `repeats` shuffles.

    One row per column of X, sorted by importance. A column the model does not read scores
    0. Models whose probabilities cannot be computed from encoded rows (not a leadq pipeline,
    or a calibration other than sigmoid/isotonic) fall back to scikit-learn's own function.
    """
    X = X.loc[:, ~X.columns.duplicated()]  # noqa: N806
    y = np.asarray(y, int)
    encoded = encode_rows(model, X)
    if encoded is None:
        return _by_sklearn(model, X, y, repeats, seed)
    pipeline, _ = unwrap(model)
    # A blend's rows are one encoded block per member (leadq.models.blend.Blocks): a raw
    # column is shuffled, with the same permutation, in every block it reaches.
    blocks = isinstance(encoded, Blocks)
    groups = ([group_matrix(m) for m in member_pipelines(pipeline)] if blocks
              else [group_matrix(pipeline)])
    base = roc_auc_score(y, predict_encoded(model, encoded))
    rng = np.random.default_rng(seed)
    drops = np.zeros((len(X.columns), repeats))
    for i, col in enumerate(X.columns):
        cols = [np.flatnonzero(mat[:, raw.index(col)]) if col in raw else np.array([], int)
                for mat, raw in groups]
        if not any(len(c) for c in cols):
            continue
        for r in range(repeats):
            perm = rng.permutation(len(y))
            if blocks:
                shuffled = Blocks(_shuffled(b, c, perm) if len(c) else b
                                  for b, c in zip(encoded, cols, strict=True))
            else:
                shuffled = _shuffled(encoded, cols[0], perm)
            drops[i, r] = base - roc_auc_score(y, predict_encoded(model, shuffled))
    return (pd.DataFrame({"column": list(X.columns), "importance": drops.mean(axis=1),
                          "spread": drops.std(axis=1)})
            .sort_values("importance", ascending=False, kind="stable").reset_index(drop=True))


def _by_sklearn(model, X: pd.DataFrame, y: np.ndarray, repeats: int,  # noqa: N803
                seed: int) -> pd.DataFrame:
    from sklearn.inspection import permutation_importance as shuffled_importance

    result = shuffled_importance(model, X, y, scoring="roc_auc", n_repeats=repeats,
                                 random_state=seed, n_jobs=1)
    return (pd.DataFrame({"column": list(X.columns), "importance": result.importances_mean,
                          "spread": result.importances_std})
            .sort_values("importance", ascending=False, kind="stable").reset_index(drop=True))
