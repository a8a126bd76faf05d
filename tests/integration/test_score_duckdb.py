"""`leadq score` from a DuckDB file into the same file (issue 30, item 3: DuckDB for local files):
the real command with a trained model, twice the same night (one row per lead and versions),
the rejected rows in the quarantine table with the run id, and exit 3 changing nothing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from leadq.pipelines.cli import main as cli

BAD = 2


def _params(store: dict, where: Path) -> str:
    params = yaml.safe_load(Path(store["params_path"]).read_text())
    params["database"] = {"leads_table": "crm.leads", "scores_table": "marts.lead_scores",
                          "quarantine_table": "marts.lead_rejected"}
    params["outputs"] = {"dir": str(where / "leadq-out")}
    params["scoring"]["n_threads"] = 1
    path = Path(store["dir"]) / "params-duckdb.yaml"  # beside the store (sqlite:///mlflow.db)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return str(path)


def _run(argv: list[str]) -> tuple[int, dict | None, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(["--json", *argv])
    text = out.getvalue()
    return code, (json.loads(text[text.index("{"):]) if code == 0 else None), err.getvalue()


def test_score_from_and_into_a_duckdb_file(trained_store, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str)
    leads.loc[leads.index[-BAD:], "created_at"] = None  # quarantined
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA crm; CREATE SCHEMA marts")
    con.register("frame", leads)
    # typed as a warehouse holds it: the reader sends text, as from a CSV export
    con.execute("CREATE TABLE crm.leads AS SELECT * REPLACE (CAST(created_at AS TIMESTAMP) "
                "AS created_at) FROM frame")
    con.close()
    url = f"duckdb:///{path}"
    params = _params(trained_store, tmp_path)
    argv = ["score", "--input", url, "--output", url, "--params", params, "--model-uri",
            f"models:/leadq/{trained_store['summary']['version']}"]

    runs = []
    for _ in range(2):
        code, result, err = _run(argv)
        assert code == 0, err[-3000:]
        runs.append(result)
    assert runs[0]["accounting"]["rejected"] == BAD
    con = duckdb.connect(str(path))
    try:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT lead_id) FROM "
                                  "marts.lead_scores").fetchone()
        assert n == distinct == len(leads) - BAD
        by_run = dict(con.execute("SELECT run_id, count(*) FROM marts.lead_rejected "
                                  "GROUP BY run_id").fetchall())
        assert by_run == {r["manifest"]["run_id"]: BAD for r in runs}
        before = con.execute("SELECT * FROM marts.lead_scores ORDER BY ALL").fetchall()
    finally:
        con.close()
    kinds = {o["kind"]: o for o in runs[1]["manifest"]["outputs"]}
    assert kinds["quarantine"]["rows"] == BAD and "lead_rejected" in kinds["quarantine"]["path"]

    code, _, err = _run([*argv, "--max-rejected-share", "0.0001"])
    assert code == 3, err[-3000:]
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT * FROM marts.lead_scores ORDER BY ALL").fetchall() == before
        assert con.execute("SELECT count(*) FROM marts.lead_rejected").fetchone()[0] == 2 * BAD
    finally:
        con.close()
