"""Lead tiers A–D from score cut-offs (A best). Cut-offs come from models.thresholds.tier_cutoffs
at training and at each recalibration, so a tier means the same thing in every scored file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIERS = ("A", "B", "C", "D")


def assign_tiers(score: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    """'A' when score ≥ cutoffs[0], 'B' when ≥ cutoffs[1], 'C' when ≥ cutoffs[2], else 'D'."""
    a, b, c = (float(x) for x in cutoffs)
    if not a >= b >= c:
        raise ValueError(f"tier cut-offs must be descending (A ≥ B ≥ C), got {cutoffs}")
    score = np.asarray(score, float)
    out = np.full(score.shape, "D", dtype=object)
    out[score >= c] = "C"
    out[score >= b] = "B"
    out[score >= a] = "A"
    return out
