"""The synthetic CRM's activity log: timing around the MQL moment, the leak, ids, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.synthetic.crm import (
    ACTIVITY_TYPES,
    AS_OF,
    generate_crm,
    true_probability,
    write_crm,
)

N = 20_000
SEED = 11
MARKETING = ["web_visit", "content_download", "email_open"]
COUNTERS = {"web_visits": "web_visit", "content_downloads": "content_download",
            "email_opens": "email_open"}
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    return generate_crm(N, SEED)


@pytest.fixture(scope="module")
def acts(crm) -> pd.DataFrame:
    """Activities with their lead's created_at and the offset from it."""
    a = crm["activities"].merge(crm["leads"][["lead_id", "created_at"]], on="lead_id",
                                validate="m:1")
    a["since_mql"] = a["occurred_at"] - a["created_at"]
    return a


def per_lead(events: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Events per lead and type, zero-filled, in the leads' order."""
    tab = events.groupby(["lead_id", "activity_type"]).size().unstack(fill_value=0)
    return tab.reindex(index=leads["lead_id"], columns=list(ACTIVITY_TYPES), fill_value=0)


def pages(visits: pd.DataFrame, leads: pd.DataFrame) -> np.ndarray:
    s = visits[visits["activity_type"] == "web_visit"].groupby("lead_id")["value"].sum()
    return s.reindex(leads["lead_id"], fill_value=0).to_numpy()


def test_columns_types_and_ids(crm):
    a, leads = crm["activities"], crm["leads"]
    assert list(a.columns) == ["activity_id", "lead_id", "occurred_at", "activity_type", "value"]
    assert a["activity_id"].dtype == leads["lead_id"].dtype == a["lead_id"].dtype
    assert pd.api.types.is_datetime64_any_dtype(a["occurred_at"])
    assert (a["occurred_at"].dt.microsecond == 0).all()
    assert a["value"].dtype == np.float64
    assert set(a["activity_type"].unique()) == set(ACTIVITY_TYPES)
    assert a["lead_id"].isin(leads["lead_id"]).all()
    # Running numbers in time order, ties broken by lead.
    assert a["activity_id"].is_unique
    expected_ids = [f"A{i:09d}" for i in range(1, len(a) + 1)]
    assert a["activity_id"].tolist() == expected_ids
    assert a["occurred_at"].is_monotonic_increasing
    same_second = a["occurred_at"].diff() == pd.Timedelta(0)
    assert (a["lead_id"][same_second].to_numpy() >= a["lead_id"].shift()[same_second]).all()
    visit = a["activity_type"] == "web_visit"
    assert (a.loc[visit, "value"] >= 1).all() and (a.loc[visit, "value"] % 1 == 0).all()
    assert a.loc[~visit, "value"].isna().all()
    assert 8 < len(a) / N < 20


def test_pre_mql_events_fall_in_the_90_days_before_created_at(acts):
    pre = acts[acts["since_mql"] < pd.Timedelta(0)]
    # Nothing is logged at the MQL second itself, so "before" and "after" are unambiguous.
    assert (acts["since_mql"] != pd.Timedelta(0)).all()
    before = -pre["since_mql"]
    assert (before >= pd.Timedelta(seconds=60)).all() and (before <= 90 * DAY).all()
    assert 5 * DAY < before.median() < 15 * DAY  # recent engagement dominates
    assert pre["activity_type"].isin(MARKETING + ["webinar"]).all()
    assert (pre["activity_type"] == "webinar").sum() > 0.1 * N


def test_nothing_after_the_end_of_the_data(acts):
    assert (acts["occurred_at"] <= AS_OF).all()
    assert acts["occurred_at"].max() > AS_OF - DAY  # censored, not stopped early
    short = generate_crm(3000, 2, end="2025-06-30")
    end = pd.Timestamp("2025-06-30 23:59:59")
    assert (short["activities"]["occurred_at"] <= end).all()
    assert short["activities"]["occurred_at"].max() > end - DAY


def test_pre_mql_counts_are_the_oracle_inputs(crm, acts):
    leads = crm["leads"]
    pre = acts[acts["since_mql"] < pd.Timedelta(0)]
    counts = per_lead(pre, leads)
    mql = leads.copy()
    for col, kind in COUNTERS.items():
        mql[col] = counts[kind].to_numpy()
    mql["pages_viewed"] = pages(pre, leads)
    truth = crm["truth"]["true_probability"].to_numpy()
    np.testing.assert_array_equal(true_probability(mql), truth)
    assert (mql["pages_viewed"] >= mql["web_visits"]).all()
    # Not vacuous: the oracle does read the rebuilt counters (webinars were left out above).
    more = mql.assign(web_visits=mql["web_visits"] + 5)
    assert (true_probability(more) > truth).all()


def test_export_counters_are_snapshots_of_the_log(crm, acts):
    leads = crm["leads"]
    seen = acts[acts["occurred_at"] <= AS_OF]
    counts = per_lead(seen, leads)
    for col, kind in COUNTERS.items():
        np.testing.assert_array_equal(leads[col].to_numpy(), counts[kind].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(leads["pages_viewed"].to_numpy(), pages(seen, leads))
    post = per_lead(acts[acts["since_mql"] > pd.Timedelta(0)], leads)
    assert (post["web_visit"] > 0).mean() > 0.2  # the snapshot really adds post-MQL events


def test_converters_keep_engaging_after_the_mql_moment(crm, acts):
    leads, deals = crm["leads"], crm["deals"]
    # Old enough that any win (at most 240 days after creation) is visible by AS_OF.
    old = leads[leads["created_at"] < AS_OF - 250 * DAY]
    won_at = deals[deals["outcome"] == "won"].groupby("lead_id")["closed_at"].max()
    converts = old["lead_id"].isin(won_at.index).to_numpy()
    assert 0.05 < converts.mean() < 0.2
    post = acts[(acts["since_mql"] > pd.Timedelta(0)) & acts["activity_type"].isin(MARKETING)]
    n_post = per_lead(post, old)[MARKETING].sum(axis=1).to_numpy()
    assert n_post[converts].mean() > 4 * n_post[~converts].mean()
    assert n_post[converts].mean() > 8
    # Non-converters go quiet within 90 days; converters stop 30 days after their win.
    late = post.merge(old[["lead_id"]], on="lead_id")
    is_conv = late["lead_id"].isin(won_at.index)
    assert (late.loc[~is_conv, "since_mql"] <= 90 * DAY).all()
    conv = late[is_conv]
    assert (conv["occurred_at"].to_numpy() <= (won_at.loc[conv["lead_id"]] + 30 * DAY).to_numpy()
            ).all()
    # The leak: export-day visits separate converters far better than the MQL-moment visits.
    mql_visits = per_lead(acts[acts["since_mql"] < pd.Timedelta(0)], old)["web_visit"].to_numpy()
    snap_visits = old["web_visits"].to_numpy()
    ratio_mql = mql_visits[converts].mean() / mql_visits[~converts].mean()
    ratio_snap = snap_visits[converts].mean() / snap_visits[~converts].mean()
    assert ratio_snap > ratio_mql + 0.5


def test_sales_actions_follow_the_first_contact(crm, acts):
    fb = crm["feedback"].set_index("lead_id")
    calls = acts[acts["activity_type"] == "sales_call"]
    meetings = acts[acts["activity_type"] == "meeting"]
    # Every lead sales worked (has feedback) got calls; nobody else did.
    assert set(calls["lead_id"]) == set(fb.index)
    first_call = calls.groupby("lead_id")["occurred_at"].min()
    np.testing.assert_array_equal(first_call.to_numpy(),
                                  fb.loc[first_call.index, "first_contact_at"].to_numpy())
    assert calls.groupby("lead_id").size().between(1, 3).all()
    assert set(meetings["lead_id"]) <= set(fb.index[fb["status"] == "accepted"])
    assert (meetings["occurred_at"].to_numpy()
            > fb.loc[meetings["lead_id"], "first_contact_at"].to_numpy()).all()
    assert meetings.groupby("lead_id").size().max() <= 2
    assert len(meetings) > 0.1 * len(fb)


def test_deterministic_for_a_seed():
    a, b, c = generate_crm(3000, 5), generate_crm(3000, 5), generate_crm(3000, 6)
    pd.testing.assert_frame_equal(a["activities"], b["activities"])
    assert not a["activities"]["occurred_at"].equals(c["activities"]["occurred_at"])


def test_write_crm_writes_the_activity_log(tmp_path):
    expected = generate_crm(1500, 9)
    for fmt in ("csv", "parquet"):
        paths = write_crm(tmp_path / fmt, 1500, seed=9, fmt=fmt)
        assert paths["activities"].name == f"activities.{fmt}"
        if fmt == "csv":
            got = pd.read_csv(paths["activities"], parse_dates=["occurred_at"])
            lines = paths["activities"].read_text(encoding="utf-8").splitlines()
            assert lines[0] == '"activity_id","lead_id","occurred_at","activity_type","value"'
            # Second resolution, and no value for anything but a web visit.
            assert any(line.endswith('"email_open",') for line in lines)
            assert lines[1].split(",")[2].count(":") == 2 and "." not in lines[1].split(",")[2]
        else:
            got = pd.read_parquet(paths["activities"])
        assert len(got) == len(expected["activities"])
        pd.testing.assert_frame_equal(got, expected["activities"], check_dtype=False)
        leads = (pd.read_csv(paths["leads"], parse_dates=["created_at"]) if fmt == "csv"
                 else pd.read_parquet(paths["leads"]))
        pd.testing.assert_frame_equal(leads, expected["leads"], check_dtype=False)
