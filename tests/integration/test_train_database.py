"""Every table from a database (issue 30, item 3): `data.<table>.path` a database URL with
`table` or `query`, read through the one reader every command uses (files.iter_chunks). A
model trained from PostgreSQL tables has the same metrics as one trained from the same rows in
CSV files, and the password (given as ${ENV_VAR}) reaches no log, manifest or MLflow param.

PostgreSQL is started on loopback in a throw-away directory (test_mlflow_postgres.py's helpers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import write_params
from tests.integration.test_mlflow_postgres import (
    BINDIR,
    PG_DB,
    PG_USER,
    REQUIRES_POSTGRES,
    start_postgres,
)

pytestmark = REQUIRES_POSTGRES

TABLES = ("leads", "deals", "feedback", "activities")
SECRET = "pw-from-the-environment"


@pytest.fixture(scope="module")
def crm_database(small_crm):
    """The synthetic CRM's four tables in PostgreSQL, as text columns (a NULL where the CSV
    cell is empty), the way a sync tool lands an export."""
    from sqlalchemy import create_engine

    pg = start_postgres(BINDIR)
    try:
        engine = create_engine(pg.uri)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE SCHEMA crm")
            for name in TABLES:
                frame = pd.read_csv(small_crm[name], dtype=str)
                frame.to_sql(name, conn, schema="crm", index=False)
            # A table has no row order (and a heap's differs from the insert's); training's
            # split and de-duplication see rows in order, so the leads are read in the file's.
            leads = pd.read_csv(small_crm["leads"], dtype=str)
            leads.insert(0, "file_row", range(len(leads)))
            leads.to_sql("leads_in_order", conn, schema="crm", index=False)
        engine.dispose()
        yield {"pg": pg, "url": f"postgresql://{PG_USER}:${{LEADQ_TEST_PG_PASSWORD}}"
                                 f"@127.0.0.1:{pg.port}/{PG_DB}"}
    finally:
        pg.stop()


def test_training_from_postgresql_tables_matches_the_same_rows_in_csv(
        crm_database, small_crm, base_params, tmp_path, monkeypatch, capsys):
    from leadq.pipelines.cli import main as cli

    monkeypatch.setenv("LEADQ_TEST_PG_PASSWORD", SECRET)
    same = {"train__search__enabled": False, "train__n_threads": 1}
    for folder in ("files", "db"):
        (tmp_path / folder).mkdir()
    from_files = write_params(tmp_path / "files", base_params, small_crm, **same)
    from_db = write_params(tmp_path / "db", base_params, small_crm, **same)
    params = yaml.safe_load(from_db.read_text())
    for name in TABLES:
        params["data"][name]["path"] = crm_database["url"]
    for name in ("deals", "activities"):
        params["data"][name]["table"] = f"crm.{name}"
    columns = ", ".join(f'"{c}"' for c in pd.read_csv(small_crm["leads"], nrows=0).columns)
    params["data"]["leads"]["query"] = (f"SELECT {columns} FROM crm.leads_in_order "
                                        "ORDER BY file_row")
    # a query ending in a comment: what a view in the warehouse would be
    params["data"]["feedback"]["query"] = "SELECT * FROM crm.feedback -- every row"
    from_db.write_text(yaml.safe_dump(params, sort_keys=False))

    results = {}
    for label, path in (("files", from_files), ("db", from_db)):
        code = cli(["--json", "train", "--params", str(path)])
        out, err = capsys.readouterr()
        assert code == 0, err[-3000:]
        results[label] = json.loads(out[out.index("{"):])
        assert SECRET not in out + err
    files, db = results["files"], results["db"]
    assert db["metrics"] == pytest.approx(files["metrics"], rel=1e-9)
    assert db["metrics"]["test_roc_auc"] > 0.6  # a real model, not two equal failures
    assert db["threshold"]["threshold"] == pytest.approx(files["threshold"]["threshold"])
    rows = {t["table"]: (t["read"], t["used"], t["rejected"])
            for t in files["manifest"]["inputs"]}
    assert {t["table"]: (t["read"], t["used"], t["rejected"])
            for t in db["manifest"]["inputs"]} == rows
    # the manifest names each table by URL (no password) and table or query key
    paths = {t["table"]: t["path"] for t in db["manifest"]["inputs"]}
    assert paths["deals"].endswith("(table crm.deals)")
    assert paths["feedback"].endswith("(data.feedback.query)")
    manifest_text = Path(db["manifest_path"]).read_text()
    assert SECRET not in manifest_text
    # nor is it in what MLflow keeps of the run: the params hold ${LEADQ_TEST_PG_PASSWORD}
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    logged = mlflow.artifacts.load_text(f"runs:/{db['run_id']}/params.yaml")
    assert SECRET not in logged and "${LEADQ_TEST_PG_PASSWORD}" in logged
    fingerprint = mlflow.artifacts.load_text(f"runs:/{db['run_id']}/data_fingerprint.json")
    assert SECRET not in fingerprint and "(table crm.deals)" in fingerprint


def test_a_missing_table_or_an_unset_variable_is_exit_2_naming_it(
        crm_database, small_crm, base_params, tmp_path, monkeypatch, capsys):
    from leadq.pipelines.cli import main as cli

    path = write_params(tmp_path, base_params, small_crm)
    params = yaml.safe_load(path.read_text())
    params["data"]["deals"].update(path=crm_database["url"], table="crm.no_deals")
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("LEADQ_TEST_PG_PASSWORD", SECRET)
    assert cli(["validate", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no_deals" in err and "data.deals.table" in err and SECRET not in err
    monkeypatch.delenv("LEADQ_TEST_PG_PASSWORD")
    assert cli(["validate", "--params", str(path)]) == 2
    assert "LEADQ_TEST_PG_PASSWORD" in capsys.readouterr().err
