"""Sizes that used to kill training (issue 30): a near-unique category and a very wide export.

    .venv/bin/python benchmarks/bench_wide.py                    # both cases, default sizes
    .venv/bin/python benchmarks/bench_wide.py --case categories --rows 120000 --distinct 113000
    .venv/bin/python benchmarks/bench_wide.py --case columns --columns 2000 --rows 10000

Each case writes a generated leads-only export (its own outcome column, no deals table) and a
params file into a temporary folder, then runs `leadq train` on it in a child process whose
resident memory is sampled (the whole process tree) and which is stopped at --max-rss-gib or
--timeout. Prints wall seconds, peak RSS, the exit code and the last lines of the log, with
the load average (the machine is shared: times are inflated under load), and writes
benchmarks/out/bench_wide.json.

- categories: `page` has --distinct values in --rows leads (a URL per lead, as a landing-page
  column with query strings), listed in features.target_encode.
- columns: --columns numeric inputs (plus a category), every one listed in features.numeric.
- gx: the columns case's Great Expectations validation alone, in this process (Data Docs
  included): --gx-columns-per-batch 100000 validates the table in one batch, as before issue 30.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
LEADQ = Path(sys.executable).parent / "leadq"


def wide_leads(rows: int, *, distinct: int = 0, columns: int = 0, seed: int = 0) -> pd.DataFrame:
    """Leads with an outcome column: `distinct` values in a `page` column (0: none) and
    `columns` extra numeric columns x0000… (0: none). The outcome follows `source` and
    `employees`, so a model has something to learn and the leakage guard nothing to refuse."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(
        np.sort(rng.uniform(0, 540, rows)), unit="D")
    source = rng.choice(["paid search", "organic", "referral", "event", "partner"], rows)
    employees = rng.lognormal(4, 1.5, rows).round()
    logit = -2.4 + np.select([source == "referral", source == "event"], [1.0, 0.6], 0.0) \
        + 0.25 * np.log1p(employees) - 0.6 + rng.normal(0, 1.0, rows)
    frame = pd.DataFrame({
        "lead_id": [f"L{i:07d}" for i in range(rows)],
        "created_at": created.strftime("%Y-%m-%d"),
        "source": source,
        "employees": employees,
        "converted": (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int),
    })
    if distinct:
        # Each value at least once, the rest drawn: `distinct` values in `rows` leads.
        codes = np.concatenate([np.arange(min(distinct, rows)),
                                rng.integers(0, distinct, max(rows - distinct, 0))])
        frame["page"] = [f"/offer/{c:06d}?utm=x" for c in rng.permutation(codes)]
    if columns:
        block = rng.integers(0, 100, size=(rows, columns)).astype(np.float64)
        block[rng.uniform(size=block.shape) < 0.05] = np.nan
        frame = pd.concat([frame, pd.DataFrame(
            block, columns=[f"x{i:04d}" for i in range(columns)])], axis=1)
    return frame


def wide_params(folder: Path, frame: pd.DataFrame) -> Path:
    """A params file for `frame` in `folder`: leads with their own outcome, every generated
    column an input, the default search and candidates (one thread)."""
    extra = [c for c in frame.columns if c.startswith("x")]
    params = {
        "data": {"leads": {"path": "leads.csv", "id": "lead_id", "created_at": "created_at",
                           "label": "converted"}},
        "label": {"horizon_days": 30},
        "features": {"categorical": ["source"] + (["page"] if "page" in frame else []),
                     "numeric": ["employees", *extra],
                     "target_encode": ["page"] if "page" in frame else []},
        "registry": {"criteria": {}},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db"},
        "outputs": {"dir": "out"},
    }
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_capped(argv: list[str], cwd: Path, *, max_rss_gib: float, timeout: float,
               log_path: Path | None = None) -> dict:
    """Run `argv`; sample the RSS of it and its children every 0.2 s; stop it (and say so)
    past the memory cap or the timeout, so a run that would eat the shared machine cannot."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    parent = psutil.Process(proc.pid)
    peak, stopped = 0, None
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in tree if p.is_running())
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        elapsed = time.perf_counter() - started
        if rss > max_rss_gib * 2**30 or elapsed > timeout:
            stopped = (f"stopped at {rss / 2**30:.1f} GiB" if rss > max_rss_gib * 2**30
                       else f"stopped after {elapsed:.0f} s")
            for p in reversed(tree):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            break
        time.sleep(0.2)
    out, _ = proc.communicate()
    if log_path is not None:
        log_path.write_text(out)
    return {"exit_code": proc.returncode, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mib": round(peak / 2**20), "stopped": stopped,
            "log_tail": out.strip().splitlines()[-6:]}


def gx_only(folder: Path, params_path: Path, per_batch: int | None) -> dict:
    """Time and peak RSS of run_gx on the generated table, the way `leadq train` runs it."""
    import resource

    import leadq.pipelines.gx.suites as suites_module
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.io.progress import setup_logging
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.contracts import reference_for

    setup_logging(False)
    if per_batch:
        suites_module.GX_COLUMNS_PER_BATCH = per_batch
    params = load_params(params_path)
    tables = load_crm(params)
    suites = suites_module.suites_for(params, reference_for(tables, params, None),
                                      list(tables.raw))
    started = time.perf_counter()
    suites_module.run_gx(tables.raw, suites, params, folder / "data_docs")
    return {"exit_code": 0, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "expectations": sum(len(s["expectations"]) for s in suites.values()),
            "columns_per_batch": suites_module.GX_COLUMNS_PER_BATCH}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["categories", "columns", "both", "gx"], default="both")
    ap.add_argument("--gx-columns-per-batch", type=int, default=None,
                    help="--case gx: columns per GX batch (default: leadq's)")
    ap.add_argument("--rows", type=int, default=None,
                    help="leads (default 120,000 for categories, 10,000 for columns)")
    ap.add_argument("--distinct", type=int, default=113_000)
    ap.add_argument("--columns", type=int, default=2000)
    ap.add_argument("--max-rss-gib", type=float, default=6.0)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--label", default="", help="a name for this run in the JSON (before/after)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "bench_wide.json"))
    args = ap.parse_args(argv)
    cases = ["categories", "columns"] if args.case == "both" else [args.case]
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if case == "categories":
                frame = wide_leads(args.rows or 120_000, distinct=args.distinct)
            elif case == "columns":
                frame = wide_leads(args.rows or 10_000, columns=args.columns)
            else:
                frame = wide_leads(args.rows or 2_000, columns=args.columns)
            frame.to_csv(folder / "leads.csv", index=False)
            params = wide_params(folder, frame)
            load_before = os.getloadavg()
            if case == "gx":
                run = gx_only(folder, params, args.gx_columns_per_batch)
            else:
                run = run_capped([str(LEADQ), "train", "--params", str(params)], folder,
                                 max_rss_gib=args.max_rss_gib, timeout=args.timeout,
                                 log_path=Path(args.out).with_name(
                                     f"bench_wide-{case}-{args.label or 'run'}.log"))
            row = {"case": case, "label": args.label, "rows": len(frame),
                   "distinct": args.distinct if case == "categories" else None,
                   "case_detail": "Great Expectations only" if case == "gx" else "leadq train",
                   "columns": frame.shape[1], **run,
                   "load_average": [round(x, 2) for x in load_before],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()]}
            results.append(row)
            print(json.dumps(row, indent=2), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(previous + results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
