"""A segmented model registered as one version: `leadq score`, `leadq serve` and the Spark
engine give the same answers and reasons; a new or blank segment value is scored by the pooled
model with a counted warning; the gate compares champion and challenger per segment; rolling
back from the segmented champion to the pooled one it replaced works."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import stop_server
from tests.integration.test_serve import TOKEN, _free_port, _post, wait_until_ready

N_SAMPLE = 120


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """v1: a pooled logistic regression (champion); v2: the same with segments.column, which
    keeps a model per business line and is promoted. Plus a sample file with new and blank
    segment values."""
    from leadq.pipelines.synthetic.segments import segmented_params, write_segmented
    from leadq.pipelines.train import main as train_main

    d = tmp_path_factory.mktemp("segments_store")
    written = write_segmented(d, 4000, seed=5, segments=2)
    params = segmented_params()
    params.update({
        "train": {"candidates": ["logreg"], "search": {"enabled": False}},
        "registry": {"criteria": {}, "allow_below_baseline": True},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db", "artifact_location": "mlruns"},
        "serve": {"reload_seconds": 1, "explain": True, "scoring_log": None,
                  "access_log": False},
    })
    params["segments"].update({"min_leads": 600, "min_conversions": 60})
    path = d / "params.yaml"
    pooled = {**params, "segments": {**params["segments"], "column": None}}
    path.write_text(yaml.safe_dump(pooled))
    v1 = train_main(str(path))
    path.write_text(yaml.safe_dump(params))
    v2 = train_main(str(path))
    leads = pd.read_csv(written["leads"], dtype=str, keep_default_na=False)
    sample = leads.tail(N_SAMPLE).copy()
    sample.iloc[:4, sample.columns.get_loc("business_line")] = "reseller"   # new value
    sample.iloc[4:7, sample.columns.get_loc("business_line")] = ""          # blank
    sample_csv = d / "sample.csv"
    sample.to_csv(sample_csv, index=False)
    return {"dir": d, "params": str(path), "v1": v1, "v2": v2, "sample": sample,
            "sample_csv": sample_csv}


@pytest.fixture(scope="module")
def batch(store):
    from leadq.pipelines.score import main as score_main

    out = store["dir"] / "batch.csv"
    summary = score_main(str(store["sample_csv"]), str(out), params_path=store["params"],
                         model_uri=f"models:/leadq/{store['v2']['version']}", explain=True)
    return {"summary": summary,
            "scores": pd.read_csv(out, dtype=str, keep_default_na=False).set_index("lead_id")}


def test_the_segmented_model_is_registered_as_one_version_and_promoted(store):
    import mlflow

    assert store["v1"]["champion"] and store["v2"]["champion"], store["v2"]["decision"]
    gate = mlflow.artifacts.load_dict(f"runs:/{store['v2']['run_id']}/gate.json")
    compared = {s["segment"]: s for s in gate["segments"]}
    assert set(compared) == {"enterprise", "smb"}
    assert not any(s["worse"] for s in compared.values())
    assert all(np.isfinite(s["challenger_roc_auc"]) for s in compared.values())


def test_new_and_blank_segment_values_fall_back_with_a_counted_warning(store, batch, caplog):
    from leadq.pipelines.score import main as score_main

    scores = batch["scores"]
    assert len(scores) == N_SAMPLE  # none dropped
    with caplog.at_level("WARNING", logger="leadq"):
        score_main(str(store["sample_csv"]), str(store["dir"] / "again.csv"),
                   params_path=store["params"],
                   model_uri=f"models:/leadq/{store['v2']['version']}", explain=False)
    assert "3 of 120 leads have a blank business_line and 4 a value unseen" in caplog.text
    assert "reseller" not in caplog.text


def test_serve_answers_equal_leadq_score(store, batch):
    port = _free_port()
    env = {**os.environ, "LEADQ_API_TOKEN": TOKEN}
    env.pop("CI", None)
    log = store["dir"] / "server.log"
    with open(log, "w") as server_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadq.pipelines.cli", "serve", "--params", store["params"],
             "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, proc, log)
        records = [{k: v for k, v in row.items() if v != ""}
                   for row in store["sample"].to_dict("records")]
        status, answer = _post(f"{base}/v1/score", records, token=TOKEN)
        assert status == 200, answer
        for got in answer["leads"]:
            want = batch["scores"].loc[got["lead_id"]]
            assert abs(got["score"] - float(want["score"])) <= 1e-9
            for key in ("is_mql", "tier", "reasons_positive", "reasons_negative",
                        "model_version"):
                assert str(got[key]) == want[key], key
        for lead in records[:10]:  # one by one, the new and blank values included
            status, got = _post(f"{base}/v1/score", lead, token=TOKEN)
            assert status == 200, got
            assert abs(got["score"] - float(batch["scores"].loc[lead["lead_id"], "score"])
                       ) <= 1e-9
    finally:
        stop_server(proc)


@pytest.mark.spark
@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed")
@pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH (Spark needs a JVM)")
def test_spark_scores_and_reasons_equal_leadq_score(store, batch, monkeypatch):
    from leadq.pipelines.scoring.spark import main_spark

    monkeypatch.setenv("LEADQ_SPARK_SHUFFLE", "2")
    monkeypatch.setenv("LEADQ_SPARK_DRIVER_MEMORY", "1g")
    out = store["dir"] / "spark"
    try:
        main_spark(str(store["sample_csv"]), str(out), params_path=store["params"],
                   model_uri=f"models:/leadq/{store['v2']['version']}", master="local[1]",
                   explain=True)
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    spark = pd.read_parquet(out / "scores").set_index("lead_id")
    assert len(spark) == N_SAMPLE
    want = batch["scores"].loc[spark.index]
    np.testing.assert_allclose(spark["score"].to_numpy(), want["score"].astype(float),
                               rtol=0, atol=1e-9)
    for key in ("tier", "reasons_positive", "reasons_negative"):
        assert (spark[key].astype(str) == want[key]).all(), key


def test_the_marketer_report_builds_for_a_segmented_model(store):
    from leadq.pipelines.report import main as report_main

    out = store["dir"] / "report.html"
    report_main(store["params"], out=str(out),
                model_uri=f"models:/leadq/{store['v2']['version']}")
    text = out.read_text(encoding="utf-8")
    assert "business_line" in text and len(text) > 10_000
    assert "By segment" in text and "data-segments" in text
    # Beside the pooled view: a reliability curve per segment model, personas per segment.
    assert "Calibration by segment model" in text
    assert "Ideal customer profile among business_line = " in text


def test_rollback_from_the_segmented_champion_to_the_pooled_one(store, tmp_path):
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.score import main as score_main
    from leadq.pipelines.tracking.registry import rollback

    moved = rollback(load_params(store["params"]))
    assert moved["champion"] == store["v1"]["version"]
    assert moved["rolled_back_from"] == store["v2"]["version"]
    score_main(str(store["sample_csv"]), str(tmp_path / "pooled.csv"),
               params_path=store["params"], explain=True)
    pooled = pd.read_csv(tmp_path / "pooled.csv", dtype=str)
    assert (pooled["model_version"] == store["v1"]["version"]).all()
    assert len(pooled) == N_SAMPLE
