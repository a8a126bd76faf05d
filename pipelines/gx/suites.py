"""The Great Expectations side of the data contracts.

The rules live in one table, features/rules.py, which also renders them as GX 1.x expectation
configs (`suite_expectations`). Here they become suites, run on the tables with an ephemeral GX
context and turned into Data Docs (HTML). Personal columns are replaced by a constant before GX
sees a frame, so no personal value reaches Data Docs, validation results or MLflow.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from leadq.features.contracts import gx_view
from leadq.features.rules import settings, suite_expectations

# GX writes unexpected values and value sets into Data Docs (HTML) as they are: a cell a web
# form filled with "<script>" must not become markup there. The angle brackets become look-alike
# characters, one for one, in the frame GX validates and in the sets it compares with, so every
# verdict (lengths, regexes, membership) is the one the raw value gets.
_MARKUP = str.maketrans({"<": "\u2039", ">": "\u203a"})


def _inert(value):
    return value.translate(_MARKUP) if isinstance(value, str) else value


def suites_for(params: dict, reference: dict | None, tables: list[str]) -> dict[str, dict]:
    """Suite JSON (GX 1.x ExpectationSuite format) per table."""
    out = {}
    for t in tables:
        expectations = suite_expectations(t, params, reference)
        for e in expectations:
            if isinstance(e["kwargs"].get("value_set"), list):
                e["kwargs"]["value_set"] = [_inert(v) for v in e["kwargs"]["value_set"]]
        out[t] = {"name": f"leadq_{t}", "expectations": expectations,
                  "meta": {"leadq_contract": "features/rules.py", "table": t}}
    return out


def _gx_frame(raw: pd.DataFrame, table: str, params: dict, expectations: list[dict]
              ) -> pd.DataFrame:
    """The frame GX validates: one column per (contract column, view) the expectations name
    (see leadq.features.contracts.gx_view), never a personal value."""
    personal = set(params["data"]["leads"].get("personal") or [])
    out: dict[str, pd.Series] = {}
    for e in expectations:
        meta = e.get("meta") or {}
        col, name = meta.get("column"), e["kwargs"].get("column")
        if not col or col not in raw.columns or name in out:
            continue
        if col in personal:
            # Only its existence is checked: GX sees a constant, never a personal value.
            out[name] = pd.Series("redacted", index=raw.index, dtype=object)
            continue
        view = gx_view(raw[col], meta.get("view"), meta.get("view_params") or {})
        if not pd.api.types.is_numeric_dtype(view) and not pd.api.types.is_bool_dtype(view):
            view = view.map(_inert, na_action="ignore")
        out[name] = view
    return pd.DataFrame(out, index=raw.index)


def run_gx(frames: dict[str, pd.DataFrame], suites: dict[str, dict], params: dict,
           docs_dir: Path | None, *, result_format: str = "SUMMARY") -> dict[str, dict]:
    """Validate each frame against its suite with GX; write Data Docs to `docs_dir`.

    `result_format` is GX's: "COMPLETE" lists every unexpected row's index (the agreement
    test compares them with the evaluator's), "SUMMARY" a few values, for Data Docs and MLflow.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        # GX imports pyspark when it is installed (leadq's Spark engine), and pyspark warns
        # that it does not fully support pandas 3; validation runs on pandas, not Spark.
        warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
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
        exps = suites[table]["expectations"]
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
            result_format={"result_format": result_format}))
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
