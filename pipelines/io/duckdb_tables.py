"""DuckDB files (`duckdb:///path/to/warehouse.duckdb`) as a source and sink, read and written by
the duckdb package directly (a leadq dependency already): no SQLAlchemy dialect is needed.

The semantics are pipelines.io.database's: a table or query read in chunks, every column as
text (as a CSV export would read: `COLUMNS(*)::VARCHAR`, so a timestamp is ISO 8601 and a
boolean true/false); scores staged in a temporary table and upserted by score_key in one
transaction with the rejected rows (database.quarantine_table), committed only after the run's
checks. The URL's path is relative to the working directory (`duckdb:///x.duckdb`) or absolute
(`duckdb:////data/x.duckdb`), as SQLAlchemy's sqlite URLs are.

DuckDB lets one process at a time open a file for writing: a `score` reading and writing the
same file shares one database instance within its process, but another process (a DuckDB
shell, a second job) holding the file makes the run stop with exit 1 (a retry may succeed).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from leadq.errors import BadInputError, LeadqError

SCHEME = "duckdb://"


def is_duckdb_url(value: object) -> bool:
    return str(value).lower().startswith(SCHEME)


def database_file(url: str) -> str:
    """The file a duckdb:/// URL names (`:memory:` for duckdb:///:memory:)."""
    rest = url[len(SCHEME):]
    if not rest.startswith("/"):
        raise BadInputError(f"{url}: expected duckdb:///relative/path.duckdb or "
                            "duckdb:////absolute/path.duckdb")
    path = rest[1:].split("?", 1)[0]
    if not path:
        raise BadInputError(f"{url}: the URL names no database file")
    return path


def connect(url: str, *, must_exist: bool = True):
    """A connection to the file; a missing file is exit 2 when it is read (DuckDB would create
    an empty one), a file held by another process exit 1."""
    import duckdb

    path = database_file(url)
    if must_exist and path != ":memory:" and not Path(path).is_file():
        raise BadInputError(f"{url}: database file {path} not found")
    try:
        return duckdb.connect(path)
    except duckdb.IOException as exc:
        raise LeadqError(f"{url}: cannot open {path}: {exc} (another process may hold it; "
                         "a retry may succeed)") from exc


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quoted(name: str) -> str:
    """`schema.table` or `table`, each part quoted."""
    schema, _, table = name.rpartition(".")
    return (_quote(schema) + "." if schema else "") + _quote(table)


def has_table(con, name: str) -> bool:
    schema, _, table = name.rpartition(".")
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND "
        "table_schema = coalesce(?, current_schema())", [table, schema or None]).fetchone()[0])


def _error(source, exc: Exception) -> BadInputError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return BadInputError(f"{source.label}: {first} (check {source.setting})")


def _sql(source) -> str:
    if source.query is not None:
        return source.query.strip().rstrip(";") + "\n"  # the newline ends a -- comment
    return f"SELECT * FROM {quoted(source.table)}"


@contextlib.contextmanager
def _reading(source):
    import duckdb

    con = connect(source.url)
    try:
        if source.query is None and not has_table(con, source.table):
            raise BadInputError(f"{source.label}: table {source.table!r} does not exist (set "
                                f"{source.setting}, or {source.prefix}query)")
        yield con
    except duckdb.Error as exc:
        raise _error(source, exc) from exc
    finally:
        con.close()


def source_columns(source) -> list[str]:
    with _reading(source) as con:
        return [d[0] for d in con.execute(f"SELECT * FROM ({_sql(source)}) AS leadq_q "
                                          "LIMIT 0").description]


def source_rows(source) -> int:
    with _reading(source) as con:
        return int(con.execute(f"SELECT count(*) FROM ({_sql(source)}) AS leadq_q")
                   .fetchone()[0])


def iter_source(source, size: int) -> Iterator[pd.DataFrame]:
    """Frames of `size` rows, every column as text (NULL: missing), streamed by DuckDB's Arrow
    reader: one batch in memory at a time."""
    import pyarrow as pa

    with _reading(source) as con:
        columns = [d[0] for d in con.execute(f"SELECT * FROM ({_sql(source)}) AS leadq_q "
                                             "LIMIT 0").description]
        reader = con.sql(f"SELECT COLUMNS(*)::VARCHAR FROM ({_sql(source)}) AS leadq_q"
                         ).to_arrow_reader(size)
        pending: list = []
        have = 0
        any_rows = False
        for batch in reader:
            pending.append(batch)
            have += batch.num_rows
            while have >= size:
                table = pa.Table.from_batches(pending)
                any_rows = True
                yield table.slice(0, size).to_pandas()
                rest = table.slice(size)
                pending, have = rest.to_batches(), rest.num_rows
        if have:
            any_rows = True
            yield pa.Table.from_batches(pending).to_pandas()
        if not any_rows:
            yield pd.DataFrame(columns=columns, dtype="str")


# --------------------------------------------------------------------------- the sink

def _column_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMPTZ" if getattr(dtype, "tz", None) is not None else "TIMESTAMP"
    return "VARCHAR"


class DuckDBTableWriter:
    """database.TableWriter's calls for a DuckDB file: scores into `table` upserted by `key`,
    rejected rows appended to `quarantine_table`, all in one transaction."""

    def __init__(self, url: str, table: str, key: list[str], *, formula_guard: bool = True,
                 quarantine_table: str | None = None, run_id: str | None = None) -> None:
        self.url, self.table, self.key = url, table, key
        self.formula_guard = formula_guard
        self.quarantine_table, self.run_id = quarantine_table, run_id
        self.rows = 0
        self.rejected = 0
        self._con = None
        self._stage: str | None = None
        self._columns: list[str] = []
        self._quarantine_columns: set[str] | None = None

    @property
    def label(self) -> str:
        return f"{self.url} (table {self.table})"

    @property
    def quarantine_label(self) -> str | None:
        return f"{self.url} (table {self.quarantine_table})" if self.quarantine_table else None

    def dispose(self) -> None:
        self._close()

    def check_target(self) -> None:
        con = connect(self.url, must_exist=False)
        try:
            if has_table(con, self.table):
                self._existing(con, None)
        finally:
            con.close()

    def _existing(self, con, columns: list[str] | None) -> dict[str, str]:
        """The target's column types; refuses a table that lacks a column leadq writes or a
        primary key / unique constraint on the key."""
        schema, _, name = self.table.rpartition(".")
        have = {row[0]: row[1] for row in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = coalesce(?, current_schema())", [name, schema or None]
        ).fetchall()}
        for col in [*self.key, *(columns or [])]:
            if col not in have:
                raise BadInputError(
                    f"{self.label}: column {col!r} is missing from the scores table, which "
                    f"has {sorted(have)}; add it, or point database.scores_table at a new "
                    "table (leadq creates it)")
        keys = [set(row[0]) for row in con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = ? "
            "AND schema_name = coalesce(?, current_schema()) AND constraint_type IN "
            "('PRIMARY KEY', 'UNIQUE')", [name, schema or None]).fetchall()]
        if set(self.key) not in keys:
            # the key before threshold_version (score_key's last column) joined it
            older = len(self.key) == 3 and set(self.key[:2]) in keys
            raise BadInputError(
                f"{self.label}: the scores table has no primary key or unique constraint on "
                f"({', '.join(self.key)}), which the upsert needs"
                + (" (it is keyed by the earlier (lead id, model_version): a recalibrated bar "
                   "would overwrite the old bar's rows; DuckDB cannot change a key in place, "
                   "so copy it into a table created with PRIMARY KEY "
                   f"({', '.join(self.key)}))" if older else "")
                + "; or point database.scores_table at a new table (leadq creates it)")
        return have

    def _open(self) -> None:
        if self._con is None:
            self._con = connect(self.url, must_exist=False)
            self._con.begin()

    def _begin(self, frame: pd.DataFrame) -> None:
        self._open()
        self._columns = list(frame.columns)
        cols = ", ".join(_quote(c) for c in self._columns)
        if has_table(self._con, self.table):
            self._existing(self._con, self._columns)
        else:
            defs = ", ".join(f"{_quote(c)} {_column_type(frame[c])}"
                             + (" NOT NULL" if c in self.key else "") for c in self._columns)
            keys = ", ".join(_quote(c) for c in self.key)
            self._con.execute(f"CREATE TABLE {quoted(self.table)} ({defs}, PRIMARY KEY "
                              f"({keys}))")
        self._stage = f"leadq_stage_{secrets.token_hex(4)}"
        self._con.execute(f"CREATE TEMPORARY TABLE {_quote(self._stage)} AS SELECT {cols} "
                          f"FROM {quoted(self.table)} WHERE false")

    def _guarded(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self.formula_guard:
            return frame
        from leadq.pipelines.io.spreadsheet import guard_formulas

        others = [c for c in frame.columns if c not in self.key]
        return pd.concat([frame[[c for c in frame.columns if c in self.key]],
                          guard_formulas(frame[others])], axis=1)[list(frame.columns)]

    def write(self, frame: pd.DataFrame) -> None:
        import duckdb

        if frame.empty:
            return
        frame = self._guarded(frame)
        try:
            if self._stage is None:
                self._begin(frame)
            self._insert(self._stage, frame[self._columns])
        except duckdb.Error as exc:
            raise BadInputError(f"{self.label}: cannot write: {exc} (check "
                                "database.scores_table)") from exc
        self.rows += len(frame)

    def _insert(self, table: str, frame: pd.DataFrame) -> None:
        cols = ", ".join(_quote(c) for c in frame.columns)
        view = f"leadq_frame_{secrets.token_hex(4)}"
        self._con.register(view, frame)
        try:
            self._con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {_quote(view)}")
        finally:
            self._con.unregister(view)

    def write_rejected(self, frame: pd.DataFrame) -> None:
        """As database.TableWriter.write_rejected: every cell as text, the run id first."""
        import duckdb

        if frame.empty:
            return
        text = frame.astype("string").astype(object).where(frame.notna(), None)
        text = self._guarded(text)
        text.insert(0, "run_id", self.run_id or "")
        columns = [str(c) for c in text.columns]
        text.columns = columns
        try:
            self._open()
            if self._quarantine_columns is None:
                if has_table(self._con, self.quarantine_table):
                    schema, _, name = self.quarantine_table.rpartition(".")
                    self._quarantine_columns = {r[0] for r in self._con.execute(
                        "SELECT column_name FROM information_schema.columns WHERE "
                        "table_name = ? AND table_schema = coalesce(?, current_schema())",
                        [name, schema or None]).fetchall()}
                else:
                    defs = ", ".join(f"{_quote(c)} VARCHAR" for c in columns)
                    self._con.execute(f"CREATE TABLE {quoted(self.quarantine_table)} ({defs})")
                    self._quarantine_columns = set(columns)
            for col in columns:
                if col not in self._quarantine_columns:
                    self._con.execute(f"ALTER TABLE {quoted(self.quarantine_table)} "
                                      f"ADD COLUMN {_quote(col)} VARCHAR")
                    self._quarantine_columns.add(col)
            self._insert(quoted(self.quarantine_table), text.astype("string"))
        except duckdb.Error as exc:
            raise BadInputError(f"{self.quarantine_label}: cannot write: {exc} (check "
                                "database.quarantine_table)") from exc
        self.rejected += len(text)

    def prepare(self) -> None:
        self.commit(prepare_only=True)

    def commit(self, *, prepare_only: bool = False) -> None:
        import duckdb

        if self._con is None:
            return
        try:
            if self._stage is not None:
                cols = [_quote(c) for c in self._columns]
                keys = [_quote(c) for c in self.key]
                updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
                self._con.execute(
                    f"INSERT INTO {quoted(self.table)} ({', '.join(cols)}) SELECT "
                    f"{', '.join(cols)} FROM {_quote(self._stage)} WHERE true ON CONFLICT "
                    f"({', '.join(keys)}) DO "
                    + (f"UPDATE SET {updates}" if updates else "NOTHING"))
                self._con.execute(f"DROP TABLE {_quote(self._stage)}")
                self._stage = None
            if not prepare_only:
                self._con.commit()
                self._close()
        except duckdb.Error as exc:
            self.abort()
            raise LeadqError(f"{self.label}: cannot commit: {exc}") from exc

    def abort(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.rollback()
        self._close()

    def _close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
        self._con = None
        self._stage = None
