"""The scheduler recipes in examples/nightly/ (issue 30, item 4) run on a small synthetic CRM:
the cron line and its wrapper, the systemd service and timer, and the Dagster jobs, each with
leadq's exit codes honoured (1 retried, 2 and 3 not; 3 = too many rows refused, nothing
published).

Dagster is installed only in this test's own environment (a venv cached under the temp dir),
never in leadq's; offline the Dagster test skips with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SMALL_LEADS

EXAMPLES = REPO / "examples" / "nightly"
INSTALLED = "/opt/leadq/examples/nightly/"  # where the recipes expect the examples
LEADQ = str(Path(sys.executable).parent / "leadq")
BAD_LEADS = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nightly(tmp_path_factory, trained_store) -> dict:
    """A read-only export with a few bad leads, a params file on the trained store, a scores
    folder and a log folder: what the recipes' settings point at."""
    root = tmp_path_factory.mktemp("nightly")
    export, scores, logs = root / "export", root / "scores", root / "log"
    for folder in (export, scores, logs):
        folder.mkdir()
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str, keep_default_na=False)
    leads.loc[leads.index[-BAD_LEADS:], "created_at"] = "not a date"
    leads.to_csv(export / "leads.csv", index=False)
    (export / "leads.csv").chmod(stat.S_IRUSR | stat.S_IRGRP)
    params = yaml.safe_load(Path(trained_store["params_path"]).read_text())
    params["scoring"]["model_uri"] = f"models:/leadq/{trained_store['summary']['version']}"
    params["scoring"]["n_threads"] = 1
    params["outputs"] = {"dir": str(root / "leadq-out")}
    params["recalibration"]["scores"] = str(scores / "scores-*.parquet")  # the nightly outputs
    # A copy of the shared store (its sqlite:///mlflow.db is relative to the params file):
    # the weekly recalibration registers a threshold version, which the session's other
    # tests must not see. The model's artifacts stay where the copy's records point.
    shutil.copy2(Path(trained_store["dir"]) / "mlflow.db", root / "mlflow.db")
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    yield {"root": root, "export": export, "scores": scores, "logs": logs,
           "params": str(path)}
    (export / "leads.csv").chmod(stat.S_IRUSR | stat.S_IWUSR)


def job_env(nightly: dict, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADQ_")}
    env.update({"LEADQ": LEADQ, "LEADQ_PARAMS": nightly["params"],
                "LEADQ_INPUT": str(nightly["export"] / "leads.csv"),
                "LEADQ_SCORES_DIR": str(nightly["scores"]), "LEADQ_RETRY_SECONDS": "0",
                "PYTHONWARNINGS": "ignore"})
    env.update(extra)
    return env


def run_job(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(EXAMPLES / "leadq-job.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def tries(proc: subprocess.CompletedProcess) -> int:
    return len(re.findall(r"^leadq-job: \w+ try \d+", proc.stderr, flags=re.M))


def crontab() -> tuple[dict, list[tuple[list[str], str]]]:
    """The example crontab's variables and its (five time fields, command) lines."""
    env, jobs = {}, []
    for line in (EXAMPLES / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, value = line.split("=", 1)
            env[name] = value
            continue
        fields = line.split(None, 5)
        jobs.append((fields[:5], fields[5]))
    return env, jobs


CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?))*$")


def test_the_crontab_lines_are_valid_and_the_score_line_runs_the_nightly_job(nightly):
    env, jobs = crontab()
    assert {"LEADQ_PARAMS", "LEADQ_INPUT", "PATH", "SHELL"} <= set(env)
    assert len(jobs) == 2
    for fields, command in jobs:
        assert all(CRON_FIELD.match(f) for f in fields), fields
        assert command.startswith(INSTALLED + "leadq-job.sh ")
    (score,) = [c for _, c in jobs if " score " in c]
    command = score.replace(INSTALLED, f"{EXAMPLES}/").replace("/srv/leadq/log/",
                                                               f"{nightly['logs']}/")
    before = sorted(nightly["export"].iterdir())
    # the crontab's own settings, but this checkout's leadq and the test's folders
    run_env = job_env(nightly)
    run_env.update({k: v for k, v in env.items()
                    if k in ("CRON_TZ", "LEADQ_MAX_REJECTED_SHARE", "LEADQ_ALERT_CMD")})
    proc = subprocess.run([env["SHELL"], "-c", command], env=run_env,
                          capture_output=True, text=True, timeout=600)
    log = (nightly["logs"] / "score.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    dated = list(nightly["scores"].glob("scores-*.parquet"))
    assert len(dated) == 1 and len(pd.read_parquet(dated[0])) == SMALL_LEADS - BAD_LEADS
    assert sorted(nightly["export"].iterdir()) == before  # nothing beside the input
    assert '"level": "info"' in log  # --log-format json


def test_exit_3_is_not_retried_alerts_and_publishes_nothing(nightly, tmp_path):
    alert = tmp_path / "alert.txt"
    out = tmp_path / "night.parquet"
    proc = run_job(job_env(nightly, LEADQ_OUTPUT=str(out), LEADQ_MAX_REJECTED_SHARE="0.0001",
                           LEADQ_ALERT_CMD=f'printf "%s" "$LEADQ_ALERT" > {alert}'), "score")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert tries(proc) == 1
    assert "exit 3" in alert.read_text()
    assert not out.exists() and not list(tmp_path.glob("night*"))


def test_exit_2_is_not_retried(nightly, tmp_path):
    proc = run_job(job_env(nightly, LEADQ_INPUT=str(tmp_path / "missing.csv"),
                           LEADQ_OUTPUT=str(tmp_path / "x.parquet")), "score")
    assert proc.returncode == 2 and tries(proc) == 1
    assert "missing.csv" in proc.stderr


def test_exit_1_is_retried_then_alerted(nightly, tmp_path):
    fake = tmp_path / "leadq"
    fake.write_text("#!/bin/sh\necho 'internal failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    alert = tmp_path / "alert.txt"
    proc = run_job(job_env(nightly, LEADQ=str(fake), LEADQ_RETRIES="2",
                           LEADQ_ALERT_CMD=f'printf "%s" "$LEADQ_ALERT" > {alert}'), "score")
    assert proc.returncode == 1 and tries(proc) == 3
    assert "after 3 tries" in alert.read_text()


def test_the_weekly_recalibrate_line_runs(nightly):
    """After the nightly line wrote its scores (the test above), the weekly line moves the bar
    on their outcomes (options after the job name go to leadq)."""
    proc = run_job(job_env(nightly), "recalibrate", "--as-of", "2026-06-30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tries(proc) == 1


# --------------------------------------------------------------------------- systemd

def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (apt-get install systemd)")
def test_the_systemd_units_verify_and_their_command_runs(nightly, tmp_path):
    for name in ("leadq-score.service", "leadq-score.timer"):
        text = (EXAMPLES / name).read_text().replace(INSTALLED, f"{EXAMPLES}/")
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "leadq-score.service"),
                           str(tmp_path / "leadq-score.timer")],
                          capture_output=True, text=True, timeout=120)
    # verify only warns (exit 0) about an unknown key: any output is a finding
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        proc.stdout + proc.stderr

    service = unit_settings(tmp_path / "leadq-score.service")
    assert service["Type"] == ["oneshot"]
    assert set(service["RestartPreventExitStatus"][0].split()) >= {"2", "3"}
    assert unit_settings(tmp_path / "leadq-score.timer")["Unit"] == ["leadq-score.service"]
    env = job_env(nightly, LEADQ_OUTPUT=str(tmp_path / "scores.parquet"))
    for assignment in service["Environment"]:
        key, value = assignment.split("=", 1)
        if key != "LEADQ":  # /opt/leadq/.venv/bin/leadq: this checkout's leadq instead
            env[key] = value
    (command,) = service["ExecStart"]
    proc = subprocess.run(command.split(), env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == SMALL_LEADS - BAD_LEADS


# --------------------------------------------------------------------------- Dagster

DAGSTER = "dagster>=1.9,<2"
RUNNER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dagster_leadq", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
result = getattr(mod, sys.argv[2]).execute_in_process(raise_on_error=False)
kinds = [e.event_type_value for e in result.all_events]
print("RETRIES", kinds.count("STEP_UP_FOR_RETRY"), "FAILURES", kinds.count("STEP_FAILURE"))
sys.exit(0 if result.success else 1)
"""


@pytest.fixture(scope="module")
def dagster_python() -> Path:
    """Python of a venv holding Dagster, cached under the temp dir between runs."""
    venv = Path(tempfile.gettempdir()) / "leadq-test-dagster"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", DAGSTER],
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"cannot install {DAGSTER} (offline?): {proc.stderr[-500:]}")
        (venv / ".installed").touch()
    return python


def test_the_dagster_jobs_validate_and_run(nightly, dagster_python, tmp_path):
    env = job_env(nightly, DAGSTER_HOME=str(tmp_path),
                  LEADQ_OUTPUT=str(tmp_path / "scores.parquet"))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = dagster_python.parent / "dagster"
    proc = subprocess.run([str(dagster), "definitions", "validate", "-f",
                           str(EXAMPLES / "dagster_leadq.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "passed validation" in proc.stdout + proc.stderr, \
        proc.stdout[-2000:] + proc.stderr[-3000:]

    runner = tmp_path / "run_job.py"
    runner.write_text(RUNNER)
    proc = subprocess.run([str(dagster_python), str(runner), str(EXAMPLES / "dagster_leadq.py"),
                           "nightly_score"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == SMALL_LEADS - BAD_LEADS

    # too many rows refused: the op fails at once (no retry) and nothing is published
    env.update(LEADQ_OUTPUT=str(tmp_path / "refused.parquet"), LEADQ_MAX_REJECTED_SHARE="0")
    proc = subprocess.run([str(dagster_python), str(runner), str(EXAMPLES / "dagster_leadq.py"),
                           "nightly_score"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1
    assert "RETRIES 0 FAILURES 1" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not (tmp_path / "refused.parquet").exists()
