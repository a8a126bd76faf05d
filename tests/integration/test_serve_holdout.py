"""The holdout is the same lead by lead in `leadq serve` (in-process, one request per lead and
one list) and in `leadq score` (chunked), with the session's trained model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from tests.integration.test_serve_guards import call, running
from tests.integration.test_serve_isolation import ready, wait_for

pytestmark = pytest.mark.slow
N = 60
JSON = {"Content-Type": "application/json"}


def test_serve_and_chunked_batch_hold_out_the_same_mqls(trained_store, tmp_path):
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import create_app

    spec = yaml.safe_load(trained_store["params_path"].read_text())
    spec["agreement"]["holdout_rate"] = 0.4
    spec["scoring"]["explore_rate"] = 0.3
    spec["serve"].update(scoring_log=None, explain=False)
    # Beside the store's own params so its relative MLflow URI finds the same registry.
    path = trained_store["dir"] / "params_holdout.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str, keep_default_na=False)
    sample = leads.head(N)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    assert cli(["score", "--input", str(tmp_path / "sample.csv"), "--output",
                str(tmp_path / "batch.csv"), "--params", str(path), "--no-explain",
                "--chunk-size", "7"]) == 0
    batch = pd.read_csv(tmp_path / "batch.csv", dtype=str).set_index("lead_id")
    assert len(batch) == N
    mql = batch["is_mql"] == "True"
    assert (batch.loc[batch["holdout"] == "True", "treatment"] == "0").all()
    assert (batch.loc[mql & (batch["holdout"] == "False"), "treatment"] == "1").all()
    rows = [{k: v for k, v in r.items() if v != ""} for r in sample.to_dict("records")]

    app = create_app(load_params(path))
    with running(app) as port:
        assert wait_for(lambda: ready(port)[0] == 200, 120), ready(port)
        status, _, body = call(port, "POST", "/v1/score", json.dumps(rows).encode(), JSON)
        assert status == 200, body
        answers = json.loads(body)["leads"]
        singles = []
        for row in rows[:10]:
            status, _, body = call(port, "POST", "/v1/score", json.dumps(row).encode(), JSON)
            assert status == 200, body
            singles.append(json.loads(body))
    for answer in answers + singles:
        row = batch.loc[answer["lead_id"]]
        assert str(answer["holdout"]) == row["holdout"]
        assert str(answer["treatment"]) == row["treatment"]
        assert abs(answer["propensity"] - float(row["propensity"])) < 1e-12
