"""Every real export in ../shared/data through `leadq init → train → score → report`, with no
edit to the params file init writes (only --label / --lookup / --deals on init's command line).

    .venv/bin/python benchmarks/bench_real_exports.py              # all six
    .venv/bin/python benchmarks/bench_real_exports.py loan maven   # some

Each step runs as its own `leadq` process, as a user would run it, in a fresh working
directory (its own MLflow store). Prints a Markdown table per dataset: rows, label form,
split kind, leak suspects init set aside, test ROC AUC and ECE, wall time of the chain; writes
benchmarks/out/real_exports.json. Datasets whose files are absent are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
LEADQ = str(Path(sys.executable).with_name("leadq"))

# name → (leads file, extra init arguments); paths under DATA.
DATASETS: dict[str, tuple[str, list[str]]] = {
    "olist": ("olist_marketing_funnel/olist_marketing_qualified_leads_dataset.csv",
              ["--deals", "olist_marketing_funnel/olist_marketing_closed_deals_dataset.csv"]),
    "maven": ("maven_crm_sales_opportunities/sales_pipeline.csv",
              ["--lookup", "maven_crm_sales_opportunities/accounts.csv:account",
               "--lookup", "maven_crm_sales_opportunities/products.csv:product",
               "--lookup", "maven_crm_sales_opportunities/sales_teams.csv:sales_agent"]),
    "dbt": ("dbt_leads_opportunities/leads.csv", []),
    "loan": ("loan_leads/train.csv", []),
    "booking": ("ba_customer_booking/customer_booking.csv", []),
    "shoppers": ("online_shoppers_intention/online_shoppers_intention.csv", []),
}


def leadq(args: list[str], cwd: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    proc = subprocess.run([LEADQ, "--json", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"leadq {args[0]} exited {proc.returncode}:\n{tail}")
    out = proc.stdout
    start = out.find("{")  # init prints its summary table before the JSON
    return (json.loads(out[start:]) if start >= 0 else {}), took


def run(name: str, work: Path) -> dict:
    leads, extra = DATASETS[name]
    args = [a if a.startswith("--") else str(DATA / a) for a in extra]
    if ":" in "".join(extra):  # --lookup PATH:KEY: only the path part is under DATA
        args = []
        for a in extra:
            if a.startswith("--"):
                args.append(a)
            else:
                path, _, key = a.rpartition(":")
                args.append(f"{DATA / path}:{key}" if path else str(DATA / a))
    work.mkdir(parents=True, exist_ok=True)
    times = {}
    init, times["init"] = leadq(["init", "--leads", str(DATA / leads), *args, "--force"], work)
    train, times["train"] = leadq(["train", "--params", "params.yaml"], work)
    # The version just trained, champion or not: a model the gate refused (below a baseline)
    # is still scored and reported, so the table shows what it would have done.
    uri = f"models:/{train['model_name']}/{train['version']}"
    score, times["score"] = leadq(["score", "--params", "params.yaml", "--input",
                                   str(DATA / leads), "--output", "scores.csv",
                                   "--model-uri", uri], work)
    _, times["report"] = leadq(["report", "--params", "params.yaml", "--out", "report.html",
                                "--model-uri", uri], work)
    m = train.get("metrics", {})
    return {
        "dataset": name, "rows": score["accounting"]["read"], "scored": score["rows"],
        "label_form": init["label_form"], "label": init.get("label"),
        "split": train.get("test_set"), "test_rows": train.get("test_rows"),
        "leak_suspects": sorted(init["leak_suspects"]),
        "test_roc_auc": round(m.get("test_roc_auc", float("nan")), 4),
        "test_pr_auc": round(m.get("test_pr_auc", float("nan")), 4),
        "test_ece": round(m.get("test_ece", float("nan")), 4),
        "best_baseline_roc_auc": round(max(m.get("baseline_hgb_test_roc_auc", float("nan")),
                                           m.get("baseline_logreg_test_roc_auc", float("nan"))),
                                       4),
        "champion": bool(train.get("champion")),
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "total_seconds": round(sum(times.values()), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--keep", default=None, help="working directory to keep (default: temp)")
    args = parser.parse_args()
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        for name in args.datasets:
            leads = DATA / DATASETS[name][0]
            if not leads.exists():
                print(f"skip {name}: {leads} not found (../shared/data absent)")
                continue
            print(f"… {name}", flush=True)
            try:
                rows.append(run(name, base / name))
            except RuntimeError as exc:
                failed.append(name)
                print(f"FAILED {name}: {exc}")
    print("\n| dataset | rows | label form | test set | leak suspects set aside | test ROC AUC "
          "| best baseline | ECE | promoted | init → report (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['rows']:,} | {r['label_form']} ({r['label'] or 'deals'}) "
              f"| {r['split']} ({r['test_rows']:,}) | {', '.join(r['leak_suspects']) or '—'} "
              f"| {r['test_roc_auc']:.3f} | {r['best_baseline_roc_auc']:.3f} "
              f"| {r['test_ece']:.3f} | {'yes' if r['champion'] else 'no'} "
              f"| {r['total_seconds']:.0f} |")
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "real_exports.json").write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
