"""A model per lead segment with a pooled fallback, as one scikit-learn estimator (pure).

Teams selling two products, or through partners and the web, see leads convert for different
reasons; one pooled model averages the patterns. `SegmentedModel` holds the pooled model and the
models of the segments that earned their own (leadq.pipelines.segments decides which), and
routes each lead by the value of one input column. It is one estimator, so it is one
registered model version: the registry, the gate, rollback, `score`, `serve`, Spark and the
trusted-types loading treat it like any other. A lead whose segment value is blank, or was never
seen in training, is scored by the pooled model (counted by `fallback_counts`, never dropped).

`keep_own_model` is the out-of-fold decision: a segment keeps its own model only when it ranks
that segment's leads better than the pooled model beyond noise and its probabilities are not
worse beyond noise (log loss), with paired bootstraps widened for the number of segments
compared (the care models.train takes with the no-signal check).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from leadq.models.baselines import paired_auc_interval

FIGURES = ("roc_auc", "pr_auc", "ece", "log_loss")  # the per-segment out-of-fold comparison
_SEPARATORS = re.compile(r"[\s_\-]+")


def segment_key(value: object) -> str | None:
    """The routing key of a segment value, spelt as the model's categories are normalised
    (leadq.features.transform): case, spaces, hyphens and underscores ignored, so "Paid Search"
    and "paid-search" are one segment; blank and missing values have none."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    text = _SEPARATORS.sub(" ", str(value).lower()).strip()
    return text or None


def segment_keys(values: pd.Series) -> np.ndarray:
    """segment_key per row, computed once per distinct value (scoring calls it per chunk)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    keys = np.array([segment_key(u) for u in uniques] + [None], dtype=object)
    return keys[codes]  # code -1 (missing) picks the trailing None


class SegmentedModel(ClassifierMixin, BaseEstimator):
    """Routes each lead to its segment's model, or to the pooled model.

    Built from fitted models with `from_fitted`; `fit` refits the same structure (clones of
    the given estimators) for scikit-learn tooling that expects it."""

    def __init__(self, column: str = "segment", pooled: BaseEstimator | None = None,
                 members: dict[str, BaseEstimator] | None = None):
        self.column = column
        self.pooled = pooled
        self.members = members

    @classmethod
    def from_fitted(cls, column: str, pooled: BaseEstimator,
                    members: dict[str, BaseEstimator], known: list[str]) -> SegmentedModel:
        """A ready model from a fitted pooled model and fitted per-segment models (keyed by
        the segment value as trained); `known`: every segment value seen in training, with or
        without its own model, so only new values count as fallbacks."""
        model = cls(column=column)
        model.pooled_ = pooled
        model.members_ = {segment_key(k): m for k, m in members.items()}
        model.segment_names_ = {segment_key(k): str(k) for k in members}
        model.known_ = sorted({segment_key(k) for k in known} - {None})
        model.classes_ = np.asarray(pooled.classes_)
        return model

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> SegmentedModel:  # noqa: N803
        if self.pooled is None:
            raise ValueError("SegmentedModel.fit needs a pooled estimator")
        y = pd.Series(np.asarray(y), index=X.index)
        keys = segment_keys(X[self.column])
        self.pooled_ = clone(self.pooled).fit(X, y)
        self.members_, self.segment_names_ = {}, {}
        for value, est in (self.members or {}).items():
            key = segment_key(value)
            mask = keys == key
            self.members_[key] = clone(est).fit(X[mask], y[mask])
            self.segment_names_[key] = str(value)
        self.known_ = sorted({k for k in keys if k is not None})
        self.classes_ = np.asarray(self.pooled_.classes_)
        return self

    def route(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Per row, the key of the segment model that scores it, or None for the pooled one."""
        keys = segment_keys(X[self.column])
        return np.array([k if k in self.members_ else None for k in keys], dtype=object)

    def fallback_counts(self, X: pd.DataFrame) -> dict[str, int]:  # noqa: N803
        """Leads scored by the pooled model because their segment value is blank, or one the
        model never saw in training (segments that chose the pooled model are not counted)."""
        keys = segment_keys(X[self.column])
        blank = int(sum(k is None for k in keys))
        known = set(self.known_)
        unseen = int(sum(k is not None and k not in known for k in keys))
        return {"blank": blank, "unseen": unseen}

    def parts(self, X: pd.DataFrame) -> list[tuple[BaseEstimator, np.ndarray]]:  # noqa: N803
        """(model, row positions) for every model that scores some of these rows."""
        route = self.route(X)
        out = []
        for key, model in [(None, self.pooled_), *self.members_.items()]:
            rows = np.flatnonzero(route == key) if key is not None else np.flatnonzero(
                pd.isna(route))
            if len(rows):
                out.append((model, rows))
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        from leadq.models.explain import predict_proba_few

        out = np.empty((len(X), len(self.classes_)), dtype=float)
        for model, rows in self.parts(X):
            # A few leads (`leadq serve`) through the member's compiled steps, when it has them.
            out[rows] = predict_proba_few(model, X.iloc[rows])
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def pooled_of(model: BaseEstimator) -> BaseEstimator:
    """The pooled model of a SegmentedModel, or the model itself."""
    return getattr(model, "pooled_", model)


@dataclass
class SegmentChoice:
    """The out-of-fold comparison of one segment's own model with the pooled model."""

    segment: str
    leads: int
    conversions: int
    compared: int            # leads with an out-of-fold score from both models
    pooled: dict[str, float]
    own: dict[str, float]
    gap_low: float           # paired bootstrap interval of own − pooled ROC AUC
    gap_high: float
    keep: bool
    why: str

    def row(self) -> dict:
        return {"segment": self.segment, "leads": self.leads, "conversions": self.conversions,
                "compared": self.compared,
                **{f"pooled_{k}": self.pooled.get(k) for k in FIGURES},
                **{f"own_{k}": self.own.get(k) for k in FIGURES},
                "gap_low": self.gap_low, "gap_high": self.gap_high,
                "model": "own" if self.keep else "pooled", "why": self.why}


def paired_log_loss_interval(y: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                             rounds: int = 1000, seed: int = 0, level: float = 0.9,
                             ) -> tuple[float, float]:
    """A paired bootstrap interval of log loss(a) − log loss(b) on the same rows (negative:
    `a` is better). Log loss is a proper score: it counts calibration as well as ranking."""
    y = np.asarray(y, int)
    a = np.clip(np.asarray(a, float), 1e-15, 1 - 1e-15)
    b = np.clip(np.asarray(b, float), 1e-15, 1 - 1e-15)
    diff = -(y * (np.log(a) - np.log(b)) + (1 - y) * (np.log1p(-a) - np.log1p(-b)))
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean()
                      for _ in range(rounds)])
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def keep_own_model(y: np.ndarray, own: np.ndarray, pooled: np.ndarray, *, compared: int,
                   confidence: float = 0.9, seed: int = 0,
                   own_calibrated: np.ndarray | None = None,
                   ) -> tuple[bool, float, float, str]:
    """Whether a segment's own out-of-fold scores rank its leads better than the pooled
    model's on the same leads, beyond noise, and are not worse calibrated beyond noise.

    The intervals are widened for the `compared` segments tried (Bonferroni: at 90 %, 95 % for
    two, 97.5 % for four): picking the best of several segments' gaps would otherwise find a
    "win" in noise alone. Ranking alone let a segment model with a poorer calibration map in
    (the synthetic SMB segment: ROC AUC up, ECE 0.050 → 0.084); so the own model's out-of-fold
    log loss must also not be worse than the pooled model's beyond noise. `own_calibrated`:
    the own model's probabilities for that check when they differ from `own` (cross-fitted
    calibration, so the own map is not judged on the leads it learnt from); default `own`.
    Returns (keep, low, high, why), low/high the ROC AUC gap interval."""
    y = np.asarray(y, int)
    if len(np.unique(y)) < 2:
        return False, float("nan"), float("nan"), "one class among the compared leads"
    level = 1 - (1 - float(confidence)) / max(int(compared), 1)
    lo, hi = paired_auc_interval(y, own, pooled, level=level, seed=seed)
    ranking = (f"{level:.1%} paired bootstrap of the ROC AUC gap [{lo:+.4f}, {hi:+.4f}]")
    if lo <= 0:
        return False, lo, hi, f"no gain beyond noise ({ranking})"
    probs = own if own_calibrated is None else own_calibrated
    llo, lhi = paired_log_loss_interval(y, probs, pooled, level=level, seed=seed)
    loss = f"log loss gap [{llo:+.4f}, {lhi:+.4f}]"
    if llo > 0:
        return False, lo, hi, (f"ranks better ({ranking}) but its probabilities are worse "
                               f"beyond noise ({loss})")
    return True, lo, hi, f"own model ranks better beyond noise ({ranking}; {loss})"


def segment_gaps(y: np.ndarray, new: np.ndarray, old: np.ndarray, values: pd.Series,
                 segments: list[str], *, confidence: float = 0.9, seed: int = 0,
                 min_rows: int = 50) -> list[dict]:
    """Challenger (`new`) vs champion (`old`) test ROC AUC on each large segment's test leads,
    with a paired bootstrap interval widened for the number of segments compared; `worse` is
    True when the whole interval is below 0 (worse beyond noise). Segments with fewer than
    `min_rows` test leads or one class are listed without a verdict."""
    from sklearn.metrics import roc_auc_score

    y, new, old = np.asarray(y, int), np.asarray(new, float), np.asarray(old, float)
    keys = segment_keys(values)
    level = 1 - (1 - float(confidence)) / max(len(segments), 1)
    out = []
    for name in segments:
        mask = keys == segment_key(name)
        ys = y[mask]
        row = {"segment": name, "test_leads": int(mask.sum()), "worse": False}
        if mask.sum() < min_rows or len(np.unique(ys)) < 2:
            out.append({**row, "note": "too few test leads (or one class) to compare"})
            continue
        lo, hi = paired_auc_interval(ys, new[mask], old[mask], level=level, seed=seed)
        out.append({**row, "challenger_roc_auc": float(roc_auc_score(ys, new[mask])),
                    "champion_roc_auc": float(roc_auc_score(ys, old[mask])),
                    "gap_low": lo, "gap_high": hi, "level": level, "worse": bool(hi < 0)})
    return out
