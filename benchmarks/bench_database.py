"""`leadq score` from PostgreSQL: 1M leads streamed from a table, against the same 1M leads from
a CSV file (issue 30). Target: peak RSS (PostgreSQL source) ≤ 1.2 × peak RSS (CSV source).

Each run is a whole `leadq score` process (peak RSS summed over its process tree, sampled every
0.1 s; the PostgreSQL server's own memory is not leadq's and is not counted):
  - csv → parquet: the 1M-row CSV file to a Parquet file (the baseline);
  - postgres → parquet: the same rows from a PostgreSQL table (server-side cursor);
  - postgres → postgres: into a scores table (staged, upserted by lead id, model version and
    threshold version), run twice, the second a same-night re-run that replaces every row;
  - duckdb → parquet and duckdb → duckdb (twice): the same rows from a DuckDB file
    (duckdb:///…, read and written by the duckdb package), scores into the same file.

    .venv/bin/python benchmarks/bench_database.py            # 1M rows
    .venv/bin/python benchmarks/bench_database.py --rows 200000

PostgreSQL is started on loopback in a temp dir (the tests' helper) and stopped at the end.
Inputs and the model are shared with bench_scoring.py (benchmarks/out/scoring/). Writes
benchmarks/out/bench_database.json with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml
from bench_scoring import LEADQ, OUT, REPO, WORK, ensure_csv, ensure_model, run_measured


def load_table(url: str, csv: Path) -> None:
    """The CSV into a `leads` table typed as a warehouse holds it (created_at a timestamp),
    with COPY."""
    import psycopg2
    from sqlalchemy import create_engine

    head = pd.read_csv(csv, nrows=1000)
    head["created_at"] = pd.to_datetime(head["created_at"])
    engine = create_engine(url)
    with engine.begin() as conn:
        head.head(0).to_sql("leads", conn, index=False, if_exists="replace")
    engine.dispose()
    u = engine.url
    with psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as conn, \
            conn.cursor() as cur, open(csv, encoding="utf-8") as handle:
        cols = ", ".join(f'"{c}"' for c in head.columns)
        cur.copy_expert(f"COPY leads ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true)",
                        handle)
        cur.execute("ANALYZE leads")


def load_duckdb(path: Path, csv: Path) -> None:
    """The CSV into a DuckDB file's `leads` table, created_at a timestamp."""
    import duckdb

    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE leads AS SELECT * REPLACE (CAST(created_at AS TIMESTAMP) AS "
                    "created_at) FROM read_csv(?, all_varchar = true)", [str(csv)])
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-leads", type=int, default=30000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.integration.test_mlflow_postgres import postgres_bindir, start_postgres

    bindir = postgres_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found: apt-get install -y postgresql")
    params_path, uri = ensure_model(args.train_leads)
    csv = ensure_csv(args.rows)
    results: dict = {"rows": args.rows, "model_uri": uri, "cpus": os.cpu_count(),
                     "load_avg_start": os.getloadavg()}
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    pg = start_postgres(bindir)
    try:
        url = f"postgresql+psycopg2://leadq@127.0.0.1:{pg.port}/mlflow"
        print(f"loading {args.rows:,} leads into PostgreSQL …", flush=True)
        load_table(url, csv)
        params = yaml.safe_load(params_path.read_text())
        params["database"] = {"leads_table": "leads", "scores_table": "lead_scores"}
        db_params = params_path.with_name("params-database.yaml")
        db_params.write_text(yaml.safe_dump(params, sort_keys=False))
        out = WORK / "scores_database.parquet"
        duck = WORK / "warehouse.duckdb"
        print(f"loading {args.rows:,} leads into DuckDB …", flush=True)
        load_duckdb(duck, csv)
        duck_url = f"duckdb:///{duck}"
        runs = {"csv_to_parquet": (str(csv), str(out)),
                "postgres_to_parquet": (url, str(out)),
                "postgres_to_postgres": (url, url),
                "postgres_to_postgres_rerun": (url, url),
                "duckdb_to_parquet": (duck_url, str(out)),
                "duckdb_to_duckdb": (duck_url, duck_url),
                "duckdb_to_duckdb_rerun": (duck_url, duck_url)}
        for name, (src, dst) in runs.items():
            print(f"{name} …", flush=True)
            m = run_measured([*LEADQ, "--json", "score", "--input", src, "--output", dst,
                              "--model-uri", uri, "--params", str(db_params), "--no-explain"],
                             env=env, cwd=REPO, log=logs / f"database_{name}.log")
            summary = json.loads(m["stdout"][m["stdout"].index("{"):])
            results[name] = {"seconds": round(m["seconds"], 1),
                             "rows_per_s": round(args.rows / m["seconds"]),
                             "peak_rss_mb": round(m["peak_rss_mb"], 1),
                             "used": summary["rows"], "rss_timeline_mb": m["rss_timeline"]}
            out.unlink(missing_ok=True)
            print(f"  {m['seconds']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB", flush=True)
    finally:
        pg.stop()
    results["load_avg_end"] = os.getloadavg()
    base = results["csv_to_parquet"]["peak_rss_mb"]
    results["rss_ratio_postgres_vs_csv"] = round(
        results["postgres_to_parquet"]["peak_rss_mb"] / base, 3)
    results["rss_ratio_postgres_to_postgres_vs_csv"] = round(
        results["postgres_to_postgres"]["peak_rss_mb"] / base, 3)
    for name in ("duckdb_to_parquet", "duckdb_to_duckdb"):
        results[f"rss_ratio_{name}_vs_csv"] = round(results[name]["peak_rss_mb"] / base, 3)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_database.json").write_text(json.dumps(results, indent=2))
    print(f"peak RSS postgres/csv = {results['rss_ratio_postgres_vs_csv']:.2f} (target ≤ 1.2); "
          f"postgres→postgres/csv = {results['rss_ratio_postgres_to_postgres_vs_csv']:.2f}; "
          f"duckdb/csv = {results['rss_ratio_duckdb_to_parquet_vs_csv']:.2f}, "
          f"duckdb→duckdb/csv = {results['rss_ratio_duckdb_to_duckdb_vs_csv']:.2f}")
    print(f"wrote {OUT / 'bench_database.json'}")


if __name__ == "__main__":
    main()
