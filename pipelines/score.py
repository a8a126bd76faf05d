"""`leadq score`: score new leads with the champion model and mark the MQLs.

An export without an id column (`data.leads.id: null`) is scored too: the output then holds the
original rows, in input order, with the score columns beside them, and `row_number` (1 = the
first row read as data; a ragged line, quarantined with its line number, is not counted)
stands in for the id wherever leadq needs one: in the quarantine and in the exploration draw,
which hashes the row number. The draw is therefore
reproducible for the same file, chunked or not, but a lead exported again in another position
gets a new draw; give the export an id when that matters.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import BadInputError, LeadqError
from leadq.pipelines.io.files import input_files, output_format, peek_columns, refuse_overwrite
from leadq.pipelines.io.manifest import record_table
from leadq.pipelines.io.progress import log, step
from leadq.pipelines.io.run import record_output, record_table_output
from leadq.pipelines.scoring.core import check_and_score
from leadq.pipelines.scoring.model import load_scoring_model
from leadq.settings import setting


def main(input_path: str, output_path: str, model_uri: str | None = None,
         params_path: str | None = None, chunk_size: int | None = None,
         explain: bool | None = None, max_rejected_share: float | None = None,
         params: dict | None = None) -> dict:
    """Stream the leads file through its contract and the model (pipelines/scoring/stream.py):
    good rows are scored, bad rows quarantined beside the output as `<stem>.rejected.csv`
    (or in contracts.quarantine_dir), and the accounting (read = scored + rejected, per
    reason) printed and logged. With `max_rejected_share` (default
    scoring.max_rejected_share) a run that refused a larger share of its rows publishes
    nothing and exits 3.

    `input_path` / `output_path` may be database URLs (pipelines.io.database): the leads are
    then read from params database.leads_table (or leads_query), the scores upserted into
    database.scores_table by (lead id, model_version, threshold_version) in one
    transaction, the rejected rows appended to database.quarantine_table in the same
    transaction (null: a quarantine file in contracts.quarantine_dir / outputs.dir, named
    after the run), and the manifest goes to outputs.dir."""
    from leadq.pipelines.io import database as db
    from leadq.pipelines.io.quarantine import quarantine_path
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.scoring.stream import DEFAULT_CHUNK_SIZE, row_params, score_file
    from leadq.pipelines.tracking.contracts import load_reference

    # `params`: already loaded and adjusted by the caller (the demo points its tables at --out).
    params = load_params(params_path) if params is None else params
    if chunk_size is not None and chunk_size < 1:
        raise BadInputError(f"--chunk-size {chunk_size}: expected a whole number of rows of "
                            "at least 1 (or leave it out: scoring.chunk_size)")
    source = db.source_for(input_path, params) if db.is_database_url(input_path) else None
    to_table = db.is_database_url(output_path)
    if not to_table:
        output_format(output_path)  # fail on a bad extension before any work
    if max_rejected_share is None:
        max_rejected_share = (params.get("scoring") or {}).get("max_rejected_share")
    elif not 0 <= max_rejected_share <= 1:
        raise BadInputError(f"--max-rejected-share {max_rejected_share}: expected a share "
                            "from 0 to 1 (or leave it out: scoring.max_rejected_share)")
    if to_table and (params.get("database") or {}).get("quarantine_table"):
        rejected_path = None  # database.quarantine_table, in the scores' transaction
    elif to_table:
        # Named after the run, in contracts.quarantine_dir or outputs.dir (no file to sit by).
        scores_table = setting(params, "database.scores_table")
        rejected_path = quarantine_path(params, source=scores_table.replace(".", "_"),
                                        table="leads")
    else:
        rejected_path = quarantine_path(params, output=output_path)
    refuse_overwrite(_read_paths(input_path if source is None else None, params),
                     ([] if to_table else [("scores output", output_path)])
                     + ([] if rejected_path is None else [("quarantine", rejected_path)]))
    # A table or file that cannot be read or lacks a column is bad input (exit 2), whatever
    # the model.
    if source is None:
        columns = peek_columns(input_path, params["data"]["leads"], name="leads")
    else:
        columns = db.source_columns(source)
    if columns is not None:
        from leadq.features.contracts import check_columns

        check_columns(columns, "leads", params,
                      path=input_path if source is None else source.label, for_training=False)
    if to_table:
        _check_scores_table(source, output_path, params)
    require_store(params, model_uri)
    with step("load model"):
        try:
            model = load_scoring_model(params, model_uri)
        except LeadqError as exc:
            if _not_found(exc):  # no champion (or no such version): usage, not a fault
                raise BadInputError(str(exc)) from exc
            raise
    log.info("model %s version %s, MQL bar %.4f (threshold version %s)", model.uri,
             model.version, model.threshold, model.threshold_version)
    run_id = model.tags.get("train_run_id") or getattr(model.pyfunc.metadata, "run_id", None)
    reference = load_reference(run_id)
    if reference is None:
        log.warning("model %s has no stored contract reference: unseen categories are not "
                    "counted", model.uri)
    chunk_size = chunk_size or int((params.get("scoring") or {}).get("chunk_size")
                                   or DEFAULT_CHUNK_SIZE)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    if explain is None:
        from leadq.pipelines.scoring.reasons import explain_by_default

        if source is None:
            explain = explain_by_default(input_path, params)
        else:
            limit = setting(params, "explain.max_rows", int)
            explain = db.source_rows(source) <= limit
    mql = [0]

    # An export without an id is scored by row: the core reads row numbers as the id.
    batch_params = params if params["data"]["leads"].get("id") else row_params(params)

    def score_batch(raw: pd.DataFrame, duplicates: np.ndarray, hashes: np.ndarray):
        check, out = check_and_score(raw, model, batch_params, reference=reference,
                                     scored_at=scored_at, explain=explain,
                                     duplicates=duplicates, hashes=hashes)
        if out is not None:
            mql[0] += int(out["is_mql"].sum())
        return check, out

    from threadpoolctl import threadpool_limits

    # OpenMP threads in HistGradientBoosting's predict spin-wait: on a busy machine two threads
    # scored 8,000 Olist leads in 2.6 s, one thread in 0.4 s. null = no limit.
    n_threads = (params.get("scoring") or {}).get("n_threads")
    limit = threadpool_limits(limits=int(n_threads)) if n_threads else contextlib.nullcontext()
    with limit:
        acct = score_file(input_path if source is not None else Path(input_path),
                          output_path if to_table else Path(output_path), rejected_path,
                          params, score_batch, chunk_size=chunk_size,
                          max_rejected_share=max_rejected_share)
    record_table(acct, params)
    if to_table:
        shown = f"{db.safe_url(output_path)} (table {params['database']['scores_table']})"
        record_table_output(shown, rows=acct.used)
        if rejected_path is None and acct.n_rejected:
            record_table_output(acct.quarantine, rows=acct.n_rejected, kind="quarantine")
    else:
        shown = str(output_path)
        record_output(output_path, "scores", rows=acct.used)
    print(acct.summary(), file=sys.stderr)
    summary = {"rows": acct.used, "mql": mql[0], "output": shown,
               "model_version": model.version, "threshold": model.threshold,
               "threshold_version": model.threshold_version,
               "accounting": acct.as_dict()}
    if to_table:
        summary["output_table"] = params["database"]["scores_table"]
    log.info("wrote %s: %d leads, %d MQLs (%.1f%%)", shown, acct.used, mql[0],
             100 * mql[0] / max(acct.used, 1))
    return summary


def _check_scores_table(source, output_url: str, params: dict) -> None:
    """Before the model is loaded: the scores table is not the table read, the database
    answers, and an existing scores table can take the upsert (exit 2 naming the table and
    column otherwise)."""
    from leadq.pipelines.io import database as db

    sink = db.sink_for(output_url, params, db.score_key(params["data"]["leads"].get("id") or ""))
    if not params["data"]["leads"].get("id"):
        from leadq.pipelines.scoring.stream import _no_id_for_table

        raise _no_id_for_table()
    if source is not None and source.table is not None and \
            db.split_name(source.table) == db.split_name(sink.table) and \
            db.safe_url(source.url) == db.safe_url(output_url):
        raise BadInputError(f"{sink.label}: the scores table would replace the leads table "
                            "this command reads; set database.scores_table to another table "
                            "(leadq never writes to what it reads)")
    try:
        sink.check_target()
    finally:
        sink.dispose()


def _read_paths(input_path: str | None, params: dict) -> list[tuple[str, Path]]:
    """Every file a score run reads: the leads (None: a database table), the params file and
    the tables it names (lookups, the activity log), which its outputs must never replace."""
    from leadq.pipelines.io.urls import is_database_url
    from leadq.pipelines.params.loader import resolve_path

    reads = [] if input_path is None else [("leads input", f)
                                           for f in input_files(input_path, "leads")]
    if params.get("_path"):
        reads.append(("params file", Path(params["_path"])))
    data = params["data"]
    for name, spec in (data.get("lookups") or {}).items():
        if not is_database_url(spec["path"]):
            reads.append((f"data.lookups.{name} file", resolve_path(params, spec["path"])))
    activities = (data.get("activities") or {}).get("path")
    if activities and not is_database_url(activities):
        reads.append(("data.activities file", resolve_path(params, activities)))
    return reads


def require_store(params: dict, model_uri: str | None) -> None:
    """Stop (exit 2) before MLflow is touched when a registry model is asked of a local store
    that does not exist: opening it would create an empty store (mlflow.db, its experiment) and
    then fail to find a champion."""
    from leadq.pipelines.scoring.model import default_model_uri
    from leadq.pipelines.tracking.store import tracking_uri

    uri = tracking_uri(params)
    if not (model_uri or default_model_uri(params)).startswith("models:/"):
        return
    if uri.startswith("sqlite:///"):
        where = Path(uri[len("sqlite:///"):])
    elif uri.startswith("file:") or "://" not in uri:
        where = Path(uri.removeprefix("file://").removeprefix("file:"))
    else:
        return
    if not where.exists():
        source = params.get("_path", "params.yaml")
        raise BadInputError(f"no champion in {uri}: that store does not exist yet; run "
                            f"`leadq train --params {source}` first (or point "
                            "mlflow.tracking_uri / MLFLOW_TRACKING_URI at your store)")


def _not_found(exc: LeadqError) -> bool:
    """The load failed because the registry has no such model, alias or version (MLflow 3
    reports a missing alias as an invalid parameter)."""
    return getattr(exc.__cause__, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST",
                                                          "INVALID_PARAMETER_VALUE")
