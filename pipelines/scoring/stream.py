"""Streaming scoring: read → check → score → write, chunk by chunk, in constant memory.

The output and the quarantine are written to temporary files beside their targets and renamed
into place only after the last chunk passed the table-level verdict, so a failure at any point
(even "every row bad", known only at the end) leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from leadq.features.contracts import check_columns, check_totals, id_column
from leadq.models.routing import id_hashes
from leadq.pipelines.io.files import (
    input_files,
    iter_chunks,
    output_format,
    publish_mode,
    publish_together,
    refuse_overwrite,
    table_format,
    temp_beside,
)
from leadq.pipelines.io.progress import log
from leadq.pipelines.io.quarantine import (
    Accounting,
    IdTracker,
    QuarantineWriter,
    formula_guard,
    required_columns,
)
from leadq.pipelines.io.spreadsheet import guard_formulas

T = TypeVar("T")

DEFAULT_CHUNK_SIZE = 100_000
LOG_EVERY_SECONDS = 10.0
_END = object()


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield from `items`, produced by a background thread up to `depth` items ahead.

    Parquet decoding and CSV parsing run in C with the GIL released, so the next chunk is
    read while this one is validated and scored. An error in the reader is raised here, in
    the caller's thread; when the caller stops early the reader stops too.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="leadq-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class WriteBehind:
    """Runs `write(frame)` calls in order on a background thread, one call queued at most,
    so a chunk's Parquet encoding overlaps the next chunk's scoring. `close` waits for the
    last write; a failed write is raised by the next `put` or by `close`."""

    def __init__(self, write: Callable[[pd.DataFrame], None]) -> None:
        self._write = write
        self._slots: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="leadq-write-behind",
                                        daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while (frame := self._slots.get()) is not _END:
            if self._error is None:  # after a failure, drain without writing
                try:
                    self._write(frame)
                except BaseException as exc:
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, frame: pd.DataFrame) -> None:
        self._raise()
        self._slots.put(frame)

    def close(self) -> None:
        """Wait for every queued write; raise the first failure."""
        if self._worker.is_alive():
            self._slots.put(_END)
            self._worker.join()
        self._raise()


class ChunkWriter:
    """CSV or Parquet written chunk by chunk to a temporary file; `commit` renames it (with
    the mode the umask gives). CSV cells a spreadsheet would run as formulas get a leading `'`
    (leadq.pipelines.io.spreadsheet) unless `formula_guard` is off; Parquet keeps raw values."""

    def __init__(self, path: str | Path, *, formula_guard: bool = True) -> None:
        self.path = Path(path)
        self.fmt = output_format(self.path)
        self.formula_guard = formula_guard and self.fmt == "csv"
        self.tmp = temp_beside(self.path)
        self.rows = 0
        self._parquet = None
        self._header = True
        self._empty: pd.DataFrame | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.formula_guard:
            frame = guard_formulas(frame)
        if frame.empty:
            if self._empty is None:
                self._empty = frame
            return
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            else:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema,
                                             preserve_index=False)
            self._parquet.write_table(table)
        else:
            frame.to_csv(self.tmp, index=False, header=self._header,
                         mode="w" if self._header else "a")
            self._header = False
        self.rows += len(frame)

    def finish(self) -> tuple[Path, Path]:
        """Complete the temporary file (footer, mode) and return (it, target) for
        files.publish_together, so only renames remain."""
        if self.rows == 0 and self._empty is not None:
            self._header = True
            if self.fmt == "parquet":
                self._empty.to_parquet(self.tmp, index=False)
            else:
                self._empty.to_csv(self.tmp, index=False)
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        publish_mode(self.tmp)
        return self.tmp, self.path

    def commit(self) -> Path:
        publish_together([self.finish()])
        return self.path

    def abort(self) -> None:
        if self._parquet is not None:
            with contextlib.suppress(Exception):  # the file is being thrown away
                self._parquet.close()
        self.tmp.unlink(missing_ok=True)


class Progress:
    """Rows and rows/s: a rich bar on a terminal, a log line every few seconds otherwise."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total, self.label = total, label
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"),
                            console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="")

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, advance=rows, rate=f"{self.rate():,.0f} rows/s")
        elif now - self._last >= LOG_EVERY_SECONDS:
            self._last = now
            of = f" of {self.total:,}" if self.total else ""
            log.info("%s: %s%s rows (%s rows/s)", self.label, f"{self.done:,}", of,
                     f"{self.rate():,.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _row_count(path: Path) -> int | None:
    """Rows in a Parquet input (file, directory or glob), from the footers; None for others."""
    files = input_files(path, "leads")
    if all(table_format(f) == "parquet" for f in files):
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return None


ROW_COLUMN = "row_number"  # stands in for the id of an export without one (1 = first data row)


def row_params(params: dict) -> dict:
    """The params with ROW_COLUMN as the lead id: what the scoring core reads for an export
    without an id column (row numbers are unique, so the id rules hold trivially)."""
    out = copy.deepcopy(params)
    out["data"]["leads"]["id"] = ROW_COLUMN
    return out


def beside(rows: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The input rows (as read) with the score columns after them; an input column named like
    a score column keeps its values as `<name>_input`."""
    scores = scored.drop(columns=[ROW_COLUMN]).reset_index(drop=True)
    rows = rows.reset_index(drop=True)
    rows = rows.rename(columns={c: f"{c}_input" for c in rows.columns if c in scores.columns})
    return pd.concat([rows, scores], axis=1)


class TableQuarantine:
    """QuarantineWriter's calls for database.quarantine_table: the rejected rows go, through
    the same write-behind queue as the scores (one connection, used by one thread, in order),
    into the scores writer's transaction (database.TableWriter.write_rejected)."""

    def __init__(self, sink, submit: Callable) -> None:
        self.sink, self.submit = sink, submit
        self.rows = 0

    def write(self, rows: pd.DataFrame, reasons: pd.Series) -> None:
        from leadq.pipelines.io.quarantine import reason_column

        if rows.empty:
            return
        out = rows.copy()
        out[reason_column(rows.columns)] = reasons.loc[rows.index].to_numpy()
        self.submit(self.sink.write_rejected, out)
        self.rows += len(out)

    def write_ragged(self, rows: list, columns: list[str]) -> None:
        from leadq.pipelines.io.files import ragged_frame
        from leadq.pipelines.io.quarantine import reason_column

        if not rows:
            return
        out = ragged_frame(rows, list(columns))
        out.insert(len(columns), reason_column(columns), [r.reason for r in rows])
        self.submit(self.sink.write_rejected, out)
        self.rows += len(out)

    def abort(self) -> None:
        """Nothing of its own to undo: the scores writer's rollback takes the rows back."""


def score_file(
    input_path: Path | str,
    output_path: Path | str,
    quarantine_path: Path | None,
    params: dict,
    score_batch: Callable[[pd.DataFrame, np.ndarray, np.ndarray], tuple],
    *,
    chunk_size: int | None,
    max_rejected_share: float | None = None,
) -> Accounting:
    """Stream `input_path` through `score_batch` into `output_path`.

    `score_batch(raw_chunk, duplicates, id_hashes)` is the scoring core's per-batch step
    (leadq.pipelines.scoring.core.check_and_score, with the model bound): it returns the
    contract's verdict and the output rows of the good rows. `duplicates` marks ids seen in an
    earlier chunk, so a streamed file is judged like one piece. Rejected rows go to
    `quarantine_path`, ragged CSV rows (wrong field count) too, counted like the others
    (None, with a database output: to database.quarantine_table in the scores' transaction).
    Both files appear only if the whole run succeeds: a run that refused more than
    `max_rejected_share` of its rows (the scheduler's policy) publishes neither
    (TooManyRejectedError, exit 3).

    An export without an id (`data.leads.id: null`) is scored by row: each chunk gets a
    ROW_COLUMN of running row numbers that stands in for the id (`score_batch` must read
    `row_params(params)`), the output is every good input row as read with the score columns
    beside it, in input order, and the quarantine names rows by that number.

    Either end may be a database URL (pipelines.io.database): the leads are then read from
    params database.leads_table / leads_query through a server-side cursor, and the scores
    upserted into database.scores_table in one transaction committed only after the quarantine
    file is published (a failed commit removes it again), so the pair is still all or nothing.
    """
    from leadq.pipelines.io import database as db

    spec = params["data"]["leads"]
    by_row = not spec.get("id")
    checked = row_params(params) if by_row else params
    idc = id_column("leads", checked)
    rows_seen = 0
    source = db.source_for(str(input_path), params) if db.is_database_url(input_path) \
        else None
    to_table = db.is_database_url(output_path)
    if source is None:
        input_path = Path(input_path)
    label = input_path if source is None else source.label
    acct = Accounting(table="leads", path=str(label))
    tracker = IdTracker()
    guard = formula_guard(params)
    reads = [] if source is not None else [("leads input", f)
                                           for f in input_files(input_path, "leads")]
    refuse_overwrite(reads, ([] if to_table else [("scores output", output_path)])
                     + ([] if quarantine_path is None else [("quarantine", quarantine_path)]))
    if to_table:
        if by_row:
            raise _no_id_for_table()
        from leadq.pipelines.io.run import naming_run

        out = db.sink_for(str(output_path), params, db.score_key(idc),
                          run_id=naming_run().run_id)
    else:
        out = ChunkWriter(output_path, formula_guard=guard)
    # Writing the last chunk overlaps this chunk's checks and model (one job at a time, in
    # order: a database writer's connection is used by that one thread).
    writes = WriteBehind(lambda job: job[0](job[1]))
    if quarantine_path is None:
        if not to_table or not out.quarantine_table:
            raise ValueError("score_file: no quarantine file and no database.quarantine_table")
        quarantine = TableQuarantine(out, lambda write, frame: writes.put((write, frame)))
    else:
        quarantine = QuarantineWriter(quarantine_path, formula_guard=guard)
    name = input_path.name if source is None else (source.table or "query")
    progress = Progress(_row_count(input_path) if source is None else None, f"score {name}")
    first = True
    rejected_tmp = None
    try:
        if source is None:
            chunks = iter_chunks(input_path, spec, name="leads", chunk_size=chunk_size,
                                 required=required_columns("leads", params,
                                                           for_training=False))
        else:
            chunks = db.iter_source(source, chunk_size)
        for piece in read_ahead(chunks):
            chunk = piece.frame
            if first:
                check_columns(list(chunk.columns), "leads", params, path=label,
                              for_training=False)
                if by_row and ROW_COLUMN in chunk.columns:
                    from leadq.errors import BadInputError

                    raise BadInputError(
                        f"{label}: the leads have a column named {ROW_COLUMN!r}, which "
                        "leadq adds to an export without an id; set data.leads.id")
                first = False
            if piece.ragged:
                acct.add_ragged(piece.ragged)
                quarantine.write_ragged(piece.ragged, list(chunk.columns))
                progress.advance(len(piece.ragged))
            n_read = len(chunk)
            chunk = chunk.reset_index(drop=True)
            if by_row:
                chunk.insert(0, ROW_COLUMN, (np.arange(n_read) + rows_seen + 1).astype(str))
            rows_seen += n_read
            ids = chunk[idc].astype("string").str.strip()  # as typed ids will be
            valid = (ids != "").fillna(False).to_numpy(dtype=bool)
            hashes = id_hashes(ids)  # once: duplicate tracking and the explore draw
            repeats = tracker.repeats(hashes, valid)
            check, scored = score_batch(chunk, repeats, hashes)
            acct.add(check)
            if check.bad.any():
                quarantine.write(chunk.loc[check.bad], check.reasons)
            if scored is not None:  # a chunk of bad rows only adds nothing; "all bad" fails
                # at the end, in check_totals
                writes.put((out.write, beside(chunk.loc[~check.bad], scored) if by_row
                            else scored))
            progress.advance(n_read)
        if first:
            raise_empty(label)
        check_totals("leads", checked, path=label, rows=acct.read,
                     rejected=dict(acct.rejected), duplicate_ids=acct.duplicate_ids,
                     examples=acct.examples)
        _check_rejected_share(acct, max_rejected_share, label)
        writes.close()
        # Scores and quarantine are published together or not at all: rows refused by this
        # run must never be missing beside scores that were published.
        if isinstance(quarantine, TableQuarantine):
            out.prepare()  # scores and rejected rows: one transaction, one COMMIT
            out.commit()
        elif to_table:
            rejected_tmp, _ = quarantine.move()
            # The merge (the slow step) runs before the quarantine is published, so only the
            # COMMIT itself sits between the two.
            out.prepare()
            publish_together([(rejected_tmp, quarantine.path)])
            try:
                out.commit()
            except BaseException:
                if rejected_tmp is not None:
                    quarantine.path.unlink(missing_ok=True)
                raise
        else:
            rejected_tmp, _ = quarantine.move()
            publish_together([(rejected_tmp, quarantine.path), out.finish()])
    except BaseException:
        with contextlib.suppress(BaseException):  # the first error is the one to report
            writes.close()
        out.abort()
        quarantine.abort()
        progress.close()
        raise
    progress.close()
    if isinstance(quarantine, TableQuarantine):
        acct.quarantine = out.quarantine_label if quarantine.rows else None
    else:
        acct.quarantine = None if rejected_tmp is None else str(quarantine.path)
    log.info("scored %s rows in %.1fs (%s rows/s)", f"{acct.read:,}",
             time.perf_counter() - progress.start, f"{progress.rate():,.0f}")
    return acct


def _no_id_for_table() -> Exception:
    from leadq.errors import BadInputError

    return BadInputError("--output is a database table, which is keyed by (lead id, "
                         "model_version, threshold_version): set data.leads.id to the leads' "
                         "id column")


def _check_rejected_share(acct: Accounting, limit: float | None,
                          input_path: Path | str) -> None:
    """Stop before publishing when more rows were refused than the scheduler allows."""
    if limit is None or not acct.read:
        return
    share = acct.n_rejected / acct.read
    if share > limit:
        from leadq.errors import TooManyRejectedError

        raise TooManyRejectedError(
            f"{input_path}: {acct.n_rejected:,} of {acct.read:,} rows ({share:.1%}) were "
            f"refused, more than the allowed {limit:.1%} (--max-rejected-share / "
            f"scoring.max_rejected_share); nothing was published. Reasons: "
            f"{dict(acct.rejected.most_common(5))}")


def raise_empty(path: Path | str) -> None:
    from leadq.errors import BadInputError

    raise BadInputError(f"{path}: leads file is empty (check: not empty)")


__all__ = ["score_file", "ChunkWriter", "Progress", "WriteBehind", "read_ahead",
           "DEFAULT_CHUNK_SIZE"]
