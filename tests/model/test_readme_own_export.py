"""The README's "your own export in five commands" runs as written: each line is taken from the
README itself, run as its own process in a folder holding `export.csv`, on a real export from
../shared/data and on a synthetic one (a leads export carrying its conversion date)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
# A real export with its own outcome column (12,330 sessions, `Revenue`), as a user has it.
REAL_EXPORT = (REPO / ".." / "shared" / "data" / "online_shoppers_intention"
               / "online_shoppers_intention.csv").resolve()


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Your own export in five commands", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.strip().splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        argv = shlex.split(line)
        assert argv[0] == ".venv/bin/leadq", line
        commands.append([sys.executable, "-m", "leadq.pipelines.cli", *argv[1:]])
    return commands


def run_readme(directory: Path) -> None:
    commands = readme_commands()
    assert [c[3] for c in commands] == ["init", "validate", "train", "score", "report"]
    for argv in commands:
        done = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (argv[3:], done.stderr[-3000:])
    assert (directory / "params.yaml").is_file()
    scores = pd.read_csv(directory / "scores.csv")
    assert {"score", "is_mql", "tier"} <= set(scores.columns) and len(scores) > 0
    assert "<html" in (directory / "report.html").read_text(encoding="utf-8")[:500].lower()


def test_readme_commands_on_a_real_export(tmp_path):
    if not REAL_EXPORT.is_file():
        pytest.skip(f"{REAL_EXPORT} absent: ../shared/data is not beside this checkout")
    shutil.copy(REAL_EXPORT, tmp_path / "export.csv")
    run_readme(tmp_path)


def test_readme_commands_on_a_synthetic_export(tmp_path):
    from leadq.pipelines.synthetic.crm import write_crm

    crm = write_crm(tmp_path / "crm", n_leads=4000, seed=11)
    leads = pd.read_csv(crm["leads"], dtype=str)
    deals = pd.read_csv(crm["deals"], dtype=str)
    won = deals[deals["outcome"] == "won"].groupby("lead_id")["closed_at"].min()
    # One file as a CRM exports it: each lead with the date it became a customer, if it did.
    leads["converted_at"] = leads["lead_id"].map(won)
    leads.to_csv(tmp_path / "export.csv", index=False)
    run_readme(tmp_path)
