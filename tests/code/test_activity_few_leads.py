"""The service's activity aggregation (features.activities.few_leads, NumPy on a few leads'
events) gives exactly what the one SQL rule (aggregation_sql, run by DuckDB) gives.

`leadq serve` aggregates each request's leads in NumPy: DuckDB's fixed cost per query was most
of a lead's time. Two implementations of one rule are only safe if they cannot drift, so this
holds them to the same output on logs built to hit every edge: events at the cut-off, before
and after each window's start, unlisted types, missing values, missing ids and cut-offs, one
lead scored twice with two cut-offs, and leads the log has never seen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features.activities import (
    DAY_SECONDS,
    FEW_LEADS,
    ActivitySpec,
    few_leads,
    point_in_time,
)

SPEC = ActivitySpec(types=("web_visit", "email_open", "webinar"), windows=(7, 30, 90),
                    value_types=("web_visit", "webinar"))
T0 = 1.7e9


def log_and_leads(seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_leads = FEW_LEADS
    ids = np.array([f"L{i:04d}" for i in range(n_leads)], dtype=object)
    cut = T0 + rng.integers(0, 200, n_leads) * DAY_SECONDS + rng.integers(0, 86_400, n_leads)
    rows = []
    for i, lead in enumerate(ids[: n_leads - 8]):  # the last 8 have no events at all
        for _ in range(int(rng.integers(0, 25))):
            # Days before (or after) the cut-off, some exactly on a window's edge or the cut.
            offset = float(rng.choice([rng.uniform(-120, 10), 0.0, -7.0, -30.0, -90.0,
                                       -rng.integers(0, 100)]))
            rows.append((lead, cut[i] + offset * DAY_SECONDS,
                         rng.choice(["web_visit", "email_open", "webinar", "sales_call"]),
                         float(rng.choice([np.nan, rng.integers(1, 9), rng.uniform(0, 5)]))))
    events = pd.DataFrame(rows, columns=["ev_lead", "ev_t", "ev_type", "ev_value"])
    events.loc[events.sample(frac=0.02, random_state=seed).index, "ev_t"] = np.nan
    events = events.sort_values("ev_lead", kind="stable", ignore_index=True)
    events["ev_lead"] = pd.Series(events["ev_lead"].to_numpy(dtype=object), dtype=object)
    lead_col = pd.Series(ids, dtype=object)
    lead_col.iloc[3] = None           # a lead without an id
    lead_col.iloc[5] = lead_col.iloc[6]  # one lead twice, with two cut-offs
    lead_col.iloc[7] = f"  {lead_col.iloc[7]} "  # padded, as a CSV cell may be
    lead_col.iloc[-1] = "never-seen"
    cut[9] = np.nan                   # no cut-off: no event can be before it
    return events, lead_col, cut


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_numpy_aggregation_equals_the_sql(seed):
    events, leads, cut = log_and_leads(seed)
    sql = point_in_time(events, leads, cut, SPEC)  # no sorted flag: the DuckDB join
    events.attrs["sorted_by_lead"] = True
    fast = point_in_time(events, leads, cut, SPEC)
    assert list(fast.columns) == list(sql.columns) == SPEC.feature_names()
    assert fast.index.equals(sql.index)
    value_cols = [c for c in sql.columns if "_value_" in c]
    # Counts, days-since and kinds: the same IEEE operations, bit for bit.
    pd.testing.assert_frame_equal(fast.drop(columns=value_cols), sql.drop(columns=value_cols),
                                  check_exact=True)
    # Sums of fractional values may be added in another order: the last bit may differ.
    pd.testing.assert_frame_equal(fast[value_cols], sql[value_cols], check_exact=False,
                                  rtol=1e-12, atol=0)
    assert (sql.drop(columns=value_cols).to_numpy() != 0).any()  # the log reached the leads


def test_the_service_path_is_the_numpy_one():
    """Up to FEW_LEADS leads on a sorted log go through few_leads (what the service does)."""
    events, leads, cut = log_and_leads(4)
    events.attrs["sorted_by_lead"] = True
    direct = few_leads(events, leads, cut, SPEC)
    pd.testing.assert_frame_equal(point_in_time(events, leads, cut, SPEC), direct)
    assert direct.loc[9].drop([c for c in direct.columns if "days_since" in c]).eq(0).all()
    assert direct.loc[len(leads) - 1, "act_distinct_types"] == 0  # never-seen lead
