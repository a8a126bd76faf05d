"""Population stability index (PSI) between a reference sample and recent leads.

PSI = Σ (recent% − ref%) · ln(recent% / ref%) over bins fixed on the reference. Rule of thumb
(Siddiqi, Credit Risk Scorecards): < 0.10 stable, 0.10–0.25 moderate shift, > 0.25 major shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_FLOOR = 1e-4  # an empty bin would make PSI infinite


def _psi(ref_share: np.ndarray, new_share: np.ndarray) -> float:
    r = np.maximum(ref_share, _FLOOR)
    n = np.maximum(new_share, _FLOOR)
    return float(np.sum((n - r) * np.log(n / r)))


def psi_numeric(reference: np.ndarray, recent: np.ndarray, bins: int = 10,
                ref_weight: np.ndarray | None = None) -> float:
    """PSI over reference-quantile bins, with missing values as their own bin.

    `ref_weight` re-weights the reference rows (e.g. to what a pure base-rate shift predicts).
    """
    ref = np.asarray(reference, float)
    new = np.asarray(recent, float)
    rw = np.ones(len(ref)) if ref_weight is None else np.asarray(ref_weight, float)
    if not len(ref) or not len(new):
        return float("nan")
    ok_ref = ~np.isnan(ref)
    edges = (np.unique(np.quantile(ref[ok_ref], np.linspace(0, 1, bins + 1)[1:-1]))
             if ok_ref.any() else np.array([]))

    def shares(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        ok = ~np.isnan(x)
        sums = np.bincount(np.searchsorted(edges, x[ok], side="right"), weights=w[ok],
                           minlength=len(edges) + 1)
        return np.r_[sums, w[~ok].sum()] / w.sum()

    return _psi(shares(ref, rw), shares(new, np.ones(len(new))))


def psi_categorical(reference: pd.Series, recent: pd.Series, top: int = 20) -> float:
    """PSI over the reference's `top` categories plus 'other' and 'missing'."""
    ref = pd.Series(reference).astype("string").str.strip().str.lower()
    new = pd.Series(recent).astype("string").str.strip().str.lower()
    if not len(ref) or not len(new):
        return float("nan")
    keep = list(ref.value_counts().index[:top])

    def shares(s: pd.Series) -> np.ndarray:
        cat = s.where(s.isin(keep), "__other__").fillna("__missing__")
        counts = cat.value_counts()
        return np.array([counts.get(k, 0) for k in [*keep, "__other__", "__missing__"]]) / len(s)

    return _psi(shares(ref), shares(new))


def psi_table(reference: pd.DataFrame, recent: pd.DataFrame, numeric: list[str],
              categorical: list[str]) -> dict[str, float]:
    """PSI per feature present in both frames."""
    out: dict[str, float] = {}
    for col in numeric:
        if col in reference and col in recent:
            out[col] = psi_numeric(pd.to_numeric(reference[col], errors="coerce").to_numpy(float),
                                   pd.to_numeric(recent[col], errors="coerce").to_numpy(float))
    for col in categorical:
        if col in reference and col in recent:
            out[col] = psi_categorical(reference[col], recent[col])
    return out


def drift_verdict(feature_psi: dict[str, float], score_psi: float, *, warn: float = 0.10,
                  retrain: float = 0.25) -> tuple[str, str]:
    """('stable' | 'recalibrate' | 'retrain', why).

    A moved score distribution with stable inputs is what recalibration fixes (volume, base
    rate, mix within what the model has seen). Inputs that moved a lot mean the model is
    extrapolating: its ranking, not just its calibration, may be stale, so retrain.
    """
    finite = {k: v for k, v in feature_psi.items() if np.isfinite(v)}
    major = sorted((k for k, v in finite.items() if v >= retrain), key=lambda k: -finite[k])
    if major:
        shown = ", ".join(f"{k} {finite[k]:.2f}" for k in major[:5])
        return "retrain", f"major input drift (PSI ≥ {retrain}): {shown}; retraining advised"
    moderate = [k for k, v in finite.items() if v >= warn]
    if moderate or (np.isfinite(score_psi) and score_psi >= warn):
        return "recalibrate", (f"moderate drift (score PSI {score_psi:.2f}; inputs "
                               f"{', '.join(moderate) or 'stable'}); recalibration covers it")
    return "stable", f"no material drift (score PSI {score_psi:.2f})"
