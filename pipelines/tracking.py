"""MLflow wiring: where runs and models live, how a model is logged, registered and gated.

mlflow is imported inside functions: it costs seconds and `leadq --help` must stay instant.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np

from features.privacy import redact_personal
from pipelines.config import public_params, resolve_path
from pipelines.data import CrmTables, file_sha256
from pipelines.progress import log

CHAMPION, CHALLENGER = "champion", "challenger"
# Types a fitted leadq model may contain; anything else found at save time is refused.
TRUSTED_PREFIXES = (
    "sklearn.", "numpy.", "scipy.", "features.", "models.", "builtins.", "functools.partial",
)


def tracking_uri(params: dict) -> str:
    """MLFLOW_TRACKING_URI wins; otherwise params.yaml, with a relative sqlite path anchored
    at the params file so every command finds the same store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["mlflow"]["tracking_uri"]
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(resolve_path(params, uri[len(prefix):]).resolve())
    return uri


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def configure(params: dict) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    import mlflow

    uri = tracking_uri(params)
    user_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(user_env["MLFLOW_REGISTRY_URI"] or uri)
    # mlflow exports the URIs to os.environ; undo that so the environment keeps meaning "what
    # the user set" and a second params file in the same process is not overridden by the first.
    for key, value in user_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    name = params["mlflow"].get("experiment", "leadq")
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
        return experiment.experiment_id
    artifacts = None
    if is_local_store(uri) and params["mlflow"].get("artifact_location"):
        artifacts = resolve_path(params, params["mlflow"]["artifact_location"]).resolve().as_uri()
    exp_id = mlflow.create_experiment(name, artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def trusted_types(model) -> list[str]:
    """The non-default types skops must trust to load this model, checked against an allowlist."""
    from skops.io import dumps, get_untrusted_types

    found = get_untrusted_types(data=dumps(model))
    refused = [t for t in found if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise TypeError(f"model contains types outside the allowlist: {refused}")
    return sorted(found)


def pip_requirements() -> list[str]:
    names = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")
    return [f"{n}=={pkg_version(n)}" for n in names]


def flat_params(params: dict) -> dict[str, str]:
    """The params worth comparing across runs, flattened to MLflow's key=value form."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = json.dumps(node) if not isinstance(node, str) else node

    for section in ("label", "split", "train", "calibration", "threshold", "features"):
        walk(section, params.get(section) or {})
    return {k: v[:500] for k, v in flat.items()}


def log_training(result, tables: CrmTables, params: dict) -> dict:
    """Log a finished training run, register its model and set the aliases."""
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.plots import training_figures
    from pipelines.validate import log_contracts

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
        from pipelines.evaluation_log import log_evaluation

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
        "threshold_reason": result.threshold.reason,
        "candidate": result.candidate,
        "train_run_id": run_id,
        **{k: f"{v:.6f}" for k, v in finite.items() if k.startswith("test_")},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    # Champion/challenger gate (pipelines/registry.py): re-scores the champion on this test set.
    from pipelines.registry import apply_gate

    promoted, reason = apply_gate(client, result, params, version, run_id)
    log.info("registered %s version %s as %s (%s)", name, version,
             CHAMPION if promoted else CHALLENGER, reason)
    return {"run_id": run_id, "model_name": name, "version": version, "champion": promoted,
            "decision": reason, "tracking_uri": mlflow.get_tracking_uri()}


def meets_criteria(metrics: dict[str, float], criteria: dict) -> tuple[bool, str]:
    """min_<metric> / max_<metric> criteria from params.yaml registry.criteria."""
    failures = []
    for key, bound in criteria.items():
        kind, metric = key.split("_", 1)
        value = metrics.get(metric)
        if value is None:
            failures.append(f"{metric} missing")
        elif kind == "min" and value < bound:
            failures.append(f"{metric} {value:.4f} < {bound}")
        elif kind == "max" and value > bound:
            failures.append(f"{metric} {value:.4f} > {bound}")
    if failures:
        return False, "criteria not met: " + "; ".join(failures)
    return True, "meets all criteria" if criteria else "no criteria configured"
