"""Kill -9 residue (issue 30): a training killed mid-run left its MLflow run RUNNING forever,
or a registered version with no gate decision. The next training marks them failed, and
touches nothing a live process (or another machine) is still writing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_the_next_start_marks_a_killed_trainings_run_and_version_failed(tmp_path):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.runs import mark_abandoned
    from leadq.pipelines.tracking.store import configure

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"mlflow": {"tracking_uri": "sqlite:///mlflow.db"}}))
    experiment = configure(load_params(path))
    client = mlflow.MlflowClient()
    host = socket.gethostname()

    def run(pid: int, on: str = host) -> str:
        return client.create_run(experiment, tags={"leadq.pid": str(pid),
                                                   "leadq.host": on}).info.run_id

    killed = run(dead_pid())                      # killed during validation: still RUNNING
    killed_after = run(dead_pid())                # killed right after "Created version"
    client.set_terminated(killed_after, "FINISHED")
    alive = run(os.getppid())                     # a training still at work
    elsewhere = run(dead_pid(), on=f"not-{host}")  # another machine: its pid means nothing here
    legacy = client.create_run(experiment).info.run_id  # an older leadq's: no owner tags
    client.create_registered_model("leadq")
    source = (tmp_path / "placeholder").as_uri()
    for run_id in (killed_after, alive, legacy):
        client.create_model_version("leadq", source, run_id=run_id)

    marked = mark_abandoned(client, experiment, "leadq")

    assert sorted(marked) == sorted([f"run {killed}", "version 1"])
    assert client.get_run(killed).info.status == "FAILED"
    assert "gone" in client.get_run(killed).data.tags["leadq.abandoned"]
    for run_id in (alive, elsewhere, legacy):
        assert client.get_run(run_id).info.status == "RUNNING"
    tags = client.get_model_version("leadq", "1").tags
    assert tags["promotion_decision"].startswith("incomplete") and tags["leadq.abandoned"]
    for version in ("2", "3"):
        assert "promotion_decision" not in client.get_model_version("leadq", version).tags
    assert mark_abandoned(client, experiment, "leadq") == []  # once is enough


def test_promote_refuses_a_version_left_by_a_killed_training(tmp_path):
    """An abandoned version may hold most of its metric tags (17-39 of 41 in the audit): the
    criteria alone could pass it, but it was never judged, so only --force promotes it."""
    import mlflow

    from leadq.errors import LeadqError
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.registry import promote
    from leadq.pipelines.tracking.runs import mark_abandoned
    from leadq.pipelines.tracking.store import configure

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"mlflow": {"tracking_uri": "sqlite:///mlflow.db"},
                                    "registry": {"criteria": {}}}))
    params = load_params(path)
    experiment = configure(params)
    client = mlflow.MlflowClient()
    run_id = client.create_run(experiment, tags={"leadq.pid": str(dead_pid()),
                                                 "leadq.host": socket.gethostname()}).info.run_id
    client.create_registered_model("leadq")
    client.create_model_version("leadq", (tmp_path / "placeholder").as_uri(), run_id=run_id)
    client.set_model_version_tag("leadq", "1", "test_roc_auc", "0.810000")
    mark_abandoned(client, experiment, "leadq")
    with pytest.raises(LeadqError, match="incomplete"):
        promote(params, "1")
    assert promote(params, "1", force=True)["champion"] == "1"


@pytest.mark.slow
def test_a_training_killed_mid_run_is_marked_failed_by_the_next(tmp_path, base_params,
                                                                small_crm):
    """The audit's case end to end: `leadq train` killed -9 while its MLflow run is open (the
    contracts' validation runs there) left the run RUNNING for good."""
    import signal
    import time

    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.runs import mark_abandoned
    from leadq.pipelines.tracking.store import configure
    from tests.conftest import write_params

    path = write_params(tmp_path, base_params, small_crm, train__candidates=["logreg"],
                        train__search__enabled=False, train__compare_defaults=False)
    proc = subprocess.Popen([sys.executable, "-m", "leadq.pipelines.cli", "train", "--params",
                             str(path)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    db = tmp_path / "mlflow.db"
    running, deadline = [], time.monotonic() + 600
    try:
        while not running and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists():
                experiment = configure(load_params(path))
                client = mlflow.MlflowClient()
                running = client.search_runs([experiment], "attributes.status = 'RUNNING'")
        assert running, "the training finished before its run could be caught open"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    run_id = running[0].info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"  # what a kill -9 leaves
    assert f"run {run_id}" in mark_abandoned(client, experiment, "leadq")
    assert client.get_run(run_id).info.status == "FAILED"
