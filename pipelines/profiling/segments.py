"""`leadq init`: is one of the export's categorical inputs a strong segment column?

A strong candidate has few values (a business line, a region, a channel: not a campaign),
at least two of them large enough for their own model under the packaged minimums
(segments.min_leads / min_conversions), and conversion rates that differ between them beyond
chance (a chi-square test): leads that convert at different rates often convert for different
reasons. It is only proposed (a note in the params file): per-segment models stay off until
someone sets segments.column, and training still keeps one only where it pays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_VALUES = 10        # more values than this is a campaign or a country list, not a segment
MAX_P_VALUE = 1e-3     # conversion rates that differ beyond chance
MIN_RATE_RATIO = 1.2   # ... and by enough to matter (largest / smallest among large values)


def segment_candidate(frame: pd.DataFrame, columns: list[str], y: pd.Series, *,
                      min_leads: int, min_conversions: int) -> tuple[str, str] | None:
    """(column, why) of the strongest segment candidate among `columns`, or None."""
    from scipy.stats import chi2_contingency

    known = y.notna()
    best: tuple[float, str, str] | None = None
    for col in columns:
        values = frame.loc[known, col].astype("string").str.strip().str.casefold()
        values = values.where(values != "")
        if values.nunique() < 2 or values.nunique() > MAX_VALUES:
            continue
        table = pd.DataFrame({"v": values, "y": y[known].astype(int)}).dropna()
        stats = table.groupby("v")["y"].agg(["size", "sum"])
        large = stats[(stats["size"] >= min_leads) & (stats["sum"] >= min_conversions)]
        if len(large) < 2:
            continue
        counts = np.column_stack([stats["sum"], stats["size"] - stats["sum"]])
        chi2, p, _, _ = chi2_contingency(counts)
        rates = large["sum"] / large["size"]
        if p > MAX_P_VALUE or rates.max() < MIN_RATE_RATIO * rates.min():
            continue
        why = (f"{len(stats)} values, {len(large)} with at least {min_leads:,} labelled leads "
               f"and {min_conversions:,} conversions; their conversion rates differ "
               f"({rates.min():.1%} to {rates.max():.1%}, chi-square p {p:.0e})")
        if best is None or chi2 > best[0]:
            best = (float(chi2), col, why)
    return None if best is None else (best[1], best[2])
