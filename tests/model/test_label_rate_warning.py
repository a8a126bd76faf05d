"""`leadq train` warns when the training label rate moved more than
contracts.label_rate_max_change since the model in service (README "Data contracts").

Three models on one store: the first on the small CRM; the second on the same leads with a
few lost deals turned into wins (the rate moves, but less than the limit); the third with
every lost deal turned into a win (the rate moves far more than the limit).
"""

from __future__ import annotations

import pandas as pd
import pytest

LIMIT = 0.05  # params.yaml contracts.label_rate_max_change


def _with_won_deals(crm: dict, directory, n_flipped: int | None) -> dict:
    """The same CRM with the first `n_flipped` lost deals (all if None) recorded as won."""
    deals = pd.read_csv(crm["deals"], dtype=str, keep_default_na=False)
    lost = deals.index[deals["outcome"] == "lost"]
    deals.loc[lost if n_flipped is None else lost[:n_flipped], "outcome"] = "won"
    directory.mkdir()
    path = directory / "deals.csv"
    deals.to_csv(path, index=False)
    return {**crm, "deals": path}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, base_params, small_crm):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("label_rate")
    store = {"train__candidates": ["logreg"], "train__search__enabled": False,
             "contracts__label_rate_max_change": LIMIT,
             "mlflow__tracking_uri": f"sqlite:///{d / 'mlflow.db'}",
             "mlflow__artifact_location": str(d / "mlruns")}
    out = {}
    for name, n_flipped in (("first", 0), ("small_move", 60), ("large_move", None)):
        crm = _with_won_deals(small_crm, d / name, n_flipped)
        path = write_params(d / name, base_params, crm, **store)
        configure(load_params(path))
        client = mlflow.MlflowClient()
        try:
            champion = str(client.get_model_version_by_alias("leadq", "champion").version)
            in_service = client.get_model_version("leadq", champion).tags["train_run_id"]
        except mlflow.exceptions.MlflowException:
            in_service = None
        summary = train_main(str(path))
        configure(load_params(path))
        run = client.get_run(summary["run_id"])
        out[name] = {"run": run, "rate": run.data.metrics["data_label_rate"],
                     "in_service_rate": None if in_service is None else
                     client.get_run(in_service).data.metrics["data_label_rate"]}
    return out


def test_no_warning_when_the_label_rate_moved_less_than_the_limit(runs):
    for name in ("first", "small_move"):
        assert "leadq.contract_warning" not in runs[name]["run"].data.tags, name
    small = runs["small_move"]
    moved = abs(small["rate"] - small["in_service_rate"])
    assert 0.005 < moved < LIMIT  # it did move, just not enough
    assert small["run"].data.metrics["contract_label_rate_change"] == pytest.approx(moved)


def test_warning_names_both_rates_when_the_label_rate_moved_more(runs):
    large = runs["large_move"]
    assert abs(large["rate"] - large["in_service_rate"]) > LIMIT + 0.02
    warning = large["run"].data.tags["leadq.contract_warning"]
    assert f"from {large['in_service_rate']:.4f} to {large['rate']:.4f}" in warning
    assert "label_rate_max_change" in warning
    assert large["run"].data.metrics["contract_label_rate_change"] == pytest.approx(
        abs(large["rate"] - large["in_service_rate"]))
