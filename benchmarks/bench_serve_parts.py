"""What a single-lead request costs in `leadq serve`, piece by piece, in process.

    .venv/bin/python benchmarks/bench_serve_parts.py            # the store bench_serve.py trains
    .venv/bin/python benchmarks/bench_serve_parts.py --params params.yaml

For each of the pieces the service computes per request, its CPU per lead the way it is done
now beside the way it was done before (reproduced here as the reference): the request frame
(per-column `pd.array(dtype="str")` from the cells' text vs the whole of `leads_frame`
now, the cells' JSON-to-text included), the answer (`to_dict("records")`
vs the output's columns) and what follows from the params and version alone (worked out per
request vs once per load). Then the whole in-process request (read, contract, typing,
activity aggregates, model, reasons, answer). Runs are interleaved over the same leads; the
load average is printed beside every figure (a shared machine's timings are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd
from common import in_process_scorer

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def cpu_ms(fn, items, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - start) / len(items) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=None)
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    if args.params is None:
        from bench_serve import prepare_store

        work = OUT / "serve"
        work.mkdir(parents=True, exist_ok=True)
        params_path, leads_file = prepare_store(work, leads=50_000)
    else:
        params_path = args.params.resolve()
        leads_file = None
    os.chdir(params_path.parent)

    from leadq.features.activities import activity_spec
    from leadq.features.columns import model_inputs, raw_input_columns
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import _jsonable, answer_rows, leads_frame
    from leadq.pipelines.service.state import prepare

    params = load_params(params_path)
    served, activity, scorer = in_process_scorer(params)
    leads_file = leads_file or params["data"]["leads"]["path"]
    leads = pd.read_csv(leads_file, dtype=str, keep_default_na=False).tail(args.leads)
    records = [{k: v for k, v in r.items() if v != ""} for r in leads.to_dict("records")]

    def old_frame(lead):
        raw, _ = leads_frame([lead], scorer.fields, scorer.id_col)
        cols = {c: raw[c].tolist() for c in raw.columns}
        return lambda: pd.DataFrame({f: pd.array([None if pd.isna(x) else x for x in v],
                                                 dtype="str") for f, v in cols.items()})

    outputs = []
    for lead in records:
        result = scorer.score_parts([scorer.read(lead)], served, activity.events)[0]
        if not hasattr(result, "message"):
            outputs.append(result[3])
    frames = [old_frame(lead) for lead in records]
    load = os.getloadavg()[0]
    figures = {
        "frame_before_ms": cpu_ms(lambda make: make(), frames, args.rounds),
        "frame_now_ms": cpu_ms(lambda lead: leads_frame([lead], scorer.fields, scorer.id_col),
                               records, args.rounds),
        "answer_before_ms": cpu_ms(lambda out: [{k: _jsonable(v) for k, v in rec.items()}
                                                for rec in out.to_dict("records")],
                                   outputs, args.rounds),
        "answer_now_ms": cpu_ms(answer_rows, outputs, args.rounds),
        # What the request path worked out again on every call before (coerce_leads,
        # score_leads and add_features each from params), now held in the bundle; the
        # contract's rules were resolved once per version already.
        "per_version_before_ms": cpu_ms(lambda _: (model_inputs(params),
                                                   raw_input_columns(params),
                                                   activity_spec(params)),
                                        records, args.rounds),
        "prepare_once_ms": cpu_ms(lambda _: prepare(params, served.reference), records[:20],
                                  args.rounds),
        "request_ms": cpu_ms(lambda lead: scorer.score_parts([scorer.read(lead)], served,
                                                             activity.events),
                             records, args.rounds),
        "leads": len(records), "answered": len(outputs),
        "load_average": [load, os.getloadavg()[0]],
    }
    scorer.close()
    print(json.dumps(figures, indent=2))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_serve_parts.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
