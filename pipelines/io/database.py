"""A database as `leadq score`'s source and sink (SQLAlchemy; PostgreSQL is the tested dialect).

`--input` and `--output` may be database URLs (`postgresql://user@host:5432/warehouse`); the
params section `database` names what is read (`leads_table`, or a `leads_query`) and the table
the scores are upserted into (`scores_table`).

- Reading streams: a server-side cursor hands the rows over `chunk_size` at a time, so memory
  stays flat however large the table (the same chunked scorer as for files).
- Writing is one transaction: every chunk goes into a temporary staging table, and only after
  the last chunk passed the run's checks is the staging table merged into the scores table
  (INSERT … ON CONFLICT (lead id, model_version, threshold_version) DO UPDATE) and committed.
  A run that fails, exits 3 or is killed leaves the scores table exactly as it was (an open
  transaction dies with its connection); a re-run the same night with the same model and bar
  replaces rows instead of adding them, and a recalibrated bar adds rows beside the old
  bar's.
- Credentials: the URL's password is never logged, printed or put in a manifest (URLs are
  shown with `***`). Better still, leave it out of the URL: libpq reads PGPASSWORD or
  ~/.pgpass (PGPASSFILE), so neither the command line nor `ps` shows it.
- DuckDB files (`duckdb:///warehouse.duckdb`) are read and written by the duckdb package
  directly, with the same semantics (pipelines.io.duckdb_tables).

SQLAlchemy is imported only when a database URL is used, so `leadq --help` stays fast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from leadq.errors import BadInputError, LeadqError
from leadq.pipelines.io.urls import (  # noqa: F401 - part of this module's API
    expand_env,
    has_password,
    is_database_url,
    safe_url,
)


def _with_driver(url: str):
    """The parsed URL, with a driver leadq can load: SQLAlchemy 2.1 maps a bare postgresql://
    to psycopg (3), while leadq's `postgres` extra installs psycopg2."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(expand_env(url))
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise BadInputError(f"{safe_url(url)}: not a database URL ({exc}); expected e.g. "
                            "postgresql://user@host:5432/dbname") from exc
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def engine_for(url: str):
    """A SQLAlchemy engine for `url`. Statement parameters (lead data) are kept out of error
    messages, which reach logs."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError

    parsed = _with_driver(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        # The write-behind thread inserts, the main thread commits: one connection, two threads.
        connect_args["check_same_thread"] = False
    try:
        engine = create_engine(parsed, hide_parameters=True, connect_args=connect_args)
    except NoSuchModuleError as exc:
        raise BadInputError(f"{safe_url(url)}: SQLAlchemy has no dialect "
                            f"{parsed.drivername!r}") from exc
    except ModuleNotFoundError as exc:
        extra = " (pip install 'leadq[postgres]')" if parsed.get_backend_name() == \
            "postgresql" else ""
        raise BadInputError(f"{safe_url(url)}: the database driver {exc.name!r} is not "
                            f"installed{extra}") from exc
    if parsed.get_backend_name() == "sqlite":
        _transactional_sqlite(engine)
    return engine


def _transactional_sqlite(engine) -> None:
    """Python's sqlite3 commits before a CREATE TABLE on its own, so a failed first run would
    leave an empty scores table: let SQLAlchemy emit BEGIN itself (SQLAlchemy's documented
    recipe for pysqlite)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")


def _db_error(url: str, exc: Exception, what: str, setting: str | None = None) -> LeadqError:
    """A database error as leadq reports it: the server's own first line (which names the
    table or column), never the statement's parameters. A refused statement is bad input
    (exit 2); a connection that failed is worth a retry (exit 1)."""
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    where = f"{safe_url(url)}: {what}: {first}"
    if isinstance(exc, OperationalError) and not _sqlite_missing(first):
        return LeadqError(f"{where} (the database could not be reached or failed; a retry "
                          "may succeed)")
    if isinstance(exc, ProgrammingError | DBAPIError):
        fix = f" (check {setting})" if setting else ""
        return BadInputError(where + fix)
    return LeadqError(where)


def _sqlite_missing(message: str) -> bool:
    # SQLite reports a missing table or column as an OperationalError.
    return message.startswith(("no such table", "no such column", "table ", "near "))


# --------------------------------------------------------------------------- DuckDB files

def _duckdb(url: str) -> bool:
    """duckdb:///file URLs are read and written by the duckdb package itself (no SQLAlchemy
    dialect needed): pipelines.io.duckdb_tables."""
    return str(url).lower().startswith("duckdb://")


def _duckdb_module():
    from leadq.pipelines.io import duckdb_tables

    return duckdb_tables


# --------------------------------------------------------------------------- tables by name

def split_name(name: str) -> tuple[str | None, str]:
    """`schema.table` → (schema, table); `table` → (None, table)."""
    schema, _, table = name.rpartition(".")
    return (schema or None), table


def _quoted(conn, name: str) -> str:
    prep = conn.dialect.identifier_preparer
    schema, table = split_name(name)
    return (prep.quote_schema(schema) + "." if schema else "") + prep.quote(table)


def _has_table(conn, name: str) -> bool:
    from sqlalchemy import inspect

    schema, table = split_name(name)
    return inspect(conn).has_table(table, schema=schema)


# --------------------------------------------------------------------------- the source

@dataclass
class Source:
    """A table or a query on a database: what `leadq score --input <URL>` reads (params
    database.leads_table / leads_query), or any table of `data` whose path is a URL
    (data.<table>.table / query)."""

    url: str
    table: str | None
    query: str | None
    # How the params name the table and query keys: "database.leads_" or "data.deals.".
    prefix: str = "database.leads_"

    @property
    def label(self) -> str:
        """How messages, logs and the manifest name it (password hidden)."""
        what = f"table {self.table}" if self.query is None else self.setting
        return f"{safe_url(self.url)} ({what})"

    @property
    def setting(self) -> str:
        return self.prefix + ("query" if self.query is not None else "table")

    @property
    def stem(self) -> str:
        """A file-name-safe name for it (quarantine file names)."""
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.table) if self.query is None else "query"

    def sql(self, conn) -> str:
        if self.query is not None:
            # The newline ends a trailing `-- comment`, which would otherwise swallow the
            # `) AS leadq_q` leadq writes after the query.
            return self.query.strip().rstrip(";") + "\n"
        return f"SELECT * FROM {_quoted(conn, self.table)}"


def source_for(url: str, params: dict) -> Source:
    cfg = params.get("database") or {}
    query = cfg.get("leads_query")
    table = cfg.get("leads_table")
    if not query and not table:
        raise BadInputError(f"{safe_url(url)}: --input is a database URL but neither "
                            "database.leads_table nor database.leads_query is set")
    return Source(url=url, table=None if query else table, query=query or None)


def table_source(url: str, spec: dict, name: str) -> Source:
    """The Source of data table `name` (leads, deals, lookups.accounts, ...) whose path is the
    database URL `url`: its spec's `table` or `query` (the loader checks one is set)."""
    query, table = spec.get("query"), spec.get("table")
    prefix = f"data.{name}."
    if not query and not table:
        raise BadInputError(f"{safe_url(url)}: data.{name}.path is a database URL but neither "
                            f"{prefix}table nor {prefix}query is set")
    return Source(url=url, table=None if query else table, query=query or None, prefix=prefix)


def table_label(path: object, spec: dict | None, name: str) -> str:
    """How a data table is named in messages, accountings and manifests: its path, or for a
    database its URL without the password and its table or query key."""
    if not is_database_url(path):
        return str(path)
    return table_source(str(path), spec or {}, name).label


def _connect(url: str, engine, what: str):
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return engine.connect()
    except SQLAlchemyError as exc:
        raise _db_error(url, exc, what) from exc


def source_columns(source: Source) -> list[str]:
    """The source's column names, read without its rows; a missing table or a query the server
    refuses is bad input (exit 2) naming it."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    if _duckdb(source.url):
        return _duckdb_module().source_columns(source)

    engine = engine_for(source.url)
    try:
        with _connect(source.url, engine, "cannot connect") as conn:
            if source.query is None and not _has_table(conn, source.table):
                raise BadInputError(f"{safe_url(source.url)}: table {source.table!r} does not "
                                    f"exist (set {source.setting}, or {source.prefix}query)")
            try:
                result = conn.execute(text(f"SELECT * FROM ({source.sql(conn)}) AS leadq_q "
                                           "WHERE 1 = 0"))
                return list(result.keys())
            except SQLAlchemyError as exc:
                raise _db_error(source.url, exc, f"cannot read {source.label}",
                                source.setting) from exc
    finally:
        engine.dispose()


def source_rows(source: Source) -> int:
    """How many rows the source holds (for the progress bar and the --explain default)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    if _duckdb(source.url):
        return _duckdb_module().source_rows(source)

    engine = engine_for(source.url)
    try:
        with _connect(source.url, engine, "cannot connect") as conn:
            try:
                return int(conn.execute(text(f"SELECT count(*) FROM ({source.sql(conn)}) "
                                             "AS leadq_q")).scalar_one())
            except SQLAlchemyError as exc:
                raise _db_error(source.url, exc, f"cannot count {source.label}",
                                source.setting) from exc
    finally:
        engine.dispose()


def _decimals_to_float(frame: pd.DataFrame) -> pd.DataFrame:
    """NUMERIC columns arrive as Decimal objects; the contract reads numbers as floats (as a
    Parquet export's would be)."""
    import decimal

    for col in frame.columns:
        series = frame[col]
        if series.dtype == object:
            first = series.dropna()
            if len(first) and isinstance(first.iloc[0], decimal.Decimal):
                frame[col] = pd.to_numeric(series.map(
                    lambda v: None if v is None else float(v)), errors="coerce")
    return frame


def iter_source(source: Source, chunk_size: int | None) -> Iterator:
    """The source's rows as files.Chunk frames of `chunk_size` rows: only one chunk is in
    memory at a time.

    PostgreSQL (psycopg2) streams `COPY (query) TO STDOUT` as CSV into pyarrow's streaming
    reader, every column as text, as a CSV export would be read (1M leads: 5x faster than
    building rows through a cursor, same peak memory; docs/benchmarks.md). Other databases
    go through a server-side cursor (`stream_results`) and keep their column types."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from leadq.pipelines.io.chunks import Chunk

    size = chunk_size or 100_000
    if _duckdb(source.url):
        offset = 0
        for frame in _duckdb_module().iter_source(source, size):
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            yield Chunk(frame)
        return
    engine = engine_for(source.url)
    offset = 0
    try:
        with _connect(source.url, engine, "cannot connect") as conn:
            try:
                if conn.dialect.driver == "psycopg2":
                    sql = source.sql(conn)
                    try:
                        columns, booleans = _columns_and_booleans(conn, sql)
                    except Exception as exc:
                        if getattr(exc, "pgcode", None) is None:
                            raise
                        raise _stopped(source, exc) from exc  # a query the server refuses
                    frames = _copy_frames(conn, sql, columns, size, source, booleans)
                else:
                    streamed = conn.execution_options(stream_results=True,
                                                      max_row_buffer=size)
                    result = streamed.execute(text(source.sql(conn)))
                    columns = list(result.keys())
                    frames = (_decimals_to_float(pd.DataFrame.from_records(rows,
                                                                           columns=columns))
                              for rows in result.partitions(size))
                any_rows = False
                for frame in frames:
                    any_rows = True
                    frame.index = pd.RangeIndex(offset, offset + len(frame))
                    offset += len(frame)
                    yield Chunk(frame)
                if not any_rows:
                    yield Chunk(pd.DataFrame(columns=columns))
            except (SQLAlchemyError, DBAPIError) as exc:
                raise _db_error(source.url, exc, f"cannot read {source.label}",
                                source.setting) from exc
    finally:
        engine.dispose()


def iter_table(url: str, spec: dict, *, name: str, chunk_size: int | None,
               header_only: bool = False) -> Iterator:
    """Data table `name` from a database, as files.iter_chunks yields a file: Chunk frames of
    `chunk_size` rows (None: one piece), cells as the database's driver gives them (text from
    PostgreSQL, as from a CSV export); `header_only`: one empty frame with the columns."""
    from leadq.pipelines.io.chunks import Chunk

    source = table_source(url, spec, name)
    if header_only:
        if source.query is None:
            _require_table(source)
        yield Chunk(pd.DataFrame(columns=source_columns(source), dtype="str"))
        return
    if source.query is None:
        _require_table(source)  # named, with its setting, before any row is read
    # One piece is a read of the whole table; the stream's own chunks bound memory on the way.
    pieces = iter_source(source, chunk_size or 100_000)
    if chunk_size is not None:
        yield from pieces
        return
    frames = [c.frame for c in pieces]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    yield Chunk(frame)


def read_scores_table(url: str, table: str) -> pd.DataFrame:
    """The whole scores table `leadq score --output <URL>` upserts (database.scores_table):
    what recalibrate, plan, review and lift read when recalibration.scores (or --scores) is
    that URL. A missing table is bad input naming it and the setting."""
    source = Source(url=url, table=table, query=None, prefix="database.scores_")
    _require_table(source)
    frames = [c.frame for c in iter_source(source, None)]
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _require_table(source: Source) -> None:
    if _duckdb(source.url):
        with _duckdb_module()._reading(source):
            return
    engine = engine_for(source.url)
    try:
        with _connect(source.url, engine, "cannot connect") as conn:
            if not _has_table(conn, source.table):
                raise BadInputError(f"{safe_url(source.url)}: table {source.table!r} does not "
                                    f"exist (set {source.setting}, or {source.prefix}query)")
    finally:
        engine.dispose()


_PG_BOOL_OID = 16


def _columns_and_booleans(conn, sql: str) -> tuple[list[str], list[str]]:
    """The query's column names, and those of PostgreSQL type boolean (COPY writes them as
    t / f, where a CSV export and the other drivers give true / false)."""
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(f"SELECT * FROM ({sql}) AS leadq_q WHERE 1 = 0")
        described = cur.description or []
    return ([d[0] for d in described], [d[0] for d in described if d[1] == _PG_BOOL_OID])


class _Counted:
    """The write end of the pipe, counting what the server sent: a parse error after 0 bytes
    is an empty result, after any byte it is data leadq cannot read."""

    def __init__(self, handle) -> None:
        self.handle, self.sent = handle, 0

    def write(self, data) -> int:
        self.sent += len(data)
        return self.handle.write(data)


def _copy_frames(conn, sql: str, columns: list[str], size: int, source: Source,
                 booleans: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """`COPY (sql) TO STDOUT` (CSV, UTF-8) through a pipe into pyarrow's streaming CSV reader,
    in frames of `size` rows of text (NULL → missing, an empty text → "")."""
    import os
    import threading

    import pyarrow as pa
    import pyarrow.csv as pacsv

    read_end, write_end = os.pipe()
    reader, writer = os.fdopen(read_end, "rb"), os.fdopen(write_end, "wb")
    counted = _Counted(writer)
    failed: list[BaseException] = []
    raw = conn.connection.dbapi_connection

    def produce() -> None:
        try:
            with raw.cursor() as cur:
                # ENCODING: the server converts from the database's encoding (LATIN1, ...).
                cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')",
                                counted)
        except BrokenPipeError:
            pass  # the reader stopped early (an error downstream): nothing more to send
        except BaseException as exc:  # raised in the caller's thread below
            failed.append(exc)
        finally:
            writer.close()

    def stop(parse_error: BaseException | None) -> None:
        """Close the read end first (a producer blocked on a full pipe then ends), wait for
        it, and raise what went wrong: the server's reason before the parser's."""
        reader.close()
        worker.join()
        if failed:
            raise _stopped(source, failed[0]) from failed[0]
        if parse_error is not None:
            raise BadInputError(
                f"{source.label}: the rows sent by the database cannot be read as text "
                f"({parse_error}); check the query's columns ({source.setting})"
            ) from parse_error

    worker = threading.Thread(target=produce, name="leadq-copy", daemon=True)
    worker.start()
    as_words = {"t": "true", "f": "false"}
    try:
        try:
            stream = pacsv.open_csv(
                reader,
                read_options=pacsv.ReadOptions(column_names=columns, block_size=1 << 22),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                # COPY's NULL is the unquoted empty field, and only that: text such as NA,
                # null or N/A is a value (pyarrow would otherwise read it as missing).
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns}, null_values=[""],
                    strings_can_be_null=True, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            if counted.sent == 0 and not failed:
                worker.join()
                if not failed:
                    return  # nothing was sent: no rows
            stop(exc)
            return

        def frame_of(table) -> pd.DataFrame:
            frame = table.to_pandas()
            for col in booleans or []:
                frame[col] = frame[col].map(as_words, na_action="ignore")
            return frame

        pending: list = []
        have = 0
        try:
            for batch in stream:
                pending.append(batch)
                have += batch.num_rows
                while have >= size:
                    table = pa.Table.from_batches(pending)
                    yield frame_of(table.slice(0, size))
                    rest = table.slice(size)
                    pending, have = rest.to_batches(), rest.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            stop(exc)
            raise
        worker.join()
        if failed:
            raise _stopped(source, failed[0]) from failed[0]
        if have:
            yield frame_of(pa.Table.from_batches(pending))
    finally:
        if not reader.closed:
            reader.close()
        worker.join()


# SQLSTATE classes of a server or connection in trouble, not of a wrong query: connection
# exception, operator intervention (shutdown, cancel), insufficient resources, transaction
# rollback, system error, internal error.
_TRANSIENT_SQLSTATES = ("08", "57", "53", "40", "58", "XX")


def _stopped(source: Source, exc: BaseException) -> LeadqError:
    """A read that failed part way: a query the server refused on some row (a division by
    zero, a bad cast) is bad input (exit 2) naming the setting; a server or connection in
    trouble is worth a retry (exit 1)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    state = getattr(exc, "pgcode", None) or ""
    if state and not state.startswith(_TRANSIENT_SQLSTATES):
        return BadInputError(f"{source.label}: reading stopped: {first} (check "
                             f"{source.setting})")
    return LeadqError(f"{source.label}: reading stopped: {first} (a retry may succeed)")


# --------------------------------------------------------------------------- the sink

# What a scores row is one of: a lead, scored by one model version under one MQL bar. A
# recalibrated bar (leadq recalibrate) is a new threshold_version, so its rows sit beside the
# old bar's instead of overwriting them, and a re-run with the same versions replaces.
SCORE_KEY = ("model_version", "threshold_version")


def score_key(id_column: str) -> list[str]:
    """The scores table's key for leads whose id is in `id_column`."""
    return [id_column, *SCORE_KEY]


def _column_type(series: pd.Series):
    from sqlalchemy import BigInteger, Boolean, DateTime, Double, Text

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return Boolean()
    if pd.api.types.is_integer_dtype(dtype):
        return BigInteger()
    if pd.api.types.is_float_dtype(dtype):
        return Double()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DateTime(timezone=getattr(dtype, "tz", None) is not None)
    return Text()


class TableWriter:
    """Scores into `table`, upserted by `key` (score_key: lead id, model_version,
    threshold_version) in one transaction.

    `write` (the same call as pipelines.scoring.stream.ChunkWriter's) inserts a chunk into a
    temporary staging table inside an open transaction; `commit` merges the staging table into
    the target and commits; `abort` rolls everything back. The first write creates the target
    (with its primary key) when it does not exist, in the same transaction, so a failed first
    run leaves no table behind either.

    Text cells a spreadsheet would run as formulas get a leading `'` as in the CSV output
    (scoring.csv_formula_guard), except the lead id: the CRM sync matches on it exactly.
    """

    def __init__(self, url: str, table: str, key: list[str], *,
                 formula_guard: bool = True, quarantine_table: str | None = None,
                 run_id: str | None = None) -> None:
        self.url, self.table, self.key = url, table, key
        self.formula_guard = formula_guard
        self.quarantine_table, self.run_id = quarantine_table, run_id
        self.rows = 0
        self.rejected = 0
        self._quarantine_columns: set[str] | None = None
        self.engine = engine_for(url)
        self._conn = None
        self._trans = None
        self._stage = None
        self._merged = False
        self._columns: list[str] = []

    @property
    def label(self) -> str:
        return f"{safe_url(self.url)} (table {self.table})"

    @property
    def quarantine_label(self) -> str | None:
        """How messages and the manifest name the quarantine table (None: none)."""
        if not self.quarantine_table:
            return None
        return f"{safe_url(self.url)} (table {self.quarantine_table})"

    def dispose(self) -> None:
        """Release the connection pool (after check_target, when no write follows)."""
        self.engine.dispose()

    def check_target(self) -> None:
        """Before any work: the database answers, and an existing scores table has the key
        columns and a unique key on them (else exit 2 naming the table and column)."""
        with _connect(self.url, self.engine, "cannot connect") as conn:
            if _has_table(conn, self.table):
                self._existing(conn, None)

    def _existing(self, conn, columns: list[str] | None):
        """The reflected target; refuses one that lacks a column leadq writes or a unique key
        on the key columns (a table keyed by the earlier (lead id, model_version) is refused
        with the statements that migrate it: leadq does not change a table's key itself)."""
        from sqlalchemy import MetaData, Table, inspect

        schema, name = split_name(self.table)
        target = Table(name, MetaData(), schema=schema, autoload_with=conn)
        have = set(target.columns.keys())
        for col in [*self.key, *(columns or [])]:
            if col not in have:
                raise BadInputError(
                    f"{self.label}: column {col!r} is missing from the scores table, which "
                    f"has {sorted(have)}; add it, or point database.scores_table at a new "
                    "table (leadq creates it)")
        insp = inspect(conn)
        pk = insp.get_pk_constraint(name, schema=schema)
        # (columns, how to drop it): the constraint or index the upsert could conflict on
        keys = [(list(pk.get("constrained_columns") or []),
                 f"ALTER TABLE {_quoted(conn, self.table)} DROP CONSTRAINT "
                 f"{conn.dialect.identifier_preparer.quote(pk.get('name') or name + '_pkey')}")]
        keys += [(u["column_names"], f"ALTER TABLE {_quoted(conn, self.table)} DROP CONSTRAINT "
                  f"{conn.dialect.identifier_preparer.quote(u['name'])}")
                 for u in insp.get_unique_constraints(name, schema=schema)]
        keys += [(i["column_names"], f"DROP INDEX "
                  f"{conn.dialect.identifier_preparer.quote(i['name'])}")
                 for i in insp.get_indexes(name, schema=schema) if i.get("unique")]
        if not any(set(k) == set(self.key) for k, _ in keys):
            older = [k for k in keys if set(k[0]) == set(self.key) - set(SCORE_KEY[1:])
                     and set(SCORE_KEY[1:]) <= set(self.key)]
            if older:
                raise self._old_key(conn, older[0][1])
            raise BadInputError(
                f"{self.label}: the scores table has no primary key or unique constraint on "
                f"({', '.join(self.key)}), which the upsert needs; add one, or point "
                "database.scores_table at a new table (leadq creates it)")
        return target

    def _old_key(self, conn, drop: str) -> BadInputError:
        """A table made by a leadq that keyed scores by (lead id, model_version) only: on it, a
        recalibrated bar's scores would overwrite the old bar's. Refused with the two
        statements that migrate it (run once by the table's owner), rather than altered here:
        a nightly job's role should not need to own the table, and other readers may rely on
        its key."""
        cols = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in self.key)
        return BadInputError(
            f"{self.label}: the scores table is keyed by ({', '.join(self.key[:-1])}), as "
            "an earlier leadq made it; scores are now keyed by "
            f"({', '.join(self.key)}) so that a recalibrated bar adds rows instead of "
            f"overwriting the old bar's. Migrate it once: {drop}; ALTER TABLE "
            f"{_quoted(conn, self.table)} ADD PRIMARY KEY ({cols}); (or point "
            "database.scores_table at a new table, which leadq creates)")

    def _open(self) -> None:
        """The connection and the one transaction every write of the run goes into."""
        if self._conn is None:
            self._conn = _connect(self.url, self.engine, "cannot connect")
            self._trans = self._conn.begin()

    def _begin(self, frame: pd.DataFrame) -> None:
        from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, Table

        self._open()
        self._columns = list(frame.columns)
        schema, name = split_name(self.table)
        if _has_table(self._conn, self.table):
            target = self._existing(self._conn, self._columns)
            types = {c.name: c.type for c in target.columns}
        else:
            types = {c: _column_type(frame[c]) for c in self._columns}
            meta = MetaData()
            Table(name, meta, *[Column(c, types[c], nullable=c not in self.key)
                                for c in self._columns],
                  PrimaryKeyConstraint(*self.key), schema=schema)
            meta.create_all(self._conn)
        stage_meta = MetaData()
        self._stage = Table(f"leadq_stage_{secrets.token_hex(4)}", stage_meta,
                            *[Column(c, types[c]) for c in self._columns],
                            prefixes=["TEMPORARY"])
        stage_meta.create_all(self._conn)

    def write(self, frame: pd.DataFrame) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        if frame.empty:
            return
        if self.formula_guard:
            from leadq.pipelines.io.spreadsheet import guard_formulas

            others = [c for c in frame.columns if c not in self.key]
            frame = pd.concat([frame[[c for c in frame.columns if c in self.key]],
                               guard_formulas(frame[others])], axis=1)[list(frame.columns)]
        try:
            if self._stage is None:
                self._begin(frame)
            self._insert(frame[self._columns])
        except SQLAlchemyError as exc:
            raise _db_error(self.url, exc, f"cannot write {self.label}",
                            "database.scores_table") from exc
        self.rows += len(frame)

    def write_rejected(self, frame: pd.DataFrame) -> None:
        """Rejected rows (their columns as read, the reason, and for ragged CSV rows
        `source_line` / `raw_line`) appended to the quarantine table with the run id, in the
        scores' transaction: they appear together with the scores, or neither does.

        Every cell is stored as text (a rejected cell is often not of its column's type: that
        may be why it was refused), guarded against spreadsheet formulas like the quarantine
        CSV, except the lead id. The table is created on the first rejected row; a column it
        lacks (a new leads column, or a ragged row's line columns) is added, as text."""
        from sqlalchemy.exc import SQLAlchemyError

        if frame.empty:
            return
        if not self.quarantine_table:
            raise ValueError("write_rejected: this writer has no quarantine table")
        text = frame.astype("string").astype(object)
        text = text.where(frame.notna(), None)
        if self.formula_guard:
            from leadq.pipelines.io.spreadsheet import guard_formulas

            others = [c for c in text.columns if c not in self.key]
            text = pd.concat([text[[c for c in text.columns if c in self.key]],
                              guard_formulas(text[others])], axis=1)[list(text.columns)]
        text.insert(0, "run_id", self.run_id or "")
        try:
            self._open()
            self._quarantine_table(list(text.columns))
            from sqlalchemy import Column, MetaData, Table, Text

            schema, name = split_name(self.quarantine_table)
            target = Table(name, MetaData(), *[Column(c, Text()) for c in text.columns],
                           schema=schema)
            self._conn.execute(target.insert(), text.to_dict("records"))
        except SQLAlchemyError as exc:
            raise _db_error(self.url, exc, f"cannot write {self.quarantine_label}",
                            "database.quarantine_table") from exc
        self.rejected += len(text)

    def _quarantine_table(self, columns: list[str]) -> None:
        """Create the quarantine table, or add the columns it lacks (text), in the open
        transaction (both are transactional in PostgreSQL, SQLite and DuckDB)."""
        from sqlalchemy import Column, MetaData, Table, Text, inspect

        if self._quarantine_columns is None:
            if _has_table(self._conn, self.quarantine_table):
                schema, name = split_name(self.quarantine_table)
                self._quarantine_columns = {c["name"] for c in inspect(self._conn).get_columns(
                    name, schema=schema)}
            else:
                schema, name = split_name(self.quarantine_table)
                meta = MetaData()
                Table(name, meta, *[Column(c, Text()) for c in columns], schema=schema)
                meta.create_all(self._conn)
                self._quarantine_columns = set(columns)
        prep = self._conn.dialect.identifier_preparer
        for col in columns:
            if col not in self._quarantine_columns:
                self._conn.exec_driver_sql(
                    f"ALTER TABLE {_quoted(self._conn, self.quarantine_table)} ADD COLUMN "
                    f"{prep.quote(col)} TEXT")
                self._quarantine_columns.add(col)

    def _insert(self, frame: pd.DataFrame) -> None:
        if self._conn.dialect.driver == "psycopg2":
            # COPY is ~10x faster than batched INSERTs for a nightly million rows.
            buf = io.StringIO()
            # Missing is written as \\N (COPY's NULL below), so an empty text (a lead
            # with no reasons) stays an empty text, as on the other drivers.
            frame.to_csv(buf, index=False, header=False, na_rep="\\N",
                         date_format="%Y-%m-%d %H:%M:%S%z")
            buf.seek(0)
            prep = self._conn.dialect.identifier_preparer
            cols = ", ".join(prep.quote(c) for c in self._columns)
            cursor = self._conn.connection.dbapi_connection.cursor()
            try:
                cursor.copy_expert(f"COPY {prep.quote(self._stage.name)} ({cols}) FROM STDIN "
                                   "WITH (FORMAT csv, NULL '\\N')", buf)
            finally:
                cursor.close()
            return
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        self._conn.execute(self._stage.insert(), records)

    def prepare(self) -> None:
        """Merge the staging table into the target inside the transaction (the slow step),
        without committing: the caller publishes the quarantine, then commits."""
        self.commit(prepare_only=True)

    def commit(self, *, prepare_only: bool = False) -> None:
        """Merge the staging table into the target (unless prepared) and commit: the one
        moment the target changes."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        if self._conn is None:  # no row scored or rejected: nothing changes
            self.engine.dispose()
            return
        try:
            if not self._merged and self._stage is not None:  # None: rejected rows only
                self._conn.execute(text(self._merge_sql()))
                self._stage.drop(self._conn)
            self._merged = True
            if not prepare_only:
                self._trans.commit()
        except SQLAlchemyError as exc:
            self.abort()
            raise _db_error(self.url, exc, f"cannot write {self.label}",
                            "database.scores_table") from exc
        if not prepare_only:
            self._close()

    def _merge_sql(self) -> str:
        prep = self._conn.dialect.identifier_preparer
        cols = [prep.quote(c) for c in self._columns]
        keys = [prep.quote(c) for c in self.key]
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        # `WHERE true` keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
        return (f"INSERT INTO {_quoted(self._conn, self.table)} ({', '.join(cols)}) "
                f"SELECT {', '.join(cols)} FROM {prep.quote(self._stage.name)} WHERE true "
                f"ON CONFLICT ({', '.join(keys)}) DO "
                + (f"UPDATE SET {updates}" if updates else "NOTHING"))

    def abort(self) -> None:
        if self._trans is not None and self._trans.is_active:
            # A connection that is gone took its transaction with it.
            with contextlib.suppress(Exception):
                self._trans.rollback()
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
        self._conn = self._trans = self._stage = None
        self.engine.dispose()


def sink_for(url: str, params: dict, key: list[str], run_id: str | None = None) -> TableWriter:
    """The writer of database.scores_table (and of database.quarantine_table when set)."""
    from leadq.settings import setting

    cfg = params.get("database") or {}
    table = cfg.get("scores_table")
    if not table:
        raise BadInputError(f"{safe_url(url)}: --output is a database URL but "
                            "database.scores_table is not set")
    quarantine = cfg.get("quarantine_table") or None
    if quarantine and split_name(quarantine) == split_name(table):
        raise BadInputError(f"{safe_url(url)}: database.quarantine_table and "
                            f"database.scores_table are both {table!r}; name two tables")
    guard = bool(setting(params, "scoring.csv_formula_guard"))
    if _duckdb(url):
        return _duckdb_module().DuckDBTableWriter(
            url, table, key, formula_guard=guard, quarantine_table=quarantine,
            run_id=run_id)
    return TableWriter(url, table, key, formula_guard=guard,
                       quarantine_table=quarantine, run_id=run_id)


__all__ = ["is_database_url", "safe_url", "expand_env", "has_password", "Source", "source_for",
           "table_source", "table_label", "source_columns", "source_rows", "iter_source",
           "iter_table", "TableWriter", "sink_for", "score_key"]
