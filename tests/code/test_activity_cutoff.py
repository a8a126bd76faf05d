"""The activity join's edge (issue 30): an event at exactly a lead's cut-off is not before it.

The suite had no event sitting on the cut-off, so `ev_t < c_cut` turned `<=` passed every
test (tests/mutation/mutants.toml: activity-cutoff-inclusive). An event logged in the same
second as the MQL moment may be the sales call's own web visit: it must not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features.activities import ActivitySpec, epoch_seconds, point_in_time

SPEC = ActivitySpec(types=("web_visit",), windows=(7, 30), value_types=("web_visit",))
CREATED = pd.Series(pd.to_datetime(["2024-03-10 12:00:00", "2024-03-10 12:00:00"]))


def events(offsets_seconds: list[float], lead: str = "A") -> pd.DataFrame:
    cut = epoch_seconds(CREATED)[0]
    return pd.DataFrame({"ev_lead": [lead] * len(offsets_seconds),
                         "ev_t": [cut + s for s in offsets_seconds],
                         "ev_type": ["web_visit"] * len(offsets_seconds),
                         "ev_value": [5.0] * len(offsets_seconds)})


@pytest.mark.parametrize("sorted_log", [False, True], ids=["join", "binary-search"])
def test_an_event_exactly_at_the_cut_off_is_left_out(sorted_log):
    log = pd.concat([events([0.0]), events([-1.0, 0.0], lead="B")], ignore_index=True)
    log = log.sort_values("ev_lead", ignore_index=True)
    if sorted_log:  # what scoring reads (a few leads: their events found by binary search)
        log.attrs["sorted_by_lead"] = True
    leads = pd.Series(["A", "B"])
    out = point_in_time(log, leads, epoch_seconds(CREATED), SPEC)
    # A's only event is at the cut-off: as if it had none.
    assert out.loc[0, "act_web_visit_7d"] == 0 and out.loc[0, "act_web_visit_30d"] == 0
    assert out.loc[0, "act_web_visit_value_30d"] == 0
    assert np.isnan(out.loc[0, "act_days_since_last"])
    assert out.loc[0, "act_distinct_types"] == 0
    # B: the event a second before counts, the one on the cut-off does not.
    assert out.loc[1, "act_web_visit_7d"] == 1 and out.loc[1, "act_web_visit_value_30d"] == 5
    assert out.loc[1, "act_days_since_last"] == pytest.approx(1 / 86400)
