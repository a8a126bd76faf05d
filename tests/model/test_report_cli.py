"""`leadq report` through the CLI: exit 0 on success, 2 on bad input, 1 when there is no model,
and nothing written when it fails."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from tests.helpers import copy_crm


def _snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    """Every file under `dirs` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for d in dirs for p in Path(d).rglob("*") if p.is_file()}


def _params_like(report_store, directory: Path, **data_paths) -> Path:
    """report_store's params with its MLflow store named absolutely, some inputs replaced."""
    params = yaml.safe_load(Path(report_store["params_path"]).read_text())
    store = Path(report_store["dir"])
    params["mlflow"]["tracking_uri"] = f"sqlite:///{store / 'mlflow.db'}"
    params["mlflow"]["artifact_location"] = str(store / "mlruns")
    for table, path in data_paths.items():
        params["data"][table]["path"] = str(path)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _report(capsys, params: Path | str, out: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(["--json", "report", "--params", str(params), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_exits_0_and_writes_the_page(report_store, tmp_path, capsys):
    out = tmp_path / "site" / "report.html"
    code, stdout, err = _report(capsys, report_store["params_path"], out)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["output"] == str(out)
    assert summary["model_version"] == str(report_store["train"]["version"])
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "cmp_99_social_giveaway" in summary["flagged_campaigns"]


def test_report_missing_params_file_exits_2(tmp_path, capsys):
    out = tmp_path / "report.html"
    missing = tmp_path / "nope" / "params.yaml"
    code, stdout, err = _report(capsys, missing, out)
    assert code == 2 and str(missing) in err and "not found" in err
    assert stdout == "" and not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing leads file", "missing deals file", "binary leads",
                                  "leads without a required column"])
def test_report_bad_input_exits_2_and_writes_nothing(report_store, tmp_path, capsys, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    changes: dict[str, Path] = {}
    if case == "missing leads file":
        changes["leads"] = bad = inputs / "leads.csv"
    elif case == "missing deals file":
        # The leads pass, one row quarantined; then the deals file is missing: the leads'
        # quarantine must not be written either.
        leads = pd.read_csv(report_store["crm"]["leads"], dtype=str)
        leads.loc[3, "created_at"] = "not-a-date"
        changes["leads"] = inputs / "leads.csv"
        leads.to_csv(changes["leads"], index=False)
        changes["deals"] = bad = inputs / "deals.csv"
    elif case == "binary leads":
        changes["leads"] = bad = inputs / "leads.csv"
        bad.write_bytes(b"\x00\x01\x02\xff" * 500)
    else:
        changes["leads"] = bad = inputs / "leads.csv"
        pd.read_csv(report_store["crm"]["leads"], dtype=str).head(500).drop(
            columns=["industry"]).to_csv(bad, index=False)
    params = _params_like(report_store, tmp_path, **changes)
    out = tmp_path / "out" / "report.html"
    before = _snapshot(tmp_path, report_store["dir"])
    code, stdout, err = _report(capsys, params, out)
    assert code == 2, err
    assert str(bad) in err, err
    if case == "leads without a required column":
        assert "industry" in err
    assert stdout == "" and not out.parent.exists()
    assert _snapshot(tmp_path, report_store["dir"]) == before  # no quarantine, no artifact


def test_report_without_a_model_exits_1_and_writes_nothing(small_crm, make_params, tmp_path,
                                                           capsys):
    crm_dir = tmp_path / "crm"
    crm = copy_crm(small_crm, crm_dir)
    store = tmp_path / "store"
    store.mkdir()
    params = make_params(store, crm)
    out = tmp_path / "out" / "report.html"
    code, stdout, err = _report(capsys, params, out)
    assert code == 1, err
    assert "cannot load model" in err and "leadq train" in err
    assert stdout == "" and not out.parent.exists()
    assert sorted(p.name for p in crm_dir.iterdir()) == ["deals.csv", "feedback.csv",
                                                         "leads.csv"]  # no quarantine
    assert not (store / "report.html").exists()
