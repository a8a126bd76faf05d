"""What runs before the model for one lead in `leadq serve`: CPU per piece, in process.

    .venv/bin/python benchmarks/bench_serve_pre_model.py \
        --params benchmarks/out/serve/params.yaml     # the store bench_serve.py trained

Scores `--leads` single-lead requests through `Scorer.score_parts` (the service's own path)
with a timer around each piece before the model: reading the request (`Scorer.read`), the row
contract (`features.contracts.evaluate`), typing (`features.tables.coerce_leads`), the
activity aggregates (`pipelines.io.activities.add_features`), the id hashes
(`models.routing.id_hashes`) and the answer (`pipelines.service.app.answer_rows`). The heap
is frozen after loading, as `leadq serve` does (state.freeze_heap), so the collector's passes
over the model's objects do not land in whichever piece allocates. Then the same calls of
the contract, typing and aggregation are replayed on their own (warm caches: a lower bound).
The store is only read. The load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import os
import time
from pathlib import Path

import pandas as pd
from common import in_process_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--leads", type=int, default=300)
    args = parser.parse_args()
    args.params = args.params.resolve()  # before the chdir, which a relative path follows
    os.chdir(args.params.parent)

    import leadq.features.contracts as contracts
    import leadq.features.tables as tables
    import leadq.models.routing as routing
    import leadq.pipelines.io.activities as activities
    import leadq.pipelines.service.app as app
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import Scorer

    spent: collections.Counter = collections.Counter()
    calls: dict[str, list] = collections.defaultdict(list)
    originals = {}

    def timed(owner, name: str, keep: bool = False) -> None:
        fn = getattr(owner, name)
        originals[name] = fn

        @functools.wraps(fn)
        def wrapper(*a, **k):
            if keep:
                calls[name].append((a, k))
            start = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.process_time() - start

        setattr(owner, name, wrapper)

    for owner, name in ((contracts, "evaluate"), (tables, "coerce_leads"),
                        (activities, "add_features")):
        timed(owner, name, keep=True)
    timed(routing, "id_hashes")
    timed(app, "answer_rows")
    timed(Scorer, "read")

    params = load_params(args.params.resolve())
    served, activity, scorer = in_process_scorer(params)
    leads = pd.read_csv(params["data"]["leads"]["path"], dtype=str,
                        keep_default_na=False).tail(args.leads)
    records = [{k: v for k, v in r.items() if v != ""} for r in leads.to_dict("records")]
    try:
        for record in records[:30]:  # warm-up: memos, lazy imports
            scorer.score_parts([scorer.read(record)], served, activity.events)
        gc.collect()
        gc.freeze()
        spent.clear()
        calls.clear()
        start = time.process_time()
        for record in records:
            scorer.score_parts([scorer.read(record)], served, activity.events)
        n = len(records)
        print(f"in process, {n} single-lead requests, load {os.getloadavg()}")
        print(f"  whole request {(time.process_time() - start) / n * 1000:.2f} ms CPU")
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<14} {seconds / n * 1000:.2f} ms")
        print(f"  {'sum':<14} {sum(spent.values()) / n * 1000:.2f} ms")
        print(f"replayed alone (warm caches), load {os.getloadavg()}")
        for name in ("evaluate", "coerce_leads", "add_features"):
            start = time.process_time()
            for a, k in calls[name]:
                originals[name](*a, **k)
            print(f"  {name:<14} {(time.process_time() - start) / n * 1000:.2f} ms")
    finally:
        scorer.close()


if __name__ == "__main__":
    main()
