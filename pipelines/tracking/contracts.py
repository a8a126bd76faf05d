"""The contract artifacts of a training run: the training reference, suites, GX results.

Each training run stores them under `contracts/`; scoring loads `reference.json` back from
the run of the model it scores with, so it checks against what that model was trained on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from leadq.features.contracts import profile, settings
from leadq.pipelines.gx.suites import gx_summary, run_gx, suites_for
from leadq.pipelines.io.progress import log, step

ARTIFACT_DIR = "contracts"


def reference_for(tables, params: dict, label_rate: float | None) -> dict:
    return profile(tables.leads, params, label_rate=label_rate)


def previous_reference(params: dict) -> dict | None:
    """The contract reference of the model in service: the champion's, else (no champion yet)
    the latest registered version's that has one."""
    import mlflow

    from leadq.pipelines.tracking.store import CHAMPION

    name = params["registry"]["model_name"]
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception:  # noqa: BLE001 - no registry or no model yet
        return None
    try:
        champion = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except Exception:  # noqa: BLE001 - no champion alias yet
        champion = None
    for mv in versions_by_preference(versions, champion):
        ref = load_reference((mv.tags or {}).get("train_run_id") or mv.run_id)
        if ref is not None:
            return ref
    return None


def versions_by_preference(versions: list, champion: str | None) -> list:
    """The champion first (a challenger that was never promoted is not the baseline a new
    model should be compared with), then the rest, newest first."""
    newest = sorted(versions, key=lambda v: int(v.version), reverse=True)
    return sorted(newest, key=lambda v: str(v.version) != champion)  # stable: keeps newest-first


def load_reference(run_id: str | None) -> dict | None:
    """contracts/reference.json of a training run (None when the run predates contracts)."""
    if not run_id:
        return None
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT_DIR}/reference.json")
    except Exception:  # noqa: BLE001 - an older model without contracts
        return None


def label_rate_warning(reference: dict, previous: dict | None, params: dict) -> str | None:
    if not previous or previous.get("label_rate") is None or reference.get("label_rate") is None:
        return None
    change = abs(float(reference["label_rate"]) - float(previous["label_rate"]))
    limit = float(settings(params)["label_rate_max_change"])
    if change > limit:
        return (f"label rate moved from {previous['label_rate']:.4f} to "
                f"{reference['label_rate']:.4f} since the model in service (> contracts."
                f"label_rate_max_change {limit})")
    return None


def log_contracts(tables, result, params: dict) -> dict:
    """Inside an active training run: log the suites, the reference, GX results, Data Docs and
    the row accounting (counts only; quarantine files stay beside their inputs)."""
    import mlflow

    label_rate = (result.fingerprint or {}).get("label_rate")
    reference = reference_for(tables, params, label_rate)
    previous = previous_reference(params)
    warning = label_rate_warning(reference, previous, params)
    if warning:
        log.warning("contract warning: %s", warning)
        mlflow.set_tag("leadq.contract_warning", warning[:500])
    mlflow.log_metric("contract_label_rate_change", 0.0 if not previous or previous.get(
        "label_rate") is None or label_rate is None else abs(label_rate - previous["label_rate"]))
    suites = suites_for(params, reference, list(tables.raw))
    mlflow.log_dict(reference, f"{ARTIFACT_DIR}/reference.json")
    for table, suite in suites.items():
        mlflow.log_dict(suite, f"{ARTIFACT_DIR}/{table}.suite.json")
    accounting = {t: a.as_dict() for t, a in tables.accounting.items()}
    for acct in accounting.values():
        acct.pop("quarantine", None)  # a local path, not for the model store
    mlflow.log_dict(accounting, f"{ARTIFACT_DIR}/accounting.json")
    for acct in tables.accounting.values():
        mlflow.log_metrics(acct.metrics())
    with tempfile.TemporaryDirectory() as tmp, step("validate with Great Expectations"):
        results = run_gx(tables.raw, suites, params, Path(tmp) / "data_docs")
        mlflow.log_dict(gx_summary(results), f"{ARTIFACT_DIR}/gx_summary.json")
        for table, res in results.items():
            mlflow.log_dict(res, f"{ARTIFACT_DIR}/validation/{table}.json")
        mlflow.log_artifacts(str(Path(tmp) / "data_docs"), f"{ARTIFACT_DIR}/data_docs")
    return {"label_rate_warning": warning, "accounting": accounting}
