"""The database source and sink of `leadq score` (pipelines/io/database.py) on SQLite, which
needs no server: streamed chunks, the staged upsert that changes the table only on commit, and
the refusals that name the table and column. PostgreSQL end to end: tests/integration/
test_score_database.py."""

from __future__ import annotations

import importlib.util
import sqlite3
import threading

import pandas as pd
import pytest

from leadq.errors import BadInputError, ConfigError
from leadq.pipelines.io import database as db


def test_database_urls_are_told_from_paths():
    for url in ("postgresql://u@h/db", "postgresql+psycopg2://u:p@h:5432/db",
                "sqlite:///warehouse.db", "duckdb:///x.duckdb"):
        assert db.is_database_url(url), url
    for path in ("leads.csv", "/data/leads.csv", r"C:\data\leads.csv", "s3://bucket/x.parquet",
                 "file:///data/leads.csv", "exports/*.parquet"):
        assert not db.is_database_url(path), path


def test_the_password_is_never_shown():
    shown = db.safe_url("postgresql://leadq:s3cr%40t@db.internal:5432/warehouse")
    assert "s3cr" not in shown and "***" in shown and "db.internal" in shown
    assert "s3cr" not in db.safe_url("postgresql://leadq:s3cret@[bad")


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None
                    or importlib.util.find_spec("psycopg") is not None,
                    reason="needs psycopg2 without psycopg (leadq's postgres extra)")
def test_a_bare_postgresql_url_uses_the_installed_driver():
    assert db._with_driver("postgresql://u@h/db").drivername == "postgresql+psycopg2"


@pytest.fixture
def warehouse(tmp_path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        pd.DataFrame({"lead_id": [f"L{i:03d}" for i in range(25)],
                      "employees": [float(i) for i in range(25)]}).to_sql("leads", conn,
                                                                          index=False)
    return f"sqlite:///{path}"


def test_the_source_streams_in_chunks(warehouse):
    source = db.source_for(warehouse, {"database": {"leads_table": "leads"}})
    chunks = [c.frame for c in db.iter_source(source, 10)]
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert list(chunks[2].index) == list(range(20, 25))  # one running index, as for files
    assert list(chunks[0].columns) == ["lead_id", "employees"]
    assert db.source_columns(source) == ["lead_id", "employees"]
    assert db.source_rows(source) == 25
    query = db.source_for(warehouse, {"database": {
        "leads_table": "leads", "leads_query": "SELECT * FROM leads WHERE employees < 3;"}})
    assert query.table is None and sum(len(c.frame) for c in db.iter_source(query, 2)) == 3


def test_a_missing_table_or_bad_query_names_it_and_the_setting(warehouse):
    with pytest.raises(BadInputError, match="no_leads.*database.leads_table"):
        db.source_columns(db.source_for(warehouse, {"database": {"leads_table": "no_leads"}}))
    bad = db.source_for(warehouse, {"database": {"leads_query": "SELECT nope FROM leads"}})
    with pytest.raises(BadInputError, match="nope.*database.leads_query"):
        db.source_columns(bad)


def scores(ids: list[str], score: float, version: str = "1") -> pd.DataFrame:
    return pd.DataFrame({"lead_id": ids, "score": [score] * len(ids),
                         "model_version": version, "reasons_positive": "=HYPERLINK(1)"})


def rows(url: str, table: str = "lead_scores", order: str = "lead_id, model_version"
         ) -> list[tuple]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


def test_the_sink_upserts_by_lead_and_version_only_on_commit(warehouse):
    key = ["lead_id", "model_version"]
    sink = db.TableWriter(warehouse, "lead_scores", key)
    sink.write(scores(["=a", "b"], 0.1))
    sink.write(scores(["c"], 0.1))
    sink.commit()
    first = rows(warehouse)
    assert [r[0] for r in first] == ["=a", "b", "c"]  # the id exactly as the CRM has it ...
    assert {r[3] for r in first} == {"'=HYPERLINK(1)"}  # ... other text guarded

    # a re-run the same night replaces; another model version adds
    sink = db.TableWriter(warehouse, "lead_scores", key)
    sink.write(scores(["b", "c"], 0.9))
    sink.write(scores(["b"], 0.5, version="2"))
    sink.commit()
    assert [(r[0], r[1], r[2]) for r in rows(warehouse)] == [
        ("=a", 0.1, "1"), ("b", 0.9, "1"), ("b", 0.5, "2"), ("c", 0.9, "1")]

    # a run that fails before its commit changes nothing, even a write from another thread
    before = rows(warehouse)
    sink = db.TableWriter(warehouse, "lead_scores", key)
    worker = threading.Thread(target=sink.write, args=(scores(["a", "b", "z"], 0.0),))
    worker.start()
    worker.join()
    sink.abort()
    assert rows(warehouse) == before


def test_a_failed_first_run_leaves_no_table(warehouse):
    sink = db.TableWriter(warehouse, "fresh_scores", ["lead_id", "model_version"])
    sink.write(scores(["a"], 0.1))
    sink.abort()
    with sqlite3.connect(warehouse.removeprefix("sqlite:///")) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert "fresh_scores" not in names


def test_a_scores_table_that_cannot_take_the_upsert_is_refused_by_name(warehouse):
    path = warehouse.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE narrow (lead_id TEXT, model_version TEXT, score REAL, "
                     "PRIMARY KEY (lead_id, model_version))")
        conn.execute("CREATE TABLE no_key (lead_id TEXT, model_version TEXT, score REAL, "
                     "reasons_positive TEXT)")
    key = ["lead_id", "model_version"]
    with pytest.raises(BadInputError, match="narrow.*'reasons_positive' is missing"):
        db.TableWriter(warehouse, "narrow", key).write(scores(["a"], 0.1))
    with pytest.raises(BadInputError, match="no_key.*no primary key or unique constraint"):
        db.TableWriter(warehouse, "no_key", key).check_target()
    assert rows(warehouse, "narrow") == []


def test_database_params_are_checked(tmp_path):
    from leadq.pipelines.params.loader import load_params

    path = tmp_path / "params.yaml"
    path.write_text("database:\n  leads_table: null\n  leads_query: SELECT * FROM crm.leads\n"
                    "  scores_table: marts.lead_scores\n")
    params = load_params(path)
    assert params["database"]["scores_table"] == "marts.lead_scores"
    assert db.source_for("postgresql://h/db", params).query == "SELECT * FROM crm.leads"
    path.write_text("database:\n  scores_table: [a, b]\n")
    with pytest.raises(ConfigError, match="database.scores_table"):
        load_params(path)


def test_the_spark_engine_refuses_a_database_url(capsys):
    from leadq.pipelines.cli import main as cli

    code = cli(["score", "--engine", "spark", "--input", "postgresql://u@h/db",
                "--output", "scores/"])
    assert code == 2 and "pandas engine" in capsys.readouterr().err


def bar_scores(ids: list[str], score: float, model: str, bar: str) -> pd.DataFrame:
    return scores(ids, score, version=model).assign(threshold_version=bar)


def test_a_recalibrated_bar_adds_rows_and_the_same_bar_replaces(warehouse):
    """Scores are keyed by (lead id, model_version, threshold_version)."""
    key = db.score_key("lead_id")
    assert key == ["lead_id", "model_version", "threshold_version"]
    for score in (0.1, 0.2):  # the same night twice: replaced
        sink = db.TableWriter(warehouse, "lead_scores", key)
        sink.write(bar_scores(["a", "b"], score, "3", "0"))
        sink.commit()
    assert [(r[0], r[1], r[4]) for r in rows(warehouse)] == [("a", 0.2, "0"), ("b", 0.2, "0")]
    sink = db.TableWriter(warehouse, "lead_scores", key)  # recalibrated: bar 1 beside bar 0
    sink.write(bar_scores(["a", "b"], 0.7, "3", "1"))
    sink.commit()
    got = sorted((r[0], r[1], r[4]) for r in rows(warehouse))
    assert got == [("a", 0.2, "0"), ("a", 0.7, "1"), ("b", 0.2, "0"), ("b", 0.7, "1")]


def test_a_table_keyed_by_the_earlier_key_is_refused_with_its_migration(warehouse):
    old = db.TableWriter(warehouse, "old_scores", ["lead_id", "model_version"])
    old.write(bar_scores(["a"], 0.1, "1", "0"))
    old.commit()
    before = rows(warehouse, "old_scores")
    sink = db.TableWriter(warehouse, "old_scores", db.score_key("lead_id"))
    with pytest.raises(BadInputError, match=r"old_scores.*keyed by \(lead_id, model_version\)"
                       r".*ADD PRIMARY KEY \(\"?lead_id\"?, \"?model_version\"?, "
                       r"\"?threshold_version\"?\).*database.scores_table"):
        sink.check_target()
    with pytest.raises(BadInputError, match="Migrate it once"):
        sink.write(bar_scores(["a"], 0.9, "1", "1"))
    sink.abort()
    assert rows(warehouse, "old_scores") == before


def test_rejected_rows_go_to_the_quarantine_table_in_the_scores_transaction(warehouse):
    key = db.score_key("lead_id")
    sink = db.TableWriter(warehouse, "lead_scores", key, quarantine_table="rejected",
                          run_id="20261206T010000Z-abc123")
    bad = pd.DataFrame({"lead_id": ["=x", "y"], "employees": ["many", None],
                        "reason": ["employees: not a number", "=cmd|' /C calc'!A0"]})
    sink.write_rejected(bad)
    sink.write(bar_scores(["a"], 0.5, "1", "0"))
    sink.abort()  # a failed run: neither the scores nor the rejected rows
    with sqlite3.connect(warehouse.removeprefix("sqlite:///")) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not names & {"lead_scores", "rejected"}

    sink = db.TableWriter(warehouse, "lead_scores", key, quarantine_table="rejected",
                          run_id="run-1")
    sink.write_rejected(bad)
    sink.write(bar_scores(["a"], 0.5, "1", "0"))
    sink.prepare()
    sink.commit()
    got = rows(warehouse, "rejected", order="lead_id")
    # the run id first, the id exactly as read, other text guarded, missing kept missing
    assert got == [("run-1", "=x", "many", "employees: not a number"),
                   ("run-1", "y", None, "'=cmd|' /C calc'!A0")]
    assert len(rows(warehouse)) == 1

    # a later run appends; a column the table lacks (a ragged row's line) is added as text
    sink = db.TableWriter(warehouse, "lead_scores", key, quarantine_table="rejected",
                          run_id="run-2")
    sink.write_rejected(bad.iloc[:1].assign(source_line=7))
    sink.commit()  # rejected rows only: no scores merged, the table unchanged
    with sqlite3.connect(warehouse.removeprefix("sqlite:///")) as conn:
        got = conn.execute("SELECT run_id, lead_id, source_line FROM rejected "
                           "ORDER BY run_id").fetchall()
    assert got == [("run-1", "=x", None), ("run-1", "y", None), ("run-2", "=x", "7")]
    assert len(rows(warehouse)) == 1


def test_the_quarantine_table_cannot_be_the_scores_table():
    params = {"database": {"scores_table": "marts.scores", "quarantine_table": "marts.scores"}}
    with pytest.raises(BadInputError, match="quarantine_table.*scores_table"):
        db.sink_for("sqlite:///x.db", params, db.score_key("lead_id"))


# --------------------------------------------------------------------- every table from a database

def test_the_one_reader_reads_a_table_or_a_query_from_a_database_url(warehouse):
    from leadq.pipelines.io.files import iter_chunks, peek_columns, read_table

    spec = {"table": "leads"}
    frame = read_table(warehouse, spec, name="deals")
    assert len(frame) == 25 and list(frame.columns) == ["lead_id", "employees"]
    assert [len(c.frame) for c in iter_chunks(warehouse, spec, name="deals",
                                              chunk_size=10)] == [10, 10, 5]
    assert peek_columns(warehouse, spec, name="deals") == ["lead_id", "employees"]
    small = read_table(warehouse, {"query": "SELECT lead_id FROM leads WHERE employees < 2"},
                       name="deals")
    assert small["lead_id"].tolist() == ["L000", "L001"]
    with pytest.raises(BadInputError, match="no_deals.*data.deals.table"):
        read_table(warehouse, {"table": "no_deals"}, name="deals")
    with pytest.raises(BadInputError, match="nope.*data.lookups.accounts.query"):
        read_table(warehouse, {"query": "SELECT nope FROM leads"}, name="lookups.accounts")


def test_a_lookup_from_a_database_is_joined_like_a_file(warehouse):
    from leadq.pipelines.io.lookups import enrich
    from leadq.pipelines.params.loader import effective_params

    path = warehouse.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (account TEXT, sector TEXT)")
        conn.execute("INSERT INTO accounts VALUES ('acme', 'Retail'), ('globex', 'Energy')")
    params = effective_params({"data": {"lookups": {"accounts": {
        "path": warehouse, "table": "accounts", "key": "account", "columns": ["sector"]}}}})
    leads = pd.DataFrame({"account": ["Globex", "acme", "initech"]})
    assert enrich(leads, params)["sector"].tolist()[:2] == ["Energy", "Retail"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"path": "leads.csv", "table": "crm.leads"}, "data.leads.table: set, but data.leads.path "
                                                 "is not a database URL"),
    ({"path": "postgresql://h/db"}, "exactly one of data.leads.table"),
    ({"path": "postgresql://h/db", "table": "a", "query": "SELECT 1"}, "exactly one"),
    ({"path": "postgresql://u:hunter2@h/db", "table": "a"}, "holds a password"),
    ({"path": "postgresql://u@h/db?password=hunter2", "table": "a"}, "holds a password"),
])
def test_database_table_settings_are_checked(spec, message):
    from leadq.pipelines.params.loader import effective_params

    with pytest.raises(ConfigError, match=message) as caught:
        effective_params({"data": {"leads": spec}})
    assert "hunter2" not in str(caught.value)


def test_a_password_is_named_by_an_environment_variable(monkeypatch):
    from leadq.pipelines.params.loader import effective_params

    url = "postgresql://leadq:${WH_PASSWORD}@h/db"
    params = effective_params({"data": {"leads": {"path": url, "table": "crm.leads"}}})
    assert params["data"]["leads"]["path"] == url  # kept as written: params are logged
    monkeypatch.setenv("WH_PASSWORD", "p@ss/word")
    assert db._with_driver(url).password == "p@ss/word"
    assert "p@ss" not in db.safe_url(db.expand_env(url))
    monkeypatch.delenv("WH_PASSWORD")
    with pytest.raises(BadInputError, match="WH_PASSWORD.*not set"):
        db._with_driver(url)
