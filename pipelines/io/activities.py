"""Adding each lead's point-in-time activity features (data.activities): the I/O half of
leadq.features.activities. The log itself is read and held to its contract in
leadq.pipelines.io.crm (load_events, scoring_events), with the other tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import ConfigError
from leadq.features.activities import ActivitySpec, activity_spec, cutoff_seconds, point_in_time
from leadq.pipelines.params.loader import resolve_path


def activities_path(params: dict) -> Path | str | None:
    """The activity log's file, or its database URL (a str; read through files.iter_chunks)."""
    from leadq.pipelines.io.urls import is_database_url

    spec = (params.get("data") or {}).get("activities") or {}
    if not spec.get("path"):
        return None
    if is_database_url(spec["path"]):
        return str(spec["path"])
    path = resolve_path(params, spec["path"])
    if not path.exists():
        raise ConfigError(f"data.activities.path: {path} not found")
    return path


def first_touch(tables, params: dict) -> pd.Series:
    """Per lead id, the first moment sales touched it or its outcome was known: the first
    deal close, feedback, first contact, or conversion date (NaT: none yet)."""
    spec = params["data"]["leads"]
    parts = []
    if tables.deals is not None:
        parts.append(tables.deals[["lead_id", "closed_at"]].rename(columns={"closed_at": "t"}))
    if tables.feedback is not None:
        for col in ("feedback_at", "first_contact_at"):
            if col in tables.feedback:
                parts.append(tables.feedback[["lead_id", col]].rename(columns={col: "t"}))
    if spec.get("converted_at") and spec["converted_at"] in tables.leads:
        parts.append(pd.DataFrame({"lead_id": tables.leads[spec["id"]].astype(str).str.strip(),
                                   "t": pd.to_datetime(tables.leads[spec["converted_at"]],
                                                       errors="coerce")}))
    if not parts:
        return pd.Series(dtype="datetime64[ns]")
    both = pd.concat(parts, ignore_index=True).dropna(subset=["t"])
    return both.groupby(both["lead_id"].astype(str))["t"].min()


def touched_before_cutoff(tables, params: dict) -> pd.Series:
    """Per lead (True/False, aligned with tables.leads): sales touched it, or its outcome was
    known, before its cut-off (label.cutoff_days after created_at). Such a lead's outcome is
    not a prediction at its MQL moment, and its engagement after the touch would leak."""
    from leadq.features.activities import epoch_seconds

    spec = activity_spec(params)
    leads = tables.leads
    if spec is None or spec.cutoff_days <= 0:
        return pd.Series(False, index=leads.index)
    touched = first_touch(tables, params)
    ids = leads[params["data"]["leads"]["id"]].astype("string").str.strip()
    first = epoch_seconds(pd.Series(ids.map(touched).to_numpy(), dtype="datetime64[ns]"))
    cut = cutoff_seconds(leads[params["data"]["leads"]["created_at"]], spec)
    return pd.Series(~np.isnan(first) & (first < cut), index=leads.index)


def add_features(leads: pd.DataFrame, events: pd.DataFrame, params: dict, *,
                 scored_at: pd.Timestamp | None = None,
                 spec: ActivitySpec | None = None) -> pd.DataFrame:
    """`leads` (typed) with the activity features as extra columns: events strictly before
    each lead's cut-off (and before `scored_at` when scoring)."""
    spec = spec or activity_spec(params)
    if spec is None:
        return leads
    lead_spec = params["data"]["leads"]
    cut = cutoff_seconds(leads[lead_spec["created_at"]], spec, scored_at)
    feats = point_in_time(events, leads[lead_spec["id"]], cut, spec)
    clash = [c for c in feats.columns if c in leads.columns]
    if clash:
        raise ConfigError(f"leads already have column(s) {', '.join(clash)}, which the "
                          "activity features (data.activities) would write: rename them")
    return pd.concat([leads, feats], axis=1)


def export_day_counts(events: pd.DataFrame, leads: pd.DataFrame, params: dict
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per lead and marketing type: events before the cut-off, and all events in the log
    (what an export-day counter holds). For the snapshot-counter evidence in training."""
    from leadq.features.activities import duckdb_connection

    spec = activity_spec(params)
    lead_spec = params["data"]["leads"]
    cut = cutoff_seconds(leads[lead_spec["created_at"]], spec)
    frame = pd.DataFrame({"c_pos": np.arange(len(leads), dtype=np.int64),
                          "c_lead": leads[lead_spec["id"]].astype("string").str.strip()
                          .to_numpy(dtype=object), "c_cut": cut})
    sums = ", ".join(
        f"SUM(CASE WHEN e.ev_type = '{t}' AND e.ev_t < c.c_cut THEN 1 ELSE 0 END) AS b_{t}, "
        f"SUM(CASE WHEN e.ev_type = '{t}' THEN 1 ELSE 0 END) AS a_{t}" for t in spec.types)
    con = duckdb_connection()
    con.register("events", events)
    con.register("cutoffs", frame)
    try:
        out = con.execute(f"SELECT c.c_pos, {sums} FROM cutoffs c LEFT JOIN events e ON "
                          "e.ev_lead = c.c_lead GROUP BY c.c_pos ORDER BY c.c_pos").df()
    finally:
        con.unregister("events")
        con.unregister("cutoffs")
    before = pd.DataFrame({t: out[f"b_{t}"].astype(float).to_numpy() for t in spec.types},
                          index=leads.index)
    after = pd.DataFrame({t: out[f"a_{t}"].astype(float).to_numpy() for t in spec.types},
                         index=leads.index)
    return before, after
