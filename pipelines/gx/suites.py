"""The Great Expectations side of the data contracts.

The rules live in features/contracts.py. Here they are rendered as GX 1.x expectation suites,
run on the tables with an ephemeral GX context and turned into Data Docs (HTML). Personal
columns are replaced by a constant before GX sees a frame, so no personal value reaches Data
Docs, validation results or MLflow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from leadq.features.contracts import settings, suite_expectations
from leadq.features.transform import normalise_category


def suites_for(params: dict, reference: dict | None, tables: list[str]) -> dict[str, dict]:
    """Suite JSON (GX 1.x ExpectationSuite format) per table."""
    return {t: {"name": f"leadq_{t}", "expectations": suite_expectations(t, params, reference),
                "meta": {"leadq_contract": "features/contracts.py", "table": t}}
            for t in tables}


def _gx_frame(raw: pd.DataFrame, table: str, params: dict, expectations: list[dict]
              ) -> pd.DataFrame:
    """The frame GX validates: contract columns only (never personal ones), numbers parsed
    where a range is expected, categories normalised as the model sees them."""
    from leadq.features.contracts import parse_numbers

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
