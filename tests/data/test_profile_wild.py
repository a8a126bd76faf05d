"""What `leadq init` guesses on exports from the wild (issue 28): leaks hidden in blanks,
personal-data words that are not personal data, and integer codes that are categories.

Every export is synthetic (seeded numpy), profiled by the function `leadq init` calls; the
last test runs `leadq init` itself on a small file and reads the params file it wrote. No
model is trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.pipelines.profiling.profile import SUSPECT_AUC, Proposal, propose
from tests.helpers import cli_json

TODAY = pd.Timestamp("2025-06-01")


def export(n: int, rate: float, seed: int = 0) -> pd.DataFrame:
    """Leads with an id, a creation date, a yes/no outcome hitting exactly `rate` of them,
    and a few honest attributes."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, bool)
    y[rng.choice(n, round(rate * n), replace=False)] = True
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({
        "lead_id": [f"L{i:06d}" for i in range(n)],
        "created_date": created.strftime("%Y-%m-%d"),
        "converted": np.where(y, "yes", "no"),
        "source": rng.choice(["ads", "organic", "referral"], n),
        "pages_viewed": rng.poisson(4, n).astype(str),
    })


def roles(proposal: Proposal) -> dict[str, tuple[str, str]]:
    return {r.column: (r.role, r.why) for r in proposal.roles}


def conversion_dates(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """A date a few days after each lead's creation, blank for those that did not convert."""
    rng = np.random.default_rng(seed)
    created = pd.to_datetime(frame["created_date"])
    later = created + pd.to_timedelta(rng.integers(1, 60, len(frame)), unit="D")
    return np.where(frame["converted"] == "yes", later.dt.strftime("%Y-%m-%d %H:%M"), "")


# ------------------------------------------------------------------------------ 1: presence

@pytest.mark.parametrize("rate", [0.002, 0.02, 0.06])
def test_a_date_filled_for_exactly_the_converters_is_a_leak_suspect_at_any_fill_rate(rate):
    # 0.2% of 10,000 is 20 converters: the column is 99.8% blank, yet its presence alone
    # is the label (ROC AUC 1.0). Before issue 28 it was left out as "near-empty" at 0.2%
    # and 2%, and as "a date other than the MQL moment" at 6%, never named a leak.
    frame = export(10_000, rate).assign(attributed_time=lambda f: conversion_dates(f))
    role, why = roles(propose(frame, today=TODAY))["attributed_time"]
    assert role == "leak", why
    assert f"filled in for {rate:.1%} of leads" in why and "ROC AUC 1.00" in why


def test_a_column_filled_at_random_as_rarely_is_not_a_suspect():
    # The control: 0.2% filled, independent of the outcome, stays an empty column.
    frame = export(10_000, 0.02)
    rng = np.random.default_rng(3)
    frame["fax_sent_at"] = np.where(rng.random(len(frame)) < 0.002, "2024-01-05 10:00", "")
    role, why = roles(propose(frame, today=TODAY))["fax_sent_at"]
    assert role == "left_out" and why.startswith("near-empty"), why


def test_a_date_filled_for_everyone_but_after_the_lead_only_for_converters_is_named():
    # Filled on every row, so presence says nothing; whether the date falls after the
    # lead's created_at is the outcome (a "last modified" that sales moves on a win).
    frame = export(4_000, 0.1)
    created = pd.to_datetime(frame["created_date"])
    after = created + pd.Timedelta(days=5)
    before = created - pd.Timedelta(days=5)
    frame["last_modified"] = np.where(frame["converted"] == "yes", after.dt.strftime(
        "%Y-%m-%d"), before.dt.strftime("%Y-%m-%d"))
    role, why = roles(propose(frame, today=TODAY))["last_modified"]
    assert role == "leak", why
    assert "after the lead's created_at" in why or "on or before" in why


def test_a_placeholder_that_appears_only_for_converters_is_named():
    # Blank for most leads, a real answer for 1% at random, the form default "Select" for
    # exactly the 3% who converted: near-empty, its real answers say nothing (placeholders
    # count as blank), and its placeholder is the label.
    frame = export(5_000, 0.03)
    rng = np.random.default_rng(4)
    answer = np.where(rng.random(len(frame)) < 0.01, rng.choice(["TV", "Radio"], len(frame)),
                      "")
    frame["heard_about_us"] = np.where(frame["converted"] == "yes", "Select", answer)
    role, why = roles(propose(frame, today=TODAY))["heard_about_us"]
    assert role == "leak", why
    assert "placeholder 'Select'" in why


def test_presence_is_judged_against_the_leak_threshold_not_only_perfect_leaks():
    # Filled for every converter and for 40% of the others: presence AUC 0.80, below
    # SUSPECT_AUC (0.85): a real but imperfect signal stays an input.
    frame = export(5_000, 0.1)
    rng = np.random.default_rng(5)
    filled = (frame["converted"] == "yes") | (rng.random(len(frame)) < 0.4)
    frame["company_size"] = np.where(filled, rng.integers(1, 500, len(frame)).astype(str), "")
    assert SUSPECT_AUC > 0.80
    role, why = roles(propose(frame, today=TODAY))["company_size"]
    assert role == "numeric", why


# ------------------------------------------------------------------------------ 2: personal data

def test_a_three_value_zip_code_is_an_input_and_a_postcode_column_is_personal():
    frame = export(3_000, 0.1)
    rng = np.random.default_rng(6)
    frame["zip_code"] = rng.choice(["Urban", "Suburban", "Rural"], len(frame))
    frame["postcode"] = [f"{v:05d}" for v in rng.integers(1_000, 99_999, len(frame))]
    frame["phone_type"] = rng.choice(["mobile", "landline"], len(frame))
    frame["phone"] = [f"+1 (555) {v:03d}-{v * 7 % 10_000:04d}"
                      for v in rng.integers(0, 999, len(frame))]
    frame["first_name"] = rng.choice([f"Name{i}" for i in range(400)], len(frame))
    got = roles(propose(frame, today=TODAY))
    role, why = got["zip_code"]
    assert role == "categorical" and "named like personal data ('zip')" in why, why
    assert got["postcode"][0] == "personal" and "postcodes" in got["postcode"][1]
    assert got["phone_type"][0] == "categorical"
    assert got["phone"][0] == "personal" and "phone numbers" in got["phone"][1]
    # Names repeat (400 in 3,000 leads: not mostly distinct): many values still say names.
    assert got["first_name"][0] == "personal", got["first_name"][1]


def test_a_few_postcodes_are_still_personal_by_their_pattern():
    frame = export(2_000, 0.1)
    frame["zip"] = np.random.default_rng(7).choice(["10001", "94105", "SW1A 1AA"], len(frame))
    assert roles(propose(frame, today=TODAY))["zip"][0] == "personal"


# ------------------------------------------------------------------------------ 3: codes

def test_integer_codes_named_like_codes_are_categories_and_many_are_target_encoded():
    frame = export(3_000, 0.1)
    rng = np.random.default_rng(8)
    frame["Region_Code"] = rng.integers(0, 52, len(frame)).astype(float).astype(str)  # "28.0"
    frame["Policy_Sales_Channel"] = rng.choice([26, 124, 152], len(frame)).astype(str)
    frame["campaign_id"] = rng.integers(1, 9, len(frame)).astype(str)
    frame["region_population"] = rng.integers(1_000, 90_000, len(frame)).astype(str)
    proposal = propose(frame, today=TODAY)
    by = {r.column: r for r in proposal.roles}
    assert by["Region_Code"].role == "categorical" and by["Region_Code"].target_encode
    assert "named like a code ('code')" in by["Region_Code"].why
    assert by["Policy_Sales_Channel"].role == "categorical"
    assert not by["Policy_Sales_Channel"].target_encode
    assert by["campaign_id"].role == "categorical"
    # Only the last word counts: a population of regions is a quantity.
    assert by["region_population"].role == "numeric"
    assert by["pages_viewed"].role == "numeric"


def test_integer_values_whose_rates_do_not_follow_the_value_are_categories():
    n = 6_000
    rng = np.random.default_rng(9)
    frame = export(n, 0.0, seed=9)
    zigzag = rng.integers(1, 7, n)      # rates 10%, 50%, 15%, 45%, 20%, 40%
    rising = rng.integers(0, 6, n)      # rates rise with the value: a quantity
    p = np.array([0.10, 0.50, 0.15, 0.45, 0.20, 0.40])[zigzag - 1] + 0.05 * rising
    frame["converted"] = np.where(rng.random(n) < p, "yes", "no")
    frame["plan_level"] = zigzag.astype(str)
    frame["seats"] = rising.astype(str)
    got = roles(propose(frame, today=TODAY))
    role, why = got["plan_level"]
    assert role == "categorical" and "rates do not follow the value" in why, why
    assert got["seats"][0] == "numeric", got["seats"][1]


# ------------------------------------------------------------------------------ through init

def test_leadq_init_writes_the_leak_the_zip_input_and_the_codes_with_reasons(tmp_path: Path,
                                                                             capsys):
    frame = export(5_000, 0.02).assign(attributed_time=lambda f: conversion_dates(f))
    rng = np.random.default_rng(10)
    frame["zip_code"] = rng.choice(["Urban", "Suburban", "Rural"], len(frame))
    frame["channel"] = rng.choice([3, 7, 11, 19], len(frame)).astype(str)
    leads, params = tmp_path / "installs.csv", tmp_path / "p.yaml"
    frame.to_csv(leads, index=False)
    summary = cli_json(capsys, ["init", "--leads", str(leads), "--out", str(params),
                                "--label", "converted"])
    text = params.read_text(encoding="utf-8")
    feats = yaml.safe_load(text)["features"]
    assert "attributed_time" in feats["extra_forbidden"]
    assert "ROC AUC 1.00" in summary["leak_suspects"]["attributed_time"]
    assert "zip_code" in feats["categorical"] and "channel" in feats["categorical"]
    assert "zip_code" not in (yaml.safe_load(text)["data"]["leads"].get("personal") or [])
    # The reasons are comments in the file the user reviews.
    assert "named like personal data ('zip')" in text
    assert "integer codes named like a code ('channel')" in text


def test_numbers_with_infinities_are_profiled_and_are_no_codes():
    # A real export's numeric column made the whole-number check fail (pandas' nullable
    # inf % 1 is NA); whole numbers among the finite ones decide.
    from leadq.pipelines.profiling.profile import code_word, column_facts

    cells = pd.Series(["3", "inf", "7", "-inf", "12"] * 20, dtype="string")
    facts = column_facts(cells, "device_type", today=TODAY)
    assert facts.integer_share == 1.0 and code_word(facts) == "type"
    halves = column_facts(pd.Series(["1.5", "inf", "2"] * 20), "device_type", today=TODAY)
    assert halves.integer_share == 0.5 and code_word(halves) is None
