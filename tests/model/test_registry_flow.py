"""Repeated rollbacks walk back through earlier champions (README "Champion / challenger").

One model is trained (v1, champion by the gate); two more versions of it are registered from
the same artifact, so three champions follow each other (v1 → v2 → v3 by `promote --force`)
without three trainings.
"""

from __future__ import annotations

import pytest

from leadq.pipelines.cli import main as cli


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory, base_params, small_crm):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("rollbacks")
    path = write_params(d, base_params, small_crm, train__candidates=["logreg"],
                        train__search__enabled=False)
    first = train_main(str(path))
    assert first["version"] == "1" and first["champion"]
    configure(load_params(path))
    client = mlflow.MlflowClient()
    mv = client.get_model_version("leadq", "1")
    for expected in ("2", "3"):
        assert str(client.create_model_version("leadq", mv.source, run_id=mv.run_id)
                   .version) == expected
    return {"params": str(path), "client": client}


def _champion(client) -> str:
    return str(client.get_model_version_by_alias("leadq", "champion").version)


def test_repeated_rollbacks_walk_back_through_earlier_champions(three_versions, capsys):
    params, client = three_versions["params"], three_versions["client"]
    assert _champion(client) == "1"
    for version in ("2", "3"):
        assert cli(["promote", version, "--force", "--params", params]) == 0
        assert _champion(client) == version
    assert cli(["rollback", "--params", params]) == 0
    assert _champion(client) == "2"
    assert cli(["rollback", "--params", params]) == 0
    assert _champion(client) == "1"
    capsys.readouterr()
    assert cli(["rollback", "--params", params]) == 1  # v1 was the first champion
    assert "no previous champion" in capsys.readouterr().err
    assert _champion(client) == "1"

    from leadq.pipelines.tracking.registry import read_history

    moves = [(e["action"], e["version"], e["previous"]) for e in read_history(client, "leadq")
             if e["alias"] == "champion"]
    assert moves == [("gate", "1", None), ("force", "2", "1"), ("force", "3", "2"),
                     ("rollback", "2", "3"), ("rollback", "1", "2")]
