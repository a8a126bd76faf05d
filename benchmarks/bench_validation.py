"""How much the data contracts add to scoring 1M rows (target: at most +30%).

Trains a small model in a temporary MLflow store, writes N synthetic leads (default 1,000,000)
to CSV, then scores them with `leadq.pipelines.scoring.stream.score_file` twice: with the contract's
vectorised row checks (what `leadq score` does) and with the checks replaced by a no-op.
Also times the row checks alone and Great Expectations on the stored suite over a sample.

    .venv/bin/python benchmarks/bench_validation.py [--rows 1000000] [--chunk-size 200000]

Prints the figures and writes benchmarks/out/bench_validation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from common import leads_own_columns

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _train(tmp: Path) -> tuple[dict, str]:
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.synthetic.crm import write_crm
    from leadq.pipelines.train import main as train_main

    crm = write_crm(tmp / "crm", n_leads=20_000, seed=1)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for table in ("leads", "deals", "feedback"):
        params["data"][table]["path"] = str(crm[table])
    leads_own_columns(params)  # leads-only files have no activity log
    # The repository's params.yaml holds only what differs from the defaults.
    params["mlflow"] = {**(params.get("mlflow") or {}), "tracking_uri": "sqlite:///mlflow.db",
                        "artifact_location": "mlruns"}
    params.pop("recalibration", None)
    params.setdefault("train", {})["search"] = {"enabled": False}
    params.setdefault("registry", {})["criteria"] = {}
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    summary = train_main(str(path))
    return load_params(path), summary["version"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-size", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--gx-rows", type=int, default=200_000)
    args = ap.parse_args()

    import leadq.features.contracts as contracts
    import leadq.pipelines.scoring.stream as stream
    from leadq.pipelines.gx.suites import run_gx, suites_for
    from leadq.pipelines.io.progress import setup_logging
    from leadq.pipelines.scoring.core import check_and_score
    from leadq.pipelines.scoring.model import load_scoring_model
    from leadq.pipelines.synthetic.crm import iter_lead_chunks
    from leadq.pipelines.tracking.contracts import load_reference

    setup_logging(False)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        params, version = _train(tmp)
        model = load_scoring_model(params, f"models:/{params['registry']['model_name']}/{version}")
        reference = load_reference(model.tags.get("train_run_id"))
        leads_path = tmp / "leads.csv"
        for i, chunk in enumerate(iter_lead_chunks(args.rows, seed=5, chunk_size=250_000)):
            chunk.to_csv(leads_path, index=False, header=i == 0, mode="w" if i == 0 else "a")
        scored_at = pd.Timestamp.now(tz="UTC").floor("s")

        def score_batch(frame: pd.DataFrame, duplicates, hashes):
            return check_and_score(frame, model, params, reference=reference,
                                   scored_at=scored_at, explain=False, duplicates=duplicates,
                                   hashes=hashes)

        real_evaluate = contracts.evaluate

        def no_checks(frame, table, params, reference=None, *, duplicates=None):
            empty = pd.Series("", index=frame.index, dtype=object)
            return contracts.RowCheck(reasons=empty, primary=empty)

        def run(label: str) -> float:
            out = tmp / f"scores_{label}.csv"
            contracts.evaluate = real_evaluate if label == "checked" else no_checks
            try:
                start = time.perf_counter()
                acct = stream.score_file(leads_path, out, tmp / f"q_{label}.csv", params,
                                         score_batch, chunk_size=args.chunk_size)
                seconds = time.perf_counter() - start
            finally:
                contracts.evaluate = real_evaluate
            assert acct.balanced() and acct.read == args.rows
            return seconds

        # Interleaved and best-of: on a shared machine the load changes between runs.
        timings: dict[str, list[float]] = {"checked": [], "unchecked": []}
        from threadpoolctl import threadpool_limits

        n_threads = (params.get("scoring") or {}).get("n_threads", 1)
        with threadpool_limits(limits=n_threads):  # as `leadq score` does
            for _ in range(args.repeat):
                for label in timings:
                    timings[label].append(run(label))
        with_checks, without = min(timings["checked"]), min(timings["unchecked"])

        frame = pd.read_csv(leads_path, dtype=str, nrows=args.chunk_size)
        start = time.perf_counter()
        real_evaluate(frame, "leads", params, reference)
        per_chunk = time.perf_counter() - start

        sample = pd.read_csv(leads_path, dtype=str, nrows=args.gx_rows)
        suites = suites_for(params, reference, ["leads"])
        start = time.perf_counter()
        run_gx({"leads": sample}, suites, params, None)
        gx_seconds = time.perf_counter() - start

    result = {
        "rows": args.rows,
        "chunk_size": args.chunk_size,
        "score_with_contracts_s": round(with_checks, 2),
        "score_without_contracts_s": round(without, 2),
        "validation_overhead_pct": round(100 * (with_checks - without) / without, 1),
        "rows_per_s_with_contracts": round(args.rows / with_checks),
        "all_runs_s": {k: [round(v, 2) for v in vs] for k, vs in timings.items()},
        "row_checks_per_chunk_s": round(per_chunk, 3),
        "gx_rows": args.gx_rows,
        "gx_validation_s": round(gx_seconds, 2),
    }
    print(json.dumps(result, indent=2))
    out_dir = REPO / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_validation.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
