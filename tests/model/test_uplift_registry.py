"""The uplift model registered beside the conversion model (issue 29 item 3): `leadq lift
--fit-uplift` fits it on the randomised scored leads and registers it for the champion; scoring
with that champion then writes a per-lead `uplift` column; too few randomised leads refuse
(exit 2) and register nothing. With agreement.route_by: call_value, scoring (batch and serve)
makes MQLs of the leads whose call value passes the bar registered with the uplift model, and
refuses (exit 2) while there is none."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli
from tests.helpers import recalibration_params


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_params, small_crm):
    from leadq.pipelines.train import main as train_main

    d = tmp_path_factory.mktemp("uplift_registry")
    path = recalibration_params(d, base_params, small_crm,
                                recalibration__scores=str(d / "scores_*.csv"),
                                agreement__holdout_rate=0.4, scoring__explore_rate=0.4,
                                lift__min_group_leads=20)
    train_main(str(path))
    assert cli(["score", "--input", str(small_crm["leads"]), "--output",
                str(d / "scores_1.csv"), "--no-explain", "--params", str(path)]) == 0
    return {"params": str(path), "dir": d, "crm": small_crm}


def _uplift_versions(params_path: str) -> list:
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    configure(load_params(params_path))
    return mlflow.MlflowClient().search_model_versions("name = 'leadq-uplift'")


def test_too_few_randomised_leads_refuse_and_register_nothing(store, capsys):
    from pathlib import Path

    import yaml

    spec = yaml.safe_load(Path(store["params"]).read_text())
    # Enough for the below-bar estimate, too few for the uplift model's held-out 30%.
    spec["lift"]["min_group_leads"] = 500
    strict = store["dir"] / "strict.yaml"
    strict.write_text(yaml.safe_dump(spec))
    assert cli(["lift", "--fit-uplift", "--params", str(strict)]) == 2
    err = capsys.readouterr().err
    assert "uplift model's held-out split" in err and "more randomised leads" in err
    assert _uplift_versions(store["params"]) == []


def _by_value(store: dict) -> str:
    """The store's params routing by call value (beside them: the same relative registry)."""
    from pathlib import Path

    import yaml

    spec = yaml.safe_load(Path(store["params"]).read_text())
    spec["agreement"].update(route_by="call_value",
                             call_value={"deal_value": 5000.0, "call_cost": 50.0})
    spec["serve"].update(scoring_log=None, explain=False)
    path = store["dir"] / "by_value.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def test_routing_by_call_value_without_an_uplift_model_refuses(store, capsys):
    out_csv = store["dir"] / "refused.csv"
    assert cli(["score", "--input", str(store["crm"]["leads"]), "--output", str(out_csv),
                "--no-explain", "--params", _by_value(store)]) == 2
    err = capsys.readouterr().err
    assert "agreement.route_by: call_value: no uplift model" in err
    assert "leadq lift --fit-uplift" in err
    assert not out_csv.exists()


def test_fit_uplift_registers_it_for_the_champion_and_scoring_writes_uplift(store, capsys):
    assert not pd.read_csv(store["dir"] / "scores_1.csv").columns.isin(["uplift"]).any()
    assert cli(["--json", "lift", "--fit-uplift", "--params", store["params"]]) == 0
    out = capsys.readouterr().out
    model = json.loads(out[out.index("{"):])["uplift_model"]
    assert model["model_name"] == "leadq-uplift" and model["for_version"] == "1"
    assert model["n_fit"] > 0 and model["n_held_out"] > 0 and np.isfinite(model["qini"])
    (version,) = _uplift_versions(store["params"])
    assert version.tags["for_version"] == "1"

    out_csv = store["dir"] / "rescored.csv"
    assert cli(["score", "--input", str(store["crm"]["leads"]), "--output", str(out_csv),
                "--no-explain", "--params", store["params"]]) == 0
    scored = pd.read_csv(out_csv)
    assert scored["uplift"].notna().all() and scored["uplift"].between(-1, 1).all()
    assert scored["uplift"].std() > 0  # per lead, not one number

    # The registered model is the one scoring uses: loaded through the trusted-types check.
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.scoring.model import load_scoring_model

    scoring = load_scoring_model(load_params(store["params"]))
    assert scoring.uplift_version == str(version.version)
    assert type(scoring.uplift).__name__ == "CallUplift"

    # The bar on the call's value: the probability bar's share of the matured scored leads.
    assert 0 < model["mql_share"] < 1 and model["bar_leads"] >= model["n_fit"]
    assert model["value_cutoff"] == model["uplift_cutoff"]  # no deal value: gain = uplift
    assert float(version.tags["uplift_cutoff"]) == pytest.approx(model["uplift_cutoff"])
    assert scoring.uplift_cutoff == pytest.approx(model["uplift_cutoff"])


def test_routing_by_call_value_makes_mqls_of_the_leads_above_the_value_bar(store, tmp_path):
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import create_app
    from tests.integration.test_serve_guards import call, running
    from tests.integration.test_serve_isolation import ready, wait_for

    if not _uplift_versions(store["params"]):  # run on its own
        assert cli(["lift", "--fit-uplift", "--params", store["params"]]) == 0
    newest = max(_uplift_versions(store["params"]), key=lambda v: int(v.version))
    cutoff = float(newest.tags["uplift_cutoff"]) * 5000.0 - 50.0  # the bar in this agreement
    params = _by_value(store)
    assert cli(["score", "--input", str(store["crm"]["leads"]), "--output",
                str(tmp_path / "by_value.csv"), "--no-explain", "--params", params]) == 0
    scored = pd.read_csv(tmp_path / "by_value.csv", dtype={"lead_id": str})
    by_score = pd.read_csv(store["dir"] / "scores_1.csv", dtype={"lead_id": str})
    assert (scored["lead_id"] == by_score["lead_id"]).all()
    assert np.allclose(scored["call_value"], scored["uplift"] * 5000.0 - 50.0)
    assert (scored["is_mql"] == (scored["call_value"] >= cutoff - 1e-9)).all()
    # The same capacity (the bar kept the probability bar's share), given to other leads.
    share = float(newest.tags["mql_share"])
    assert abs(scored["is_mql"].mean() - share) < 0.05
    assert (scored["is_mql"] != by_score["is_mql"]).any()
    assert (scored["tier"] == by_score["tier"]).all()  # tiers stay on the score
    assert not scored.loc[~scored["is_mql"], "holdout"].any()
    assert (scored.loc[scored["is_mql"] & ~scored["holdout"], "treatment"] == 1).all()

    # `leadq serve` routes the same leads the same way (one scoring core).
    leads = pd.read_csv(store["crm"]["leads"], dtype=str, keep_default_na=False).head(40)
    rows = [{k: v for k, v in r.items() if v != ""} for r in leads.to_dict("records")]
    app = create_app(load_params(params))
    with running(app) as port:
        assert wait_for(lambda: ready(port)[0] == 200, 120), ready(port)
        status, _, body = call(port, "POST", "/v1/score", json.dumps(rows).encode(),
                               {"Content-Type": "application/json"})
    assert status == 200, body
    batch = scored.set_index("lead_id")
    for answer in json.loads(body)["leads"]:
        row = batch.loc[answer["lead_id"]]
        assert answer["is_mql"] == bool(row["is_mql"])
        assert answer["call_value"] == pytest.approx(row["call_value"])
