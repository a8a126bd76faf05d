"""Point-in-time activity features at scale: `aggregation_sql` over 1M leads and 10M events.

Writes a synthetic cut-offs file (one row per lead, cut-offs spread over two years) and one
events file per size (each event within 120 days before to 60 days after its lead's cut-off,
five types of which four are features), as Parquet in 1M-row chunks generated with numpy, so
generation never holds a whole events file in memory. Then, for each size and each DuckDB
memory_limit (default 1GB, what features/activities.py sets; try 2GB or 500MB), a fresh process
(this script with --worker) opens DuckDB (2 threads, that memory limit, a spill directory,
insertion order not preserved), puts views `events` / `cutoffs` over the files and runs `COPY
(aggregation_sql(spec)) TO 'out.parquet'`, so the 1M-row result never sits in Python. It
reports wall seconds, peak RSS (getrusage ru_maxrss) of that process and DuckDB's profile: its
peak buffer memory, what it spilled, and which side each hash join was built on. Best time /
highest RSS of --repeat runs. Target (issue): peak RSS at 10M events ≤ 1.5 × peak RSS at 1M
events, for 1M leads.

Every point's output is checked for a sample of leads (--check-leads, default 1,000) against
the same features recomputed with pandas from the events file (counts exactly).

    .venv/bin/python benchmarks/bench_activities.py                     # 1M leads, 1M and 10M
    .venv/bin/python benchmarks/bench_activities.py --memory-limit 2GB 1GB 500MB --repeat 1
    .venv/bin/python benchmarks/bench_activities.py --leads 100000 --events 100000 1000000

Prints a Markdown table and writes benchmarks/out/bench_activities.json (about 1.5 minutes
with the defaults on 2 cores).
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
TYPES = ["web_visit", "email_open", "content_download", "webinar", "sales_call"]
SPEC = {"types": ["web_visit", "email_open", "content_download", "webinar"],
        "windows": [7, 30, 90], "value_types": ["web_visit"]}
DAY = 86_400.0
START = 1_672_531_200.0  # 2023-01-01 UTC: the cut-offs span two years from here
CHUNK = 1_000_000
TARGET = 1.5


def _spec():
    from leadq.features.activities import ActivitySpec

    return ActivitySpec(types=tuple(SPEC["types"]), windows=tuple(SPEC["windows"]),
                        value_types=tuple(SPEC["value_types"]))


def lead_ids(n: int):
    """'L00000001', … as an Arrow string array (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pa.array(np.arange(1, n + 1, dtype=np.int64)).cast(pa.string()),
                          width=8, padding="0")
    return pc.binary_join_element_wise("L", digits, "")


def write_cutoffs(path: Path, leads: int, seed: int) -> np.ndarray:
    """The cut-offs file; returns c_cut (the events are generated around it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cut = START + rng.uniform(0, 730 * DAY, leads)
    table = pa.table({"c_pos": np.arange(leads, dtype=np.int64), "c_lead": lead_ids(leads),
                      "c_cut": cut})
    pq.write_table(table, path, row_group_size=CHUNK)
    return cut


def write_events(path: Path, n: int, cut: np.ndarray, seed: int) -> None:
    """n events in CHUNK-row chunks (one row group each): a uniformly drawn lead, a time within
    120 days before to 60 days after its cut-off, a type; pages viewed for web visits."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids = lead_ids(len(cut))
    types = pa.array(TYPES, type=pa.string())
    schema = pa.schema([("ev_lead", pa.string()), ("ev_t", pa.float64()),
                        ("ev_type", pa.string()), ("ev_value", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            lead = rng.integers(0, len(cut), m)
            kind = rng.integers(0, len(TYPES), m)
            pages = rng.integers(1, 15, m).astype(np.float64)
            table = pa.table({
                "ev_lead": ids.take(lead),
                "ev_t": cut[lead] + rng.uniform(-120 * DAY, 60 * DAY, m),
                "ev_type": types.take(kind),
                "ev_value": pa.array(pages, mask=kind != 0),  # null unless web_visit
            }, schema=schema)
            writer.write_table(table, row_group_size=CHUNK)


def worker(config: dict) -> None:
    """One measurement, in its own process: the aggregation, its result copied to Parquet."""
    import resource

    import duckdb
    import psutil

    from leadq.features.activities import aggregation_sql

    sql = aggregation_sql(_spec())
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(config['threads'])}")
    con.execute(f"SET memory_limit = '{config['memory_limit']}'")
    con.execute(f"SET preserve_insertion_order = {str(config['preserve_order']).lower()}")
    con.execute(f"SET temp_directory = '{config['spill']}'")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{config['events']}')")
    con.execute(f"CREATE VIEW cutoffs AS SELECT * FROM read_parquet('{config['cutoffs']}')")
    # DuckDB's own account of the query: its buffer peak, what it spilled, the join's sides.
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{config['profile']}'")
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    con.execute(f"COPY ({sql}) TO '{config['out']}' (FORMAT parquet)")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    con.execute("PRAGMA disable_profiling")
    rows = con.execute(f"SELECT COUNT(*) FROM read_parquet('{config['out']}')").fetchone()[0]
    con.close()
    profile = json.loads(Path(config["profile"]).read_text())
    system = profile.get("system") or {}
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak / 2**20,
                      "rss_before_query_mib": before / 2**20, "rows": rows,
                      "duckdb_peak_buffer_mib": system.get("peak_buffer_memory", 0) / 2**20,
                      "duckdb_spilled_mib": system.get("total_bytes_spilled", 0) / 2**20,
                      "duckdb_peak_temp_mib": system.get("peak_temp_dir_size", 0) / 2**20,
                      "joins": _joins(profile.get("operator") or [], []),
                      "duckdb": duckdb.__version__}))


def _joins(nodes, out: list) -> list:
    """Each hash join in the profiled plan: its type and (probe, build) sides as
    'operator:estimated rows→actual rows' (DuckDB builds the hash table on the second)."""
    for node in nodes if isinstance(nodes, list) else [nodes]:
        kids = node.get("children") or []
        if node.get("type") == "HASH_JOIN" and len(kids) == 2:
            out.append({"type": node.get("extra_info", {}).get("Join Type"),
                        "rows_out": node.get("intermediate_rows"),
                        **{side: f"{k.get('name')}:"
                                 f"{k.get('extra_info', {}).get('Estimated Cardinality')}→"
                                 f"{k.get('intermediate_rows')}"
                           for side, k in zip(("probe", "build"), kids, strict=True)}})
        _joins(kids, out)
    return out


def measure(config: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(config)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise RuntimeError(f"worker failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected(events_path: Path, cutoffs_path: Path, sample: np.ndarray):
    """The features of the sampled leads (c_pos), recomputed with pandas."""
    import pandas as pd
    import pyarrow.parquet as pq

    spec = _spec()
    cut = pq.read_table(cutoffs_path, filters=[("c_pos", "in", sample.tolist())]).to_pandas()
    ev = pq.read_table(events_path, filters=[("ev_lead", "in", cut["c_lead"].tolist())],
                       ).to_pandas()
    ev = ev.merge(cut, left_on="ev_lead", right_on="c_lead")
    ev = ev[(ev["ev_t"] < ev["c_cut"]) & ev["ev_type"].isin(spec.types)]
    groups = ev.groupby("c_pos")
    out = pd.DataFrame(index=pd.Index(np.sort(cut["c_pos"].to_numpy()), name="c_pos"))
    for t in spec.types:
        for w in spec.windows:
            since = ev["ev_t"] >= ev["c_cut"] - w * DAY  # as the SQL compares
            hit = ((ev["ev_type"] == t) & since).astype(np.int64)
            out[f"act_{t}_{w}d"] = hit.groupby(ev["c_pos"]).sum()
    for t in spec.types:
        of = ev[ev["ev_type"] == t]
        out[f"act_{t}_days_since"] = (of.groupby("c_pos")["c_cut"].first()
                                      - of.groupby("c_pos")["ev_t"].max()) / DAY
    longest = spec.windows[-1] * DAY
    for t in spec.value_types:
        of = ev[(ev["ev_type"] == t) & (ev["ev_t"] >= ev["c_cut"] - longest)]
        out[f"act_{t}_value_{spec.windows[-1]}d"] = of.groupby("c_pos")["ev_value"].sum()
    out["act_days_since_last"] = (groups["c_cut"].first() - groups["ev_t"].max()) / DAY
    out["act_distinct_types"] = groups["ev_type"].nunique()
    zero = [c for c in out.columns if "days_since" not in c]
    out[zero] = out[zero].fillna(0)
    return out[spec.feature_names()]


def check(out_path: Path, events_path: Path, cutoffs_path: Path, sample: np.ndarray) -> int:
    """Assert the DuckDB output equals the pandas recomputation on the sample; the number of
    sampled leads that had at least one counted event."""
    import pyarrow.parquet as pq

    want = expected(events_path, cutoffs_path, sample)
    got = (pq.read_table(out_path, filters=[("c_pos", "in", sample.tolist())]).to_pandas()
           .set_index("c_pos").sort_index()[want.columns])
    assert got.index.equals(want.index), "the output lacks sampled leads"
    for col in want.columns:
        a, b = got[col].to_numpy(dtype=float), want[col].to_numpy(dtype=float)
        if "days_since" in col or "value" in col:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, equal_nan=True,
                                       err_msg=col)
        else:
            np.testing.assert_array_equal(a, b, err_msg=col)
    return int(want["act_distinct_types"].gt(0).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", nargs="+", default=["1GB"],
                    help="DuckDB memory_limit; each one is a series of runs over --events")
    ap.add_argument("--preserve-insertion-order", action="store_true",
                    help="DuckDB's default; off unless given (the result order is not used)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per point: the fastest time and the highest peak RSS count")
    ap.add_argument("--check-leads", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tmp", default=None, help="where the temporary files go")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    results: dict = {"leads": args.leads, "spec": SPEC, "threads": args.threads,
                     "memory_limits": args.memory_limit,
                     "preserve_insertion_order": args.preserve_insertion_order,
                     "repeat": args.repeat, "cpus": os.cpu_count(),
                     "load_avg_start": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench_activities_") as tmpdir:
        tmp = Path(tmpdir)
        cutoffs = tmp / "cutoffs.parquet"
        start = time.perf_counter()
        cut = write_cutoffs(cutoffs, args.leads, args.seed)
        print(f"{args.leads:,} cut-offs written in {time.perf_counter() - start:.1f} s",
              flush=True)
        sample = np.sort(np.random.default_rng(args.seed + 1).choice(
            args.leads, min(args.check_leads, args.leads), replace=False))
        for k, n in enumerate(sorted(args.events)):
            events = tmp / f"events_{n}.parquet"
            start = time.perf_counter()
            write_events(events, n, cut, args.seed + 10 + k)
            gen = time.perf_counter() - start
            print(f"{n:,} events written in {gen:.1f} s "
                  f"({events.stat().st_size / 2**20:.0f} MiB)", flush=True)
            for limit in args.memory_limit:
                out = tmp / "out.parquet"
                tries = []
                for i in range(args.repeat):
                    spill = tmp / f"spill_{len(results['runs'])}_{i}"
                    spill.mkdir()
                    tries.append(measure({
                        "events": str(events), "cutoffs": str(cutoffs), "out": str(out),
                        "spill": str(spill), "profile": str(tmp / "profile.json"),
                        "threads": args.threads, "memory_limit": limit,
                        "preserve_order": args.preserve_insertion_order}))
                    assert tries[-1]["rows"] == args.leads, tries[-1]
                active = check(out, events, cutoffs, sample)  # the last try's output
                worst = max(tries, key=lambda m: m["peak_rss_mib"])
                run = {"memory_limit": limit, "events": n, "leads": args.leads, **worst,
                       "seconds": min(m["seconds"] for m in tries),
                       "all_seconds": [m["seconds"] for m in tries],
                       "all_peak_rss_mib": [m["peak_rss_mib"] for m in tries],
                       "generate_seconds": gen,
                       "events_file_mib": events.stat().st_size / 2**20,
                       "checked_leads": len(sample), "checked_leads_with_events": active}
                results["runs"].append(run)
                print(f"  memory_limit {limit}: aggregation {run['seconds']:.1f} s, peak RSS "
                      f"{run['peak_rss_mib']:.0f} MiB, spilled {run['duckdb_spilled_mib']:.0f}"
                      f" MiB; checked {len(sample)} leads ({active} with events) against "
                      "pandas", flush=True)
                out.unlink()
            events.unlink()
    results["load_avg_end"] = os.getloadavg()
    runs = results["runs"]
    print("\n| memory_limit | events | leads | seconds | peak RSS MiB | DuckDB peak buffer MiB "
          "| spilled MiB | join build side |\n|---|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        build = ", ".join(j["build"] for j in r["joins"][:1])
        print(f"| {r['memory_limit']} | {r['events']:,} | {r['leads']:,} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mib']:,.0f} | {r['duckdb_peak_buffer_mib']:,.0f} | "
              f"{r['duckdb_spilled_mib']:,.0f} | {build} |")
    print()
    results["ratios"] = []
    for limit in args.memory_limit:
        series = [r for r in runs if r["memory_limit"] == limit]
        if len(series) < 2:
            continue
        lo, hi = series[0], series[-1]
        ratio = hi["peak_rss_mib"] / lo["peak_rss_mib"]
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        results["ratios"].append({"memory_limit": limit, "events": [hi["events"], lo["events"]],
                                  "rss_ratio": ratio, "target": TARGET, "verdict": verdict,
                                  "time_ratio": hi["seconds"] / lo["seconds"]})
        print(f"memory_limit {limit}: peak RSS {hi['events']:,} / {lo['events']:,} events = "
              f"{ratio:.2f} (target ≤ {TARGET}): {verdict}; time ratio "
              f"{hi['seconds'] / lo['seconds']:.1f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_activities.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'bench_activities.json'}")


if __name__ == "__main__":
    main()
