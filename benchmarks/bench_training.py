"""Training benchmark: model quality and training time on Olist's real export and synthetic CRMs.

    .venv/bin/python benchmarks/bench_training.py                       # Olist + 50k synthetic
    .venv/bin/python benchmarks/bench_training.py --synthetic 50000 200000

Prints a Markdown metrics table (out-of-time test set), the tier tables, and writes
benchmarks/out/training.json. Training time is `train_models` end to end: labelling, the
hyperparameter search, fitting, calibration choice and evaluation (not MLflow logging).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leadq.models.evaluation import format_table  # noqa: E402
from leadq.pipelines.io.crm import load_crm  # noqa: E402
from leadq.pipelines.params.loader import load_params  # noqa: E402
from leadq.pipelines.train import train_models  # noqa: E402

OLIST = REPO / "examples" / "olist" / "params.yaml"
# Origin only: what a marketer's "which channel converts" spreadsheet already knows.
ORIGIN_ONLY = {"features.categorical": ["origin"], "features.target_encode": [],
               "features.date_parts": False, "train.candidates": ["logreg"]}


def run(label: str, params: dict, truth: Path | None = None) -> dict:
    started = time.perf_counter()
    tables = load_crm(params)
    result = train_models(tables, params)
    seconds = time.perf_counter() - started
    m = result.metrics
    row = {
        "run": label, "leads": len(tables.leads), "test_leads": int(m["test_n"]),
        "model": f"{result.candidate}+{result.calibration['method']}",
        "seconds": round(seconds, 1),
        **{k: round(float(m[k]), 4) for k in (
            "test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece",
            "test_capture_top10", "test_capture_top20", "test_capture_top30")},
        "search_trials": {n: len(s.trials) for n, s in result.search.items()},
    }
    if "test_top2_leads_share" in m:
        row.update({k: round(float(m[k]), 4) for k in (
            "test_top2_leads_share", "test_top2_conversions_share", "test_tier_a_vs_d_lift")})
    if truth is not None:
        from sklearn.metrics import roc_auc_score

        true_p = pd.read_csv(truth, dtype={"lead_id": str}).set_index("lead_id").loc[
            result.test_frame["lead_id"], "true_probability"]
        row["oracle_roc_auc"] = round(float(roc_auc_score(result.test_frame["label"], true_p)), 4)
    row["tiers"] = result.tables["tiers"].to_dict("records") if "tiers" in result.tables else []
    print(f"\n{label}: {seconds:.1f}s, test ROC AUC {m['test_roc_auc']:.4f}", flush=True)
    if "tiers" in result.tables:
        print(format_table(result.tables["tiers"]), flush=True)
    return row


def markdown(frame: pd.DataFrame) -> str:
    """A Markdown table without the optional tabulate dependency."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[50000],
                        help="synthetic CRM sizes in leads (default 50000)")
    parser.add_argument("--skip-olist", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "training.json"))
    args = parser.parse_args(argv)
    from leadq.pipelines.io.progress import setup_logging
    from leadq.pipelines.synthetic.crm import write_crm

    setup_logging(False)
    rows = []
    if not args.skip_olist:
        if not (OLIST.parent / load_params(OLIST)["data"]["leads"]["path"]).is_file():
            print("Olist export not found beside the repository: skipping it", file=sys.stderr)
        else:
            rows.append(run("olist", load_params(OLIST)))
            rows.append(run("olist origin-only baseline", load_params(OLIST, ORIGIN_ONLY)))
            rows.append(run("olist + date parts", load_params(
                OLIST, {"features.date_parts": True})))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.synthetic:
            crm = write_crm(Path(tmp) / f"crm{n}", n_leads=n, seed=7)
            params = load_params(REPO / "params.yaml")
            for table in ("leads", "deals", "feedback", "activities"):
                params["data"][table]["path"] = str(crm[table])
            rows.append(run(f"synthetic {n:,}", params, truth=crm["truth"]))

    cols = ["run", "leads", "test_leads", "model", "test_roc_auc", "oracle_roc_auc",
            "test_pr_auc", "test_log_loss", "test_brier", "test_ece", "test_capture_top20",
            "test_top2_leads_share", "test_top2_conversions_share", "test_tier_a_vs_d_lift",
            "seconds"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    print("\n" + markdown(table))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak_mb:,.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": rows, "peak_rss_mb": peak_mb}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
