"""leadq's nightly and weekly jobs in Dagster: `score` every night, `recalibrate` every Monday,
each as the leadq command line (leadq is not imported: Dagster and leadq need not share an
environment, and leadq's dependencies stay free of Dagster's).

Exit codes map to Dagster's outcomes (leadq --help has the table):
  0 success; 1 internal failure → RetryRequested (up to 2 retries, 5 minutes apart), then the
  run fails; 2 bad input or settings and 3 too many rows refused → Failure at once, no retry
  (a retry would refuse the same export), with the reason as metadata for an alert sensor.

Settings come from the environment of the code location, as for leadq-job.sh: LEADQ_PARAMS,
LEADQ_INPUT, LEADQ_OUTPUT or LEADQ_SCORES_DIR, LEADQ_MAX_REJECTED_SHARE (default 0.02) and
LEADQ (the leadq command, default `leadq` on PATH). Load it with
`dagster dev -f dagster_leadq.py`, or check it with `dagster definitions validate -f …`.
"""

# No `from __future__ import annotations`: Dagster reads the ops' annotations at definition time.
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

RETRIES = 2
RETRY_SECONDS = 300


def leadq_argv(job: str) -> list[str]:
    """The leadq command line of `job` ("score" or "recalibrate") from the environment."""
    params = os.environ["LEADQ_PARAMS"]
    argv = [os.environ.get("LEADQ", "leadq"), "--json", "--log-format", "json"]
    if job == "recalibrate":
        return [*argv, "recalibrate", "--params", params]
    output = os.environ.get("LEADQ_OUTPUT") or str(
        Path(os.environ["LEADQ_SCORES_DIR"]) / f"scores-{datetime.now(UTC):%Y-%m-%d}.parquet")
    return [*argv, "score", "--input", os.environ["LEADQ_INPUT"], "--output", output,
            "--max-rejected-share", os.environ.get("LEADQ_MAX_REJECTED_SHARE", "0.02"),
            "--params", params]


def run_leadq(context: dg.OpExecutionContext, job: str) -> dict:
    """Run leadq; its JSON result on success, Dagster's retry or failure otherwise."""
    # A hung run must fail (and alert) rather than block every later night.
    proc = subprocess.run(leadq_argv(job), capture_output=True, text=True, check=False,
                          timeout=6 * 3600)
    for line in proc.stderr.splitlines():  # leadq's JSON log lines, into Dagster's log
        context.log.info(line)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode == 0:
        out = proc.stdout
        return json.loads(out[out.index("{"):]) if "{" in out else {}
    if proc.returncode in (2, 3):
        what = "bad input or settings" if proc.returncode == 2 else "too many rows refused"
        raise dg.Failure(description=f"leadq {job}: {what} (exit {proc.returncode})",
                         metadata={"exit_code": proc.returncode, "message": last[-2000:]},
                         allow_retries=False)
    raise dg.RetryRequested(max_retries=RETRIES, seconds_to_wait=RETRY_SECONDS) from \
        RuntimeError(f"leadq {job} exited {proc.returncode}: {last[-2000:]}")


@dg.op(description="leadq score: the night's leads, through the champion, into the scores")
def score_leads(context: dg.OpExecutionContext) -> dict:
    result = run_leadq(context, "score")
    context.add_output_metadata({"rows": result.get("rows"), "mql": result.get("mql"),
                                 "model_version": result.get("model_version"),
                                 "output": result.get("output")})
    return result


@dg.op(description="leadq recalibrate: the MQL bar on the scored leads' outcomes")
def recalibrate(context: dg.OpExecutionContext) -> dict:
    return run_leadq(context, "recalibrate")


@dg.job(description="Score the night's leads with the champion model")
def nightly_score():
    score_leads()


@dg.job(description="Move the MQL bar on the scored leads' outcomes")
def weekly_recalibrate():
    recalibrate()


defs = dg.Definitions(
    jobs=[nightly_score, weekly_recalibrate],
    schedules=[
        dg.ScheduleDefinition(job=nightly_score, cron_schedule="15 2 * * *",
                              execution_timezone="UTC"),
        dg.ScheduleDefinition(job=weekly_recalibrate, cron_schedule="30 3 * * 1",
                              execution_timezone="UTC"),
    ],
)
