"""Scoring types each input column once: the numbers and dates the row contract parsed are
the ones the model gets (features.contracts.RowCheck.parsed → features.tables.coerce_leads).
On a spoilt file the outputs, the quarantine and the accounting are the same as when typing
parses the text again, as it did before."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from leadq.features import tables
from leadq.features.contracts import evaluate
from leadq.features.tables import coerce_leads
from leadq.pipelines.params.loader import load_params
from leadq.pipelines.score import main as score_main


def _spoil(src, dst) -> None:
    """The leads with every kind of bad cell the contract knows, and padded good ones."""
    leads = pd.read_csv(src, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(5)
    rows = rng.choice(len(leads), 60, replace=False)
    leads.loc[rows[:10], "employees"] = "many"           # not a number
    leads.loc[rows[10:20], "web_visits"] = "inf"          # not finite
    leads.loc[rows[20:30], "created_at"] = "31/02/2024"   # not a date
    leads.loc[rows[30:35], "lead_id"] = ""                # no id
    leads.loc[rows[35:45], "pages_viewed"] = "  7 "       # padded, but a number
    leads.loc[rows[45:50], "employees"] = ""              # missing input, not a bad row
    leads.loc[rows[50:55], "created_at"] = "2999-01-01"   # in the future
    leads.loc[rows[55:], "lead_id"] = leads.loc[rows[:5], "lead_id"].to_numpy()  # duplicates
    leads.to_csv(dst, index=False)


def _digest(path) -> str:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.drop(columns=[c for c in ("scored_at",) if c in frame])
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


@pytest.mark.slow
def test_outputs_quarantine_and_accounting_match_parsing_twice(trained_store, tmp_path,
                                                               monkeypatch):
    src = tmp_path / "spoilt.csv"
    _spoil(trained_store["crm"]["leads"], src)
    params = str(trained_store["params_path"])
    once = score_main(str(src), str(tmp_path / "once.csv"), params_path=params, explain=True)

    real = tables.coerce_leads

    def parse_again(leads, params, parsed=None, roles=None):
        return real(leads, params, roles=roles)  # the text parsed a second time, as before

    monkeypatch.setattr("leadq.features.tables.coerce_leads", parse_again)
    monkeypatch.setattr("leadq.pipelines.scoring.core.coerce_leads", parse_again, raising=False)
    (tmp_path / "twice").mkdir()
    twice = score_main(str(src), str(tmp_path / "twice" / "once.csv"), params_path=params,
                       explain=True)

    assert _digest(tmp_path / "once.csv") == _digest(tmp_path / "twice" / "once.csv")
    assert _digest(once["accounting"]["quarantine"]) == _digest(
        twice["accounting"]["quarantine"])
    def counts(acct: dict) -> dict:
        return {k: v for k, v in acct.items() if k not in ("path", "quarantine")}

    assert counts(once["accounting"]) == counts(twice["accounting"])
    assert once["accounting"]["rejected"]  # the file really was spoilt


def test_typing_reuses_the_contracts_numbers_and_dates(trained_store):
    params = load_params(trained_store["params_path"])
    raw = pd.DataFrame({
        "lead_id": ["a", "b", "c"], "created_at": ["2025-01-02", "2025-03-04", "x"],
        "employees": [" 12", "7", "n/a"], "web_visits": ["1", "2", "3"],
        "pages_viewed": ["4", "5", "6"], "content_downloads": ["0", "1", "0"],
        "email_opens": ["2", "", "1"], "demo_requested": ["0", "1", "0"],
        "source": ["web", "ads", "web"], "campaign": ["c1", "c2", "c1"],
        "landing_page": ["/a", "/b", "/a"], "industry": ["saas", "retail", "saas"],
        "country": ["DE", "FR", "DE"], "job_title": ["CTO", "Analyst", "VP Sales"],
        "email": ["a@x.io", "b@gmail.com", "c@y.io"],
    })
    check = evaluate(raw, "leads", params)
    assert set(check.parsed["numbers"]) >= {"employees", "demo_requested"}
    assert "created_at" in check.parsed["dates"]
    reused = coerce_leads(raw, params, check.parsed)
    again = coerce_leads(raw, params)
    pd.testing.assert_frame_equal(reused, again)
