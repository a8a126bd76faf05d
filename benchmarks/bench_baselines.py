"""leadq against library defaults on every labelled dataset: the real exports in
../shared/data (params written by `leadq init`, unedited) and the synthetic CRM.

    .venv/bin/python benchmarks/bench_baselines.py                 # all, both procedures
    .venv/bin/python benchmarks/bench_baselines.py loan synthetic --automl 120

For each dataset, on leadq's own split and input columns, test-set figures of:
- leadq with `train.final_fit: train` (fitted on train, calibrated on validation: the old
  procedure) and `train_validation` (fitted on train + validation, calibrated out of fold);
- HistGradientBoostingClassifier() and LogisticRegression() with library defaults, fitted on
  the same rows as leadq's model (models/baselines.py; HGB without early stopping when its
  validation split would hold fewer than 50 positives);
- LGBMClassifier() and CatBoostClassifier() with library defaults on the same rows and raw
  columns, text as each library's own categories (one thread each: the machine is shared).
  Benchmark dependencies only: `pip install -e ".[bench]"`; skipped when not installed;
- leadq minus each of the four, and minus the best of them, with 90% paired-bootstrap
  intervals on the test rows (models.baselines.paired_auc_interval);
- with --automl SECONDS, FLAML AutoML with that budget on the same rows, run by
  benchmarks/automl_reference.py in the venv given by --automl-python (default
  benchmarks/out/automl-venv: `python3.11 -m venv benchmarks/out/automl-venv &&
  benchmarks/out/automl-venv/bin/pip install "flaml[automl]" pandas pyarrow`). A reference
  only: leadq does not depend on it.
Prints Markdown tables; writes benchmarks/out/baselines.json. Absent datasets are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_real_exports import DATA  # noqa: E402
from bench_real_exports import DATASETS as EXPORTS  # noqa: E402

from leadq.models.baselines import paired_auc_interval, plain_frame  # noqa: E402
from leadq.pipelines.io.crm import load_crm  # noqa: E402
from leadq.pipelines.params.loader import load_params  # noqa: E402
from leadq.pipelines.train import train_models  # noqa: E402

# Every labelled export in ../shared/data: the starbucks promotion test has a 1.2% outcome
# (purchase) and small integer codes, the low-base-rate case the peers were weakest on.
DATASETS = {**EXPORTS, "starbucks": ("starbucks_promotion/training.csv", [])}
AUTOML_PY = REPO / "benchmarks" / "out" / "automl-venv" / "bin" / "python"


def init_params(name: str, work: Path) -> Path:
    """The params `leadq init` writes for a real export (the same arguments as
    bench_real_exports.py)."""
    from leadq.pipelines.init import main as init

    leads, extra = DATASETS[name]
    kwargs: dict = {"lookups": []}
    it = iter(extra)
    for flag in it:
        value = next(it)
        if flag == "--deals":
            kwargs["deals"] = str(DATA / value)
        elif flag == "--lookup":
            path, _, key = value.rpartition(":")
            kwargs["lookups"].append(f"{DATA / path}:{key}")
    out = work / "params.yaml"
    init(str(DATA / leads), out=str(out), force=True, **kwargs)
    return out


PEERS = ("lightgbm", "catboost")


def peer_scores(result) -> dict[str, np.ndarray]:
    """LGBMClassifier() and CatBoostClassifier() fitted with library defaults on leadq's
    fitting rows and raw input columns; their probabilities on the test rows. A library that
    is not installed is skipped (named on stdout)."""
    import pandas as pd

    X_fit, y_fit = result.fit_rows  # noqa: N806
    fit, test = plain_frame(X_fit), plain_frame(result.test_inputs[X_fit.columns])
    text = [c for c in fit.columns if fit[c].dtype == object]
    for frame in (fit, test):
        for col in fit.columns:
            if col not in text:
                frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    y = np.asarray(y_fit, int)
    out: dict[str, np.ndarray] = {}
    try:
        from lightgbm import LGBMClassifier
    except ImportError:
        print("  lightgbm not installed (pip install -e '.[bench]'): skipped")
    else:
        kinds = {c: pd.CategoricalDtype(sorted(fit[c].dropna().unique())) for c in text}
        unseen = test.copy()
        for col, kind in kinds.items():  # a test value never seen in training is missing
            unseen[col] = unseen[col].where(unseen[col].isin(kind.categories))
        model = LGBMClassifier(n_jobs=1, verbose=-1)
        out["lightgbm"] = model.fit(fit.astype(kinds), y).predict_proba(
            unseen.astype(kinds))[:, 1]
    try:
        from catboost import CatBoostClassifier
    except ImportError:
        print("  catboost not installed (pip install -e '.[bench]'): skipped")
    else:
        # CatBoost takes no missing category: blank is a category of its own, as for HGB.
        cf, ct = fit.copy(), test.copy()
        for frame in (cf, ct):
            for col in text:
                frame[col] = frame[col].fillna("").astype(str)
        model = CatBoostClassifier(thread_count=1, verbose=0, allow_writing_files=False)
        out["catboost"] = model.fit(cf, y, cat_features=text).predict_proba(ct)[:, 1]
    return out


def run_one(params: dict, final_fit: str, peers: bool = False) -> tuple[dict, object]:
    params = {**params, "train": {**params["train"], "final_fit": final_fit}}
    started = time.perf_counter()
    result = train_models(load_crm(params, quarantine=False), params)
    m = result.metrics
    row = {"roc_auc": m["test_roc_auc"], "pr_auc": m["test_pr_auc"], "ece": m["test_ece"],
           "seconds": round(time.perf_counter() - started, 1), "model": result.candidate,
           "calibration": result.calibration["method"], "test_rows": len(result.test_frame)}
    for k, v in m.items():
        if k.startswith("baseline_"):
            row[k] = v
    y, score = result.test_frame["label"].to_numpy(), result.test_frame["score"].to_numpy()
    best = max(result.baseline_scores, key=lambda n: m[f"baseline_{n}_test_roc_auc"])
    row["gap_interval"] = paired_auc_interval(y, score, result.baseline_scores[best])
    if result.candidate.startswith("blend:"):
        # What the blend replaced: its first member is the best single candidate out of fold
        # (uncalibrated: sigmoid calibration keeps its ranking, isotonic may tie a few leads).
        from sklearn.metrics import roc_auc_score

        from leadq.models.blend import member_pipelines
        from leadq.models.explain import unwrap

        single = member_pipelines(unwrap(result.model)[0])[0]
        single_score = single.decision_function(result.test_inputs[result.fit_rows[0].columns])
        row["single"] = result.candidate.removeprefix("blend:").split("+")[0]
        row["single_roc_auc"] = float(roc_auc_score(y, single_score))
        row["blend_gain_interval"] = paired_auc_interval(y, score, single_score)
    if peers:
        from sklearn.metrics import roc_auc_score

        started = time.perf_counter()
        panel = {**result.baseline_scores, **peer_scores(result)}
        row["peer_seconds"] = round(time.perf_counter() - started, 1)
        row["peers"] = {name: {"roc_auc": float(roc_auc_score(y, p)),
                               "gap_interval": paired_auc_interval(y, score, p)}
                        for name, p in panel.items()}
        top = max(row["peers"], key=lambda n: row["peers"][n]["roc_auc"])
        row["best_peer"] = top
        row["best_peer_gap"] = row["roc_auc"] - row["peers"][top]["roc_auc"]
    return row, result


def automl(result, budget: float, python: Path, work: Path) -> dict | None:
    if not python.exists():
        print(f"  automl skipped: {python} not found (see this script's docstring)")
        return None
    X_fit, y_fit = result.fit_rows  # noqa: N806
    train = plain_frame(X_fit).assign(__label__=np.asarray(y_fit, int))
    test = plain_frame(result.test_inputs[X_fit.columns]).assign(
        __label__=result.test_frame["label"].to_numpy(int))
    for frame, name in ((train, "train"), (test, "test")):
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].astype("string")
        frame.to_parquet(work / f"automl_{name}.parquet")
    proc = subprocess.run([str(python), str(REPO / "benchmarks" / "automl_reference.py"),
                           str(work / "automl_train.parquet"), str(work / "automl_test.parquet"),
                           "--budget", str(budget)], capture_output=True, text=True)
    if proc.returncode != 0:
        print("  automl failed:", proc.stderr.strip().splitlines()[-3:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=[*DATASETS, "synthetic"])
    parser.add_argument("--automl", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--automl-python", default=str(AUTOML_PY))
    parser.add_argument("--procedures", nargs="+", default=["train", "train_validation"])
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the LightGBM and CatBoost defaults")
    args = parser.parse_args()
    logging.getLogger("leadq").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            work = Path(tmp) / name
            work.mkdir()
            if name == "synthetic":
                from leadq.pipelines.synthetic.crm import write_crm

                write_crm(work / "crm", n_leads=50_000, seed=7)
                params = load_params(REPO / "params.yaml", {
                    "data.leads.path": str(work / "crm" / "leads.csv"),
                    "data.deals.path": str(work / "crm" / "deals.csv"),
                    "data.feedback.path": str(work / "crm" / "feedback.csv"),
                    "data.activities.path": str(work / "crm" / "activities.csv")})
            else:
                if not (DATA / DATASETS[name][0]).exists():
                    print(f"skip {name}: {DATA / DATASETS[name][0]} not found")
                    continue
                params = load_params(init_params(name, work))
            print(f"… {name}", flush=True)
            entry: dict = {"dataset": name}
            for procedure in args.procedures:
                entry[procedure], result = run_one(
                    params, procedure, peers=procedure == args.procedures[-1] and not args.no_peers)
                print(f"  {procedure}: {entry[procedure]}", flush=True)
            if args.automl:
                entry["automl"] = automl(result, args.automl, Path(args.automl_python), work)
                print(f"  automl: {entry['automl']}", flush=True)
            rows.append(entry)
    last = args.procedures[-1]
    print(f"\n| dataset | test rows | leadq ({last}) ROC / PR / ECE | HGB() ROC / PR | "
          "LogReg() ROC / PR | leadq − best baseline (ROC), 90% paired bootstrap |"
          + (" FLAML 2 min ROC / PR (s) |" if args.automl else ""))
    print("|---|---|---|---|---|---|" + ("---|" if args.automl else ""))
    gaps = []
    for e in rows:
        r = e[last]
        best = max(r["baseline_hgb_test_roc_auc"], r["baseline_logreg_test_roc_auc"])
        gaps.append(r["roc_auc"] - best)
        line = (f"| {e['dataset']} | {r['test_rows']:,} | {r['roc_auc']:.3f} / {r['pr_auc']:.3f}"
                f" / {r['ece']:.3f} | {r['baseline_hgb_test_roc_auc']:.3f} / "
                f"{r['baseline_hgb_test_pr_auc']:.3f} | {r['baseline_logreg_test_roc_auc']:.3f} /"
                f" {r['baseline_logreg_test_pr_auc']:.3f} | {gaps[-1]:+.3f} "
                f"[{r['gap_interval'][0]:+.3f}, {r['gap_interval'][1]:+.3f}] |")
        if args.automl:
            a = (e.get("automl") or {}).get("flaml")
            line += (f" {a['roc_auc']:.3f} / {a['pr_auc']:.3f} ({a['seconds']:.0f}) |" if a
                     else " — |")
        print(line)
    peer_rows = [e for e in rows if "peers" in e[last]]
    if peer_rows:
        names = [n for n in ("hgb", "logreg", *PEERS) if any(n in e[last]["peers"]
                                                            for e in peer_rows)]
        print(f"\n| dataset | leadq ({last}) ROC | "
              + " | ".join(f"{n}() ROC, leadq − it [90% paired bootstrap]" for n in names)
              + " | leadq − best of them [90%] |")
        print("|---|---|" + "---|" * len(names) + "---|")
        margins = []
        for e in peer_rows:
            r = e[last]
            cells = []
            for n in names:
                peer = r["peers"].get(n)
                cells.append("—" if peer is None else
                             f"{peer['roc_auc']:.4f}, {r['roc_auc'] - peer['roc_auc']:+.4f} "
                             f"[{peer['gap_interval'][0]:+.4f}, {peer['gap_interval'][1]:+.4f}]")
            top = r["peers"][r["best_peer"]]
            margins.append(r["best_peer_gap"])
            print(f"| {e['dataset']} | {r['roc_auc']:.4f} | " + " | ".join(cells)
                  + f" | {r['best_peer_gap']:+.4f} vs {r['best_peer']} "
                  f"[{top['gap_interval'][0]:+.4f}, {top['gap_interval'][1]:+.4f}] |")
        print(f"\nmean leadq − best of {', '.join(names)}: {np.mean(margins):+.4f}")
    if args.automl:
        print("\n| dataset | leadq ROC (s) | LightGBM() ROC (s) | XGBoost() ROC (s) | "
              "FLAML ROC (s, best) |")
        print("|---|---|---|---|---|")
        for e in rows:
            a = e.get("automl") or {}
            r = e[last]
            cells = [f"{a[k]['roc_auc']:.3f} ({a[k]['seconds']:.0f}"
                     + (f", {a[k]['best']}" if k == "flaml" else "") + ")" if k in a else "—"
                     for k in ("lightgbm", "xgboost", "flaml")]
            print(f"| {e['dataset']} | {r['roc_auc']:.3f} ({r['seconds']:.0f}) | "
                  + " | ".join(cells) + " |")
    if gaps:
        print(f"\nmean leadq − best baseline: {np.mean(gaps):+.4f}")
    if len(args.procedures) == 2:
        a, b = args.procedures
        print(f"\n| dataset | {a}: ROC / PR / ECE / s | {b}: ROC / PR / ECE / s |")
        print("|---|---|---|")
        for e in rows:
            x, y = e[a], e[b]
            print(f"| {e['dataset']} | {x['roc_auc']:.3f} / {x['pr_auc']:.3f} / {x['ece']:.3f} / "
                  f"{x['seconds']:.0f} | {y['roc_auc']:.3f} / {y['pr_auc']:.3f} / "
                  f"{y['ece']:.3f} / {y['seconds']:.0f} |")
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "baselines.json").write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
