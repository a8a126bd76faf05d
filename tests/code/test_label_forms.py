"""The label forms a leads table can carry its outcome in (leadq.features.labels): an outcome
column (0/1, yes/no, TRUE/FALSE, or a pipeline stage whose open values are censored) and a
conversion date timed from created_at; and `build_labels` choosing the form from params."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.errors import BadInputError
from leadq.features.labels import (
    CENSORED,
    GIVEN,
    NO_WIN,
    WON,
    labels_from_column,
    labels_from_conversion_date,
)

AS_OF = pd.Timestamp("2025-06-30 23:59:59")


def _labels(out: pd.DataFrame) -> list:
    """Labels with NaN as None, so a list comparison can say "censored"."""
    return [None if np.isnan(v) else v for v in out["label"]]


# ------------------------------------------------------------------------------ outcome column

def test_the_usual_binary_spellings_are_read_without_configuration():
    values = pd.Series(["1", "0", "yes", "No", "TRUE", "false", " y ", "N", "1.0", "0.0",
                        "Won", "lost", "t", "F"])
    out = labels_from_column(values, column="converted")
    assert _labels(out) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert set(out["label_status"]) == {GIVEN}
    assert out["days_to_win"].isna().all()


def test_a_blank_outcome_is_censored_not_negative():
    out = labels_from_column(pd.Series(["yes", None, "", "  ", "no"]), column="y")
    assert _labels(out) == [1.0, None, None, None, 0.0]
    assert out["label_status"].tolist() == [GIVEN, CENSORED, CENSORED, CENSORED, GIVEN]


def test_a_stage_column_maps_won_lost_and_censors_open_stages():
    values = pd.Series(["Won", "Lost", "Open", "Negotiation", " won ", "LOST"],
                       index=[10, 11, 12, 13, 14, 15])
    out = labels_from_column(values, column="stage", won=["Won"], lost=["Lost"],
                             open_values=["Open", "Negotiation"])
    assert out.index.tolist() == [10, 11, 12, 13, 14, 15]  # labels align with the leads
    assert _labels(out) == [1.0, 0.0, None, None, 1.0, 0.0]
    assert out["label_status"].tolist() == [GIVEN, GIVEN, CENSORED, CENSORED, GIVEN, GIVEN]


def test_configured_values_replace_the_default_spellings():
    # With label_won/label_lost set, "yes" is no longer a win: it is an unknown value.
    out = labels_from_column(pd.Series(["Closed Won", "Closed Lost"]), column="stage",
                             won=["Closed Won"], lost=["Closed Lost"])
    assert _labels(out) == [1.0, 0.0]
    with pytest.raises(BadInputError, match="'yes'"):
        labels_from_column(pd.Series(["Closed Won", "yes"]), column="stage",
                           won=["Closed Won"], lost=["Closed Lost"])


def test_an_unknown_stage_is_an_error_naming_the_column_the_value_and_the_keys():
    values = pd.Series(["Won", "Lost", "Open", "Proposal Sent"])
    with pytest.raises(BadInputError) as exc:
        labels_from_column(values, column="stage", won=["Won"], lost=["Lost"],
                           open_values=["Open"])
    message = str(exc.value)
    assert "'stage'" in message and "'Proposal Sent'" in message
    assert "'Open'" not in message and "'Won'" not in message  # only the offending values
    for key in ("data.leads.label_won", "label_lost", "label_open"):
        assert key in message


def test_an_open_stage_is_an_error_when_label_open_does_not_list_it():
    with pytest.raises(BadInputError, match="label_open"):
        labels_from_column(pd.Series(["Won", "Lost", "Open"]), column="stage",
                           won=["Won"], lost=["Lost"])


# ------------------------------------------------------------------------------ conversion date

def _conversion(rows, horizon_days=30, as_of=AS_OF, **kw):
    created = pd.Series(pd.to_datetime([c for c, _ in rows]), index=range(100, 100 + len(rows)))
    converted = pd.Series(pd.to_datetime([v for _, v in rows]), index=created.index)
    return labels_from_conversion_date(created, converted, horizon_days=horizon_days,
                                       as_of=as_of, **kw)


def test_conversion_within_the_horizon_is_a_win_and_timed():
    out = _conversion([("2025-01-01", "2025-01-10"), ("2025-01-01", "2025-01-31")])
    assert _labels(out) == [1.0, 1.0]
    assert out["label_status"].tolist() == [WON, WON]
    assert out["days_to_win"].tolist() == pytest.approx([9.0, 30.0])


def test_conversion_after_the_horizon_is_negative_once_matured():
    out = _conversion([("2025-01-01", "2025-03-15"), ("2025-01-01", None)])
    assert _labels(out) == [0.0, 0.0]
    assert out["label_status"].tolist() == [NO_WIN, NO_WIN]
    assert out["days_to_win"].isna().all()


def test_a_young_unconverted_lead_is_censored():
    out = _conversion([("2025-06-20", None), ("2025-05-31", None)])
    # 2025-05-31 + 30 days = 2025-06-30, before as-of (23:59:59): matured, a negative.
    assert _labels(out) == [None, 0.0]
    assert out["label_status"].tolist() == [CENSORED, NO_WIN]


def test_a_young_lead_that_converted_already_is_a_win():
    out = _conversion([("2025-06-20", "2025-06-25")])
    assert _labels(out) == [1.0]


def test_matured_only_censors_a_young_win_too():
    out = _conversion([("2025-06-20", "2025-06-25"), ("2025-01-01", "2025-01-05")],
                      matured_only=True)
    assert _labels(out) == [None, 1.0]
    assert out["label_status"].tolist() == [CENSORED, WON]


def test_a_conversion_dated_before_the_lead_is_not_a_win():
    out = _conversion([("2025-02-01", "2025-01-15"), ("2025-06-25", "2025-06-20")])
    assert _labels(out) == [0.0, None]  # matured → negative; young → still censored
    assert out["label_status"].tolist() == [NO_WIN, CENSORED]


def test_a_conversion_after_as_of_is_not_known_yet():
    out = _conversion([("2025-06-25", "2025-07-05"), ("2025-01-01", "2025-01-20")],
                      as_of=pd.Timestamp("2025-06-30"))
    assert _labels(out) == [None, 1.0]


def test_labels_keep_the_index_of_the_leads():
    out = _conversion([("2025-01-01", "2025-01-10"), ("2025-06-20", None)])
    assert out.index.tolist() == [100, 101]


def test_without_a_creation_date_a_filled_conversion_is_positive():
    converted = pd.Series(pd.to_datetime(["2025-01-10", None, "2025-06-01", "2025-08-01"]),
                          index=[7, 3, 5, 1])
    out = labels_from_conversion_date(None, converted, horizon_days=30, as_of=AS_OF)
    assert out.index.tolist() == [7, 3, 5, 1]
    # Nothing can be timed: filled = positive, blank = negative (not censored); a date after
    # as-of is not known yet, so not a win.
    assert _labels(out) == [1.0, 0.0, 1.0, 0.0]
    assert out["label_status"].tolist() == [WON, NO_WIN, WON, NO_WIN]


# ------------------------------------------------------------------------------ build_labels

def _params(matured_only: bool = False, **leads):
    from leadq.pipelines.params.loader import effective_params

    return effective_params({"data": {"leads": {"path": "leads.csv", **leads}},
                             "label": {"horizon_days": 30, "matured_only": matured_only}})


RAW = pd.DataFrame({
    "lead_id": ["a", "b", "c", "d", "e"],
    "created_at": ["2025-01-01T09:00:00Z", "2025-01-01T09:00:00Z", "2025-02-01T00:00:00Z",
                   "2025-06-20T12:00:00Z", "2025-06-25T06:00:00Z"],
    "converted_at": ["2025-01-11T09:00:00Z", "2025-04-01T00:00:00Z", "", "",
                     "2025-06-30T10:00:00Z"],
    "source": ["ads", "ads", "event", "ads", "event"],
})


def test_build_labels_reads_converted_at_from_params():
    from leadq.features.tables import build_labels, coerce_leads

    params = _params(id="lead_id", created_at="created_at", converted_at="converted_at")
    assert params["data"]["deals"] is None  # no deals table is needed for this form
    leads = coerce_leads(RAW, params)
    labels, as_of = build_labels(leads, None, None, params)
    # as-of: the latest date of the tables (the last conversion), on one naive UTC clock.
    assert as_of == pd.Timestamp("2025-06-30 10:00:00")
    assert labels.index.tolist() == RAW.index.tolist()
    # a: 10 days → win; b: 90 days > 30 → negative; c: matured, never converted → negative;
    # d: young, not converted → censored; e: young, converted within the horizon → win.
    assert _labels(labels) == [1.0, 0.0, 0.0, None, 1.0]
    assert labels["days_to_win"].iloc[0] == pytest.approx(10.0)


def test_build_labels_converted_at_honours_matured_only():
    from leadq.features.tables import build_labels, coerce_leads

    params = _params(matured_only=True, id="lead_id", created_at="created_at",
                     converted_at="converted_at")
    labels, _ = build_labels(coerce_leads(RAW, params), None, None, params)
    # e converted within the horizon but is younger than it: censored with its peers.
    assert _labels(labels) == [1.0, 0.0, 0.0, None, None]


def test_build_labels_converted_at_uses_label_settings():
    from leadq.features.tables import build_labels, coerce_leads
    from leadq.pipelines.params.loader import effective_params

    params = effective_params({
        "data": {"leads": {"path": "leads.csv", "id": "lead_id", "created_at": "created_at",
                           "converted_at": "converted_at"}},
        "label": {"horizon_days": 120, "as_of": "2025-12-31", "matured_only": False}})
    labels, as_of = build_labels(coerce_leads(RAW, params), None, None, params)
    assert as_of == pd.Timestamp("2025-12-31 23:59:59")
    # A 120-day horizon makes b's 90 days a win; as-of at year end matures d: a negative.
    assert _labels(labels) == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_build_labels_converted_at_without_created_at():
    from leadq.features.tables import build_labels, coerce_leads

    params = _params(converted_at="converted_at")
    labels, _ = build_labels(coerce_leads(RAW, params), None, None, params)
    # Nothing can be timed: a filled conversion date is a win, a blank one a negative.
    assert _labels(labels) == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_build_labels_prefers_a_label_column_with_its_values():
    from leadq.features.tables import build_labels, coerce_leads

    raw = RAW.assign(stage=["Won", "Lost", "Open", "Open", "Won"])
    params = _params(label="stage", label_won=["Won"], label_lost=["Lost"],
                     label_open=["Open"])
    labels, as_of = build_labels(coerce_leads(raw, params), None, None, params)
    assert as_of is None
    assert _labels(labels) == [1.0, 0.0, None, None, 1.0]


def test_build_labels_reads_iso_dates_with_mixed_offsets():
    from leadq.features.tables import build_labels, coerce_leads

    raw = RAW.assign(created_at=RAW["created_at"].where(RAW.index != 4,
                                                        "2025-06-25T08:00:00+02:00"))
    params = _params(id="lead_id", created_at="created_at", converted_at="converted_at")
    leads = coerce_leads(raw, params)
    assert leads["created_at"].iloc[4] == pd.Timestamp("2025-06-25 06:00:00")
    labels, _ = build_labels(leads, None, None, params)
    assert _labels(labels) == [1.0, 0.0, 0.0, None, 1.0]
