"""Log a training run to MLflow: params, contracts, metrics, plots, the model; then the gate.

mlflow is imported inside functions: it costs seconds and `leadq --help` must stay instant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from leadq.features.privacy import redact_personal
from leadq.pipelines.io.crm import CrmTables, file_sha256
from leadq.pipelines.io.progress import log
from leadq.pipelines.params.loader import agreement_of, public_params
from leadq.pipelines.tracking.store import (
    CHALLENGER,
    CHAMPION,
    configure,
    pip_requirements,
    trusted_types,
)


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

    configure(params)
    name = params["registry"]["model_name"]
    finite = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
    fingerprint = dict(result.fingerprint)
    fingerprint["files"] = {
        t: {"path": str(p), "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
        for t, p in tables.paths.items()
    }
    sample = redact_personal(result.sample, params)
    signature = infer_signature(sample, result.model.predict_proba(sample))
    with mlflow.start_run(run_name=f"train-{result.candidate}") as run:
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
        info = mlflow.sklearn.log_model(
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
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    tags = {
        "mql_threshold": repr(result.threshold.threshold),
        "threshold_policy": result.threshold.policy,
        # The whole policy, not only its name: recalibrate compares it with the agreement.
        "mql_policy": json.dumps(agreement_of(params).mql.key()),
        "threshold_reason": result.threshold.reason,
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
