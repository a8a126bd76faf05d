"""The holdout on Spark: `leadq score --engine spark` holds out the same MQLs, with the same
treatment and propensity, as the chunked pandas engine (both reach models/routing.route
through scoring.core.score_leads; Spark hashes the ids itself)."""

from __future__ import annotations

import importlib.util
import shutil

import pandas as pd
import pytest
import yaml

pytestmark = [
    pytest.mark.slow,
    pytest.mark.spark,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None,
                       reason="pyspark is not installed (pip install '.[spark]')"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH (Spark needs a JVM)"),
]


def test_spark_holds_out_the_same_mqls_as_chunked_pandas(trained_store, tmp_path, monkeypatch):
    from leadq.pipelines.score import main as score_main
    from leadq.pipelines.scoring.spark import main_spark

    monkeypatch.setenv("LEADQ_SPARK_SHUFFLE", "2")
    monkeypatch.setenv("LEADQ_SPARK_DRIVER_MEMORY", "1g")
    spec = yaml.safe_load(trained_store["params_path"].read_text())
    spec["agreement"]["holdout_rate"] = 0.4
    spec["scoring"]["explore_rate"] = 0.3
    path = trained_store["dir"] / "params_spark_holdout.yaml"  # beside the store's registry
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str, keep_default_na=False)
    leads.head(400).to_csv(tmp_path / "leads.csv", index=False)
    uri = f"models:/leadq/{trained_store['summary']['version']}"
    score_main(str(tmp_path / "leads.csv"), str(tmp_path / "pandas.parquet"), model_uri=uri,
               params_path=str(path), chunk_size=33, explain=False)
    main_spark(str(tmp_path / "leads.csv"), str(tmp_path / "spark"), model_uri=uri,
               params_path=str(path), master="local[1]", explain=False)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    pd_out = pd.read_parquet(tmp_path / "pandas.parquet")
    sp_out = pd.read_parquet(tmp_path / "spark" / "scores")
    merged = pd_out.merge(sp_out, on="lead_id", suffixes=("_pd", "_sp"), validate="one_to_one")
    assert len(merged) == len(pd_out) == 400
    for col in ("is_mql", "explore", "holdout", "treatment"):
        assert (merged[f"{col}_sp"].astype(str) == merged[f"{col}_pd"].astype(str)).all(), col
    assert (merged["propensity_sp"] - merged["propensity_pd"]).abs().max() < 1e-12
    held = merged["holdout_pd"].astype(bool)
    assert held.sum() > 0 and (merged.loc[held, "treatment_pd"] == 0).all()
