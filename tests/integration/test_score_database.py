"""`leadq score` from a PostgreSQL table into a PostgreSQL table (issue 30, item 3): a re-run the
same night replaces rows instead of adding them, a run that fails half way (killed, or too many
rows refused) leaves the scores table exactly as it was, and a wrong table or column is exit 2
naming it.

PostgreSQL is started on loopback in a throw-away directory (tests/integration/
test_mlflow_postgres.py's helpers) and stopped at the end. .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from tests.integration.test_mlflow_postgres import (
    BINDIR,
    PG_DB,
    PG_USER,
    REQUIRES_POSTGRES,
    start_postgres,
)

pytestmark = REQUIRES_POSTGRES

BAD_LEADS = 3  # rows without created_at: quarantined
SECRET = "n0t-for-logs"  # a password in the URL (the server trusts loopback and ignores it)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, small_crm):
    """A PostgreSQL server whose `leads` table is the synthetic CRM's leads, typed as a
    warehouse would hold them (created_at a timestamp), a few of them without created_at, on a
    database whose sessions show dates day first (DateStyle SQL, DMY)."""
    from sqlalchemy import create_engine

    pg = start_postgres(BINDIR)
    try:
        url = f"postgresql://{PG_USER}:{SECRET}@127.0.0.1:{pg.port}/{PG_DB}"
        leads = pd.read_csv(small_crm["leads"])
        leads["created_at"] = pd.to_datetime(leads["created_at"])
        leads.loc[leads.index[-BAD_LEADS:], "created_at"] = pd.NaT
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.begin() as conn:
            leads.to_sql("leads", conn, index=False)
            leads.drop(columns=["source"]).to_sql("leads_without_source", conn, index=False)
            # a server whose sessions write dates day first: leadq must still read ISO dates
            conn.exec_driver_sql(f"ALTER DATABASE {PG_DB} SET datestyle TO 'SQL, DMY'")
        engine.dispose()
        yield {"pg": pg, "url": url, "leads": leads,
               "dir": tmp_path_factory.mktemp("warehouse")}
    finally:
        pg.stop()


def db_params(store: dict, where: Path, **database) -> str:
    """The trained store's params, reading and writing the warehouse, outputs in `where`."""
    params = yaml.safe_load(Path(store["params_path"]).read_text())
    params = copy.deepcopy(params)
    params["database"] = {"leads_table": "leads", "scores_table": "lead_scores", **database}
    params["outputs"] = {"dir": str(where / "leadq-out")}
    params["scoring"]["n_threads"] = 1
    # the store (sqlite:///mlflow.db) is found relative to the params file: keep it beside it
    tag = hashlib.sha1(str(where).encode()).hexdigest()[:8]
    path = Path(store["dir"]) / f"params-db-{tag}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return str(path)


def run_cli(argv: list[str]) -> tuple[int, dict | None, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli(["--json", *argv])
    text = stdout.getvalue()
    result = json.loads(text[text.index("{"):]) if code == 0 and "{" in text else None
    return code, result, stderr.getvalue() + text


def table_rows(url: str, table: str = "lead_scores",
               order: str = "1, model_version") -> list[tuple] | None:
    """The scores table's rows in key order (None: no such table)."""
    import psycopg2

    from leadq.pipelines.io.database import _with_driver

    u = _with_driver(url)
    with psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
        return cur.fetchall()


def score_argv(w: dict, params: str, *extra: str) -> list[str]:
    return ["score", "--input", w["url"], "--output", w["url"], "--params", params, *extra]


def test_score_twice_the_same_night_keeps_one_row_per_lead_and_version(warehouse,
                                                                        trained_store,
                                                                        tmp_path):
    w = warehouse
    params = db_params(trained_store, tmp_path)
    version = str(trained_store["summary"]["version"])
    uri = ["--model-uri", f"models:/leadq/{version}"]
    code, first, err = run_cli(score_argv(w, params, *uri))
    assert code == 0, err
    rows = table_rows(w["url"])
    n_good = len(w["leads"]) - BAD_LEADS
    assert first["rows"] == len(rows) == n_good
    # the quarantine: database.quarantine_table (default leadq_rejected), the rows with their
    # reason and the run id, committed with the scores and listed in the manifest
    acct = first["accounting"]
    assert acct["read"] == len(w["leads"]) and acct["rejected"] == BAD_LEADS
    manifest = first["manifest"]
    rejected = rejected_rows(w["url"])
    rejected = rejected[rejected["run_id"] == manifest["run_id"]]
    assert len(rejected) == BAD_LEADS
    assert set(rejected["lead_id"]) == set(w["leads"]["lead_id"].iloc[-BAD_LEADS:])
    assert rejected["reason"].str.contains("created_at").all()
    assert not list(tmp_path.rglob("*.rejected.csv"))  # no file holding the rows as well
    assert Path(first["manifest_path"]).parent == tmp_path / "leadq-out"
    outputs = {o["kind"]: o for o in manifest["outputs"]}
    assert outputs["scores"]["rows"] == n_good and "lead_scores" in outputs["scores"]["path"]
    assert outputs["quarantine"]["rows"] == BAD_LEADS and outputs["quarantine"]["table"]
    assert "leadq_rejected" in outputs["quarantine"]["path"] == acct["quarantine"]
    # the password is in no log line, printed result or manifest
    assert SECRET not in err and SECRET not in json.dumps(first)
    assert SECRET not in Path(first["manifest_path"]).read_text()

    time.sleep(1.1)  # scored_at has whole seconds: the second night's rows must differ
    code, second, err = run_cli(score_argv(w, params, *uri))
    assert code == 0, err
    again = table_rows(w["url"])
    assert len(again) == n_good  # replaced, not added
    keys = [(r[0], r[3]) for r in again]
    assert len(set(keys)) == len(keys) and {r[3] for r in again} == {version}
    at = {r[0]: r[4] for r in rows}
    assert all(r[4] > at[r[0]] for r in again)  # every row is the second run's
    assert [r[1] for r in again] == pytest.approx([r[1] for r in rows])
    assert primary_key(w["url"]) == ["lead_id", "model_version", "threshold_version"]
    # the quarantine is a log of runs: the second run's rejected rows beside the first's
    rejected = rejected_rows(w["url"])
    runs = rejected.groupby("run_id").size().to_dict()
    assert runs[first["manifest"]["run_id"]] == runs[second["manifest"]["run_id"]] == BAD_LEADS


def rejected_rows(url: str, table: str = "leadq_rejected") -> pd.DataFrame | None:
    rows = table_rows(url, table, order="run_id, lead_id")
    if rows is None:
        return None
    import psycopg2

    from leadq.pipelines.io.database import _with_driver

    u = _with_driver(url)
    with psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as conn, \
            conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} WHERE false")
        names = [d[0] for d in cur.description]
    return pd.DataFrame(rows, columns=names)


def test_a_quarantine_file_instead_of_a_table(warehouse, trained_store, tmp_path):
    """database.quarantine_table: null keeps the rejected rows in a file named after the run in
    outputs.dir, published just before the commit, listed in the manifest."""
    w = warehouse
    params = db_params(trained_store, tmp_path, quarantine_table=None,
                       scores_table="file_quarantine_scores")
    uri = ["--model-uri", f"models:/leadq/{trained_store['summary']['version']}"]
    code, first, err = run_cli(score_argv(w, params, *uri))
    assert code == 0, err
    quarantine = Path(first["accounting"]["quarantine"])
    assert quarantine.parent == tmp_path / "leadq-out" and quarantine.is_file()
    assert len(pd.read_csv(quarantine)) == BAD_LEADS
    outputs = {o["path"]: o for o in first["manifest"]["outputs"]}
    assert outputs[str(quarantine)]["kind"] == "quarantine"


def primary_key(url: str, table: str = "lead_scores") -> list[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            return inspect(conn).get_pk_constraint(table)["constrained_columns"]
    finally:
        engine.dispose()


def test_too_many_rejected_rows_exit_3_and_leave_the_table_as_it_was(warehouse,
                                                                      trained_store, tmp_path):
    w = warehouse
    params = db_params(trained_store, tmp_path)
    version = str(trained_store["summary"]["version"])
    uri = ["--model-uri", f"models:/leadq/{version}"]
    assert run_cli(score_argv(w, params, *uri))[0] == 0
    before, rejected = table_rows(w["url"]), rejected_rows(w["url"])
    code, _, err = run_cli(score_argv(w, params, *uri, "--max-rejected-share", "0.0001"))
    assert code == 3, err
    assert table_rows(w["url"]) == before
    assert rejected_rows(w["url"]).equals(rejected)  # no quarantine rows either
    assert not list((tmp_path / "leadq-out").glob("*-lead_scores.rejected.csv"))[1:]


def writing(port: int) -> bool:
    """Whether another session holds a transaction that has written (a transaction id), read
    on a fresh connection: statistics views are a snapshot per transaction."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, dbname=PG_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                        "AND pid <> pg_backend_pid() AND datname = %s", (PG_DB,))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_run_killed_half_way_leaves_the_table_as_it_was(warehouse, trained_store, tmp_path):
    """kill -9 while chunks are being staged: the open transaction dies with the connection."""
    w = warehouse
    params = db_params(trained_store, tmp_path, scores_table="killed_scores")
    version = str(trained_store["summary"]["version"])
    argv = ["score", "--input", w["url"], "--output", w["url"], "--params", params,
            "--model-uri", f"models:/leadq/{version}"]
    assert run_cli(argv)[0] == 0
    before = table_rows(w["url"], "killed_scores")
    assert before

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "leadq.pipelines.cli", *argv,
                             "--chunk-size", "100", "--explain"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # A backend with a transaction id has written: the staging table exists and the first
        # chunks are in it. Kill the job then.
        deadline = time.monotonic() + 240
        written = False
        while time.monotonic() < deadline and proc.poll() is None:
            if writing(w["pg"].port):
                written = True
                break
            time.sleep(0.1)
        assert written, proc.stderr.read().decode()[-3000:] if proc.poll() is not None \
            else "no write seen"
        time.sleep(0.5)  # a few more chunks
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
    # the server notices the dropped connection and rolls back; wait until it has
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and writing(w["pg"].port):
        time.sleep(0.2)
    assert table_rows(w["url"], "killed_scores") == before


def test_a_missing_table_or_column_is_exit_2_naming_it(warehouse, trained_store, tmp_path):
    w = warehouse
    version = str(trained_store["summary"]["version"])
    uri = ["--model-uri", f"models:/leadq/{version}"]
    params = db_params(trained_store, tmp_path, leads_table="no_such_leads")
    code, _, err = run_cli(score_argv(w, params, *uri))
    assert code == 2 and "no_such_leads" in err and "database.leads_table" in err, err

    params = db_params(trained_store, tmp_path / "b", leads_table="leads_without_source")
    code, _, err = run_cli(score_argv(w, params, *uri))
    assert code == 2 and "leads_without_source" in err and "column(s) source" in err, err

    # a scores table that exists without a column leadq writes
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=w["pg"].port, user=PG_USER,
                          dbname=PG_DB) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE narrow_scores (lead_id text, model_version text, "
                    "threshold_version text, score double precision, "
                    "PRIMARY KEY (lead_id, model_version, threshold_version))")
    params = db_params(trained_store, tmp_path / "c", scores_table="narrow_scores")
    code, _, err = run_cli(score_argv(w, params, *uri))
    assert code == 2 and "narrow_scores" in err and "'is_mql'" in err, err
    assert table_rows(w["url"], "narrow_scores") == []
    assert SECRET not in err


def test_a_query_failing_on_its_last_rows_is_exit_2_and_changes_nothing(warehouse,
                                                                         trained_store,
                                                                         tmp_path):
    """The server refuses a row deep into the stream (after whole chunks were scored and
    staged): the run names the setting, publishes no quarantine and leaves the table as it
    was."""
    w = warehouse
    uri = ["--model-uri", f"models:/leadq/{trained_store['summary']['version']}"]
    params = db_params(trained_store, tmp_path, scores_table="late_failure")
    assert run_cli(score_argv(w, params, *uri))[0] == 0
    before = table_rows(w["url"], "late_failure")
    last = w["leads"]["lead_id"].iloc[-1]
    params = db_params(trained_store, tmp_path / "boom", scores_table="late_failure",
                       leads_query="SELECT *, 1 / (CASE WHEN lead_id = '" + last
                       + "' THEN 0 ELSE 1 END) AS boom FROM leads")
    code, _, err = run_cli(score_argv(w, params, *uri, "--chunk-size", "500"))
    assert code == 2 and "division by zero" in err and "database.leads_query" in err, err
    assert table_rows(w["url"], "late_failure") == before
    assert not list((tmp_path / "boom").rglob("*.rejected.csv"))
    # a query failing before its first row, and one with no rows at all
    params = db_params(trained_store, tmp_path / "first", scores_table="late_failure",
                       leads_query="SELECT *, 1 / 0 AS boom FROM leads")
    code, _, err = run_cli(score_argv(w, params, *uri))
    assert code == 2 and "division by zero" in err, err
    params = db_params(trained_store, tmp_path / "none", scores_table="late_failure",
                       leads_query="SELECT * FROM leads WHERE false")
    code, _, err = run_cli(score_argv(w, params, *uri))
    assert code == 2 and "empty" in err, err
    assert table_rows(w["url"], "late_failure") == before


def _read_all(url: str, table: str | None = None, query: str | None = None,
              chunk: int = 2) -> pd.DataFrame:
    from leadq.pipelines.io import database as db

    chunks = list(db.iter_source(db.Source(url=url, table=table, query=query), chunk))
    return pd.concat([c.frame for c in chunks], ignore_index=True)


def test_copy_keeps_text_as_the_database_holds_it(warehouse):
    """What COPY sends arrives as a CSV export would read: NA, null and N/A are words, only
    NULL is missing, an empty text stays empty, booleans are true/false, and a LATIN1 database
    is read in UTF-8. A `-- comment` ending the query does not break it."""
    import psycopg2

    from leadq.pipelines.io.database import _with_driver

    u = _with_driver(warehouse["url"])
    conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname=u.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS odd_values")
        cur.execute("CREATE TABLE odd_values (id text, country text, vip boolean)")
        cur.execute("INSERT INTO odd_values VALUES ('1', 'NA', true), ('2', 'null', false), "
                    "('3', 'N/A', NULL), ('4', '', true), ('5', NULL, false)")
        cur.execute("DROP DATABASE IF EXISTS latin")
        cur.execute("CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0")
    conn.close()
    frame = _read_all(warehouse["url"], table="odd_values")
    assert frame["country"].tolist()[:4] == ["NA", "null", "N/A", ""]
    assert pd.isna(frame["country"].iloc[4])
    assert frame["vip"].iloc[[0, 1, 3, 4]].tolist() == ["true", "false", "true", "false"]
    assert pd.isna(frame["vip"].iloc[2])
    commented = _read_all(warehouse["url"],
                          query="SELECT id FROM odd_values WHERE id <> '9' -- all of them")
    assert commented["id"].tolist() == ["1", "2", "3", "4", "5"]

    latin_url = warehouse["url"].rsplit("/", 1)[0] + "/latin"
    lconn = psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname="latin")
    lconn.autocommit = True
    lconn.set_client_encoding("UTF8")  # the server stores the names in LATIN1
    with lconn.cursor() as cur:
        cur.execute("CREATE TABLE names (id text, last_name text)")
        cur.execute("INSERT INTO names VALUES ('1', 'Müller'), ('2', 'Ørsted')")
    lconn.close()
    names = _read_all(latin_url, table="names")
    assert names["last_name"].tolist() == ["Müller", "Ørsted"]


def test_a_password_anywhere_in_the_url_is_hidden_and_a_bad_url_is_exit_2():
    from leadq.errors import BadInputError
    from leadq.pipelines.io.database import engine_for, safe_url

    shown = safe_url("postgresql://u:s3cret@host/db?password=x2&sslmode=require")
    assert "s3cret" not in shown and "x2" not in shown and "sslmode=require" in shown
    with pytest.raises(BadInputError, match="not a database URL"):
        engine_for("postgresql://u:p@host:notaport/db")


def test_the_sink_keeps_an_empty_text_apart_from_missing(warehouse):
    """A lead with no reasons has an empty reasons text: stored as '', not as NULL."""
    import numpy as np

    from leadq.pipelines.io.database import TableWriter

    sink = TableWriter(warehouse["url"], "empty_text_scores", ["lead_id", "model_version"])
    sink.write(pd.DataFrame({"lead_id": ["a", "b"], "model_version": ["1", "1"],
                             "score": [0.5, np.nan], "reasons_positive": ["", None]}))
    sink.prepare()
    sink.commit()
    rows = table_rows(warehouse["url"], "empty_text_scores")
    assert [(r[0], r[3]) for r in rows] == [("a", ""), ("b", None)]
    assert rows[1][2] is None


def test_an_old_key_is_refused_and_its_migration_statements_work(warehouse):
    """A scores table an earlier leadq keyed by (lead id, model_version) is exit 2 with the
    statements that migrate it; run as given, they do, and a recalibrated bar then adds rows
    beside the old bar's."""
    import re

    import psycopg2

    from leadq.errors import BadInputError
    from leadq.pipelines.io.database import TableWriter, score_key

    def frame(score: float, bar: str) -> pd.DataFrame:
        return pd.DataFrame({"lead_id": ["a", "b"], "score": [score] * 2,
                             "model_version": "4", "threshold_version": bar})

    url = warehouse["url"]
    old = TableWriter(url, "keyed_before", ["lead_id", "model_version"])
    old.write(frame(0.1, "0"))
    old.commit()
    sink = TableWriter(url, "keyed_before", score_key("lead_id"))
    with pytest.raises(BadInputError) as caught:
        sink.check_target()
    message = str(caught.value)
    assert "keyed_before" in message and SECRET not in message
    statements = re.search(r"Migrate it once: (.*?); \(or point", message).group(1)
    with psycopg2.connect(host="127.0.0.1", port=warehouse["pg"].port, user=PG_USER,
                          dbname=PG_DB) as conn, conn.cursor() as cur:
        for statement in statements.split("; "):
            cur.execute(statement)
    sink.check_target()
    for score, bar in ((0.5, "1"), (0.6, "1")):  # the new bar twice: added, then replaced
        sink = TableWriter(url, "keyed_before", score_key("lead_id"))
        sink.write(frame(score, bar))
        sink.commit()
    got = [(r[0], r[1], r[3]) for r in table_rows(url, "keyed_before")]
    assert sorted(got) == [("a", 0.1, "0"), ("a", 0.6, "1"), ("b", 0.1, "0"), ("b", 0.6, "1")]
