"""Lead tiers A–D from score cut-offs (A best). Cut-offs come from thresholds.tier_cutoffs
at training and at each recalibration, so a tier means the same thing in every scored file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

TIERS = ("A", "B", "C", "D")


def assign_tiers(score: np.ndarray, cutoffs: Sequence[float]) -> pd.api.extensions.ExtensionArray:
    """'A' when score ≥ cutoffs[0], 'B' when ≥ cutoffs[1], 'C' when ≥ cutoffs[2], else 'D'
    (also for a missing score), as Arrow-backed text: the form it is written in, built from
    the four labels without a Python string per lead."""
    import pyarrow as pa

    cut = np.asarray(cutoffs, float)
    # One (A, B, C) for every lead, or one row per lead (a bar per segment).
    a, b, c = (cut[..., i] for i in range(3))
    if not (np.all(a >= b) and np.all(b >= c)):
        raise ValueError(f"tier cut-offs must be descending (A ≥ B ≥ C), got {cutoffs}")
    score = np.asarray(score, float)
    missed = (score < a).astype(np.int8) + (score < b) + (score < c)  # cut-offs not reached
    missed[np.isnan(score)] = len(TIERS) - 1
    return pd.array(pa.array(TIERS).take(pa.array(missed.ravel())), dtype="str")
