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


# GX's pandas engine takes the rows of each metric's domain from the whole batch (a boolean-mask
# copy of every column), so one batch of n columns costs about n expectations × n columns:
# 2,000 numeric inputs ran for more than ten minutes and took 6.3 GB there (issue 30). Columns
# are validated in groups of at most this many, on the same sampled rows, so each copy stays
# narrow: time grows linearly with the number of columns and memory stays flat.
GX_COLUMNS_PER_BATCH = 40


def column_groups(expectations: list[dict], size: int = GX_COLUMNS_PER_BATCH
                  ) -> list[list[dict]]:
    """The expectations in groups naming at most `size` columns each, every column's
    expectations together and in suite order; table-level ones (no column) join the first."""
    by_column: dict[str | None, list[dict]] = {}
    for e in expectations:
        by_column.setdefault(e["kwargs"].get("column"), []).append(e)
    table_level = by_column.pop(None, [])
    names = list(by_column)
    groups = [[e for c in names[i:i + size] for e in by_column[c]]
              for i in range(0, len(names), size)] or [[]]
    groups[0] = table_level + groups[0]
    return groups


def _merged(parts: list[dict]) -> dict:
    """One validation result per table from its column groups' results (gx_summary and the
    MLflow artifact read one)."""
    if len(parts) == 1:
        return parts[0]
    out = dict(parts[0])
    out["results"] = [r for p in parts for r in p.get("results", [])]
    out["success"] = all(p.get("success") for p in parts)
    stats = {k: sum(p.get("statistics", {}).get(k) or 0 for p in parts)
             for k in ("evaluated_expectations", "successful_expectations",
                       "unsuccessful_expectations")}
    stats["success_percent"] = (100.0 * stats["successful_expectations"]
                                / stats["evaluated_expectations"]
                                if stats["evaluated_expectations"] else None)
    out["statistics"] = stats
    out["meta"] = {**(parts[0].get("meta") or {}), "column_groups": len(parts)}
    return out


def run_gx(frames: dict[str, pd.DataFrame], suites: dict[str, dict], params: dict,
           docs_dir: Path | None, *, result_format: str = "SUMMARY") -> dict[str, dict]:
    """Validate each frame against its suite with GX; write Data Docs to `docs_dir`.

    `result_format` is GX's: "COMPLETE" lists every unexpected row's index (the agreement
    test compares them with the evaluator's), "SUMMARY" a few values, for Data Docs and MLflow.
    A table with more than GX_COLUMNS_PER_BATCH columns is validated one column group at a
    time (a suite and a Data Docs page per group); its results come back as one.
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
        asset = source.add_dataframe_asset(table)
        groups = column_groups(usable, GX_COLUMNS_PER_BATCH)
        parts = []
        for i, group in enumerate(groups):
            name = suites[table]["name"] + (f"_columns_{i + 1}_of_{len(groups)}"
                                             if len(groups) > 1 else "")
            suite = context.suites.add(ExpectationSuite(
                name=name, expectations=group, meta=suites[table]["meta"]))
            definition = context.validation_definitions.add(gx.ValidationDefinition(
                name=name, data=asset.add_batch_definition_whole_dataframe(name),
                suite=suite))
            cols = [c for c in dict.fromkeys(e["kwargs"].get("column") for e in group)
                    if c in present]
            res = definition.run(batch_parameters={"dataframe": batch[cols]},
                                 result_format={"result_format": result_format})
            parts.append(res.to_json_dict())
        results[table] = _merged(parts)
    if docs_dir is not None:
        # Once, after every group: the site builder renders every stored result each time.
        context.build_data_docs()
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
