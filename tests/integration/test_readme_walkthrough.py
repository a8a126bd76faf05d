"""The README's walk-through for your own CRM runs as written: init with feedback → train →
score → recalibrate → review → report, on a synthetic export and on a real one from
../shared/data (Olist: leads and won deals, no feedback, so --feedback is left out as the
README says)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
OLIST = REPO.parent / "shared" / "data" / "olist_marketing_funnel"


def walkthrough() -> list[list[str]]:
    """The commands between the README's walkthrough markers, without the program name."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- walkthrough:start.*?-->(.*?)<!-- walkthrough:end", text, re.S)
    assert block, "README has no walkthrough block"
    lines = [line.strip() for line in block.group(1).splitlines()
             if line.strip().startswith(".venv/bin/leadq ")]
    assert [shlex.split(line)[1] for line in lines] == [
        "init", "train", "score", "recalibrate", "review", "report"]
    return [shlex.split(line)[1:] for line in lines]


def drop_missing(argv: list[str], folder: Path) -> list[str]:
    """Leave out --deals/--feedback when the export has no such file (the README's rule)."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--deals", "--feedback") and not (folder / argv[i + 1]).exists():
            skip = True
            continue
        out.append(arg)
    return out


def run_all(folder: Path, monkeypatch) -> list[str]:
    """The walk-through, then `thresholds` and `plan`; returns what recalibrate, thresholds
    and plan logged (their human output)."""
    import logging

    from leadq.pipelines.cli import main as cli
    from leadq.pipelines.io.progress import log

    monkeypatch.chdir(folder)
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    extra = [["thresholds"], ["plan", "--won-deals", "10"]]
    for argv in [*walkthrough(), *extra]:
        argv = drop_missing(argv, folder)
        listen = argv[0] in ("recalibrate", "thresholds", "plan")
        if listen:
            log.addHandler(handler)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli(argv)
        finally:
            log.removeHandler(handler)
        assert code == 0, f"leadq {' '.join(argv)} exited {code}"
    return said


def assert_no_placeholders(said: list[str]) -> None:
    """Human output says what is missing instead of printing None / none / nan."""
    bad = [line for line in said if re.search(r"\b(None|none|nan)\b", line)]
    assert said and not bad, bad


def test_walkthrough_runs_as_written_on_a_synthetic_export(tmp_path, monkeypatch):
    from leadq.pipelines.synthetic.crm import write_crm

    write_crm(tmp_path, n_leads=3000, seed=11)  # writes leads.csv, deals.csv, feedback.csv
    assert_no_placeholders(run_all(tmp_path, monkeypatch))
    assert (tmp_path / "review.html").exists() and (tmp_path / "report.html").exists()
    assert "agreement:" in (tmp_path / "params.yaml").read_text()


@pytest.mark.skipif(not OLIST.is_dir(), reason="../shared/data/olist_marketing_funnel is "
                                               "absent (real exports live beside the repo)")
def test_walkthrough_runs_as_written_on_a_real_export(tmp_path, monkeypatch):
    (tmp_path / "leads.csv").symlink_to(OLIST / "olist_marketing_qualified_leads_dataset.csv")
    (tmp_path / "deals.csv").symlink_to(OLIST / "olist_marketing_closed_deals_dataset.csv")
    assert_no_placeholders(run_all(tmp_path, monkeypatch))
    assert (tmp_path / "review.html").exists() and (tmp_path / "report.html").exists()
