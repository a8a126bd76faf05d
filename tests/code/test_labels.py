"""The labeling rule, case by case, on frames of a few rows."""

import numpy as np
import pandas as pd
import pytest

from leadq.errors import BadInputError
from leadq.features.labels import (
    CENSORED,
    LOST,
    NO_WIN,
    REJECTED,
    WON,
    label_leads,
    labels_from_column,
)

AS_OF = pd.Timestamp("2025-06-30 23:59:59")


def leads(*rows):
    return pd.DataFrame(rows, columns=["lead_id", "created_at"]).astype(
        {"created_at": "datetime64[ns]"})


def deals(*rows):
    return pd.DataFrame(rows, columns=["lead_id", "closed_at", "won"]).astype(
        {"closed_at": "datetime64[ns]"})


def feedback(*rows):
    return pd.DataFrame(rows, columns=["lead_id", "rejected"])


def run(lead_rows, deal_rows=(), fb_rows=(), **kw):
    kw.setdefault("horizon_days", 90)
    return label_leads(leads(*lead_rows), deals(*deal_rows) if deal_rows else None,
                       feedback(*fb_rows) if fb_rows else None, as_of=AS_OF, **kw)


def test_won_within_horizon_is_positive():
    out = run([("a", "2025-01-01")], [("a", "2025-02-15", True)])
    assert out["label"].tolist() == [1.0]
    assert out["label_status"].tolist() == [WON]
    assert out["days_to_win"].iloc[0] == pytest.approx(45.0)


def test_won_after_horizon_is_negative_once_matured():
    out = run([("a", "2025-01-01")], [("a", "2025-05-01", True)])  # 120 days later
    assert out["label"].tolist() == [0.0]
    assert out["label_status"].tolist() == [NO_WIN]


def test_lost_deal_is_negative_even_when_young():
    out = run([("a", "2025-06-20")], [("a", "2025-06-25", False)])
    assert out["label"].tolist() == [0.0]
    assert out["label_status"].tolist() == [LOST]


def test_lost_can_be_configured_to_wait_for_the_horizon():
    out = run([("a", "2025-06-20")], [("a", "2025-06-25", False)], lost_is_negative=False)
    assert np.isnan(out["label"].iloc[0])
    assert out["label_status"].tolist() == [CENSORED]


def test_several_deals_first_win_counts():
    out = run(
        [("a", "2025-01-01")],
        [("a", "2025-01-10", False), ("a", "2025-03-01", True), ("a", "2025-02-01", True)],
    )
    assert out["label"].tolist() == [1.0]
    assert out["days_to_win"].iloc[0] == pytest.approx(31.0)


def test_deal_dated_before_its_lead_is_not_a_win():
    out = run([("a", "2025-03-01")], [("a", "2025-02-01", True)])
    assert out["label"].tolist() == [0.0]
    assert out["label_status"].tolist() == [NO_WIN]


def test_young_lead_without_outcome_is_censored_not_negative():
    out = run([("a", "2025-05-01"), ("b", "2025-01-01")])
    assert np.isnan(out["label"].iloc[0]) and out["label_status"].iloc[0] == CENSORED
    assert out["label"].iloc[1] == 0.0 and out["label_status"].iloc[1] == NO_WIN


def test_young_lead_with_a_win_is_positive_before_the_horizon():
    out = run([("a", "2025-06-01")], [("a", "2025-06-10", True)])
    assert out["label"].tolist() == [1.0]


def test_rejected_by_sales_is_negative_at_once():
    out = run([("a", "2025-06-20"), ("b", "2025-06-20")], fb_rows=[("a", True), ("b", False)])
    assert out["label"].iloc[0] == 0.0 and out["label_status"].iloc[0] == REJECTED
    assert np.isnan(out["label"].iloc[1])


def test_rejection_can_be_ignored_by_config():
    out = run([("a", "2025-06-20")], fb_rows=[("a", True)], rejected_is_negative=False)
    assert np.isnan(out["label"].iloc[0])


def test_a_recorded_win_beats_a_rejection():
    out = run([("a", "2025-01-01")], [("a", "2025-02-01", True)], fb_rows=[("a", True)])
    assert out["label"].tolist() == [1.0]


def test_deal_closed_after_as_of_is_not_known_yet():
    out = run([("a", "2025-06-01")], [("a", "2025-07-15", True)])
    assert np.isnan(out["label"].iloc[0])


def test_deal_for_unknown_lead_is_ignored():
    out = run([("a", "2025-01-01")], [("zzz", "2025-01-05", True)])
    assert out["label"].tolist() == [0.0]


def test_label_column_mode_accepts_common_spellings_and_refuses_others():
    out = labels_from_column(pd.Series(["1", "0", "yes", None, "False"]), column="converted")
    assert out["label"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert np.isnan(out["label"].iloc[3]) and out["label"].iloc[4] == 0.0
    with pytest.raises(BadInputError, match="converted"):
        labels_from_column(pd.Series(["1", "maybe"]), column="converted")
