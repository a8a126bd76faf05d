"""`leadq recalibrate --dry-run` reports without storing anything (README step 6).

The dry run is compared with the real run that follows it on the same inputs: the same answer,
but no MLflow run and no change to the model-version tags the scorer reads.
"""

from __future__ import annotations

import json

import pytest

from leadq.pipelines.cli import main as cli
from tests.helpers import cli_json, recalibration_params

AS_OF = "2026-06-30"
STORED_BY_SAVE = ("threshold_version", "run_id", "source", "model_name", "model_version")


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_params, small_crm):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.train import main as train_main

    d = tmp_path_factory.mktemp("dry_run")
    path = recalibration_params(d, base_params, small_crm,
                                recalibration__scores=str(d / "scores_*.parquet"),
                                agreement__review_days=182)
    train_main(str(path))
    assert cli(["score", "--input", str(small_crm["leads"]), "--output",
                str(d / "scores_1.parquet"), "--no-explain", "--params", str(path)]) == 0
    configure(load_params(path))
    return {"params": str(path), "client": mlflow.MlflowClient()}


def _state(client) -> tuple[dict, list[str]]:
    """The champion's tags and every run id in the store."""
    tags = dict(client.get_model_version("leadq", "1").tags)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = sorted(r.info.run_id for r in client.search_runs(experiments, max_results=1000))
    return tags, runs


def test_dry_run_stores_nothing_and_gives_the_same_answer(store, capsys):
    client, params = store["client"], store["params"]
    tags_before, runs_before = _state(client)
    assert "threshold_version" not in tags_before  # nothing recalibrated yet

    dry = cli_json(capsys, ["recalibrate", "--dry-run", "--as-of", AS_OF, "--params", params])
    assert _state(client) == (tags_before, runs_before)
    assert "run_id" not in dry and "threshold_version" not in dry

    real = cli_json(capsys, ["recalibrate", "--as-of", AS_OF, "--params", params])
    tags_after, runs_after = _state(client)
    # The same comparison sees what a real run stores: one run, three tags.
    assert set(runs_after) - set(runs_before) == {real["run_id"]}
    assert tags_after["threshold_version"] == "1" == str(real["threshold_version"])
    assert json.loads(tags_after["threshold_current"])["run_id"] == real["run_id"]
    assert json.loads(tags_after["threshold_history"])[-1][0] == 1
    for key in STORED_BY_SAVE:
        real.pop(key)
    for result in (dry, real):  # each run's own record (run id, timings, outputs)
        assert result.pop("manifest_path") and result.pop("manifest")["command"] == "recalibrate"
    assert json.dumps(dry, sort_keys=True) == json.dumps(real, sort_keys=True)
