"""Log a training run to MLflow: params, contracts, metrics, plots, the model; then the gate.

mlflow is imported inside functions: it costs seconds and `leadq --help` must stay instant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from leadq.features.privacy import redact_personal
from leadq.pipelines.io.crm import CrmTables
from leadq.pipelines.io.manifest import file_sha256
from leadq.pipelines.io.progress import log
from leadq.pipelines.params.loader import agreement_of, public_params
from leadq.pipelines.tracking.store import (
    CHALLENGER,
    CHAMPION,
    configure,
    pip_requirements,
    quiet_registry_prints,
    trusted_types,
)
from leadq.pipelines.tracking.thresholds import training_tags


def flat_params(params: dict) -> dict[str, str]:
    """The params worth comparing across runs, flattened to MLflow's key=value form."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = json.dumps(node) if not isinstance(node, str) else node

    for section in ("label", "split", "train", "calibration", "agreement", "features"):
        walk(section, params.get(section) or {})
    return {k: v[:500] for k, v in flat.items()}


def log_training(result, tables: CrmTables, params: dict) -> dict:
    """Log a finished training run, register its model and set the aliases."""
    import mlflow
    from mlflow.models import infer_signature

    from leadq.pipelines.reporting.charts import training_figures
    from leadq.pipelines.tracking.contracts import log_contracts

    experiment_id = configure(params)
    name = params["registry"]["model_name"]
    mark_abandoned(mlflow.MlflowClient(), experiment_id, name)
    finite = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
    fingerprint = dict(result.fingerprint)
    # A database table has no file to hash: its label (URL without password) and row count.
    fingerprint["files"] = {
        t: {"path": str(p), "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
        if isinstance(p, Path) else
        {"path": p, "rows": tables.accounting[t].read if t in tables.accounting else None}
        for t, p in tables.paths.items()
    }
    sample = redact_personal(result.sample, params)
    signature = infer_signature(sample, result.model.predict_proba(sample))
    # The owner's process is tagged as the run is created, so a later start can tell a run
    # (or version) whose process was killed from one still being written (mark_abandoned).
    with mlflow.start_run(run_name=f"train-{result.candidate}", tags=owner_tags()) as run:
        mlflow.set_tags({"leadq.step": "train", "leadq.candidate": result.candidate})
        mlflow.log_params(flat_params(params))
        mlflow.log_dict(public_params(params), "params.yaml")
        mlflow.log_dict(fingerprint, "data_fingerprint.json")
        mlflow.log_dict(result.validation_metrics, "candidates_validation.json")
        mlflow.log_dict(result.threshold.as_dict(), "threshold.json")
        # Data contracts: GX suites + training reference (loaded back at scoring), validation
        # results, Data Docs and row accounting; quarantine files stay beside their inputs.
        log_contracts(tables, result, params)
        mlflow.log_metrics(finite)
        mlflow.log_metrics({
            "data_leads_rows": fingerprint["leads_rows"],
            "data_labelled": fingerprint["labelled"],
            "data_label_rate": fingerprint["label_rate"] or 0.0,
        })
        import matplotlib.pyplot as plt

        for fname, fig in training_figures(result.test_frame).items():
            mlflow.log_figure(fig, f"plots/{fname}")
            plt.close(fig)  # pyplot keeps every figure alive until closed
        from leadq.pipelines.tracking.evaluation import log_evaluation

        log_evaluation(result)
        with quiet_registry_prints():
            info = _log_model(result, signature, sample, name)
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    tags = {
        **training_tags(result.threshold, agreement_of(params)),
        "candidate": result.candidate,
        "train_run_id": run_id,
        # The counts the report and review quote: the one record, so they cannot disagree.
        "n_labelled": str(int(sum((result.fingerprint.get("split_rows") or {}).values()))),
        "n_test": str(int((result.fingerprint.get("split_rows") or {}).get("test", 0))),
        **{k: f"{v:.6f}" for k, v in finite.items() if k.startswith(("test_", "baseline_"))},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    # Champion/challenger gate (tracking/registry.py): re-scores the champion on this test set.
    from leadq.pipelines.tracking.registry import apply_gate

    promoted, reason = apply_gate(client, result, params, version, run_id)
    log.info("registered %s version %s as %s (%s)", name, version,
             CHAMPION if promoted else CHALLENGER, reason)
    return {"run_id": run_id, "model_name": name, "version": version, "champion": promoted,
            "decision": reason, "tracking_uri": mlflow.get_tracking_uri()}


OWNER_PID, OWNER_HOST = "leadq.pid", "leadq.host"
ABANDONED = "leadq.abandoned"


def owner_tags() -> dict[str, str]:
    """Which process writes a run: checked by mark_abandoned on a later start."""
    import socket

    return {OWNER_PID: str(os.getpid()), OWNER_HOST: socket.gethostname()}


def owner_gone(tags: dict) -> str | None:
    """Why the process that owns a run is known to be dead (None: alive, or unknown: a run
    written elsewhere or by an older leadq is never touched)."""
    import socket

    pid, host = tags.get(OWNER_PID), tags.get(OWNER_HOST)
    if not (pid and pid.isdigit()) or host != socket.gethostname() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return f"its process {pid} on {host} is gone (killed?)"
    except PermissionError:
        return None  # alive, another user's
    return None


def mark_abandoned(client, experiment_id: str, model_name: str) -> list[str]:
    """Finish what a killed training left behind: a run still RUNNING is set FAILED, and a
    version registered without a gate decision gets one saying it is incomplete (no metrics
    tags, never promoted by the gate; `leadq promote` refuses it without --force). Only the
    runs of dead processes on this machine are touched. Returns what was marked."""
    from mlflow.exceptions import MlflowException

    marked: list[str] = []
    gone: dict[str, str | None] = {}
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                 max_results=1000)
    for run in running:
        why = gone[run.info.run_id] = owner_gone(run.data.tags)
        if why:
            client.set_tag(run.info.run_id, ABANDONED, f"marked FAILED by a later start: {why}")
            client.set_terminated(run.info.run_id, status="FAILED")
            marked.append(f"run {run.info.run_id}")
    try:
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException:
        versions = []
    for mv in versions:
        if "promotion_decision" in (mv.tags or {}) or not mv.run_id:
            continue
        if mv.run_id not in gone:
            try:
                gone[mv.run_id] = owner_gone(client.get_run(mv.run_id).data.tags)
            except MlflowException:
                gone[mv.run_id] = None
        why = gone[mv.run_id]
        if why:
            client.set_model_version_tag(
                model_name, mv.version, "promotion_decision",
                f"incomplete: the training stopped before the gate ({why}); not a candidate, "
                "retrain")
            client.set_model_version_tag(model_name, mv.version, ABANDONED, "true")
            marked.append(f"version {mv.version}")
    if marked:
        log.warning("left by a killed training and now marked failed: %s", ", ".join(marked))
    return marked


def _log_model(result, signature, sample, name: str):
    import mlflow

    return mlflow.sklearn.log_model(
        result.model,
        name="model",
        signature=signature,
        input_example=sample.head(5),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted_types(result.model),
        metadata={"mql_threshold": result.threshold.threshold,
                  "threshold_policy": result.threshold.policy},
        registered_model_name=name,
    )
