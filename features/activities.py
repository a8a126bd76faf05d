"""Point-in-time activity features: what a lead had done before its cut-off, never after.

CRM exports flatten the activity log into counters as of the export day ("web visits: 14"). A
lead that converted kept visiting after sales called, so such a counter is high *because* the
lead converted, and a new lead is scored on the few events it has so far. Here every feature is
an aggregate of the events strictly before the lead's cut-off: its MQL moment for training and
evaluation, the earlier of that moment and the scoring time when scoring.

One SQL text defines them (`aggregation_sql`), written in the subset DuckDB and Spark SQL share
(epoch seconds as numbers, CASE, COUNT DISTINCT), so the pandas engine and the Spark engine run
the same aggregation. It reads two relations:

  events(ev_lead, ev_t, ev_type, ev_value)   ev_t in epoch seconds, ev_type a `type_key`
  cutoffs(c_pos, c_lead, c_cut)              one row per lead to score, c_cut in epoch seconds

A few leads at a time (`leadq serve`'s requests) are aggregated by `few_leads`, the same rule
term by term in NumPy on those leads' own events (a query's fixed cost in DuckDB was most of a
request's time); tests/code/test_activity_few_leads.py holds it to the SQL's exact output.

This module is pure: DuckDB runs here on frames in memory; reading the log is pipelines/io.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadq.errors import ConfigError
from leadq.features.labels import mql_cutoff_days

PREFIX = "act_"
MEMORY_LIMIT = "1GB"  # DuckDB's; at 1 million leads, 10 million events peak at 1.4x the RSS of 1
                      # million (2GB: 1.8x), benchmarks/bench_activities.py
DAY_SECONDS = 86_400.0
_SUFFIX = re.compile(r"^act_(?P<type>[0-9a-z_]+?)_"
                     r"(?:(?P<window>\d+)d|days_since|value_(?P<vw>\d+)d)$")


# Name words of a type that is sales' own action on a lead (a call, a meeting): logged because
# the lead is being worked, so such a type listed among data.activities.types is refused.
SALES_WORDS = frozenset({
    "call", "calls", "called", "meeting", "meetings", "task", "tasks", "sales", "sdr", "bdr",
    "rep", "phone", "appointment", "opportunity", "deal", "proposal", "quote", "contract",
    "negotiation", "followup", "outreach", "sequence", "voicemail",
})


def readable_feature(name: str) -> str:
    """An activity feature's name as a marketer reads it: act_web_visit_90d → "web visits,
    last 90 days"; any other column name is returned as it is."""
    if name == f"{PREFIX}days_since_last":
        return "days since the last activity"
    if name == f"{PREFIX}distinct_types":
        return "kinds of activity"
    match = _SUFFIX.match(name)
    if not match:
        return name
    what = match["type"].replace("_", " ")
    if match["window"]:
        return f"{what}s, last {match['window']} days"
    if match["vw"]:
        return f"{what} value (sum), last {match['vw']} days"
    return f"days since the last {what}"


def sales_like(value: object) -> bool:
    """Whether an activity type's name says it is a sales action ('Sales Call', 'meeting')."""
    words = set(type_key(value).split("_"))
    return bool(words & SALES_WORDS) or "follow_up" in type_key(value)


def type_key(value: object) -> str:
    """An activity type as a column-name part: 'Content Download' → 'content_download'; a
    name with no ASCII letter or digit ('ウェブ訪問') gets a stable code from its text."""
    text = str(value).strip().lower()
    key = re.sub(r"[^0-9a-z]+", "_", text).strip("_")
    if key:
        return key
    import hashlib

    return "t" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class ActivitySpec:
    """Which features the activity log gives: per marketing type, counts in each window."""

    types: tuple[str, ...]            # type_key of each marketing type, in params order
    windows: tuple[int, ...]          # days before the cut-off, ascending
    value_types: tuple[str, ...] = ()  # types whose value column is summed (in the longest
                                       # window), when a value column is configured
    cutoff_days: float = 0.0          # the cut-off is created_at + this many days

    def feature_names(self) -> list[str]:
        names = [f"{PREFIX}{t}_{w}d" for t in self.types for w in self.windows]
        names += [f"{PREFIX}{t}_days_since" for t in self.types]
        names += [f"{PREFIX}{t}_value_{self.windows[-1]}d" for t in self.value_types]
        return names + [f"{PREFIX}days_since_last", f"{PREFIX}distinct_types"]


def activity_spec(params: dict) -> ActivitySpec | None:
    """The features `data.activities` asks for; None when no activity log is configured."""
    spec = (params.get("data") or {}).get("activities") or {}
    if not spec.get("path"):
        return None
    leads = params["data"]["leads"]
    for key in ("id", "created_at"):
        if not leads.get(key):
            raise ConfigError(f"data.activities needs data.leads.{key}: events are matched to "
                              "leads by id and counted up to each lead's created_at")
    for key in ("types", "sales_types", "value_types"):
        if spec.get(key) is not None and not isinstance(spec.get(key), list):
            raise ConfigError(f"data.activities.{key}: expected a list of activity types, got "
                              f"{spec.get(key)!r}")
    types = [type_key(t) for t in spec.get("types") or []]
    if not types:
        raise ConfigError("data.activities.types: list the marketing activity types that "
                          "become features (e.g. [web_visit, email_open]); every other type "
                          "in the log is ignored with a warning")
    sales = {type_key(t) for t in spec.get("sales_types") or []}
    refused = sorted(set(types) & sales)
    if refused:
        raise ConfigError(f"data.activities.types: {', '.join(refused)} also in "
                          "data.activities.sales_types: actions sales logs happen because a "
                          "lead is being worked, so they are never features (leakage guard)")
    dup = sorted({t for t in types if types.count(t) > 1})
    if dup:
        raise ConfigError(f"data.activities.types: {', '.join(dup)} listed twice (types are "
                          "compared ignoring case, spaces and punctuation)")
    raw_windows = (params.get("features") or {}).get("activity_windows") or [30]
    if not isinstance(raw_windows, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in raw_windows):
        raise ConfigError(f"features.activity_windows: expected a list of whole days, each at "
                          f"least 1 (e.g. [7, 30, 90]), got {raw_windows!r}")
    windows = sorted(set(raw_windows))
    try:
        cutoff = mql_cutoff_days(params.get("label") or {})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    value_types: list[str] = []
    if spec.get("value"):
        listed = spec.get("value_types")
        value_types = types if listed is None else [type_key(t) for t in listed]
        stray = sorted(set(value_types) - set(types))
        if stray:
            raise ConfigError(f"data.activities.value_types: {', '.join(stray)} not in "
                              "data.activities.types")
    out = ActivitySpec(types=tuple(types), windows=tuple(windows),
                       value_types=tuple(value_types), cutoff_days=float(cutoff))
    names = out.feature_names()
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"data.activities.types: the features {', '.join(clash)} would be "
                          "written twice (one type's name ends like another's feature): "
                          "rename a type")
    return out


def aggregation_sql(spec: ActivitySpec, events: str = "events",
                    cutoffs: str = "cutoffs") -> str:
    """The one aggregation: per cut-off row, the events of its lead strictly before c_cut.

    Type names are type_keys ([0-9a-z_]), so they are safe as literals and column names."""
    longest = spec.windows[-1] * DAY_SECONDS
    cols = []
    for t in spec.types:
        for w in spec.windows:
            cols.append(f"SUM(CASE WHEN e.ev_type = '{t}' AND e.ev_t >= c.c_cut - "
                        f"{w * DAY_SECONDS:.1f} THEN 1 ELSE 0 END) AS {PREFIX}{t}_{w}d")
    for t in spec.types:
        cols.append(f"(c.c_cut - MAX(CASE WHEN e.ev_type = '{t}' THEN e.ev_t END)) / "
                    f"{DAY_SECONDS:.1f} AS {PREFIX}{t}_days_since")
    for t in spec.value_types:
        cols.append(f"SUM(CASE WHEN e.ev_type = '{t}' AND e.ev_t >= c.c_cut - "
                    f"{longest:.1f} THEN COALESCE(e.ev_value, 0) ELSE 0 END) "
                    f"AS {PREFIX}{t}_value_{spec.windows[-1]}d")
    cols.append(f"(c.c_cut - MAX(e.ev_t)) / {DAY_SECONDS:.1f} AS {PREFIX}days_since_last")
    # Distinct types as a sum of per-type flags: COUNT(DISTINCT) costs a second aggregation
    # (measured: more memory and twice the time at 10 million events, bench_activities.py).
    cols.append(" + ".join(f"CASE WHEN MAX(CASE WHEN e.ev_type = '{t}' THEN e.ev_t END) IS "
                           "NULL THEN 0 ELSE 1 END" for t in spec.types)
                + f" AS {PREFIX}distinct_types")
    listed = ", ".join(f"'{t}'" for t in spec.types)
    return (f"SELECT c.c_pos, {', '.join(cols)} FROM {cutoffs} c LEFT JOIN {events} e "
            f"ON e.ev_lead = c.c_lead AND e.ev_t < c.c_cut AND e.ev_type IN ({listed}) "
            "GROUP BY c.c_pos, c.c_cut")


def canonical_events(good: pd.DataFrame, spec: dict, dates: pd.Series) -> pd.DataFrame:
    """The events that passed their contract, as the aggregation reads them: marketing types
    only (sales actions and unlisted types never reach a feature). `dates`: occurred_at of
    these rows, parsed (features.tables.parse_date_cells)."""
    types = {type_key(t) for t in spec.get("types") or []}
    kind = good[spec["type"]].map(type_key) if len(good) else pd.Series([], dtype=object)
    keep = kind.isin(types).to_numpy(dtype=bool)
    value = (pd.to_numeric(good[spec["value"]], errors="coerce").to_numpy(dtype=float)
             if spec.get("value") else np.full(len(good), np.nan))
    return pd.DataFrame({
        "ev_lead": good[spec["lead_id"]].astype("string").str.strip().to_numpy(dtype=object)[keep],
        "ev_t": epoch_seconds(pd.Series(np.asarray(dates))[keep]),
        "ev_type": kind.to_numpy(dtype=object)[keep],
        "ev_value": value[keep],
    })


def epoch_seconds(when: pd.Series) -> np.ndarray:
    """Timestamps as float epoch seconds (NaN for missing), the clock the SQL compares on."""
    if isinstance(when, pd.Series) and when.dtype.kind == "M" and \
            isinstance(when.dtype, np.dtype):
        # Naive NumPy datetimes already: what the subtraction and total_seconds below compute
        # (the tick count since 1970 over the ticks per second, NaT as NaN), on the array,
        # without three Series around one lead's date.
        unit, _ = np.datetime_data(when.dtype)
        ticks = when.to_numpy().view(np.int64)
        out = ticks / _TICKS_PER_SECOND[unit]
        out[ticks == np.iinfo(np.int64).min] = np.nan
        return out
    stamps = pd.to_datetime(when)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return (stamps - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(dtype=float)


_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def cutoff_seconds(created: pd.Series, spec: ActivitySpec,
                   scored_at: pd.Timestamp | None = None) -> np.ndarray:
    """Each lead's cut-off: its MQL moment (created_at + label.cutoff_days); when scoring,
    the scoring time if that is earlier (a lead scored before its cut-off has only the events
    up to now)."""
    cut = epoch_seconds(created) + spec.cutoff_days * DAY_SECONDS
    if scored_at is not None:
        now = pd.Timestamp(scored_at)
        if now.tzinfo is not None:
            now = now.tz_convert("UTC").tz_localize(None)
        cut = np.fmin(cut, (now - pd.Timestamp("1970-01-01")).total_seconds())
    return cut


SMALL_BATCH = 2_000  # leads: fewer look their events up by binary search in a sorted log
FEW_LEADS = 64  # leads: fewer are aggregated in NumPy on their own events (`leadq serve`)


def events_of(events: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The events of these lead ids, from a log sorted by ev_lead (a few leads scored at a
    time: `leadq serve`, a small file). The same rows the join would pick, so the same
    features."""
    lead = events["ev_lead"]
    wanted = np.unique(ids.astype("string").str.strip().dropna().to_numpy(dtype=object))
    lo = lead.searchsorted(wanted, side="left")
    hi = lead.searchsorted(wanted, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or
                          [np.array([], dtype=np.int64)])
    return events.iloc[rows]


def point_in_time(events: pd.DataFrame, leads: pd.Series, cut: np.ndarray,
                  spec: ActivitySpec) -> pd.DataFrame:
    """The activity features of each lead (`leads`: ids, `cut`: its cut-off in epoch seconds),
    one row per lead in the same order and index. `events` has ev_lead, ev_t, ev_type and
    ev_value (see the module docstring). A lead without events gets zero counts and missing
    days-since."""
    sorted_log = bool(events.attrs.get("sorted_by_lead"))
    if sorted_log and len(leads) <= FEW_LEADS:
        return few_leads(events, leads, cut, spec)
    if sorted_log and len(leads) <= SMALL_BATCH:
        events = events_of(events, leads)
    cutoffs = pd.DataFrame({"c_pos": np.arange(len(leads), dtype=np.int64),
                            "c_lead": leads.astype("string").str.strip().to_numpy(dtype=object),
                            "c_cut": np.asarray(cut, dtype=float)})
    con = duckdb_connection()
    con.register("events", events)
    con.register("cutoffs", cutoffs)
    try:
        out = con.execute(aggregation_sql(spec) + " ORDER BY c_pos").df()
    finally:
        con.unregister("events")
        con.unregister("cutoffs")
    return shape_features(out, spec, leads.index)


def few_leads(events: pd.DataFrame, leads: pd.Series, cut: np.ndarray,
              spec: ActivitySpec) -> pd.DataFrame:
    """`aggregation_sql` for a few leads, in NumPy on their own events of a log sorted by
    ev_lead: what `leadq serve` runs per request, where DuckDB's fixed cost per query (~6 ms)
    was most of a lead's time. The same rule, term by term: events of the lead strictly before
    its cut-off, of a listed type; window counts `ev_t >= cut - days * 86400`; days since =
    (cut - latest) / 86400; a missing value counts as 0. tests/code/test_activity_few_leads.py
    holds it to the SQL's exact output, and the service's answers to `leadq score`'s."""
    lead = events["ev_lead"].to_numpy()
    n = len(leads)
    from leadq.features.text import stripped_string

    ids = stripped_string(leads).to_numpy(dtype=object, na_value=None)
    cut = np.asarray(cut, dtype=float)
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    known = np.array([i is not None for i in ids], dtype=bool)
    if known.any():
        wanted = ids[known]
        lo[known] = np.searchsorted(lead, wanted, side="left")
        hi[known] = np.searchsorted(lead, wanted, side="right")
    owner = np.repeat(np.arange(n), hi - lo)  # each picked event's row (one per cut-off row)
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or
                          [np.array([], dtype=np.int64)]).astype(np.int64)
    # Rows taken before any conversion: the whole column of an Arrow-backed frame as Python
    # objects would cost more than the rest of a request.
    t = np.asarray(events["ev_t"].array.take(rows), dtype=float)
    kind = np.asarray(events["ev_type"].array.take(rows), dtype=object)
    value = np.asarray(events["ev_value"].array.take(rows), dtype=float)
    c = cut[owner]
    # The join's condition: strictly before the cut-off (NaN on either side: no match), and a
    # listed type.
    keep = (t < c) & np.isin(kind, np.array(spec.types, dtype=object))
    owner, t, kind, value, c = owner[keep], t[keep], kind[keep], value[keep], c[keep]

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], minlength=n).astype(np.float64)

    def latest(mask: np.ndarray) -> np.ndarray:
        out = np.full(n, -np.inf)
        np.maximum.at(out, owner[mask], t[mask])
        return np.where(np.isfinite(out), out, np.nan)  # no event: NULL, as MAX of none

    of_type = {k: kind == k for k in spec.types}
    last = {k: latest(of_type[k]) for k in spec.types}
    feats: dict[str, np.ndarray] = {}
    for k in spec.types:
        for w in spec.windows:
            feats[f"{PREFIX}{k}_{w}d"] = count(of_type[k] & (t >= c - w * DAY_SECONDS))
    for k in spec.types:
        feats[f"{PREFIX}{k}_days_since"] = (cut - last[k]) / DAY_SECONDS
    longest = spec.windows[-1] * DAY_SECONDS
    for k in spec.value_types:
        m = of_type[k] & (t >= c - longest)
        feats[f"{PREFIX}{k}_value_{spec.windows[-1]}d"] = np.bincount(
            owner[m], weights=np.nan_to_num(value[m], nan=0.0), minlength=n).astype(np.float64)
    feats[f"{PREFIX}days_since_last"] = (cut - latest(np.ones(len(t), dtype=bool))) / DAY_SECONDS
    feats[f"{PREFIX}distinct_types"] = np.sum([~np.isnan(last[k]) for k in spec.types],
                                              axis=0).astype(np.float64)
    names = spec.feature_names()
    # Every feature is float64: one block, not a column-by-column frame (a frame per request).
    block = np.empty((n, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        block[:, j] = feats[name]
    return pd.DataFrame(block, columns=_feature_index(tuple(names)), index=leads.index,
                        copy=False)


@functools.lru_cache(maxsize=64)
def _feature_index(names: tuple[str, ...]) -> pd.Index:
    # An Index of the names, built once per spec: building it cost most of a one-row frame.
    # Index objects are immutable, so every frame may share one.
    return pd.Index(names)


_local = threading.local()


def duckdb_connection():
    """This thread's in-memory DuckDB connection: opened once (a few milliseconds each time
    otherwise, most of a single lead's cost in `leadq serve`)."""
    import os

    import duckdb

    con = getattr(_local, "con", None)
    if con is None or getattr(_local, "pid", None) != os.getpid():  # never across a fork
        con = duckdb.connect()
        con.execute("SET threads TO 1")  # scoring runs beside the model on a small machine
        # A ceiling DuckDB fills before it spills: what keeps a large log's aggregation flat.
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        _local.con, _local.pid = con, os.getpid()
    return con


def shape_features(out: pd.DataFrame, spec: ActivitySpec, index: pd.Index) -> pd.DataFrame:
    """The aggregation's rows as the model takes them: float columns in feature order."""
    frame = pd.DataFrame({name: pd.to_numeric(out[name], errors="coerce").astype(np.float64)
                          .to_numpy() for name in spec.feature_names()}, index=index)
    return frame


def is_activity_feature(name: str) -> bool:
    return name.startswith(PREFIX)


def describe(name: str, value: float) -> str | None:
    """A marketer's phrase for one activity feature's value ('3 content downloads in the last
    30 days'); None when `name` is not an activity feature."""
    if not is_activity_feature(name):
        return None
    if name == f"{PREFIX}days_since_last":
        return "no activity before" if pd.isna(value) else f"last activity {_days(value)} before"
    if name == f"{PREFIX}distinct_types":
        return f"{value:.0f} kind{'s' if value != 1 else ''} of activity"
    m = _SUFFIX.match(name)
    if not m:
        return None
    kind = m["type"].replace("_", " ")
    if m["window"]:
        n = 0 if pd.isna(value) else value
        return f"{n:.0f} {kind}{'s' if n != 1 else ''} in the last {m['window']} days"
    if m["vw"]:
        return f"{kind} value {0 if pd.isna(value) else value:g} in the last {m['vw']} days"
    return f"no {kind} before" if pd.isna(value) else f"last {kind} {_days(value)} before"


def _days(value: float) -> str:
    days = int(round(float(value)))
    return "under a day" if float(value) < 1 else f"{days} day{'s' if days != 1 else ''}"


def snapshot_suspects(numbers: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame, *,
                      min_correlation: float = 0.8, min_margin: float = 0.02,
                      min_risen_share: float = 0.05) -> dict[str, str]:
    """Numeric lead columns that look like export-day counters of an activity type.

    Such a column follows the log's count of all events (`after`, as on the export day) more
    closely than the count before each lead's cut-off (`before`), for a type whose count
    rises after the cut-off for enough leads. Returns column → why (rank correlations)."""
    out: dict[str, str] = {}
    for col in numbers.columns:
        x = pd.to_numeric(numbers[col], errors="coerce")
        if x.nunique() < 3:
            continue
        for t in before.columns:
            risen = (after[t] > before[t]).mean()
            if risen < min_risen_share:
                continue
            r_after = x.corr(after[t], method="spearman")
            r_before = x.corr(before[t], method="spearman")
            if (pd.notna(r_after) and r_after >= min_correlation
                    and r_after > (r_before if pd.notna(r_before) else 0.0) + min_margin):
                out[col] = (f"follows the activity log's {t} count on the export day (rank "
                            f"correlation {r_after:.2f}) more than its count at each lead's "
                            f"cut-off ({r_before:.2f}); {risen:.0%} of leads have {t} events "
                            "after their cut-off")
                break
    return out
