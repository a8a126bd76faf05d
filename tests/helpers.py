"""Small helpers several test files share (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from leadq.pipelines.cli import main as cli

# Names a web form could send: a script, an attribute breakout, and text mathtext would eat.
SCRIPT = "<script>window.__pwned=1;document.title='pwned'</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'
DOLLARS = "Save $5 or $10 & more"


def cli_json(capsys, argv: list[str]) -> dict:
    """Run `leadq --json ARGV`, require exit 0, return the JSON it printed last."""
    capsys.readouterr()
    code = cli(["--json", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    text = out.out  # some commands print tables before the JSON result
    return json.loads(text if text.startswith("{") else text[text.index("\n{") + 1:])


def quarantine_file(params_dir: Path, table: str, stem: str | None = None) -> Path:
    """The one quarantine file of `table` a run wrote in the default output location
    (outputs.dir: leadq-out/ beside the params file; named <command>-<run id>-<table>-<stem>)."""
    found = sorted((Path(params_dir) / "leadq-out").glob(
        f"*-{table}-{stem or table}.rejected.csv"))
    assert len(found) == 1, (table, found)
    return found[0]


def copy_crm(crm: dict[str, Path], directory: Path) -> dict[str, Path]:
    """A writable copy of a CRM's leads, deals and feedback files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for table in ("leads", "deals", "feedback"):
        out[table] = directory / f"{table}.csv"
        out[table].write_bytes(Path(crm[table]).read_bytes())
    return out


def crm_labels(crm: dict[str, Path], params: dict) -> tuple[pd.DataFrame, pd.Series]:
    """The typed leads of a CRM on disk and their training label (NaN: right-censored)."""
    from leadq.features.tables import (
        build_labels,
        canonical_deals,
        canonical_feedback,
        coerce_leads,
    )
    from leadq.pipelines.params.loader import agreement_of

    leads = coerce_leads(pd.read_csv(crm["leads"], dtype=str), params)
    labels, _ = build_labels(
        leads, canonical_deals(pd.read_csv(crm["deals"], dtype=str), params["data"]["deals"]),
        canonical_feedback(pd.read_csv(crm["feedback"], dtype=str),
            params["data"]["feedback"], agreement_of(params).feedback),
        params)
    return leads, labels["label"]


def planted_report(rep):
    """A copy of a ReportData whose names hold markup: the campaigns sales rejects most, the
    first insight table's values and the model name."""
    campaigns = rep.campaigns.sort_values("rejected_share", ascending=False).copy()
    campaigns.iloc[:3, campaigns.columns.get_loc("campaign")] = [SCRIPT, IMG, DOLLARS]
    col, table = next(iter(rep.insights.items()))
    table = table.copy()
    table.iloc[:3, table.columns.get_loc("value")] = [SCRIPT, IMG, DOLLARS]
    return dataclasses.replace(rep, campaigns=campaigns, insights={**rep.insights, col: table},
                               model={**rep.model, "name": "</title>" + SCRIPT})


def recalibration_params(directory: Path, base: dict, crm: dict[str, Path], **changes) -> Path:
    """Params for a fast recalibration store: one logreg, no search, a capacity of 6 MQLs a
    week (the 4,000-lead CRM has about 38 leads a week) under the default top-share policy."""
    from tests.conftest import write_params

    settings = {"train__candidates": ["logreg"], "train__search__enabled": False,
                "registry__criteria": {},
                "agreement__capacity_per_week": 6.0}
    return write_params(directory, base, crm, **{**settings, **changes})


def labelled_split(base: dict, n_leads: int, seed: int, *, hgb_iter: int) -> dict:
    """A synthetic CRM's model inputs and labels (censored leads left out) split 70/30 in time
    order, its raw leads and the params (HGB capped at `hgb_iter` trees): what a model test
    fits and scores without MLflow."""
    import copy

    params = copy.deepcopy(base)
    params["train"]["hgb"]["max_iter"] = hgb_iter
    X, y, raw = labelled_inputs(params, n_leads, seed)  # noqa: N806
    cut = int(len(X) * 0.7)
    return {"params": params, "train": (X.iloc[:cut], y.iloc[:cut]),
            "valid": (X.iloc[cut:], y.iloc[cut:]), "leads": raw}


def labelled_inputs(params: dict, n_leads: int, seed: int):
    """A synthetic CRM's model inputs and labels (censored leads left out), in time order, and
    its raw leads table."""
    from leadq.features.columns import raw_input_columns
    from leadq.features.tables import (
        build_labels,
        canonical_deals,
        canonical_feedback,
        coerce_leads,
    )
    from leadq.pipelines.params.loader import agreement_of
    from leadq.pipelines.synthetic.crm import generate_crm

    crm = generate_crm(n_leads, seed=seed)
    leads = coerce_leads(crm["leads"], params)
    labels, _ = build_labels(leads, canonical_deals(crm["deals"], params["data"]["deals"]),
                             canonical_feedback(crm["feedback"],
            params["data"]["feedback"], agreement_of(params).feedback),
                             params)
    known = labels["label"].notna()
    return (leads.loc[known, raw_input_columns(params)],
            labels.loc[known, "label"].astype(int), crm["leads"])


def stop_server(proc) -> None:
    """Stop a `leadq serve` process the way a service manager does: SIGTERM, then SIGKILL
    if it has not exited within 20 s."""
    import os
    import signal
    import subprocess

    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
