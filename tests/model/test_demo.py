"""`leadq demo` end to end on a small CRM: what it prints is what a new user reads first."""

from __future__ import annotations

import re

import pytest
import yaml

from leadq.pipelines.cli import main as cli


@pytest.mark.slow
def test_demo_prints_quality_gate_and_tiers(params_file, tmp_path, capsys):
    out_dir = tmp_path / "demo"
    # As in the shipped params.yaml, the tables point where the default demo writes, not at
    # --out: every step, scoring too, must read the CRM the demo wrote under --out.
    params = yaml.safe_load(params_file.read_text())
    for table in ("leads", "deals", "feedback", "activities"):
        if (params["data"].get(table) or {}).get("path"):
            params["data"][table]["path"] = str(tmp_path / "demo_output" / f"{table}.csv")
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    code = cli(["demo", "--params", str(params_file), "--leads", "6000", "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"test ROC AUC\s+0\.\d{3}", out)
    gate = re.search(r"^\s+gate\s+(.+)$", out, flags=re.MULTILINE)
    assert gate and "no decision" not in gate.group(1)
    table = out[out.index("tiers on the out-of-time test leads"):]
    for tier in "ABCD":
        assert re.search(rf"^\s*{tier}\b", table, flags=re.MULTILINE), tier
    assert (out_dir / "scores.csv").is_file()
