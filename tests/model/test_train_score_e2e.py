"""End to end on a small synthetic CRM: train → register → score, with a temporary MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli


def test_training_registers_a_champion_with_metrics_and_threshold(trained_store):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    summary = trained_store["summary"]
    for name in ("test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece"):
        assert np.isfinite(summary["metrics"][name])
    assert summary["metrics"]["test_roc_auc"] > 0.7
    configure(load_params(trained_store["params_path"]))
    client = mlflow.MlflowClient()
    mv = client.get_model_version_by_alias("leadq", "challenger")
    assert str(mv.version) == summary["version"]
    # The first model in an empty registry meets the criteria: it is champion, too.
    assert summary["champion"] is True
    champion = client.get_model_version_by_alias("leadq", "champion")
    assert str(champion.version) == summary["version"]
    assert "no champion to beat" in champion.tags["promotion_decision"]
    assert 0 < float(mv.tags["mql_threshold"]) < 1
    run = client.get_run(summary["run_id"])
    assert {"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece"} <= set(
        run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"params.yaml", "data_fingerprint.json", "plots"} <= artifacts


def test_score_output_matches_in_process_predict_proba(trained_store, tmp_path):
    import mlflow

    from leadq.features.columns import raw_input_columns
    from leadq.pipelines.io.crm import load_leads
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    params = load_params(trained_store["params_path"])
    leads_path = trained_store["crm"]["leads"]
    out = tmp_path / "scores.parquet"
    version = trained_store["summary"]["version"]
    code = cli(["score", "--input", str(leads_path), "--output", str(out),
                "--model-uri", f"models:/leadq/{version}",
                "--params", str(trained_store["params_path"])])
    assert code == 0
    scored = pd.read_parquet(out)
    assert list(scored.columns)[:5] == ["lead_id", "score", "is_mql", "model_version", "scored_at"]
    assert {"tier", "threshold_version", "explore", "sales_propensity", "score_raw"} <= set(
        scored.columns)
    from leadq.pipelines.io.activities import add_features
    from leadq.pipelines.io.crm import scoring_events

    leads = load_leads(params, leads_path, for_training=False)
    leads = add_features(leads, scoring_events(params), params,
                         scored_at=pd.Timestamp(scored["scored_at"].iloc[0]))
    assert len(scored) == len(leads)
    configure(params)
    sk = mlflow.sklearn.load_model(f"models:/leadq/{version}")
    expected = sk.predict_proba(leads[raw_input_columns(params)])[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=0, atol=1e-9)
    threshold = float(mlflow.MlflowClient().get_model_version("leadq", version)
                      .tags["mql_threshold"])
    assert (scored["is_mql"] == (scored["score"] >= threshold)).all()
    assert (scored["model_version"] == version).all()


def test_score_csv_output_and_no_temp_files_left(trained_store, tmp_path):
    out = tmp_path / "out" / "scores.csv"
    version = trained_store["summary"]["version"]
    code = cli(["score", "--input", str(trained_store["crm"]["leads"]), "--output", str(out),
                "--model-uri", f"models:/leadq/{version}",
                "--params", str(trained_store["params_path"])])
    assert code == 0
    assert pd.read_csv(out)["score"].between(0, 1).all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv",
                                                            "scores.csv.manifest.json"]


def test_score_with_missing_column_exits_2_and_writes_nothing(trained_store, tmp_path, capsys):
    bad = tmp_path / "leads.csv"
    pd.read_csv(trained_store["crm"]["leads"]).drop(columns=["industry"]).to_csv(bad, index=False)
    out = tmp_path / "scores.csv"
    code = cli(["score", "--input", str(bad), "--output", str(out),
                "--params", str(trained_store["params_path"])])
    assert code == 2
    err = capsys.readouterr().err
    assert "industry" in err and str(bad) in err
    assert not out.exists()


def test_unknown_categories_and_missing_values_are_scored(trained_store, tmp_path):
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str).head(20)
    leads.loc[:4, "campaign"] = "cmp_never_seen"
    leads.loc[5:9, ["industry", "employees", "web_visits"]] = None
    path = tmp_path / "odd.csv"
    leads.to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    code = cli(["score", "--input", str(path), "--output", str(out),
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(trained_store["params_path"])])
    assert code == 0
    scored = pd.read_csv(out)
    assert len(scored) == 20 and scored["score"].notna().all()


def test_label_column_dataset_without_timestamp_trains(tmp_path, make_params, small_crm):
    """A leads table that carries its own `converted` label, no deals, no feedback, no dates."""
    from leadq.pipelines.train import main as train_main

    leads = pd.read_csv(small_crm["leads"], dtype=str)
    truth = pd.read_csv(small_crm["truth"], dtype={"lead_id": str})
    rng = np.random.default_rng(0)
    leads["converted"] = (rng.random(len(truth)) < truth["true_probability"]).astype(int)
    leads = leads.drop(columns=["created_at"])
    path = tmp_path / "labelled.csv"
    leads.to_csv(path, index=False)
    params_path = make_params(
        tmp_path, small_crm,
        data__leads__label="converted", data__leads__created_at=None, data__activities__path=None,
        data__deals=None, data__feedback=None)
    import yaml

    params = yaml.safe_load(params_path.read_text())
    params["data"]["leads"]["path"] = str(path)
    params_path.write_text(yaml.safe_dump(params))
    summary = train_main(str(params_path))
    assert summary["metrics"]["test_roc_auc"] > 0.7
    assert summary["version"] == "1"


@pytest.mark.parametrize("argv", [["score"], ["train", "--bogus"], ["nope"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli(argv)
    assert exc.value.code == 2
