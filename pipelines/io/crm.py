"""Load the configured CRM tables from disk into typed frames (the I/O half of every step)."""

from __future__ import annotations

import glob
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leadq.errors import ConfigError
from leadq.features.activities import canonical_events
from leadq.features.contracts import check_columns, check_totals, evaluate
from leadq.features.labels import leads_carry_label
from leadq.features.rules import settings
from leadq.features.tables import (
    canonical_deals,
    canonical_feedback,
    coerce_leads,
    parse_date_cells,
)
from leadq.pipelines.io.activities import activities_path, add_features
from leadq.pipelines.io.files import read_table, read_table_ragged, require_columns
from leadq.pipelines.io.lookups import enrich
from leadq.pipelines.io.manifest import record_table
from leadq.pipelines.io.progress import log
from leadq.pipelines.io.quarantine import (
    Accounting,
    QuarantineWriter,
    formula_guard,
    quarantine_path,
    required_columns,
)
from leadq.pipelines.params.loader import resolve_path


@dataclass
class CrmTables:
    leads: pd.DataFrame
    deals: pd.DataFrame | None = None
    feedback: pd.DataFrame | None = None
    # a file's path, or a database table's label (URL without password, table or query key)
    paths: dict[str, Path | str] = field(default_factory=dict)
    accounting: dict[str, Accounting] = field(default_factory=dict)   # rows read/used/rejected
    raw: dict[str, pd.DataFrame] = field(repr=False, default_factory=dict)  # as read, for GX
    routing: pd.DataFrame | None = None  # the scorer's past outputs, for IPW training weights
    activities: pd.DataFrame | None = None  # typed marketing events (features.activities)


def leads_required_columns(params: dict, *, for_training: bool) -> list[str]:
    """The columns a leads file must have (lookup-supplied ones are joined in later)."""
    return required_columns("leads", params, for_training=for_training)


def table_location(params: dict, value: str | Path | None) -> Path | str | None:
    """A table's `path` from params: a file path relative to the params file, or a database
    URL as it is (its table or query is read through files.iter_chunks)."""
    from leadq.pipelines.io.urls import is_database_url

    if value is not None and is_database_url(value):
        return str(value)
    return resolve_path(params, value)


def _section_path(params: dict, name: str) -> Path | str | None:
    spec = params["data"].get(name)
    if not spec or not spec.get("path"):
        return None
    return table_location(params, spec["path"])


def load_checked(params: dict, table: str, path: Path | str, *, for_training: bool,
                 reference: dict | None = None, quarantine: bool = True,
                 pending: list[QuarantineWriter] | None = None,
                 ) -> tuple[pd.DataFrame, Accounting, pd.DataFrame]:
    """Read one table and hold it to its contract (features/contracts.py).

    Returns the good raw rows, the accounting and the raw rows as read (for the GX
    validation). A table-level failure raises before anything is written; otherwise the
    rejected rows go to the run's quarantine file in the output location, never beside the
    input (io.quarantine.quarantine_path; not to MLflow). With
    `pending`, the quarantine is written but not yet moved into place: the caller commits it
    once every table has passed (a later table's failure must leave nothing behind either).
    """
    from leadq.pipelines.io.database import is_database_url, table_label, table_source

    spec = params["data"][table]
    raw, ragged = read_table_ragged(
        path, spec, name=table,
        required=required_columns(table, params, for_training=for_training))
    # A database table is named by its URL without the password and its table or query key:
    # the name reaches messages, logs, manifests and MLflow.
    shown = table_label(path, spec, table)
    if table == "leads":
        raw = enrich(raw, params, quiet=False)  # lookup columns are lead columns from here on
    check_columns(list(raw.columns), table, params, path=shown, for_training=for_training)
    checked = _ratings_as_numbers(raw, params) if table == "feedback" else raw
    check = evaluate(checked, table, params, reference)
    acct = Accounting(table=table, path=shown)
    acct.add(check)
    acct.add_ragged(ragged)  # rows with the wrong field count: rejected like any other
    check_totals(table, params, path=shown, rows=acct.read, rejected=dict(acct.rejected),
                 duplicate_ids=acct.duplicate_ids, examples=acct.examples)
    bad = check.bad
    if quarantine:
        stem = table_source(str(path), spec, table).stem if is_database_url(path) else path
        writer = QuarantineWriter(quarantine_path(params, source=stem, table=table),
                                  formula_guard=formula_guard(params))
        writer.write(raw.loc[bad], check.reasons)
        writer.write_ragged(ragged, list(raw.columns))
        if pending is None:
            written = writer.commit()
            acct.quarantine = None if written is None else str(written)
        else:
            pending.append(writer)
            acct.quarantine = str(writer.path) if writer.rows else None
    log.info("%s", acct.summary())
    record_table(acct, params)
    return raw.loc[~bad], acct, checked


def _ratings_as_numbers(raw: pd.DataFrame, params: dict) -> pd.DataFrame:
    """A rating written as words (Hot / Warm / Cold, A–D) read through
    agreement.feedback.rating_values, so the contract's number and range rules see the 1–5
    scale; an unmapped word still fails them, naming the setting."""
    from leadq.features.agreement import normalise_rating

    col = params["data"]["feedback"].get("rating")
    mapping = params["agreement"]["feedback"]["rating_values"]
    if not col or col not in raw or not mapping:
        return raw
    mapped = normalise_rating(raw[col], mapping)
    text = raw[col].astype("string")
    return raw.assign(**{col: mapped.map(lambda v: f"{v:g}", na_action="ignore")
                         .astype("string").where(mapped.notna(), text)})


# The activity log as scoring reads it: one typed copy per file version and settings (a stream
# of 100k-lead chunks, or `leadq serve`'s single requests, aggregate without reading it again).
_events_lock = threading.Lock()
_events_cache: dict[tuple, pd.DataFrame] = {}


def load_events(params: dict, *, reference: dict | None, quarantine: bool, pending=None,
                ) -> tuple[pd.DataFrame, object, pd.DataFrame]:
    """The log held to its contract (features/rules.py "activities"); with `reference`
    (lead id → created_at), events of unknown leads are quarantined. Returns the typed
    marketing events, the accounting and the raw rows (for GX)."""
    path = activities_path(params)
    spec = params["data"]["activities"]
    good, acct, raw = load_checked(params, "activities", path, for_training=True,
                                   reference=reference, quarantine=quarantine, pending=pending)
    events = canonical_events(good, spec, parse_date_cells(good[spec["occurred_at"]],
                                                           spec.get("date_format")))
    log.info("activities: %s events of the listed marketing types kept for features (%s "
             "sales actions or other types left out)", f"{len(events):,}",
             f"{len(good) - len(events):,}")
    return events, acct, raw


def scoring_events(params: dict) -> pd.DataFrame:
    """The log's typed events for scoring, read once per file version (no quarantine: the
    training run that accepted this log wrote it; bad rows are left out and counted)."""
    path = activities_path(params)
    # A file is read again when it changes; a database log once per process (a query per
    # request or per chunk would cost more than it saves).
    version = (0, 0) if isinstance(path, str) else (path.stat().st_mtime_ns, path.stat().st_size)
    key = (str(path), *version,
           repr(sorted((params["data"]["activities"] or {}).items())),
           repr(sorted(settings(params).items())))
    # Loaded under the lock: concurrent first requests of `leadq serve` wait for one read.
    with _events_lock:
        if key in _events_cache:
            return _events_cache[key]
        events, acct, _ = load_events(params, reference=None, quarantine=False)
        if acct.n_rejected:
            log.warning("activities: %s events of %s broke the contract and are left out "
                        "(%s)", f"{acct.n_rejected:,}", path, dict(acct.rejected))
        # Sorted by lead, a few leads' events are found by binary search (features.activities
        # .events_of) instead of a scan of the whole log per request.
        events = events.sort_values("ev_lead", kind="stable", ignore_index=True)
        # Plain Python strings: numpy's binary search, not an Arrow → numpy copy per lookup.
        events["ev_lead"] = pd.Series(events["ev_lead"].to_numpy(dtype=object), dtype=object)
        events.attrs["sorted_by_lead"] = True
        _events_cache.clear()  # one version of one log is enough; an old one is never read again
        _events_cache[key] = events
    return events


def _checked_leads(params: dict, path: str | Path | None, *, for_training: bool,
                   quarantine: bool, pending: list[QuarantineWriter] | None = None):
    """The leads that pass their contract, typed; with the accounting, raw rows and path."""
    path = table_location(params, str(path)) if path else _section_path(params, "leads")
    if path is None:
        raise ConfigError("params.yaml data.leads.path is not set")
    good, acct, raw = load_checked(params, "leads", path, for_training=for_training,
                                   quarantine=quarantine, pending=pending)
    leads = coerce_leads(good, params)
    leads.attrs["path"] = acct.path
    return leads, acct, raw, path


def load_leads(params: dict, path: str | Path | None = None, *, for_training: bool,
               quarantine: bool = True) -> pd.DataFrame:
    """Read, check and type a leads file; bad rows are quarantined in the output location."""
    return _checked_leads(params, path, for_training=for_training, quarantine=quarantine)[0]


def load_crm(params: dict, *, quarantine: bool = True) -> CrmTables:
    """Leads plus, when configured, the deals and sales-feedback tables in canonical form,
    each held to its contract (deals and feedback against the leads that passed).

    The quarantines are moved into place only when every table has passed: a table-level
    failure in the deals leaves no leads quarantine behind."""
    pending: list[QuarantineWriter] = []
    try:
        tables = _load_crm(params, quarantine=quarantine, pending=pending)
    except BaseException:
        for writer in reversed(pending):  # the last first: the first made the folder
            writer.abort()
        raise
    for writer in pending:
        writer.commit()
    return tables


def _shown(path: Path | str, acct: Accounting) -> Path | str:
    """What CrmTables.paths holds: a file's path, or a database table's label (no password)."""
    return acct.path if isinstance(path, str) else path


def _load_crm(params: dict, *, quarantine: bool, pending: list[QuarantineWriter]) -> CrmTables:
    leads, acct, raw, path = _checked_leads(params, None, for_training=True,
                                            quarantine=quarantine, pending=pending)
    tables = CrmTables(leads=leads, paths={"leads": _shown(path, acct)})
    tables.accounting["leads"] = acct
    tables.raw["leads"] = raw
    tables.routing = load_routing(params)
    spec = params["data"]["leads"]
    reference = None
    if spec.get("id"):
        created = leads[spec["created_at"]] if spec.get("created_at") else pd.NaT
        lead_created = pd.Series(pd.to_datetime(created).to_numpy() if spec.get("created_at")
                                 else pd.NaT, index=pd.Index(leads[spec["id"]].astype(str)))
        lead_created = lead_created[~lead_created.index.duplicated()]
        reference = {"lead_created": lead_created}
    if _section_path(params, "activities") is not None:
        events, acct, raw = load_events(params, reference=reference, quarantine=quarantine,
                                        pending=pending)
        tables.activities = events
        tables.paths["activities"] = _shown(_section_path(params, "activities"), acct)
        tables.accounting["activities"] = acct
        tables.raw["activities"] = raw
    if not leads_carry_label(params["data"]["leads"]):
        _load_outcomes(params, tables, reference, quarantine=quarantine, pending=pending)
    if tables.activities is not None:
        tables.leads = add_features(leads, tables.activities, params)
    return tables


def _load_outcomes(params: dict, tables: CrmTables, reference: dict | None, *,
                   quarantine: bool, pending: list[QuarantineWriter]) -> None:
    """The deals and feedback tables, held to their contracts against the leads."""
    for name in ("deals", "feedback"):
        path = _section_path(params, name)
        if path is None:
            if name == "deals":
                raise ConfigError("params.yaml: set data.deals.path, or data.leads.label when "
                                  "the leads carry their own outcome")
            continue
        good, acct, raw = load_checked(params, name, path, for_training=True,
                                       reference=reference, quarantine=quarantine,
                                       pending=pending)
        if name == "feedback":
            from leadq.pipelines.params.loader import agreement_of

            setattr(tables, name, canonical_feedback(good, params["data"][name],
                                                     agreement_of(params).feedback))
        else:
            setattr(tables, name, canonical_deals(good, params["data"][name]))
        tables.paths[name] = _shown(path, acct)
        tables.accounting[name] = acct
        tables.raw[name] = raw


def load_routing(params: dict) -> pd.DataFrame | None:
    """The scorer's past outputs named by train.routing_scores (a glob, CSV or Parquet):
    lead_id, is_mql, explore, sales_propensity — what decides each lead's IPW weight."""
    pattern = (params.get("train") or {}).get("routing_scores")
    if not pattern:
        return None
    base = Path(params.get("_base_dir", "."))
    paths = sorted(Path(p) for p in glob.glob(str(base / pattern)))
    if not paths:
        raise ConfigError(f"train.routing_scores: no file matches {pattern!r} (from {base})")
    id_col = params["data"]["leads"].get("id")
    if not id_col:
        raise ConfigError("train.routing_scores: the scorer's outputs are matched to leads by "
                          "id, but data.leads.id is null; set it or train.routing_scores: null")
    frames = []
    for path in paths:
        frame = read_table(path, {}, name="routing")
        require_columns(frame, [id_col, "is_mql", "explore", "sales_propensity"], path=path,
                        name="scored leads (train.routing_scores)")
        # holdout: files written before agreement.holdout_rate existed held nobody out.
        frames.append(frame[[id_col, "is_mql", "explore", "sales_propensity"]].assign(
            holdout=frame.get("holdout", False)))
    out = pd.concat(frames, ignore_index=True).rename(columns={id_col: "lead_id"})
    for col in ("is_mql", "explore", "holdout"):
        out[col] = out[col].astype("string").str.strip().str.lower().isin(["true", "1"])
    out["sales_propensity"] = pd.to_numeric(out["sales_propensity"], errors="coerce")
    return out
