"""One lead, three engines: `leadq score` (pandas + DuckDB), the Spark engine and `leadq serve`
give it the same point-in-time activity features (act_*) and the same score.

The features come from one SQL text (features/activities.py::aggregation_sql), run by DuckDB
in the pandas engine and the service and by Spark SQL in the Spark engine; these tests hold the
two runs to exact equality and the three engines' scores to 1e-9, lead by lead by id.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import MLFLOW_ENV
from tests.helpers import stop_server
from tests.integration.test_serve import (
    TOKEN,
    _free_port,
    _post,
    _records,
    wait_until_ready,
)
from tests.integration.test_spark_engine import pytestmark as SPARK_MARKS  # noqa: N812

FRESH_ID = "L90000001"  # a lead the activity log has never heard of
SAMPLE = 30
SCORE_COLUMNS = ("score", "score_raw", "sales_propensity")


def needs_spark(test):
    """The Spark engine test's marks (pytest.mark.spark, pyspark and java present)."""
    for mark in SPARK_MARKS:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def sample(trained_store, tmp_path_factory) -> dict:
    """~30 leads of the small CRM as one CSV: most with events before their cut-off (one of
    them with its id padded), the CRM's leads without any event, one whose events all come
    after its cut-off (in the log, zero counts) and a fresh lead (a new id, absent from the
    log)."""
    from leadq.features.activities import activity_spec, type_key
    from leadq.pipelines.params.loader import load_params

    crm = trained_store["crm"]
    params = load_params(trained_store["params_path"])
    spec = activity_spec(params)
    leads = pd.read_csv(crm["leads"], dtype=str, keep_default_na=False)
    events = pd.read_csv(crm["activities"], dtype=str, keep_default_na=False)
    events = events[events["activity_type"].map(type_key).isin(spec.types)]
    when = pd.to_datetime(events["occurred_at"])
    created = pd.to_datetime(events["lead_id"].map(leads.set_index("lead_id")["created_at"]))
    before = set(events.loc[when < created, "lead_id"])
    logged = set(events["lead_id"])
    with_events = leads[leads["lead_id"].isin(before)]
    silent = leads[~leads["lead_id"].isin(logged)].head(3)  # not one listed event
    late = leads[leads["lead_id"].isin(logged - before)].head(1)  # events only after the cut
    assert len(silent) >= 1
    n_with = SAMPLE - len(silent) - len(late) - 1
    picked = with_events.iloc[np.linspace(0, len(with_events) - 1, n_with).astype(int)]
    # A copy of a lead with events under a new id: only its activity features differ.
    fresh = picked.iloc[[len(picked) // 2]].copy()
    fresh["lead_id"] = FRESH_ID
    rows = pd.concat([picked, silent, late, fresh], ignore_index=True)
    assert rows["lead_id"].is_unique
    ids = list(rows["lead_id"])
    # An id with padding, as hand-kept exports have them: every engine matches it stripped.
    rows.loc[1, "lead_id"] = f"  {rows.loc[1, 'lead_id']} "
    directory = tmp_path_factory.mktemp("activity_engines")
    path = directory / "leads.csv"
    rows.to_csv(path, index=False)
    return {"csv": path, "rows": rows, "ids": ids, "dir": directory, "params": params,
            "uri": f"models:/leadq/{trained_store['summary']['version']}",
            "params_path": str(trained_store["params_path"]),
            "no_events": [*silent["lead_id"], FRESH_ID], "late": list(late["lead_id"]),
            "twin": picked["lead_id"].iloc[len(picked) // 2]}


@pytest.fixture(scope="module")
def pandas_scores(sample) -> pd.DataFrame:
    from leadq.pipelines.score import main as score_main

    out = sample["dir"] / "pandas.parquet"
    summary = score_main(str(sample["csv"]), str(out), model_uri=sample["uri"],
                         params_path=sample["params_path"], explain=False)
    assert summary["accounting"]["rejected"] == 0, summary["accounting"]
    scores = pd.read_parquet(out).set_index("lead_id")
    assert len(scores) == len(sample["rows"])
    return scores


@pytest.fixture(scope="module")
def served(sample, trained_store) -> dict:
    """Each lead posted alone to `leadq serve`, run in a subprocess (as
    tests/integration/test_serve.py runs it) on the trained store's model version; the server
    is stopped by PID once the answers are in, before Spark starts."""
    directory = sample["dir"]
    params = yaml.safe_load(trained_store["params_path"].read_text())
    # The store's own MLflow database, named absolutely: this params file lives elsewhere.
    params["mlflow"]["tracking_uri"] = f"sqlite:///{trained_store['dir'] / 'mlflow.db'}"
    params["mlflow"]["artifact_location"] = str(trained_store["dir"] / "mlruns")
    params["serve"] = {**(params.get("serve") or {}), "scoring_log": None,
                       "access_log": False, "explain": False}
    path = directory / "serve_params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in (*MLFLOW_ENV, "CI")}
    env["LEADQ_API_TOKEN"] = TOKEN
    answers = {}
    with open(directory / "server.log", "w") as server_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadq.pipelines.cli", "serve", "--params", str(path),
             "--port", str(port), "--model-uri", sample["uri"]],
            env=env, stdout=server_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, proc, directory / "server.log")
            for lead in _records(sample["rows"]):  # one request per lead, as a web form posts
                status, answer = _post(f"{base}/v1/score", lead)
                assert status == 200, answer
                answers[answer["lead_id"]] = answer
        finally:
            stop_server(proc)
    return answers


@pytest.fixture(scope="module")
def spark(sample):
    """One small local Spark session for the module (main_spark reuses it: getOrCreate)."""
    from leadq.pipelines.scoring.spark import spark_session

    mp = pytest.MonkeyPatch()
    mp.setenv("LEADQ_SPARK_SHUFFLE", "2")
    mp.setenv("LEADQ_SPARK_DRIVER_MEMORY", "1g")
    session = spark_session("local[2]")
    yield session
    session.stop()
    mp.undo()


@pytest.fixture(scope="module")
def spark_scores(spark, sample) -> pd.DataFrame:
    from leadq.pipelines.scoring.spark import main_spark

    out = sample["dir"] / "spark"
    summary = main_spark(str(sample["csv"]), str(out), model_uri=sample["uri"],
                         params_path=sample["params_path"], master="local[2]")
    assert summary["accounting"]["rejected"] == 0, summary["accounting"]
    scores = pd.read_parquet(out / "scores").set_index("lead_id")
    assert scores.index.is_unique and len(scores) == len(sample["rows"])
    return scores


def _duckdb_features(sample, scored_at: pd.Timestamp) -> pd.DataFrame:
    """The act_* columns as the pandas engine and the service compute them (DuckDB)."""
    from leadq.features.tables import coerce_leads
    from leadq.pipelines.io.activities import add_features
    from leadq.pipelines.io.crm import scoring_events

    params = sample["params"]
    typed = coerce_leads(pd.read_csv(sample["csv"], dtype=str), params)
    with_feats = add_features(typed, scoring_events(params), params, scored_at=scored_at)
    return with_feats.set_index(params["data"]["leads"]["id"]).filter(like="act_")


def test_pandas_engine_and_serve_give_the_same_scores(sample, pandas_scores, served):
    assert set(served) == set(pandas_scores.index) == set(sample["ids"])
    for lead_id, row in pandas_scores.iterrows():
        answer = served[lead_id]
        for col in SCORE_COLUMNS:
            assert abs(answer[col] - float(row[col])) < 1e-9, (lead_id, col)
        assert answer["is_mql"] == bool(row["is_mql"]), lead_id
        assert str(answer["tier"]) == str(row["tier"]), lead_id
    # The activity features reach the model: the fresh copy of a lead with events, the same in
    # every lead column but its id, does not get that lead's score.
    assert abs(pandas_scores.at[FRESH_ID, "score"] - pandas_scores.at[sample["twin"], "score"]) \
        > 1e-6


@needs_spark
def test_spark_engine_gives_the_pandas_engine_and_serve_scores(sample, pandas_scores, served,
                                                               spark_scores):
    assert set(spark_scores.index) == set(pandas_scores.index)
    merged = pandas_scores.join(spark_scores, lsuffix="_pd", rsuffix="_sp", how="inner")
    for col in SCORE_COLUMNS:
        diff = (merged[f"{col}_sp"] - merged[f"{col}_pd"]).abs()
        assert diff.max() < 1e-9, (col, diff.idxmax(), diff.max())
        online = pd.Series({i: served[i][col] for i in merged.index})
        assert (merged[f"{col}_sp"] - online).abs().max() < 1e-9, col
    for col in ("is_mql", "tier", "model_version"):
        assert (merged[f"{col}_sp"].astype(str) == merged[f"{col}_pd"].astype(str)).all(), col


@needs_spark
def test_duckdb_and_spark_sql_give_the_same_activity_features(spark, sample):
    from leadq.features.activities import activity_spec
    from leadq.pipelines.scoring.spark import (
        _coerce_batches,
        typed_schema,
        with_activity_features,
    )

    params = sample["params"]
    idc = params["data"]["leads"]["id"]
    spec = activity_spec(params)
    names = spec.feature_names()
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    expected = _duckdb_features(sample, scored_at)
    assert list(expected.columns) == names
    assert list(expected.index) == sample["ids"]

    # As main_spark builds it: the checked text rows, typed batch by batch (with each lead's
    # cut-off), then the activity aggregation joined on by Spark SQL.
    raw = pd.read_csv(sample["csv"], dtype=str, keep_default_na=False)
    raw = raw.astype(object).where(raw != "", None)
    text = spark.createDataFrame(raw, ", ".join(f"`{c}` string" for c in raw.columns))
    typed = text.mapInPandas(_coerce_batches(params, scored_at), typed_schema(params))
    got = (with_activity_features(spark, typed, params).select(idc, *names).toPandas()
           .set_index(idc))
    assert got.index.is_unique
    got = got.loc[expected.index]
    for name in names:
        pd.testing.assert_series_equal(got[name].astype("float64"), expected[name],
                                       check_exact=True, check_names=False, obj=name)

    counts = [f"act_{t}_{w}d" for t in spec.types for w in spec.windows]
    sums = [f"act_{t}_value_{spec.windows[-1]}d" for t in spec.value_types]
    since = [n for n in names if "days_since" in n]
    assert (expected[counts].sum(axis=1) > 0).sum() >= SAMPLE // 2
    for lead_id in sample["no_events"] + sample["late"]:
        assert (expected.loc[lead_id, [*counts, *sums]] == 0).all(), lead_id
        assert expected.loc[lead_id, "act_distinct_types"] == 0, lead_id
        assert expected.loc[lead_id, since].isna().all(), lead_id
    padded = sample["ids"][1]  # its events are found by the stripped id
    assert expected.loc[padded, "act_distinct_types"] > 0
    # A lead with events before its cut-off: counted, and its last event a while before.
    busy = expected[counts].sum(axis=1).idxmax()
    assert expected.loc[busy, "act_days_since_last"] > 0
