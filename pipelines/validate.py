"""`leadq validate` and the Great Expectations side of the data contracts.

The rules live in features/contracts.py. Here they are rendered as GX 1.x expectation suites,
run on the tables with an ephemeral GX context, turned into Data Docs (HTML), stored with each
trained model (`contracts/` artifacts of the training run) and loaded back at scoring time.
Personal columns are dropped before GX sees a frame, so no personal value reaches Data Docs,
validation results or MLflow.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from features.contracts import TABLES, profile, settings, suite_expectations
from features.transform import normalise_category
from pipelines.config import resolve_path
from pipelines.progress import log, step

ARTIFACT_DIR = "contracts"


def suites_for(params: dict, reference: dict | None, tables: list[str]) -> dict[str, dict]:
    """Suite JSON (GX 1.x ExpectationSuite format) per table."""
    return {t: {"name": f"leadq_{t}", "expectations": suite_expectations(t, params, reference),
                "meta": {"leadq_contract": "features/contracts.py", "table": t}}
            for t in tables}


def _gx_frame(raw: pd.DataFrame, table: str, params: dict, expectations: list[dict]
              ) -> pd.DataFrame:
    """The frame GX validates: contract columns only (never personal ones), numbers parsed
    where a range is expected, categories normalised as the model sees them."""
    from features.contracts import parse_numbers

    personal = set(params["data"]["leads"].get("personal") or [])
    cols = [c for c in dict.fromkeys(e["kwargs"].get("column") for e in expectations)
            if c and c in raw.columns]
    out = raw[cols].copy()
    for col in personal & set(cols):
        # Only its existence is checked: GX sees a constant, never a personal value.
        out[col] = "redacted"
    ranged = {e["kwargs"]["column"] for e in expectations
              if e["type"] == "expect_column_values_to_be_between"}
    in_set = {e["kwargs"]["column"] for e in expectations
              if e["type"] == "expect_column_values_to_be_in_set"}
    for col in cols:
        if col in ranged and not pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = parse_numbers(out[col])
        elif col in in_set:
            out[col] = (normalise_category(out[col]) if table == "leads"
                        else out[col].astype("string").str.strip().str.lower().astype(object))
        elif not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(object)
    return out


def _lowered(expectations: list[dict], table: str) -> list[dict]:
    """Allowed outcome/status sets compared case-insensitively, as `evaluate` does."""
    out = []
    for e in expectations:
        e = json.loads(json.dumps(e))
        if e["type"] == "expect_column_values_to_be_in_set" and table != "leads":
            e["kwargs"]["value_set"] = [str(v).strip().lower() for v in e["kwargs"]["value_set"]]
        out.append(e)
    return out


def run_gx(frames: dict[str, pd.DataFrame], suites: dict[str, dict], params: dict,
           docs_dir: Path | None) -> dict[str, dict]:
    """Validate each frame against its suite with GX; write Data Docs to `docs_dir`."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        context.add_data_docs_site("leadq", {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())},
        })
    source = context.data_sources.add_pandas("leadq")
    cap = int(settings(params)["gx_sample_rows"])
    results: dict[str, dict] = {}
    for table, frame in frames.items():
        if table not in suites:
            continue
        exps = _lowered(suites[table]["expectations"], table)
        batch = _gx_frame(frame, table, params, exps)
        if len(batch) > cap:
            batch = batch.sample(cap, random_state=0)
        present = set(batch.columns)
        usable = [e for e in exps if e["kwargs"].get("column") in present
                  or e["kwargs"].get("column") is None
                  or e["type"] == "expect_column_to_exist"]
        suite = context.suites.add(ExpectationSuite(
            name=suites[table]["name"], expectations=usable, meta=suites[table]["meta"]))
        asset = source.add_dataframe_asset(table)
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=f"leadq_{table}", data=asset.add_batch_definition_whole_dataframe(table),
            suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs")] if docs_dir else []
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"leadq_{table}", validation_definitions=[definition], actions=actions,
            result_format={"result_format": "SUMMARY"}))
        run = checkpoint.run(batch_parameters={"dataframe": batch})
        for res in run.run_results.values():
            results[table] = res.to_json_dict()
    return results


def gx_summary(results: dict[str, dict]) -> dict[str, dict]:
    """Per table: failed expectations by leadq level (table / row / warning)."""
    out = {}
    for table, res in results.items():
        failed: dict[str, list[str]] = {"table": [], "row": [], "warning": []}
        for r in res.get("results", []):
            if not r.get("success"):
                cfg = r["expectation_config"]
                level = (cfg.get("meta") or {}).get("level", "row")
                failed.setdefault(level, []).append(
                    f"{cfg['type']}({cfg['kwargs'].get('column', '')})")
        out[table] = {"evaluated": len(res.get("results", [])), "failed": failed}
    return out


def reference_for(tables, params: dict, label_rate: float | None) -> dict:
    return profile(tables.leads, params, label_rate=label_rate)


def previous_reference(params: dict) -> dict | None:
    """The contract reference of the model in service: the champion's, else (no champion yet)
    the latest registered version's that has one."""
    import mlflow

    from pipelines.tracking import CHAMPION

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


def main(params_path: str | None = None, docs: str | None = None) -> dict:
    """`leadq validate`: the contracts on the configured inputs alone, with Data Docs.

    Reads only; no quarantine is written (train and score write it). Exit 2 on a table-level
    failure, 0 otherwise with every rejected row counted by reason.
    """
    from pipelines.config import load_params
    from pipelines.data import load_crm

    params = load_params(params_path)
    with step("check CRM tables against their contracts"):
        tables = load_crm(params, quarantine=False)
    reference = profile(tables.leads, params)
    suites = suites_for(params, reference, list(tables.raw))
    docs_dir = Path(docs) if docs else resolve_path(params, "gx_docs")
    with step(f"Great Expectations → Data Docs in {docs_dir}"):
        results = run_gx(tables.raw, suites, params, docs_dir)
    summary = {
        "accounting": {t: a.as_dict() for t, a in tables.accounting.items()},
        "gx": gx_summary(results),
        "data_docs": str(Path(docs_dir).resolve() / "index.html"),
    }
    for acct in tables.accounting.values():
        print(acct.summary(), file=sys.stderr)
    print(f"Data Docs: {summary['data_docs']}", file=sys.stderr)
    return summary


__all__ = ["main", "run_gx", "log_contracts", "load_reference", "suites_for", "TABLES"]
