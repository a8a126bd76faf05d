"""The uplift model registered beside the conversion model (issue 29 item 3): `leadq lift
--fit-uplift` fits it on the randomised scored leads and registers it for the champion; scoring
with that champion then writes a per-lead `uplift` column; too few randomised leads refuse
(exit 2) and register nothing."""

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
