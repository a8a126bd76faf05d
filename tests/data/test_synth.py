"""The synthetic CRM: determinism, integrity, censoring, the oracle and its calibration.

The activity log itself is tested in test_synth_activities.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from leadq.pipelines.synthetic import crm as synth
from leadq.pipelines.synthetic.crm import (
    AS_OF,
    JUNK_CAMPAIGN,
    generate_crm,
    iter_lead_chunks,
    true_probability,
    write_crm,
)

N = 20_000
SEED = 11
HORIZON = pd.Timedelta(days=90)
START = pd.Timestamp("2024-07-01")
COUNTERS = {"web_visits": "web_visit", "content_downloads": "content_download",
            "email_opens": "email_open"}


def mql_leads(crm: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Leads with their counters as of the MQL moment, rebuilt from the pre-created_at events."""
    leads, acts = crm["leads"], crm["activities"]
    created = leads.set_index("lead_id")["created_at"].loc[acts["lead_id"]].to_numpy()
    pre = acts[acts["occurred_at"].to_numpy() < created]
    by_type = pre.groupby(["lead_id", "activity_type"]).size().unstack(fill_value=0)
    by_type = by_type.reindex(leads["lead_id"], fill_value=0)
    pages = pre[pre["activity_type"] == "web_visit"].groupby("lead_id")["value"].sum()
    out = leads.copy()
    for col, kind in COUNTERS.items():
        out[col] = by_type[kind].to_numpy(dtype=np.int64)
    out["pages_viewed"] = pages.reindex(leads["lead_id"], fill_value=0).to_numpy(np.int64)
    return out


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    return generate_crm(N, SEED)


@pytest.fixture(scope="module")
def merged(crm) -> pd.DataFrame:
    """Leads with truth and the won-within-horizon outcome."""
    leads, deals = crm["leads"], crm["deals"]
    df = leads.merge(crm["truth"], on="lead_id", validate="1:1")
    won = deals[deals["outcome"] == "won"].merge(leads[["lead_id", "created_at"]], on="lead_id")
    in_time = won.loc[won["closed_at"] - won["created_at"] <= HORIZON, "lead_id"]
    df["won_in_horizon"] = df["lead_id"].isin(set(in_time))
    df["matured"] = df["created_at"] + HORIZON <= AS_OF
    return df


def test_as_of_is_fixed():
    assert pd.Timestamp("2026-06-30 23:59:59") == AS_OF


def test_same_seed_same_frames_other_seed_differs():
    a, b, c = generate_crm(3000, 5), generate_crm(3000, 5), generate_crm(3000, 6)
    assert set(a) == {"leads", "deals", "feedback", "truth", "activities"}
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["leads"].equals(c["leads"])
    assert not np.allclose(a["truth"]["true_probability"], c["truth"]["true_probability"])


def test_columns(crm):
    assert list(crm["leads"].columns) == [
        "lead_id", "created_at", "source", "campaign", "landing_page", "industry", "employees",
        "country", "job_title", "web_visits", "pages_viewed", "content_downloads",
        "email_opens", "demo_requested", "first_name", "last_name", "email", "phone",
    ]
    assert list(crm["deals"].columns) == ["deal_id", "lead_id", "closed_at", "outcome", "amount"]
    assert list(crm["feedback"].columns) == [
        "lead_id", "feedback_at", "status", "rating", "reason", "first_contact_at"]
    assert list(crm["truth"].columns) == ["lead_id", "true_probability", "persona", "p_called",
                                          "p_not_called", "call_response"]
    leads = crm["leads"]
    assert pd.api.types.is_datetime64_any_dtype(leads["created_at"])
    assert (leads["created_at"].dt.microsecond == 0).all()  # whole seconds
    for col in ("web_visits", "pages_viewed", "content_downloads", "email_opens"):
        assert pd.api.types.is_integer_dtype(leads[col]) and (leads[col] >= 0).all()
    assert set(leads["demo_requested"].unique()) == {0, 1}
    assert (leads["pages_viewed"] >= leads["web_visits"]).all()


def test_ids_unique_and_counts(crm):
    leads, deals, fb, truth = crm["leads"], crm["deals"], crm["feedback"], crm["truth"]
    assert len(leads) == len(truth) == N
    assert leads["lead_id"].is_unique and deals["deal_id"].is_unique
    assert fb["lead_id"].is_unique  # one feedback row per worked lead
    assert leads["lead_id"].str.fullmatch(r"L\d{8}").all()
    assert deals["deal_id"].str.fullmatch(r"D\d{8}").all()
    assert (truth["lead_id"] == leads["lead_id"]).all()
    assert 0.40 * N < len(fb) < 0.60 * N
    assert 0.15 * N < len(deals) < 0.35 * N
    per_lead = deals["lead_id"].value_counts()
    assert per_lead.max() == 2 and 0.003 < (per_lead == 2).sum() / N < 0.02


def test_references_and_dates(crm):
    leads = crm["leads"].set_index("lead_id")
    created = leads["created_at"]
    assert created.is_monotonic_increasing
    assert (created > START).all() and (created <= AS_OF).all()
    deals, fb = crm["deals"], crm["feedback"]
    assert deals["lead_id"].isin(leads.index).all() and fb["lead_id"].isin(leads.index).all()
    assert (deals["closed_at"].to_numpy() > created.loc[deals["lead_id"]].to_numpy()).all()
    assert (deals["closed_at"] <= AS_OF).all()
    lead_created = created.loc[fb["lead_id"]].to_numpy()
    assert (fb["first_contact_at"].to_numpy() > lead_created).all()
    assert (fb["feedback_at"] > fb["first_contact_at"]).all()
    assert (fb["feedback_at"] <= AS_OF).all()
    hours = (fb["first_contact_at"].to_numpy() - lead_created) / np.timedelta64(1, "h")
    assert 10 < np.median(hours) < 30 and (hours > 48).mean() > 0.05


def test_volume_grows_and_dips_on_weekends(crm):
    created = crm["leads"]["created_at"]
    first_q = (created < START + pd.Timedelta(days=91)).sum()
    last_q = (created > AS_OF - pd.Timedelta(days=91)).sum()
    assert 1.1 < last_q / first_q < 1.6
    weekend = created.dt.day_of_week >= 5
    assert weekend.mean() < 0.5 * 2 / 7


def test_messy_but_recoverable_categories(crm):
    leads = crm["leads"]
    canon = leads["source"].str.strip().str.lower().str.replace(r"[-\s]+", " ", regex=True)
    assert canon.nunique() == 7
    assert 0.02 < (leads["source"] != leads["source"].str.strip().str.title()).mean() < 0.12
    assert (leads["source"] == "paid-search").any()
    # Each campaign belongs to exactly one source.
    sources_per_campaign = pd.DataFrame({"c": leads["campaign"], "s": canon}).groupby("c")["s"]
    assert (sources_per_campaign.nunique() == 1).all()
    assert 20 <= leads["campaign"].nunique() <= 40
    assert leads["landing_page"].nunique() > 100
    assert 0.03 < leads["industry"].isna().mean() < 0.08
    assert 0.05 < leads["employees"].isna().mean() < 0.12
    assert 0.01 < leads["job_title"].isna().mean() < 0.05
    free = leads["email"].str.endswith(("@gmail.com", "@yahoo.com", "@hotmail.com", "@outlook.com"))
    assert 0.1 < free.mean() < 0.6


def test_base_rate_and_persona_ordering(merged):
    assert 0.08 <= merged["true_probability"].mean() <= 0.12
    by = merged.groupby("persona")["true_probability"].mean()
    assert set(by.index) == set(synth.PERSONAS)
    assert by["sme_finance_director"] > by["enterprise_it"] > by["student"]
    assert by["enterprise_it"] > by["marketing_manager"]
    assert 0.35 <= by["sme_finance_director"] <= 0.6
    assert 0.10 <= by["enterprise_it"] <= 0.2
    assert by["student"] < 0.01


def test_junk_campaign_brings_students_and_gets_rejected(crm, merged):
    junk = merged[merged["campaign"] == JUNK_CAMPAIGN]
    assert len(junk) > 0.03 * N
    assert (junk["persona"] == "student").mean() > 0.8
    assert junk["true_probability"].mean() < 0.01
    fb = crm["feedback"].merge(junk[["lead_id"]], on="lead_id")
    assert (fb["status"] == "rejected").mean() > 0.8
    assert fb["reason"].isin(["student", "spam"]).mean() > 0.6


def test_feedback_follows_true_probability(crm, merged):
    fb = crm["feedback"].merge(merged, on="lead_id")
    assert set(fb["status"].unique()) == {"accepted", "rejected"}
    assert fb["rating"].between(1, 5).all()
    accepted = fb["status"] == "accepted"
    assert fb["reason"][accepted].isna().all() and fb["reason"][~accepted].notna().all()
    p = fb["true_probability"]
    assert p[accepted].mean() > 2 * p[~accepted].mean()
    assert np.corrcoef(fb["rating"], fb["true_probability"])[0, 1] > 0.4
    # Converters are always accepted, and their feedback is known when their win is.
    winners = merged.loc[merged["won_in_horizon"], "lead_id"]
    assert winners.isin(fb["lead_id"]).all()
    assert (fb.loc[fb["lead_id"].isin(winners), "status"] == "accepted").all()


def test_true_probability_uses_observables_only(crm):
    # The oracle saw the lead at its MQL moment; the export's counters are later snapshots.
    p = true_probability(mql_leads(crm))
    np.testing.assert_allclose(p, crm["truth"]["true_probability"].to_numpy(), rtol=0, atol=1e-12)
    assert ((p > 0) & (p < 1)).all()
    assert not np.allclose(true_probability(crm["leads"]), p)


def test_monotone_in_demo_request(crm):
    leads = crm["leads"].iloc[:4000].copy()
    leads["demo_requested"] = 0
    p0 = true_probability(leads)
    leads["demo_requested"] = 1
    p1 = true_probability(leads)
    assert (p1 >= p0).all() and (p1 > p0).mean() > 0.99


def test_monotone_in_seniority(crm):
    ladder = ["Student", "Intern ", "analyst", "Marketing Coordinator", "IT Manager",
              "Finance Director", "Head of Finance", "VP Finance", "CFO", "Owner"]
    levels = [0, 0, 1, 1, 2, 3, 3, 3, 4, 4]
    np.testing.assert_array_equal(synth.seniority_level(pd.Series(ladder)), levels)
    leads = crm["leads"].iloc[:2000].copy()
    previous = None
    for title in ladder:
        leads["job_title"] = title
        p = true_probability(leads)
        if previous is not None:
            assert (p >= previous - 1e-15).all(), title
        previous = p
    leads["job_title"] = "Student"
    assert (previous > true_probability(leads)).all()


def test_empirical_rate_matches_true_probability(merged):
    matured = merged[merged["matured"]]
    assert len(matured) > 0.8 * N
    assert abs(matured["won_in_horizon"].mean() - matured["true_probability"].mean()) < 0.01


def test_right_censoring_and_late_wins(crm, merged):
    deals = crm["deals"].merge(crm["leads"][["lead_id", "created_at"]], on="lead_id")
    delay = (deals["closed_at"] - deals["created_at"]).dt.days
    won = deals["outcome"] == "won"
    late = won & (delay > 90)
    assert late.any() and delay[late].max() <= 240
    assert 0.01 < deals.loc[late, "lead_id"].nunique() / (~merged["won_in_horizon"]).sum() < 0.05
    assert 15 < delay[won & ~late].median() < 45
    # The last weeks have fewer visible wins than the oracle expects: outcomes not known yet.
    recent = merged[merged["created_at"] > AS_OF - pd.Timedelta(days=30)]
    assert recent["won_in_horizon"].mean() < 0.7 * recent["true_probability"].mean()
    assert (deals["amount"] > 0).all() and 3000 < deals["amount"].median() < 25000


def test_chunks_are_unique_sorted_and_match_full_table(monkeypatch):
    monkeypatch.setattr(synth, "_BLOCK", 3000)  # exercise block boundaries on a small table
    chunks = list(iter_lead_chunks(10_000, 4, chunk_size=2_500))
    assert [len(c) for c in chunks] == [2500] * 4
    chunks = list(iter_lead_chunks(10_000, 4, chunk_size=4_000))
    assert [len(c) for c in chunks] == [4000, 4000, 2000]
    all_leads = pd.concat(chunks, ignore_index=True)
    assert len(all_leads) == 10_000 and all_leads["lead_id"].is_unique
    assert all_leads["created_at"].is_monotonic_increasing
    # Chunks carry the MQL-moment counters (no activity log is generated for them).
    pd.testing.assert_frame_equal(all_leads, mql_leads(generate_crm(10_000, 4)))


def test_write_crm_round_trip_csv(tmp_path):
    paths = write_crm(tmp_path / "a", 2000, seed=3, fmt="csv")
    assert set(paths) == {"leads", "deals", "feedback", "truth", "activities"}
    expected = generate_crm(2000, 3)
    dates = {"leads": ["created_at"], "deals": ["closed_at"],
             "feedback": ["feedback_at", "first_contact_at"], "truth": [],
             "activities": ["occurred_at"]}
    for name, path in paths.items():
        assert path.suffix == ".csv"
        got = pd.read_csv(path, parse_dates=dates[name], encoding="utf-8")
        pd.testing.assert_frame_equal(got, expected[name], check_dtype=False)
    header, first = paths["leads"].read_text(encoding="utf-8").splitlines()[:2]
    assert header.count(",") == 17
    assert ",2024-07-01 " in first  # ISO 'YYYY-MM-DD HH:MM:SS'
    again = write_crm(tmp_path / "b", 2000, seed=3, fmt="csv")
    for name in paths:
        assert paths[name].read_bytes() == again[name].read_bytes()


def test_write_crm_round_trip_parquet(tmp_path):
    paths = write_crm(tmp_path, 2000, seed=3, fmt="parquet")
    expected = generate_crm(2000, 3)
    assert paths["activities"].name == "activities.parquet"
    for name, path in paths.items():
        pd.testing.assert_frame_equal(pd.read_parquet(path), expected[name], check_dtype=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_leads_only_streams_chunks(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(synth, "_ROW_GROUP", 700)
    calls = []
    paths = write_crm(tmp_path, 2000, seed=8, fmt=fmt, leads_only=True,
                      progress=lambda done, total: calls.append((done, total)))
    assert list(paths) == ["leads"]
    assert calls == [(700, 2000), (1400, 2000), (2000, 2000)]
    expected = mql_leads(generate_crm(2000, 8))
    if fmt == "parquet":
        meta = pq.ParquetFile(paths["leads"]).metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [700, 700, 600]
        got = pd.read_parquet(paths["leads"])
    else:
        text = paths["leads"].read_text(encoding="utf-8")
        assert text.count('"lead_id"') == 1  # header written once
        got = pd.read_csv(paths["leads"], parse_dates=["created_at"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_crm(tmp_path, 10, fmt="xlsx")
    with pytest.raises(ValueError):
        generate_crm(-1)
    with pytest.raises(ValueError):
        list(iter_lead_chunks(10, chunk_size=0))
