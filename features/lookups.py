"""Lookup tables joined to the leads (accounts, products, sales teams): pure, no I/O.

A left join on a key matched loosely: case, spaces, hyphens and underscores are ignored (and a
whole number read as a float, 12.0, is 12), because CRM
exports spell the same key differently in different tables ("GTXPro" in the pipeline,
"GTX Pro" in the product list). A lead without a match keeps missing values; a key that
appears twice in a lookup, once normalised, is the caller's error to raise (see `duplicate_keys`).
"""

from __future__ import annotations

import pandas as pd


def join_key(values: pd.Series) -> pd.Series:
    """The loose form keys are matched by: case-folded, only letters and digits kept."""
    text = values.astype("string").str.strip().str.casefold()
    text = text.str.replace(r"^(\d+)\.0*$", r"\1", regex=True)  # 12.0 (a float column) is 12
    text = text.str.replace(r"[\s_\-]+", "", regex=True)
    return text.mask(text == "")


def duplicate_keys(table: pd.DataFrame, key: str) -> pd.Series:
    """Rows of a lookup table whose (normalised) key another row has too."""
    norm = join_key(table[key])
    return norm.notna() & norm.duplicated(keep=False)


def join_lookup(leads: pd.DataFrame, table: pd.DataFrame, *, on: str, key: str,
                columns: list[str]) -> tuple[pd.DataFrame, int]:
    """`leads` with `columns` of `table` joined on leads[on] ~ table[key] (left join, order
    kept); also returns how many leads found no match (a blank key is no match)."""
    norm = join_key(table[key])
    keep = norm.notna()
    values = table.loc[keep, columns].set_axis(norm[keep].to_numpy())
    lead_keys = join_key(leads[on])
    joined = values.reindex(lead_keys.to_numpy())
    joined.index = leads.index
    unmatched = int((~lead_keys.isin(values.index)).sum())
    return pd.concat([leads, joined], axis=1), unmatched
