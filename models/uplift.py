"""Who gains from a call: per-lead uplift (the conditional average treatment effect) with T- and
X-learners, and how well a ranking by it finds the persuadables (Qini).

- T-learner: one conversion model on treated leads, one on control leads; uplift = the
  difference of their predictions. Simple, but each model sees only its own group.
- X-learner (Künzel et al., PNAS 2019): imputes each lead's effect with the *other* group's
  model (treated: y − m₀(x); control: m₁(x) − y), fits a regressor to each imputed effect and
  blends them by the propensity. It does better when one group is much smaller than the other,
  as a small holdout or exploration share makes it.

The Qini curve ranks leads by predicted uplift and counts, for the top k, the treated
conversions minus the control conversions scaled to the treated count (IPW-weighted when
propensities differ). Its coefficient is the mean gap between that curve and random targeting,
per lead: comparable between rankings on the same leads (the oracle's, a model's), not across
datasets. Evaluate it only on randomised leads not used to fit the model.

Pure: arrays and estimator factories in, numbers out; no I/O, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Factory = Callable[[], Any]


def _split(t) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t).astype(bool)
    if t.all() or not t.any():
        raise ValueError("uplift needs both treated and control leads")
    return t, ~t


def _rows(X, mask: np.ndarray):  # noqa: N803 - X is the usual name for a feature matrix
    return X[mask] if not hasattr(X, "iloc") else X.iloc[np.flatnonzero(mask)]


@dataclass
class TLearner:
    """Uplift = P(convert | x, called) − P(convert | x, not called), one classifier each."""

    make_classifier: Factory
    treated_model: Any = None
    control_model: Any = None

    def fit(self, X, treatment, outcome) -> TLearner:  # noqa: N803
        t, c = _split(treatment)
        y = np.asarray(outcome, int)
        self.treated_model = self.make_classifier().fit(_rows(X, t), y[t])
        self.control_model = self.make_classifier().fit(_rows(X, c), y[c])
        return self

    def predict(self, X) -> np.ndarray:  # noqa: N803
        return (self.treated_model.predict_proba(X)[:, 1]
                - self.control_model.predict_proba(X)[:, 1])

    def fitted(self) -> CallUplift:
        """The two fitted models alone, to register and score."""
        return CallUplift(self.treated_model, self.control_model)


class CallUplift:
    """A fitted T-learner reduced to its two fitted classifiers: what is registered beside the
    conversion model and scored per lead. Holds no factory, so skops can save it."""

    def __init__(self, treated_model: Any, control_model: Any) -> None:
        self.treated_model = treated_model
        self.control_model = control_model

    def predict(self, X) -> np.ndarray:  # noqa: N803
        return (self.treated_model.predict_proba(X)[:, 1]
                - self.control_model.predict_proba(X)[:, 1])


@dataclass
class XLearner:
    """Künzel's X-learner on top of a T-learner's two outcome models."""

    make_classifier: Factory
    make_regressor: Factory
    base: TLearner | None = None
    tau_treated: Any = None
    tau_control: Any = None
    treated_share: float = 0.5

    def fit(self, X, treatment, outcome, propensity=None) -> XLearner:  # noqa: N803
        t, c = _split(treatment)
        y = np.asarray(outcome, float)
        self.base = TLearner(self.make_classifier).fit(X, t, y)
        x1, x0 = _rows(X, t), _rows(X, c)
        d1 = y[t] - self.base.control_model.predict_proba(x1)[:, 1]
        d0 = self.base.treated_model.predict_proba(x0)[:, 1] - y[c]
        self.tau_treated = self.make_regressor().fit(x1, d1)
        self.tau_control = self.make_regressor().fit(x0, d0)
        self.treated_share = (float(np.mean(propensity)) if propensity is not None
                              else float(t.mean()))
        return self

    def predict(self, X, propensity=None) -> np.ndarray:  # noqa: N803
        # Weight g on the control-side estimate: where few leads are treated, the imputed
        # effects of the (many) control leads rest on the treated model, and vice versa.
        g = np.full(len(X), self.treated_share) if propensity is None else np.asarray(
            propensity, float)
        return g * self.tau_control.predict(X) + (1 - g) * self.tau_treated.predict(X)


def qini_curve(uplift, treatment, outcome, propensity=None) -> tuple[np.ndarray, np.ndarray]:
    """(share of leads targeted, incremental conversions) for targeting by `uplift`, best
    first: treated conversions − control conversions × treated/control counts in the top k."""
    order = np.argsort(-np.asarray(uplift, float), kind="stable")
    t = np.asarray(treatment, float)[order]
    y = np.asarray(outcome, float)[order]
    if propensity is None:
        w = np.ones(len(t))
    else:
        p = np.asarray(propensity, float)[order]
        w = np.where(t == 1, 1 / p, 1 / (1 - p))
        # Each group's weights scaled to its size: counts stay counts, and equal propensities
        # give exactly the unweighted curve.
        for g in (t == 1, t == 0):
            if g.any():
                w[g] *= g.sum() / w[g].sum()
    n_t, n_c = np.cumsum(t * w), np.cumsum((1 - t) * w)
    y_t, y_c = np.cumsum(y * t * w), np.cumsum(y * (1 - t) * w)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, y_t - y_c * n_t / n_c, y_t)
    share = np.arange(1, len(t) + 1) / len(t)
    return share, q


def qini_coefficient(uplift, treatment, outcome, propensity=None) -> float:
    """Mean gap between the Qini curve and random targeting (the straight line to the same
    end point), per lead. 0 = no better than random."""
    share, q = qini_curve(uplift, treatment, outcome, propensity)
    return float(np.mean(q - share * q[-1]) / len(q))


def top_share_effect(uplift, treatment, outcome, share: float = 0.2) -> dict:
    """The incremental response rate (treated rate − control rate) among the `share` of leads
    with the highest predicted uplift, against all leads (what random targeting gets)."""
    u = np.asarray(uplift, float)
    t = np.asarray(treatment).astype(bool)
    y = np.asarray(outcome, float)
    top = np.zeros(len(u), bool)
    top[np.argsort(-u, kind="stable")[:max(1, int(round(share * len(u))))]] = True

    def irr(mask: np.ndarray) -> float:
        a, b = mask & t, mask & ~t
        return float(y[a].mean() - y[b].mean()) if a.any() and b.any() else float("nan")

    return {"share": share, "top": irr(top), "random": irr(np.ones(len(u), bool)),
            "n_top": int(top.sum()), "predicted_top": float(u[top].mean())}


def linear_factories(X, max_levels: int = 12) -> tuple[Factory, Factory]:  # noqa: N803
    """(classifier, regressor) factories for a table of any columns, for T-/X-learners on a
    randomised test outside leadq's own leads: numbers with more than `max_levels` distinct
    values are scaled (missing = median), everything else is one-hot coded (rare codes
    pooled). A regularised logistic model and a ridge regression on those codes."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, coded = [], []
    for col in X.columns:
        values = pd.to_numeric(X[col], errors="coerce")
        if values.notna().all() and values.nunique() > max_levels:
            numeric.append(col)
        else:
            coded.append(col)

    def encode() -> ColumnTransformer:
        return ColumnTransformer([
            ("coded", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10),
             coded),
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             numeric)])

    def classifier():
        return make_pipeline(encode(), LogisticRegression(C=0.1, max_iter=2000))

    def regressor():
        return make_pipeline(encode(), Ridge(alpha=10.0))

    return classifier, regressor


def held_out_learners(x, t, y, held: np.ndarray, classifier: Factory,
                      regressor: Factory, *, predictions: dict | None = None) -> dict:
    """T- and X-learners fitted on the rows not `held`, judged on the held ones: Qini
    coefficient, the Qini curve at each tenth of the leads, and the top-20% effect against
    random targeting. One evaluation for `leadq lift --uplift-features` and the benchmark.
    A `predictions` dict receives each learner's uplift of the held rows, and `score`: the
    T-learner's chance to convert when treated (what a conversion model ranks by)."""
    held = np.asarray(held, bool)
    t, y = np.asarray(t), np.asarray(y)
    out: dict = {}
    for name, learner in (("t_learner", TLearner(classifier)),
                          ("x_learner", XLearner(classifier, regressor))):
        pred = learner.fit(_rows(x, ~held), t[~held], y[~held]).predict(_rows(x, held))
        if predictions is not None:
            predictions[name] = pred
            if isinstance(learner, TLearner):
                predictions["score"] = learner.treated_model.predict_proba(
                    _rows(x, held))[:, 1]
        share, q = qini_curve(pred, t[held], y[held])
        marks = [int(round(k * len(q) / 10)) - 1 for k in range(1, 11)]
        out[name] = {"qini": qini_coefficient(pred, t[held], y[held]),
                     "qini_curve": {f"{share[i]:.0%}": float(q[i]) for i in marks},
                     "top_20": top_share_effect(pred, t[held], y[held], 0.2)}
    return out



def call_gain(uplift, deal_value: float | None = None, call_cost: float = 0.0) -> np.ndarray:
    """The expected gain of calling each lead: uplift × deal value − the cost of a call, or the
    uplift alone (expected incremental wins per call) when no deal value is known."""
    u = np.asarray(uplift, float)
    return u if deal_value is None else u * float(deal_value) - float(call_cost)


def top_share(ranking, share: float) -> np.ndarray:
    """A mask of the `share` of leads ranked highest (ties in the given order): the leads a
    fixed capacity calls."""
    r = np.asarray(ranking, float)
    chosen = np.zeros(len(r), bool)
    chosen[np.argsort(-r, kind="stable")[:max(1, int(round(share * len(r))))]] = True
    return chosen


def value_bar(values, share: float) -> float:
    """The bar that `share` of these values reach (value ≥ bar), the same capacity as a bar
    that makes `share` of the same leads MQLs: the round(share × n)-th largest value; +inf when
    that is no lead. Ties at the bar all pass it."""
    v = np.sort(np.asarray(values, float)[~np.isnan(np.asarray(values, float))])[::-1]
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    k = int(round(share * len(v)))
    return float(v[k - 1]) if k > 0 else float("inf")


def compare_routing(score, uplift, treatment, outcome, propensity=None, *, capacity: float,
                    deal_value: float | None = None, call_cost: float = 0.0,
                    confidence: float = 0.95, min_group: int = 100) -> dict:
    """Both routing policies at the same capacity, measured on randomised leads the uplift
    model was not fitted on: `probability` calls the `capacity` share with the best scores,
    `call_value` the share with the largest expected gain (:func:`call_gain`). For each, the
    effect of the call measured among the leads it would call (treated − control rate, IPW when
    propensities differ) is its expected incremental wins per 100 calls, with an interval; with
    a deal value, also the value per 100 calls (wins × deal value − 100 calls × cost). A policy
    whose chosen leads hold too few treated or control leads is refused, saying how many more
    it needs."""
    from leadq.models.lift import TooFewLeads, average_effect

    if not 0 < capacity <= 1:
        raise ValueError(f"capacity must be in (0, 1], got {capacity}")
    t = np.asarray(treatment).astype(int)
    y = np.asarray(outcome, float)
    p = None if propensity is None else np.asarray(propensity, float)
    chosen = {"probability": top_share(score, capacity),
              "call_value": top_share(call_gain(uplift, deal_value, call_cost), capacity)}
    out: dict = {"capacity": capacity, "deal_value": deal_value, "call_cost": call_cost,
                 "n_leads": int(len(t)),
                 "overlap": float((chosen["probability"] & chosen["call_value"]).sum()
                                  / max(1, chosen["probability"].sum()))}
    for name, mask in chosen.items():
        row: dict = {"n_called": int(mask.sum())}
        try:
            est = average_effect(y[mask], t[mask], None if p is None else p[mask],
                                 confidence=confidence, min_group=min_group)
        except TooFewLeads as exc:
            out[name] = {**row, "refused": str(exc), "more_leads": exc.needed}
            continue
        row.update({"wins_per_100_calls": 100 * est.effect, "low": 100 * est.low,
                    "high": 100 * est.high, "n_treated": est.n_treated,
                    "n_control": est.n_control})
        if deal_value is not None:
            def value(wins: float) -> float:
                return wins * float(deal_value) - 100 * float(call_cost)

            row.update({"value_per_100_calls": value(row["wins_per_100_calls"]),
                        "value_low": value(row["low"]), "value_high": value(row["high"])})
        out[name] = row
    return out
