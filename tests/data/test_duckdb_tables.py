"""DuckDB files as a source and sink (duckdb:///path, read and written by the duckdb package,
pipelines/io/duckdb_tables.py): the same semantics as PostgreSQL's (test_database_io.py,
tests/integration/test_score_database.py): text cells, chunks, the upsert by (lead id,
model_version, threshold_version), one transaction with the quarantine table."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadq.errors import BadInputError
from leadq.features.contracts import evaluate
from leadq.pipelines.io import database as db
from leadq.pipelines.io.files import iter_chunks, peek_columns, read_table
from leadq.pipelines.params.loader import effective_params
from leadq.pipelines.scoring.stream import score_file

KEY = ["lead_id", "model_version", "threshold_version"]


@pytest.fixture
def warehouse(tmp_path) -> str:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE leads (lead_id VARCHAR, created_at TIMESTAMP, source VARCHAR, "
                "employees INTEGER, vip BOOLEAN, revenue DECIMAL(10, 2))")
    rows = [(f"L{i:02d}", f"2024-03-{1 + i % 28:02d} 10:00:00", "web",
             None if i == 3 else 10 * i, i % 2 == 0, 1.5) for i in range(12)]
    con.executemany("INSERT INTO leads VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.close()
    return f"duckdb:///{path}"


def test_a_table_and_a_query_read_as_text_in_chunks(warehouse):
    spec = {"table": "leads"}
    chunks = [c.frame for c in iter_chunks(warehouse, spec, name="leads", chunk_size=5)]
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert list(chunks[2].index) == [10, 11]  # one running index, as for files
    first = chunks[0].iloc[0].to_dict()
    # as a CSV export reads: ISO dates, true/false, numbers as written
    assert first == {"lead_id": "L00", "created_at": "2024-03-01 10:00:00", "source": "web",
                     "employees": "0", "vip": "true", "revenue": "1.50"}
    assert pd.isna(chunks[0]["employees"].iloc[3])  # NULL stays missing
    assert peek_columns(warehouse, spec, name="leads")[:2] == ["lead_id", "created_at"]
    query = {"query": "SELECT lead_id FROM leads WHERE employees >= 100 -- the big ones"}
    assert read_table(warehouse, query, name="leads")["lead_id"].tolist() == ["L10", "L11"]
    with pytest.raises(BadInputError, match="no_leads.*data.leads.table"):
        read_table(warehouse, {"table": "no_leads"}, name="leads")
    with pytest.raises(BadInputError, match="nope.*data.leads.query"):
        read_table(warehouse, {"query": "SELECT nope FROM leads"}, name="leads")
    with pytest.raises(BadInputError, match="not found"):
        read_table(warehouse + ".missing", spec, name="leads")


def scores(ids: list[str], score: float, bar: str = "0") -> pd.DataFrame:
    return pd.DataFrame({"lead_id": ids, "score": [score] * len(ids), "model_version": "1",
                         "threshold_version": bar, "reasons_positive": "=HYPERLINK(1)"})


def rows(url: str, sql: str) -> list[tuple]:
    con = duckdb.connect(url.removeprefix("duckdb:///"))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_sink_upserts_in_one_transaction_with_the_quarantine(warehouse):
    def sink(run_id: str):
        return db.sink_for(warehouse, effective_params({"database": {
            "scores_table": "lead_scores", "quarantine_table": "rejected"}}), KEY, run_id=run_id)

    first = sink("run-1")
    first.write_rejected(pd.DataFrame({"lead_id": ["=x"], "reason": ["=1+1"]}))
    first.write(scores(["=a", "b"], 0.1))
    first.prepare()
    first.commit()
    got = rows(warehouse, "SELECT lead_id, score, threshold_version, reasons_positive FROM "
                          "lead_scores ORDER BY lead_id")
    assert got == [("=a", 0.1, "0", "'=HYPERLINK(1)"), ("b", 0.1, "0", "'=HYPERLINK(1)")]
    assert rows(warehouse, "SELECT * FROM rejected") == [("run-1", "=x", "'=1+1")]

    again = sink("run-2")  # the same versions replace; a recalibrated bar adds
    again.write(scores(["b"], 0.9))
    again.write(scores(["b"], 0.7, bar="1"))
    again.commit()
    assert rows(warehouse, "SELECT lead_id, score, threshold_version FROM lead_scores "
                           "ORDER BY lead_id, threshold_version") == [
        ("=a", 0.1, "0"), ("b", 0.9, "0"), ("b", 0.7, "1")]

    before = rows(warehouse, "SELECT * FROM lead_scores ORDER BY ALL")
    failed = sink("run-3")  # a run that fails before its commit changes nothing
    failed.write(scores(["a", "b", "z"], 0.0))
    failed.write_rejected(pd.DataFrame({"lead_id": ["q"], "reason": ["r"], "extra": ["e"]}))
    failed.abort()
    assert rows(warehouse, "SELECT * FROM lead_scores ORDER BY ALL") == before
    assert rows(warehouse, "SELECT count(*) FROM rejected") == [(1,)]


def test_a_table_without_the_key_is_refused_by_name(warehouse):
    con = duckdb.connect(warehouse.removeprefix("duckdb:///"))
    con.execute("CREATE TABLE old_scores (lead_id VARCHAR, model_version VARCHAR, "
                "threshold_version VARCHAR, score DOUBLE, PRIMARY KEY (lead_id, model_version))")
    con.close()
    sink = db.sink_for(warehouse, effective_params({"database": {"scores_table": "old_scores"}}),
                       KEY)
    with pytest.raises(BadInputError, match="old_scores.*earlier \\(lead id, model_version\\)"):
        sink.check_target()


def test_score_from_and_into_one_duckdb_file(warehouse, tmp_path):
    """score_file (the real streaming writer and contract, a stand-in model) reading the leads
    from a DuckDB file and upserting the scores into it, twice."""
    params = effective_params({
        "data": {"leads": {"path": "leads.csv", "id": "lead_id", "created_at": "created_at"},
                 "deals": None, "feedback": None, "activities": {"path": None}},
        "features": {"categorical": ["source"], "numeric": ["employees"]},
        "contracts": {"max_rejected_share": 1.0},
        "database": {"leads_query": "SELECT lead_id, created_at, source, employees FROM leads",
                     "scores_table": "lead_scores", "quarantine_table": "rejected"},
    })
    con = duckdb.connect(warehouse.removeprefix("duckdb:///"))
    con.execute("UPDATE leads SET created_at = NULL WHERE lead_id = 'L05'")  # quarantined
    con.close()

    def score_batch(raw: pd.DataFrame, duplicates: np.ndarray, hashes: np.ndarray):
        check = evaluate(raw.reset_index(drop=True), "leads", params, None,
                         duplicates=duplicates)
        good = raw.reset_index(drop=True).loc[~check.bad]
        return check, pd.DataFrame({"lead_id": good["lead_id"].to_numpy(), "score": 0.5,
                                    "model_version": "1", "threshold_version": "0"})

    for _ in range(2):
        acct = score_file(warehouse, warehouse, None, params, score_batch, chunk_size=4)
        assert (acct.read, acct.used, acct.n_rejected) == (12, 11, 1)
        assert acct.quarantine == f"{warehouse} (table rejected)"
    assert rows(warehouse, "SELECT count(*), count(DISTINCT lead_id) FROM lead_scores") == \
        [(11, 11)]
    assert [r[1] for r in rows(warehouse, "SELECT run_id, lead_id FROM rejected")] == \
        ["L05", "L05"]  # one row per run that refused it
