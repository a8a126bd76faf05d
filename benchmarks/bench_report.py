"""`leadq report` against `leadq train` on a large export (target: report ≤ 25% of training).

    .venv/bin/python benchmarks/bench_report.py                    # 381,000 synthetic leads
    .venv/bin/python benchmarks/bench_report.py --leads 50000      # a quick look
    .venv/bin/python benchmarks/bench_report.py --params my/params.yaml   # your own export

The synthetic run writes a CRM with `leadq synth` (leads, deals, feedback and the activity log)
into a scratch folder, points a copy of the repository's params.yaml at it, then times two
separate `leadq` processes, `train` and `report`, each as a user runs them. With `--params`,
the same two commands run on your own export (they register a model in that params' store).
The report's permutation importance runs on a stratified sample of the test leads
(report.importance_rows), which is what keeps its cost flat as exports grow.
Results go to benchmarks/out/bench_report.json.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
LEADQ = [sys.executable, "-m", "leadq.pipelines.cli"]


def _timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*LEADQ, *args], cwd=cwd, check=True)
    return time.perf_counter() - started


def synthetic_params(work: Path, leads: int, seed: int) -> Path:
    """A synthetic CRM of `leads` leads in work/crm and a params file reading it."""
    subprocess.run([*LEADQ, "synth", "--out", str(work / "crm"), "--leads", str(leads),
                    "--seed", str(seed)], check=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for table in ("leads", "deals", "feedback", "activities"):
        spec = params["data"][table]
        spec["path"] = str(work / "crm" / Path(spec["path"]).name)
    params.setdefault("mlflow", {})["tracking_uri"] = f"sqlite:///{work / 'mlflow.db'}"
    params["mlflow"]["artifact_location"] = str(work / "mlruns")
    out = work / "params.yaml"
    out.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return out


def main(leads: int, seed: int, params: Path | None, work: Path) -> dict:
    params_path = params.resolve() if params else synthetic_params(work, leads, seed)
    where = params_path.parent
    train_s = _timed(["train", "--params", str(params_path)], where)
    report_s = _timed(["report", "--params", str(params_path),
                       "--out", str(work / "report.html")], where)
    load = os.getloadavg()
    result = {"export": str(params_path) if params else f"synthetic, {leads:,} leads",
              "train_seconds": round(train_s, 1), "report_seconds": round(report_s, 1),
              "report_share_of_training": round(report_s / train_s, 3),
              "target_share": 0.25, "load_average_1_5_15": [round(x, 2) for x in load]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_report.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"train {train_s:.1f} s, report {report_s:.1f} s: the report costs "
          f"{report_s / train_s:.0%} of training (target ≤ 25%); load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=381_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--params", type=Path, default=None,
                        help="your own export's params file instead of a synthetic CRM")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        main(args.leads, args.seed, args.params, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="leadq-bench-report-") as tmp:
            main(args.leads, args.seed, args.params, Path(tmp))
