"""`leadq score --engine spark` against the pandas engine on the same file and registry version."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None,
                       reason="pyspark is not installed (pip install '.[spark]')"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH (Spark needs a JVM)"),
]

BAD_ID, BAD_NUMBER = "", "lots"


@pytest.fixture(scope="module")
def leads_with_bad_rows(trained_store, tmp_path_factory):
    """The small CRM's leads with rows the row contract must quarantine, as one CSV (for the
    pandas engine) and as two CSV parts read through a glob (Spark), with a duplicate id in
    the second part whose first occurrence is in the first, once verbatim and once padded."""
    directory = tmp_path_factory.mktemp("spark_in")
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str, keep_default_na=False)
    leads.loc[[5, 17], "lead_id"] = BAD_ID
    leads.loc[[40, 41, 42], "employees"] = BAD_NUMBER
    leads.loc[[300, 301, 3500], "industry"] = "Asteroid Mining"  # warnings, not rejections
    leads.loc[[302, 3501], "source"] = "Unknown"
    dup = leads.iloc[[100]].copy()
    padded = leads.iloc[[200]].copy()  # the same id with padding: still a duplicate
    padded["lead_id"] = "  " + padded["lead_id"] + " "
    leads = pd.concat([leads, dup, padded], ignore_index=True)
    whole = directory / "leads.csv"
    leads.to_csv(whole, index=False)
    parts = directory / "parts"
    parts.mkdir()
    # The first part is the larger: Spark orders file splits by size, and "first occurrence"
    # of a duplicate id means first in input order.
    leads.iloc[:3000].to_csv(parts / "leads_1.csv", index=False)
    leads.iloc[3000:].to_csv(parts / "leads_2.csv", index=False)
    return {"csv": whole, "glob": str(parts / "leads_*.csv"), "bad_rows": 7}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def both_engines(trained_store, leads_with_bad_rows, tmp_path_factory, monkeypatch_module):
    # Few shuffle partitions and a small driver: the test machine is shared.
    monkeypatch_module.setenv("LEADQ_SPARK_SHUFFLE", "2")
    monkeypatch_module.setenv("LEADQ_SPARK_DRIVER_MEMORY", "1g")
    out = tmp_path_factory.mktemp("spark_out")
    version = trained_store["summary"]["version"]
    uri = f"models:/leadq/{version}"
    from leadq.pipelines.score import main as score_main
    from leadq.pipelines.scoring.spark import main_spark

    params = str(trained_store["params_path"])
    pandas_summary = score_main(str(leads_with_bad_rows["csv"]), str(out / "pandas.parquet"),
                                model_uri=uri, params_path=params, explain=True)
    summary = main_spark(leads_with_bad_rows["glob"], str(out / "spark"), model_uri=uri,
                         params_path=params, master="local[2]", explain=True)
    yield {"out": out, "summary": summary, "pandas": pandas_summary, "version": version}
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def test_spark_scores_equal_pandas_scores(both_engines):
    out = both_engines["out"]
    pandas_out = pd.read_parquet(out / "pandas.parquet")
    spark_out = pd.read_parquet(out / "spark" / "scores")
    # Same output columns as the pandas engine, plus the partition column.
    assert list(spark_out.columns) == [*pandas_out.columns, "scored_date"]
    assert spark_out["lead_id"].is_unique
    assert len(spark_out) == len(pandas_out)
    merged = pandas_out.merge(spark_out, on="lead_id", suffixes=("_pd", "_sp"),
                              validate="one_to_one")
    assert len(merged) == len(spark_out)
    for col in ("score", "score_raw", "sales_propensity"):
        np.testing.assert_allclose(merged[f"{col}_sp"], merged[f"{col}_pd"], rtol=0, atol=1e-9)
    for col in ("is_mql", "tier", "explore", "model_version", "threshold_version",
                "reasons_positive", "reasons_negative"):
        assert (merged[f"{col}_sp"].astype(str) == merged[f"{col}_pd"].astype(str)).all(), col
    assert merged["reasons_positive_sp"].str.len().gt(0).mean() > 0.5  # reasons really there
    assert (spark_out["model_version"] == both_engines["version"]).all()


def test_spark_quarantine_and_accounting_equal_pandas(both_engines, leads_with_bad_rows):
    summary, pandas_summary = both_engines["summary"], both_engines["pandas"]
    acct, expected = summary["accounting"], pandas_summary["accounting"]
    assert acct["read"] == len(pd.read_csv(leads_with_bad_rows["csv"], dtype=str))
    assert acct["read"] == acct["used"] + acct["rejected"]
    assert acct["rejected"] == leads_with_bad_rows["bad_rows"]
    for key in ("read", "used", "rejected", "rejected_by_reason", "warnings"):
        assert acct[key] == expected[key], key
    assert acct["warnings"]["unseen_category:industry"] == 3
    assert acct["warnings"]["placeholder:source"] >= 2
    assert summary["mql"] == pandas_summary["mql"]
    rejected = pd.read_parquet(both_engines["out"] / "spark" / "rejected")
    quarantined = pd.read_csv(expected["quarantine"], dtype=str)
    assert len(rejected) == acct["rejected"] == len(quarantined)
    # Same rows, same reasons; original cells kept so the rows can be fixed and re-sent.
    key = ["lead_id", "employees", "reason"]
    assert sorted(map(tuple, rejected[key].fillna("").to_numpy())) == sorted(
        map(tuple, quarantined[key].fillna("").to_numpy()))
    assert BAD_NUMBER in set(rejected["employees"])
    scores = pd.read_parquet(both_engines["out"] / "spark" / "scores")
    assert summary["mql"] == int(scores["is_mql"].sum())


def test_spark_rerun_same_day_replaces_the_partition(both_engines, leads_with_bad_rows,
                                                     trained_store):
    from leadq.pipelines.scoring.spark import main_spark

    out = both_engines["out"] / "spark"
    main_spark(leads_with_bad_rows["glob"], str(out),
               model_uri=f"models:/leadq/{both_engines['version']}",
               params_path=str(trained_store["params_path"]), master="local[2]")
    again = pd.read_parquet(out / "scores")
    assert len(again) == both_engines["summary"]["rows"]  # replaced, not doubled


def test_spark_missing_column_is_bad_input(trained_store, tmp_path):
    bad = tmp_path / "leads.csv"
    pd.read_csv(trained_store["crm"]["leads"]).drop(columns=["industry"]).to_csv(bad,
                                                                                  index=False)
    code = cli(["score", "--engine", "spark", "--master", "local[1]", "--input", str(bad),
                "--output", str(tmp_path / "out"), "--model-uri",
                f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(trained_store["params_path"])])
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_spark_quarantines_ragged_rows_like_pandas(trained_store, tmp_path, monkeypatch):
    """A row with an extra field and a cut-off last line: both quarantined as ragged rows,
    with the pandas engine's reasons, their raw text kept; the accounting adds up."""
    from leadq.pipelines.score import main as score_main
    from leadq.pipelines.scoring.spark import main_spark

    monkeypatch.setenv("LEADQ_SPARK_SHUFFLE", "2")
    monkeypatch.setenv("LEADQ_SPARK_DRIVER_MEMORY", "1g")
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str, keep_default_na=False).head(300)
    path = tmp_path / "leads.csv"
    lines = leads.to_csv(index=False).splitlines(keepends=True)
    lines[10] = lines[10].rstrip("\n") + ",stray\n"
    lines[-1] = ",".join(lines[-1].split(",")[:3])  # cut off in transfer, no newline
    path.write_text("".join(lines))
    uri = f"models:/leadq/{trained_store['summary']['version']}"
    params = str(trained_store["params_path"])
    expected = score_main(str(path), str(tmp_path / "pandas.csv"), model_uri=uri,
                          params_path=params, explain=False)["accounting"]
    summary = main_spark(str(path), str(tmp_path / "spark"), model_uri=uri, params_path=params,
                         master="local[1]")
    acct = summary["accounting"]
    n = len(leads.columns)
    assert acct["rejected_by_reason"] == expected["rejected_by_reason"] == {
        f"ragged row: {n + 1} fields, header has {n}": 1,
        f"ragged row: 3 fields, header has {n}": 1}
    assert (acct["read"], acct["used"]) == (expected["read"], expected["used"]) == (300, 298)
    rejected = pd.read_parquet(tmp_path / "spark" / "rejected")
    assert sorted(rejected["lead_id"]) == sorted(leads["lead_id"].iloc[[9, 299]])
    assert set(rejected["raw_line"]) == {lines[10].rstrip("\n"), lines[-1]}
    scores = pd.read_parquet(tmp_path / "spark" / "scores")
    assert len(scores) == 298 and not set(scores["lead_id"]) & set(rejected["lead_id"])
