"""A blend of fitted candidate pipelines as one scikit-learn Pipeline (pure: no I/O).

Two candidates that rank leads differently (a tree ensemble and a linear model, or two tree
ensembles grown differently) often rank better together than either alone. The blend is a
logistic stack on their margins: margin = a + Σ wᵢ · marginᵢ, with a and w learnt on the
candidates' out-of-fold margins (leads no fold model saw), and probability = 1 / (1 + e^−margin).

It stays the Pipeline(features, encode, model) every other part of leadq reads:

- ``features``: the members' LeadFeatures (identical: they are built from the same params);
- ``encode``: :class:`BlendEncoder`, each member's fitted encoder on the same rows, a list of
  encoded blocks;
- ``model``: :class:`BlendClassifier`, each member's estimator on its own block.

Explanations stay exact because the margin is linear in the members' margins: the Tree SHAP
or linear contributions of each member, weighted by wᵢ and summed, add up to the blend's
margin (models/explain.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

# The stack has two or three coefficients learnt on thousands of out-of-fold margins: left
# practically unregularised, so the weights are the data's, not a prior's.
STACK_C = 1e4


class Blocks(list):
    """The members' encoded blocks of the same rows. `shape` (rows, total columns) lets
    scikit-learn count the rows as it does for a matrix, so a CalibratedClassifierCV around the
    blend's classifier takes encoded blocks like any encoded matrix (the scorer's and the
    service's encode-once path, models/explain.py)."""

    @property
    def shape(self) -> tuple[int, int]:
        return (_rows(self[0]), sum(int(b.shape[1]) for b in self))


class BlendEncoder(TransformerMixin, BaseEstimator):
    """Each member's encoder on the same (LeadFeatures) rows: a list of encoded blocks."""

    def __init__(self, encoders: Sequence[BaseEstimator] | None = None) -> None:
        self.encoders = encoders

    def fit(self, X, y=None, **fit_params) -> BlendEncoder:  # noqa: N803
        self.encoders_ = [clone(e).fit(X, y) for e in self.encoders]
        return self

    def fit_transform(self, X, y=None, **fit_params) -> list:  # noqa: N803
        # Each encoder's own fit_transform: a TargetEncoder cross-fits its training rows there.
        self.encoders_ = [clone(e) for e in self.encoders]
        return Blocks(e.fit_transform(X, y) for e in self.encoders_)

    def transform(self, X) -> list:  # noqa: N803
        return Blocks(e.transform(X) for e in self.encoders_)


class BlendClassifier(ClassifierMixin, BaseEstimator):
    """margin = intercept + Σ weightᵢ · estimatorᵢ.decision_function(blockᵢ); binary only."""

    def __init__(self, estimators: Sequence[BaseEstimator] | None = None,
                 weights: Sequence[float] | None = None, intercept: float = 0.0) -> None:
        self.estimators = estimators
        self.weights = weights
        self.intercept = intercept

    def fit(self, blocks: list, y, sample_weight=None) -> BlendClassifier:
        """Refit every member on its block with the weights given (they come from the stack
        on out-of-fold margins, which one fit cannot give)."""
        kw = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight, float)}
        self.estimators_ = [clone(e).fit(b, y, **kw) for e, b in zip(self.estimators, blocks,
                                                                   strict=True)]
        self._set_fitted()
        return self

    def _set_fitted(self) -> None:
        self.weights_ = np.asarray(self.weights, float)
        self.intercept_ = float(self.intercept)
        self.classes_ = np.asarray(self.estimators_[0].classes_)

    def decision_function(self, blocks: list) -> np.ndarray:
        margin = np.full(_rows(blocks[0]), self.intercept_, dtype=float)
        for w, est, block in zip(self.weights_, self.estimators_, blocks, strict=True):
            margin += w * np.asarray(est.decision_function(block), float).ravel()
        return margin

    def predict_proba(self, blocks: list) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(blocks)))
        return np.column_stack([1.0 - p, p])

    def predict(self, blocks: list) -> np.ndarray:
        return self.classes_[(self.decision_function(blocks) > 0).astype(int)]


def _rows(block) -> int:
    return block.shape[0]


def blend_pipeline(members: Sequence[Pipeline], weights: Sequence[float],
                   intercept: float) -> Pipeline:
    """One fitted Pipeline(features, encode, model) from fitted member pipelines that read
    the same LeadFeatures, margin = intercept + Σ weightᵢ · memberᵢ's margin."""
    if len(members) < 2:
        raise ValueError("a blend needs at least two members")
    features = members[0].named_steps["features"]
    encoder = BlendEncoder([m.named_steps["encode"] for m in members])
    encoder.encoders_ = [m.named_steps["encode"] for m in members]
    model = BlendClassifier([m.named_steps["model"] for m in members], list(map(float, weights)),
                            float(intercept))
    model.estimators_ = [m.named_steps["model"] for m in members]
    model._set_fitted()
    return Pipeline([("features", features), ("encode", encoder), ("model", model)])


def member_pipelines(pipeline: Pipeline) -> list[Pipeline]:
    """Each member of a fitted blend pipeline as its own fitted Pipeline(features, encode,
    model) (views on the same fitted steps, nothing copied)."""
    feats = pipeline.named_steps["features"]
    return [Pipeline([("features", feats), ("encode", enc), ("model", est)])
            for enc, est in zip(pipeline.named_steps["encode"].encoders_,
                                pipeline.named_steps["model"].estimators_, strict=True)]


def is_blend(pipeline) -> bool:
    steps = getattr(pipeline, "named_steps", None)
    return steps is not None and isinstance(steps.get("model"), BlendClassifier)


def fit_stack(margins: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
              ) -> tuple[np.ndarray, float]:
    """(weights, intercept) of the logistic stack on members' out-of-fold margins."""
    stack = LogisticRegression(C=STACK_C, max_iter=1000)
    stack.fit(margins, np.asarray(y, int), sample_weight=sample_weight)
    return stack.coef_.ravel().copy(), float(stack.intercept_[0])


def cross_fitted_stack(margins: np.ndarray, y: np.ndarray,
                       sample_weight: np.ndarray | None = None, folds: int = 5,
                       seed: int = 0) -> np.ndarray:
    """The stack's margin on each lead from a stack fitted without it: the blend's honest
    out-of-fold score, comparable with a single candidate's."""
    y = np.asarray(y, int)
    out = np.empty(len(y))
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        raise ValueError("too few positives to cross-fit a stack")
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fit_idx, held_idx in cv.split(margins, y):
        w = None if sample_weight is None else sample_weight[fit_idx]
        coef, icpt = fit_stack(margins[fit_idx], y[fit_idx], w)
        out[held_idx] = icpt + margins[held_idx] @ coef
    return out


def positive_stack(names: Sequence[str], margins: pd.DataFrame | np.ndarray, y: np.ndarray,
                   sample_weight: np.ndarray | None = None,
                   ) -> tuple[list[str], np.ndarray, float]:
    """The stack over the members whose weight comes out positive: a member whose weight is
    not (it only corrects another member's margin) is dropped and the stack refitted, so
    every member's reasons point the way its own model's do. Returns (members, w, a)."""
    names = list(names)
    m = np.asarray(margins, float)
    keep = list(range(len(names)))
    while True:
        coef, icpt = fit_stack(m[:, keep], y, sample_weight)
        if (coef > 0).all() or len(keep) == 1:
            return [names[i] for i in keep], coef, icpt
        keep = [k for k, c in zip(keep, coef, strict=True) if c > 0] or keep[:1]
