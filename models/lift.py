"""What routing a lead to sales changes: the average effect of the call on conversion, measured
on randomised groups only, with its interval, and how many leads an answer needs.

leadq randomises on both sides of the MQL bar: below it, `scoring.explore_rate` routes a random
share of leads to sales (explored vs not); above it, `agreement.holdout_rate` keeps a random
share of MQLs from sales (routed vs held out). Within each side the two groups differ only by a
coin flip drawn from the lead id, so the difference in conversion rates is the causal effect of
routing there. Leads routed with certainty (propensity 1 or 0) have no comparison group and are
left out.

The estimator is the Hájek (normalised) inverse-propensity-weighted difference in means, with
weights 1/p for routed leads and 1/(1 − p) for the others. When every lead of a side had the
same propensity the weights are constant within each group and it *is* the difference in means,
and its variance (the linearised sandwich with the n/(n − 1) correction per group) is Neyman's
s₁²/n₁ + s₀²/n₀; when the rate changed over time (different propensities) the weights undo it.
The interval is the normal (Wald) one, trustworthy once both groups hold `min_group` leads:
below that the estimate refuses (TooFewLeads) and says how many more leads it needs.

Pure: arrays in, numbers out. `leadq lift` (pipelines/lift.py) reads the scorer's outputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from leadq.errors import BadInputError


class TooFewLeads(BadInputError):
    """The randomised groups are too small for an interval worth reading (exit 2). `needed`:
    how many more leads (both groups together, at the design's split) would suffice."""

    def __init__(self, message: str, needed: int) -> None:
        super().__init__(message)
        self.needed = needed


@dataclass(frozen=True)
class Effect:
    """The average effect of treatment (routing) on the outcome (conversion) in one group of
    leads: rates in percentage points of the outcome's 0–1 scale."""

    effect: float              # rate if all treated − rate if none treated
    low: float                 # confidence interval of the effect
    high: float
    se: float
    rate_treated: float        # (weighted) outcome rate of the treated group
    rate_control: float
    n_treated: int
    n_control: int
    conversions_treated: int
    conversions_control: int
    confidence: float
    ipw: bool                  # propensities differed, so the groups were reweighted

    def as_dict(self) -> dict:
        return asdict(self)


def _as_binary(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if np.isnan(a).any() or not np.isin(a, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be 0/1 without missing values")
    return a


def _group(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its linearised variance, with the n/(n − 1) small-sample correction
    (so that equal weights give s²/n, the textbook variance of a mean)."""
    n = len(y)
    total = w.sum()
    mean = float((w * y).sum() / total)
    var = float((w ** 2 * (y - mean) ** 2).sum() / total ** 2) * n / (n - 1)
    return mean, var


def sizes_needed(n_treated: int, n_control: int, treated_share: float, min_group: int) -> int:
    """More leads (both groups together) until each group holds `min_group`, when a new lead
    is treated with probability `treated_share` (the design's split, not the realised one)."""
    if not 0 < treated_share < 1:
        raise ValueError("treated_share must be in (0, 1)")
    short_t = max(0, min_group - n_treated) / treated_share
    short_c = max(0, min_group - n_control) / (1 - treated_share)
    return int(math.ceil(max(short_t, short_c)))


def average_effect(outcome, treatment, propensity=None, *, confidence: float = 0.95,
                   min_group: int = 100) -> Effect:
    """The average effect of `treatment` (1/0) on `outcome` (1/0) from a randomised test.

    `propensity`: each unit's probability of treatment (None: a fixed coin, the realised
    share). Units with propensity 0 or 1 were not randomised and must be filtered out before.
    Raises TooFewLeads (exit 2, saying how many more leads are needed) when either group has
    fewer than `min_group` units; ValueError on malformed arrays.
    """
    y = _as_binary(outcome, "outcome")
    t = _as_binary(treatment, "treatment").astype(bool)
    if len(y) != len(t):
        raise ValueError("outcome and treatment differ in length")
    if propensity is None:
        share = t.mean() if len(t) else 0.5
        p = np.full(len(t), share if 0 < share < 1 else 0.5)
    else:
        p = np.asarray(propensity, dtype=float)
        if len(p) != len(t):
            raise ValueError("propensity and treatment differ in length")
        if np.isnan(p).any() or ((p <= 0) | (p >= 1)).any():
            raise ValueError("propensity must lie strictly between 0 and 1 (leads routed for "
                             "certain have no comparison group: leave them out)")
    n1, n0 = int(t.sum()), int((~t).sum())
    if min(n1, n0) < max(min_group, 2):
        share = float(p.mean()) if len(p) else 0.5
        more = sizes_needed(n1, n0, share, max(min_group, 2))
        raise TooFewLeads(
            f"the randomised groups are too small: {n1:,} treated and {n0:,} control leads, "
            f"at least {max(min_group, 2):,} each are needed; about {more:,} more leads at "
            f"the current {share:.1%} treated share", more)
    w1, w0 = 1.0 / p[t], 1.0 / (1.0 - p[~t])
    m1, v1 = _group(y[t], w1)
    m0, v0 = _group(y[~t], w0)
    se = math.sqrt(v1 + v0)
    z = float(norm.ppf(0.5 + confidence / 2))
    diff = m1 - m0
    return Effect(effect=diff, low=diff - z * se, high=diff + z * se, se=se,
                  rate_treated=m1, rate_control=m0, n_treated=n1, n_control=n0,
                  conversions_treated=int(y[t].sum()), conversions_control=int(y[~t].sum()),
                  confidence=confidence, ipw=bool(np.ptp(p) > 1e-12))


def leads_for_power(rate_control: float, effect: float, *, treated_share: float,
                    confidence: float = 0.95, power: float = 0.8) -> int:
    """Leads (both groups together) a two-sided test at `confidence` needs to detect an
    absolute `effect` on a conversion rate of `rate_control` with probability `power`, when a
    lead is treated with probability `treated_share`."""
    if effect == 0:
        raise ValueError("the effect to detect must not be 0")
    if not 0 < treated_share < 1:
        raise ValueError("treated_share must be in (0, 1)")
    p0 = min(max(rate_control, 1e-6), 1 - 1e-6)
    p1 = min(max(p0 + effect, 1e-6), 1 - 1e-6)
    z = norm.ppf(0.5 + confidence / 2) + norm.ppf(power)
    var = p1 * (1 - p1) / treated_share + p0 * (1 - p0) / (1 - treated_share)
    return int(math.ceil(z ** 2 * var / effect ** 2))


def power_for(rate_control: float, effect: float, n_treated: int, n_control: int, *,
              confidence: float = 0.95) -> float:
    """The probability that groups of these sizes detect an absolute `effect` (two-sided)."""
    if min(n_treated, n_control) < 1:
        return 0.0
    p0 = min(max(rate_control, 1e-6), 1 - 1e-6)
    p1 = min(max(p0 + effect, 1e-6), 1 - 1e-6)
    se = math.sqrt(p1 * (1 - p1) / n_treated + p0 * (1 - p0) / n_control)
    z = norm.ppf(0.5 + confidence / 2)
    return float(norm.cdf(abs(effect) / se - z) + norm.cdf(-abs(effect) / se - z))


def effect_with_power(outcome, treatment, propensity=None, *, confidence: float = 0.95,
                      min_group: int = 100, detect: float = 0.02,
                      power: float = 0.8) -> dict:
    """average_effect plus what the groups can tell: the power to detect an absolute effect
    of `detect`, the leads that power needs, and how many more that is."""
    est = average_effect(outcome, treatment, propensity, confidence=confidence,
                         min_group=min_group)
    share = (float(np.mean(propensity)) if propensity is not None
             else est.n_treated / (est.n_treated + est.n_control))
    needed = leads_for_power(est.rate_control, detect, treated_share=share,
                             confidence=confidence, power=power)
    have = est.n_treated + est.n_control
    return {**est.as_dict(), "detect": detect, "power": power,
            "power_now": power_for(est.rate_control, detect, est.n_treated, est.n_control,
                                   confidence=confidence),
            "leads_for_power": needed, "more_leads_for_power": max(0, needed - have),
            "treated_share": share}


SIDES = {"above_bar": "MQLs: routed vs held out (agreement.holdout_rate)",
         "below_bar": "below the bar: explored vs not (scoring.explore_rate)"}


def effects_by_side(is_mql, treatment, propensity, outcome, *, confidence: float = 0.95,
                    min_group: int = 100, detect: float = 0.02, power: float = 0.8) -> dict:
    """The effect of routing above and below the bar, each from its randomised leads only
    (0 < propensity < 1). A side whose groups are too small carries `refused` (why) and
    `more_leads` (how many more leads of that side it needs) instead of an estimate."""
    mql = np.asarray(is_mql, bool)
    t = np.asarray(treatment, float)
    p = np.asarray(propensity, float)
    y = np.asarray(outcome, float)
    randomised = (p > 0) & (p < 1)
    out: dict = {}
    for side, keep in (("above_bar", mql), ("below_bar", ~mql)):
        keep = keep & randomised
        entry: dict = {"what": SIDES[side], "n_randomised": int(keep.sum())}
        if not keep.any():
            entry.update(refused="no randomised leads on this side (its rate is 0)",
                         more_leads=None)
        else:
            try:
                entry.update(effect_with_power(y[keep], t[keep], p[keep],
                                               confidence=confidence, min_group=min_group,
                                               detect=detect, power=power))
            except TooFewLeads as exc:
                entry.update(refused=str(exc), more_leads=exc.needed)
        out[side] = entry
    return out
