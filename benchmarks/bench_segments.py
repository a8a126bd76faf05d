"""Pooled vs per-segment models on the real exports, with a natural segment column each.

    .venv/bin/python benchmarks/bench_segments.py                  # all four, and the synth
    .venv/bin/python benchmarks/bench_segments.py shoppers synth   # some

`synth` is `leadq synth --segments 3` (10,000 leads, truth.csv: also the gap to the truth),
`synth2` the same with two business lines, `synth1` the standard synthetic CRM (one pattern for
every lead, segmented by its `source`: nothing should be kept). For the synthetic CRMs the
truth also gives each model's calibration error against the true probability, and the test
ECE change gets a paired bootstrap interval (is it more than the noise of the test leads?).
For each export: `leadq init` writes the params (as bench_real_exports.py does, no edit), then
one `train_models` run with segments.column set trains the pooled model and, for each segment
over segments.min_leads / min_conversions, its own model, kept only where it beats the pooled
one out of fold beyond noise. On the out-of-time (or held-out) test set, the pooled model alone
and the served model (pooled + kept segment models) are compared per segment and overall:
ROC AUC, PR AUC, ECE. Segments must never cost more than 0.002 of overall test ROC AUC.
Prints Markdown tables; writes benchmarks/out/segments.json. Absent data is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_exports import DATA, DATASETS, REPO, leadq  # noqa: E402

SEGMENT_COLUMN = {"loan": "Source_Category", "booking": "sales_channel",
                  "shoppers": "VisitorType", "olist": "origin", "synth": "business_line",
                  "synth2": "business_line", "synth1": "source"}
SYNTHETIC = ("synth", "synth2", "synth1")
SYNTH_LEADS = 10_000  # `leadq synth --segments 3`: business lines whose drivers differ
MAX_OVERALL_LOSS = 0.002


def _figures(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from leadq.models.metrics import classification_metrics

    m = classification_metrics(y, score)
    return {k: round(m[k], 4) for k in ("roc_auc", "pr_auc", "ece")}


def ece_change_interval(y: np.ndarray, new: np.ndarray, old: np.ndarray, *, rounds: int = 500,
                        level: float = 0.9, seed: int = 0) -> list[float]:
    """Paired bootstrap interval of test ECE(new) − ECE(old): an ECE on a few thousand test
    leads moves by a percentage point on resampling alone."""
    from leadq.models.metrics import expected_calibration_error as ece

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(ece(y[idx], new[idx]) - ece(y[idx], old[idx]))
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def error_to_truth(score: np.ndarray, true_p: np.ndarray, bins: int = 10) -> float:
    """ECE measured against the true probability instead of the 0/1 outcome (per decile of
    the score, |mean score − mean true probability|, weighted): calibration without the
    noise of the test labels."""
    import pandas as pd

    band = pd.qcut(score, bins, labels=False, duplicates="drop")
    frame = pd.DataFrame({"band": band, "s": score, "t": true_p}).groupby("band")
    return float((frame.size() / len(score) * (frame["s"].mean() - frame["t"].mean()).abs()).sum())


def run(name: str, work: Path) -> dict:
    from leadq.models.segments import segment_keys
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.train import train_models

    work.mkdir(parents=True, exist_ok=True)
    if name in ("synth", "synth2"):
        leadq(["synth", "--segments", "3" if name == "synth" else "2", "--leads",
               str(SYNTH_LEADS), "--out", str(work)], work)
    elif name == "synth1":
        leadq(["synth", "--leads", str(SYNTH_LEADS), "--out", str(work)], work)
        text = (REPO / "params.yaml").read_text().replace("demo_output/crm/", "")
        (work / "params.yaml").write_text(text)
    else:
        leads, extra = DATASETS[name]
        leadq(["init", "--leads", str(DATA / leads),
               *[a if a.startswith("--") else str(DATA / a) for a in extra], "--force"], work)
    column = SEGMENT_COLUMN[name]
    params = load_params(work / "params.yaml")
    feats = params["features"]
    for role in ("numeric", "target_encode"):  # a segment column is a category input
        feats[role] = [c for c in feats.get(role) or [] if c != column]
    if column not in (feats.get("categorical") or []):
        feats["categorical"] = [*(feats.get("categorical") or []), column]
    params["segments"]["column"] = column
    started = time.perf_counter()
    result = train_models(load_crm(params), params)
    seconds = time.perf_counter() - started
    X = result.test_inputs[result.sample.columns]  # noqa: N806
    y = result.test_frame["label"].to_numpy()
    served = result.test_frame["score"].to_numpy()
    pooled_model = getattr(result.model, "pooled_", result.model)
    pooled = pooled_model.predict_proba(X)[:, 1]
    keys = segment_keys(X[column])
    table = result.tables.get("segment_models")
    rows = []
    for seg in ([] if table is None else table.to_dict("records")):
        mask = keys == segment_keys(np.array([seg["segment"]], dtype=object))[0]
        both = mask.sum() and 0 < y[mask].sum() < mask.sum()
        rows.append({
            "segment": seg["segment"], "train_leads": int(seg["leads"]),
            "train_conversions": int(seg["conversions"]), "test_leads": int(mask.sum()),
            "model": seg["model"], "why": seg["why"],
            "pooled": _figures(y[mask], pooled[mask]) if both else None,
            "segmented": _figures(y[mask], served[mask]) if both else None,
        })
    overall = {"pooled": _figures(y, pooled), "segmented": _figures(y, served)}
    overall["ece_change_interval"] = ece_change_interval(y, served, pooled)
    if name in SYNTHETIC:  # the truth: how far each model is from the best possible one
        import pandas as pd

        truth = pd.read_csv(work / "truth.csv").set_index("lead_id")
        true_p = truth.loc[result.test_frame["lead_id"], "true_probability"].to_numpy()
        overall["oracle"] = _figures(y, true_p)
        overall["mean_abs_error_to_truth"] = {
            "pooled": round(float(np.abs(pooled - true_p).mean()), 4),
            "segmented": round(float(np.abs(served - true_p).mean()), 4)}
        overall["calibration_error_to_truth"] = {
            "pooled": round(error_to_truth(pooled, true_p), 4),
            "segmented": round(error_to_truth(served, true_p), 4)}
    return {"dataset": name, "column": column, "test_set": result.fingerprint.get("test_set"),
            "test_rows": int(len(y)), "overall": overall, "segments": rows,
            "kept": result.segments.get("own_model", []), "train_seconds": round(seconds, 1),
            "roc_auc_change": round(overall["segmented"]["roc_auc"]
                                    - overall["pooled"]["roc_auc"], 4)}


def _cell(fig: dict | None) -> str:
    return "—" if fig is None else f"{fig['roc_auc']:.3f} / {fig['pr_auc']:.3f} / {fig['ece']:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(SEGMENT_COLUMN))
    parser.add_argument("--keep", default=None, help="working directory to keep (default: temp)")
    args = parser.parse_args()
    results, worse = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        for name in args.datasets:
            if name not in SYNTHETIC and not (DATA / DATASETS[name][0]).exists():
                print(f"skip {name}: ../shared/data absent")
                continue
            print(f"… {name}", flush=True)
            r = run(name, base / name)
            results.append(r)
            if r["roc_auc_change"] < -MAX_OVERALL_LOSS:
                worse.append(name)
    print("\n| dataset (segment column) | segment | test leads | model | pooled ROC AUC / PR AUC "
          "/ ECE | with segments |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for s in r["segments"]:
            print(f"| {r['dataset']} ({r['column']}) | {s['segment']} | {s['test_leads']:,} "
                  f"| {s['model']} | {_cell(s['pooled'])} | {_cell(s['segmented'])} |")
        print(f"| {r['dataset']} ({r['column']}) | **overall** | {r['test_rows']:,} "
              f"| {len(r['kept'])} own | {_cell(r['overall']['pooled'])} "
              f"| {_cell(r['overall']['segmented'])} |")
    for r in results:
        o = r["overall"]
        line = f"{r['dataset']}: test ECE change interval {o['ece_change_interval']}"
        if "calibration_error_to_truth" in o:
            line += (f"; error to the truth (mean abs / calibration): pooled "
                     f"{o['mean_abs_error_to_truth']['pooled']} / "
                     f"{o['calibration_error_to_truth']['pooled']}, segmented "
                     f"{o['mean_abs_error_to_truth']['segmented']} / "
                     f"{o['calibration_error_to_truth']['segmented']}; oracle "
                     f"{o['oracle']['roc_auc']:.3f}")
        print(line)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "segments.json").write_text(json.dumps(results, indent=2, default=str))
    if worse:
        print(f"FAILED: overall test ROC AUC fell by more than {MAX_OVERALL_LOSS} on "
              + ", ".join(worse))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
