"""The labeling rule: which historical leads count as converted, not converted, or not yet known.

A lead is positive when a won deal closes within `horizon_days` of the moment it became an MQL.
A lead younger than the horizon with no win yet is right-censored (its outcome is not known, so
it is neither trained on nor counted as a negative) unless sales already closed it out: a
rejection (or a lost deal) makes it negative at once. A deal dated before its lead is a data
error and never counts as a win.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WON, NO_WIN, LOST, REJECTED, CENSORED, GIVEN = (
    "won", "no_win", "lost", "rejected", "censored", "given",
)


def resolve_as_of(label_params: dict, *date_series: pd.Series) -> pd.Timestamp:
    """The date outcomes are known up to: configured, or the latest date in the tables."""
    if label_params.get("as_of"):
        return pd.Timestamp(label_params["as_of"]) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    latest = [s.max() for s in date_series if s is not None and len(s) and s.notna().any()]
    if not latest:
        raise ValueError("no dates in the tables to infer label.as_of from; set it")
    return max(latest)


def label_leads(
    leads: pd.DataFrame,
    deals: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    *,
    horizon_days: int,
    as_of: pd.Timestamp,
    rejected_is_negative: bool = True,
    lost_is_negative: bool = True,
) -> pd.DataFrame:
    """Label each lead from its deals and feedback.

    Inputs use canonical names: leads[lead_id, created_at]; deals[lead_id, closed_at, won];
    feedback[lead_id, rejected]. Returns a frame indexed like `leads` with `label` (1.0, 0.0 or
    NaN for censored), `label_status` and `days_to_win`.
    """
    horizon = pd.Timedelta(days=horizon_days)
    created = pd.to_datetime(leads["created_at"])
    ids = leads["lead_id"]
    out = pd.DataFrame(index=leads.index)

    first_win = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns]")
    lost = pd.Series(False, index=leads.index)
    if deals is not None and len(deals):
        d = deals.merge(
            pd.DataFrame({"lead_id": ids.to_numpy(), "_created": created.to_numpy()}),
            on="lead_id",
            how="inner",
        )
        # A deal before its lead is impossible; it is ignored here and flagged by the contracts.
        d = d[(d["closed_at"] >= d["_created"]) & (d["closed_at"] <= as_of)]
        in_horizon = d["closed_at"] <= d["_created"] + horizon
        wins = d[d["won"].astype(bool) & in_horizon].groupby("lead_id")["closed_at"].min()
        first_win = pd.to_datetime(ids.map(wins.to_dict()), errors="coerce")
        first_win = first_win.astype("datetime64[ns]")
        lost_ids = set(d.loc[~d["won"].astype(bool), "lead_id"])
        lost = ids.isin(lost_ids)
    rejected = pd.Series(False, index=leads.index)
    if feedback is not None and len(feedback):
        rejected = ids.isin(set(feedback.loc[feedback["rejected"].astype(bool), "lead_id"]))

    won = first_win.notna()
    matured = (created + horizon) <= as_of
    closed_out = (rejected & rejected_is_negative) | (lost & lost_is_negative)

    label = np.where(won, 1.0, np.where(matured | closed_out, 0.0, np.nan))
    status = np.select(
        [won, rejected & rejected_is_negative, lost & lost_is_negative, matured],
        [WON, REJECTED, LOST, NO_WIN],
        default=CENSORED,
    )
    out["label"] = label
    out["label_status"] = status
    out["days_to_win"] = (first_win - created).dt.total_seconds() / 86400.0
    return out


def labels_from_column(values: pd.Series, *, column: str) -> pd.DataFrame:
    """Labels for a leads table that already carries its outcome (a 0/1 `converted` column)."""
    mapping = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0,
               "won": 1.0, "lost": 0.0, "1.0": 1.0, "0.0": 0.0}
    text = values.astype("string").str.strip().str.lower()
    label = text.map(mapping).astype(float)
    bad = text.notna() & label.isna()
    if bad.any():
        sample = ", ".join(map(str, values[bad].unique()[:5]))
        raise ValueError(f"label column {column!r} has values that are not 0/1: {sample}")
    status = np.where(label.isna(), CENSORED, GIVEN)
    return pd.DataFrame({"label": label, "label_status": status, "days_to_win": np.nan},
                        index=values.index)
