"""The labeling rule: which historical leads count as converted, not converted, or not yet known.

Three forms, one rule:
- **deals** (label_leads): a lead is positive when a won deal closes within `horizon_days` of
  the moment it became an MQL. A lead younger than the horizon with no win yet is
  right-censored (its outcome is not known, so it is neither trained on nor counted as a
  negative) unless sales already closed it out: a rejection (or a lost deal) makes it negative
  at once. A deal dated before its lead is a data error and never counts as a win.
- **a conversion date** on the lead (labels_from_conversion_date): the same rule with the
  lead's own `converted_at` in place of the first won deal.
- **an outcome column** on the lead (labels_from_column): 0/1, yes/no, TRUE/FALSE, or a
  pipeline stage whose open values (still being worked) are censored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.settings import setting

WON, NO_WIN, LOST, REJECTED, CENSORED, GIVEN = (
    "won", "no_win", "lost", "rejected", "censored", "given",
)


def mql_cutoff_days(label_params: dict) -> float:
    """The MQL moment: a lead becomes an MQL `label.cutoff_days` after its created_at. Only
    what is known before that moment may be an input (the activity features stop there), and
    an outcome known before it is no prediction to learn from."""
    cutoff = setting(label_params, "cutoff_days") or 0
    if not isinstance(cutoff, int | float) or isinstance(cutoff, bool) or cutoff < 0:
        raise ValueError(f"label.cutoff_days: expected a number of days ≥ 0, got {cutoff!r}")
    return float(cutoff)


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
    matured_only: bool = False,
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
    if matured_only:
        # A young lead with an outcome already is a fast one (fast win, fast rejection): kept
        # without its undecided peers it skews the newest leads' conversion rate.
        young = ~matured.to_numpy(bool)
        label = np.where(young, np.nan, label)
        status = np.where(young, CENSORED, status)
    out["label"] = label
    out["label_status"] = status
    out["days_to_win"] = (first_win - created).dt.total_seconds() / 86400.0
    return out


POSITIVE_VALUES = ("1", "true", "t", "yes", "y", "won")
NEGATIVE_VALUES = ("0", "false", "f", "no", "n", "lost")


def canonical_outcome(text: pd.Series) -> pd.Series:
    """Outcome spellings compared loosely: case and padding ignored, and a whole number the
    same however it is written ("1", "1.0": a refreshed export whose column became float)."""
    out = text.str.strip().str.lower()
    return out.str.replace(r"^([+-]?\d+)\.0*$", r"\1", regex=True)


def leads_carry_label(leads_spec: dict) -> bool:
    """Whether the leads table holds its own outcome (a label column or a conversion date),
    so no deals table is needed."""
    return bool(leads_spec.get("label") or leads_spec.get("converted_at"))


def labels_from_column(values: pd.Series, *, column: str, won: list | None = None,
                       lost: list | None = None, open_values: list | None = None,
                       ) -> pd.DataFrame:
    """Labels for a leads table that carries its outcome in one column.

    `won` / `lost` are the values meaning converted / not converted (None: the usual 0/1,
    true/false, yes/no spellings); `open_values` are stages still being worked: censored, like
    a lead younger than the horizon. Any other value is an error, never a silent negative."""
    def norm(items) -> set[str]:
        return set(canonical_outcome(pd.Series([str(v) for v in items], dtype="string")))

    pos = norm(won) if won else set(POSITIVE_VALUES)
    neg = norm(lost) if lost else set(NEGATIVE_VALUES)
    text = canonical_outcome(values.astype("string"))
    label = pd.Series(np.nan, index=values.index)
    label[text.isin(pos).fillna(False).to_numpy(bool)] = 1.0
    label[text.isin(neg).fillna(False).to_numpy(bool)] = 0.0
    is_open = text.isin(norm(open_values or [])).fillna(False).to_numpy(bool)
    bad = text.notna().to_numpy(bool) & (text != "").fillna(False).to_numpy(bool) \
        & label.isna().to_numpy(bool) & ~is_open
    if bad.any():
        # Distinct values of an outcome column are stage names or 0/1 spellings, not personal.
        shown = ", ".join(repr(v) for v in values[bad].astype(str).str.strip().unique()[:6])
        from leadq.errors import BadInputError

        raise BadInputError(
            f"label column {column!r} has values that are neither converted nor not converted: "
            f"{shown}; list them in data.leads.label_won, label_lost or label_open")
    status = np.where(label.isna(), CENSORED, GIVEN)
    return pd.DataFrame({"label": label.to_numpy(), "label_status": status,
                         "days_to_win": np.nan}, index=values.index)


def labels_from_conversion_date(created: pd.Series | None, converted: pd.Series, *,
                                horizon_days: int, as_of: pd.Timestamp,
                                matured_only: bool = False) -> pd.DataFrame:
    """Labels from the lead's own conversion date (the deals rule with `converted` as the win).

    Positive when the lead converted within the horizon; negative once the horizon has passed
    without that; censored while it has not. A conversion dated before the lead is a data error
    and never a win. Without a creation date every converted lead is positive and every other
    one negative (nothing can be timed)."""
    converted = pd.to_datetime(converted)
    if created is None:
        won = converted.notna() & (converted <= as_of)
        return pd.DataFrame({"label": np.where(won, 1.0, 0.0),
                             "label_status": np.where(won, WON, NO_WIN),
                             "days_to_win": np.nan}, index=converted.index)
    created = pd.to_datetime(created)
    horizon = pd.Timedelta(days=horizon_days)
    won = (converted.notna() & (converted >= created) & (converted <= created + horizon)
           & (converted <= as_of)).to_numpy(bool)
    matured = ((created + horizon) <= as_of).fillna(False).to_numpy(bool)
    if matured_only:
        won = won & matured
    label = np.where(won, 1.0, np.where(matured, 0.0, np.nan))
    status = np.where(won, WON, np.where(matured, NO_WIN, CENSORED))
    days = np.where(won, (converted - created).dt.total_seconds() / 86400.0, np.nan)
    return pd.DataFrame({"label": label, "label_status": status, "days_to_win": days},
                        index=converted.index)
