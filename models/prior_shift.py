"""Prior-shift correction: keep calibrated scores calibrated when the base rate moves.

When the share of leads that convert changes but what a converting lead looks like does not
(label shift), a model's probabilities stay well ranked but are off by a constant factor on the
odds. Saerens, Latinne & Decaestecker (2002, Neural Computation 14:21–41) estimate the new base
rate by EM on the unlabelled score distribution alone and re-weight each probability:

    p' = (π'/π · p) / (π'/π · p + (1−π')/(1−π) · (1−p))

Once enough outcomes have matured, a re-fitted calibration map (Platt on the logit, weighted by
inverse propensity) replaces the training map; EM then starts from that map's base rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-6


def adjust_prior(p: np.ndarray, prior_from: float, prior_to: float) -> np.ndarray:
    """Re-weight probabilities calibrated for base rate `prior_from` to base rate `prior_to`."""
    p = np.clip(np.asarray(p, float), 0.0, 1.0)
    a = prior_to / prior_from
    b = (1 - prior_to) / (1 - prior_from)
    num = a * p
    return num / np.maximum(num + b * (1 - p), 1e-300)


def em_prior(p: np.ndarray, prior_from: float, *, tol: float = 1e-7,
             max_iter: int = 1000) -> tuple[float, int]:
    """EM estimate of the current base rate from probabilities calibrated at `prior_from`.

    Returns (π', iterations). E-step: adjust every p to the current π'; M-step: π' = mean p'.
    """
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    if not len(p):
        raise ValueError("no scores to estimate the base rate from")
    if not 0 < prior_from < 1:
        raise ValueError(f"reference base rate must be in (0, 1), got {prior_from}")
    prior = float(prior_from)
    for it in range(1, max_iter + 1):
        new = float(adjust_prior(p, prior_from, prior).mean())
        new = min(max(new, _EPS), 1 - _EPS)
        if abs(new - prior) < tol:
            return new, it
        prior = new
    return prior, max_iter


def label_shift_fit(ref_scores: np.ndarray, recent_scores: np.ndarray, prior_from: float,
                    prior_to: float) -> tuple[float, float]:
    """(PSI recent vs reference, PSI recent vs reference re-weighted to `prior_to`).

    Under a pure base-rate shift, calibrated scores of the new population are the reference
    scores re-weighted by π'/π · s + (1−π')/(1−π) · (1−s). If that re-weighting does not
    explain how the score distribution moved, the shift is in the lead mix instead and EM's
    premise does not hold.
    """
    from leadq.models.drift import psi_numeric

    s = np.clip(np.asarray(ref_scores, float), 0.0, 1.0)
    w = prior_to / prior_from * s + (1 - prior_to) / (1 - prior_from) * (1 - s)
    return psi_numeric(s, recent_scores), psi_numeric(s, recent_scores, ref_weight=w)


def fit_platt(p: np.ndarray, y: np.ndarray,
              weight: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted logistic map logit(p) → y; returns (slope, intercept)."""
    from sklearn.linear_model import LogisticRegression

    x = _logit(p).reshape(-1, 1)
    y = np.asarray(y, int)
    if len(np.unique(y)) < 2:
        raise ValueError("a calibration map needs both converted and not-converted outcomes")
    lr = LogisticRegression(C=1e6).fit(x, y, sample_weight=weight)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def apply_platt(p: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(slope * _logit(p) + intercept)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Correction:
    """How scores of one model are corrected for the current period (stored per threshold
    version): optional Platt map on the raw score, then a prior shift prior_ref → prior_now."""

    prior_ref: float
    prior_now: float
    method: str = "none"  # none | em | refit+em
    platt: tuple[float, float] | None = None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        p = np.asarray(raw, float)
        if self.platt is not None:
            p = apply_platt(p, *self.platt)
        if self.method == "none" or not 0 < self.prior_ref < 1:
            return p
        return adjust_prior(p, self.prior_ref, self.prior_now)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Correction | None:
        if not d:
            return None
        platt = d.get("platt")
        return cls(prior_ref=float(d["prior_ref"]), prior_now=float(d["prior_now"]),
                   method=str(d.get("method", "em")),
                   platt=None if platt is None else (float(platt[0]), float(platt[1])))
