"""`leadq demo`: synthetic CRM → train → score, then a summary a newcomer can act on."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from leadq.models.metrics import expected_calibration_error
from leadq.pipelines.io.progress import log, step
from leadq.pipelines.params.loader import load_params
from leadq.settings import setting


def main(params_path: str | None = None, *, leads: int | None = None, seed: int | None = None,
         out: str | None = None) -> dict:
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.score import main as score_main
    from leadq.pipelines.synthetic.crm import write_crm
    from leadq.pipelines.tracking.runs import log_training
    from leadq.pipelines.train import train_models

    started = time.perf_counter()
    params = load_params(params_path)
    demo = params.get("demo") or {}
    n = int(leads or setting(demo, "leads"))
    seed = int(seed if seed is not None else setting(demo, "seed"))
    out_dir = Path(out or setting(demo, "out"))
    if not out_dir.is_absolute():
        out_dir = Path(params["_base_dir"]) / out_dir
    crm = out_dir / "crm"
    for table in ("leads", "deals", "feedback", "activities"):
        if (params["data"].get(table) or {}).get("path"):
            params["data"][table]["path"] = str(crm / f"{table}.csv")

    with step(f"[1/4] synthesise a CRM of {n:,} leads (seed {seed}) in {crm}"):
        paths = write_crm(crm, n_leads=n, seed=seed)
    with step("[2/4] train candidates, calibrate and evaluate out of time"):
        tables = load_crm(params)
        result = train_models(tables, params)
    with step("[3/4] log the run and register the model in MLflow"):
        reg = log_training(result, tables, params)

    truth = pd.read_csv(paths["truth"], dtype={"lead_id": str}).set_index("lead_id")
    test = result.test_frame
    true_p = truth.loc[test["lead_id"], "true_probability"].to_numpy()
    oracle_auc = roc_auc_score(test["label"], true_p)
    # New leads = the most recent month, whose outcomes are not known yet.
    new_leads = tables.leads[tables.leads["created_at"] >= tables.leads["created_at"].max()
                             - pd.Timedelta(days=30)]
    new_path = out_dir / "new_leads.csv"
    pd.read_csv(paths["leads"], dtype=str).set_index("lead_id").loc[
        new_leads["lead_id"]].reset_index().to_csv(new_path, index=False)
    scores_path = out_dir / "scores.csv"
    with step(f"[4/4] score {len(new_leads):,} new leads with the champion"):
        uri = None if reg["champion"] else f"models:/{reg['model_name']}/{reg['version']}"
        scored = score_main(str(new_path), str(scores_path), model_uri=uri,
                            params_path=params["_path"], params=params)

    m = result.metrics
    summary = {
        "leads": n,
        "test_leads": int(len(test)),
        "test_roc_auc": m["test_roc_auc"],
        "oracle_roc_auc": float(oracle_auc),
        "test_ece": m["test_ece"],
        "test_ece_vs_truth": expected_calibration_error(true_p, test["score"].to_numpy()),
        "test_pr_auc": m["test_pr_auc"],
        "candidate": result.candidate,
        "threshold": result.threshold.threshold,
        "threshold_policy": result.threshold.policy,
        "mql_share_new": scored["mql"] / max(scored["rows"], 1),
        "model_version": reg["version"],
        "champion": reg["champion"],
        "scores": str(scores_path),
        "tracking_uri": reg["tracking_uri"],
        "gate_decision": reg.get("decision"),
        "seconds": time.perf_counter() - started,
    }
    _print_summary(summary)
    if "tiers" in result.tables:
        from leadq.models.evaluation import format_table

        # The table sales and marketing agree on: how much each tier converts.
        print("tiers on the out-of-time test leads (A best):")
        print(format_table(result.tables["tiers"]), end="\n\n", flush=True)
    return summary


def _mlflow_command() -> str:
    """`mlflow` as the reader can type it: the program beside this Python (the project's .venv
    is rarely on PATH), relative to the current folder when it lies inside it."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "mlflow"
    if not beside.is_file() or shutil.which("mlflow") == str(beside):
        return "mlflow"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def _print_summary(s: dict) -> None:
    store = s["tracking_uri"]
    print(f"""
leadq demo — {s['leads']:,} synthetic leads, done in {s['seconds']:.0f}s

  model            {s['candidate']} (calibrated), registry version {s['model_version']}\
{' → champion' if s['champion'] else ' (challenger: did not meet the criteria)'}
  gate             {s['gate_decision'] or '(no decision recorded)'}
  test ROC AUC     {s['test_roc_auc']:.3f}   (oracle with the true probabilities: \
{s['oracle_roc_auc']:.3f}) on {s['test_leads']:,} out-of-time leads
  test PR AUC      {s['test_pr_auc']:.3f}
  calibration      ECE {s['test_ece']:.3f} against outcomes, {s['test_ece_vs_truth']:.3f} \
against the true probabilities
  MQL bar          score ≥ {s['threshold']:.3f} ({s['threshold_policy']}); \
{s['mql_share_new']:.1%} of new leads are MQLs

  scores           {s['scores']}
  MLflow store     {store}
  browse it        {_mlflow_command()} ui --backend-store-uri {store}
""")
    log.debug("demo summary: %s", s)
