"""Ragged rows at scale: a 1,000,000-row leads CSV with 0.1% ragged rows against the same file
without them, through `leadq score` (pandas engine, reasons off).

Checks that the ragged file scores exactly the other 999,000 rows and quarantines exactly the
1,000 ragged ones (by id), and reports the wall time of both runs (best of --repeat, each in
a subprocess); target: the ragged run within 10% of the clean one.

    .venv/bin/python benchmarks/bench_ragged.py               # 1M rows, best of 2
    .venv/bin/python benchmarks/bench_ragged.py --rows 200000 --repeat 1

The model is the one in benchmarks/out/serve/ when that store exists (bench_serve.py trains
it), else a small one trained into benchmarks/out/ragged/store/. Inputs are cached under
benchmarks/out/ragged/; results go to benchmarks/out/bench_ragged.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from common import leads_own_columns

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
WORK = OUT / "ragged"
LEADQ = [sys.executable, "-m", "leadq.pipelines.cli"]
SEED = 5
EVERY = 1000  # one ragged row per this many: 0.1%


def store() -> tuple[Path, str]:
    """(params file, model uri) of a trained store."""
    serve = OUT / "serve" / "params.yaml"
    if serve.exists() and (OUT / "serve" / "mlflow.db").exists():
        return serve, "models:/leadq@champion"
    params = WORK / "store" / "params.yaml"
    if not params.exists():
        from leadq.pipelines.synthetic.crm import write_crm

        crm = write_crm(WORK / "store" / "crm", n_leads=20_000, seed=SEED)
        base = yaml.safe_load((REPO / "params.yaml").read_text())
        for table in ("leads", "deals", "feedback"):
            base["data"][table]["path"] = str(crm[table])
        leads_own_columns(base)  # leads-only files have no activity log
        base.setdefault("train", {}).update({"candidates": ["hgb"], "search": {"enabled": False}})
        params.write_text(yaml.safe_dump(base, sort_keys=False))
        subprocess.run([*LEADQ, "train", "--params", str(params)], check=True, cwd=params.parent)
    return params, "models:/leadq@champion"


def make_inputs(rows: int) -> tuple[Path, Path, set[str]]:
    """The clean CSV and its ragged twin (every EVERY-th row gets an unquoted extra field),
    and the ids of the ragged rows."""
    clean = WORK / f"leads_{rows}.csv"
    ragged = WORK / f"leads_{rows}_ragged.csv"
    if not clean.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        from leadq.pipelines.synthetic.crm import iter_lead_chunks

        first = True
        for chunk in iter_lead_chunks(rows, seed=SEED):
            chunk.to_csv(clean, index=False, header=first, mode="w" if first else "a")
            first = False
    bad: set[str] = set()
    if not ragged.exists() or not (WORK / f"ragged_ids_{rows}.json").exists():
        with open(clean, newline="") as src, open(ragged, "w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
            writer.writerow(next(reader))
            for i, row in enumerate(reader, start=1):
                if i % EVERY == 0:
                    bad.add(row[0])
                    row = [*row, "stray, field"]  # noqa: PLW2901 - quoted by csv: one field
                writer.writerow(row)
        (WORK / f"ragged_ids_{rows}.json").write_text(json.dumps(sorted(bad)))
    bad = set(json.loads((WORK / f"ragged_ids_{rows}.json").read_text()))
    return clean, ragged, bad


def run(path: Path, out: Path, params: Path, uri: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([*LEADQ, "--json", "score", "--input", str(path), "--output",
                           str(out), "--no-explain", "--model-uri", uri, "--params",
                           str(params)], capture_output=True, text=True, cwd=params.parent)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"leadq score failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    params, uri = store()
    clean, ragged, bad = make_inputs(args.rows)
    times: dict[str, list[float]] = {"clean": [], "ragged": []}
    summaries = {}
    for _ in range(args.repeat):  # interleaved, so machine load hits both alike
        for label, path in (("clean", clean), ("ragged", ragged)):
            elapsed, summary = run(path, WORK / f"scores_{label}.csv", params, uri)
            times[label].append(elapsed)
            summaries[label] = summary
    acct = summaries["ragged"]["accounting"]
    scored = pd.read_csv(WORK / "scores_ragged.csv", usecols=["lead_id"], dtype=str)
    quarantined = pd.read_csv(WORK / "scores_ragged.rejected.csv", dtype=str,
                              keep_default_na=False)
    ragged_q = quarantined[quarantined["reason"].str.startswith("ragged row")]
    checks = {
        "read": acct["read"] == args.rows,
        "scored_the_others": acct["used"] == args.rows - len(bad) == len(scored),
        "quarantined_exactly_the_ragged": set(ragged_q["lead_id"]) == bad
        and len(quarantined) == len(bad),
        "no_ragged_id_scored": not (set(scored["lead_id"]) & bad),
        "clean_file_all_scored": summaries["clean"]["accounting"]["used"] == args.rows,
    }
    best = {k: min(v) for k, v in times.items()}
    ratio = best["ragged"] / best["clean"]
    result = {"rows": args.rows, "ragged_rows": len(bad), "seconds": times, "best": best,
              "ragged_over_clean": round(ratio, 3), "within_10_percent": ratio <= 1.10,
              "checks": checks, "load_average": os.getloadavg(),
              "rejected_by_reason": acct["rejected_by_reason"]}
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_ragged.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not all(checks.values()):
        raise SystemExit("accounting check failed")


if __name__ == "__main__":
    main()
