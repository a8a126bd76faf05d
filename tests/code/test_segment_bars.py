"""A bar per segment (segments.per_segment_bar): each segment with a capacity share gets the
agreed policy on its own leads with its share; every other lead (another segment, a blank or
new value) gets the pooled bar; `route` applies them per row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from leadq.features.agreement import Agreement, MqlPolicy, describe_policy
from leadq.models.routing import route
from leadq.models.thresholds import (
    SegmentBars,
    choose_segment_bars,
    resolve_segment_bars,
    share_groups,
)


def split_agreement(shares: dict, top_share: float = 0.5, **kw) -> Agreement:
    return Agreement(mql=MqlPolicy(policy="top_share", top_share=top_share),
                     segment_column="line", capacity_share=shares, **kw)


def test_three_leads_two_segments_each_get_their_own_bar():
    # Enterprise scores are all higher: one bar would send both MQLs there.
    score = np.array([0.9, 0.8, 0.2, 0.1])
    y = np.array([1, 0, 1, 0])
    values = np.array(["Enterprise", "enterprise", "SMB", "smb"], dtype=object)
    bars, pooled = choose_segment_bars(score, y, values, split_agreement(
        {"enterprise": 0.5, "smb": 0.5}))
    assert bars.bars["enterprise"]["threshold"] == 0.9
    assert bars.bars["smb"]["threshold"] == 0.2
    threshold, _ = bars.for_rows(values)
    mql = score >= threshold
    assert list(mql) == [True, False, True, False]  # one MQL per segment, as split
    # No capacity left for other leads: the pooled bar is the single bar over every lead.
    assert pooled.threshold == 0.8 and "single bar" in pooled.reason


def test_segments_without_a_share_and_new_or_blank_values_use_the_pooled_bar():
    score = np.array([0.9, 0.7, 0.3, 0.6, 0.4, 0.2])
    y = np.array([1, 0, 0, 1, 0, 0])
    values = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    bars, pooled = choose_segment_bars(score, y, values, split_agreement({"a": 1 / 3},
                                                                         top_share=0.5))
    # a: a third of the 3 MQLs (top_share 0.5 × 6 leads) = 1 of its 3 leads;
    # the rest (b) gets two thirds of them: 2 of its 3 leads.
    assert bars.bars["a"]["threshold"] == 0.9
    assert bars.pooled["threshold"] == pooled.threshold == 0.4
    threshold, cutoffs = bars.for_rows(np.array(["A", "b", None, "", "new"], dtype=object))
    assert list(threshold) == [0.9, 0.4, 0.4, 0.4, 0.4]
    assert cutoffs.shape == (5, 3) and (cutoffs[:, 1] == threshold).all()


def test_a_share_for_a_value_no_lead_has_is_refused():
    with pytest.raises(ValueError, match=r"segments\.capacity_share\.partner"):
        choose_segment_bars(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 0]),
                            np.array(["a", "b", "a"], dtype=object),
                            split_agreement({"a": 0.5, "partner": 0.2}))


def test_two_spellings_of_one_segment_are_refused():
    with pytest.raises(ValueError, match="same segment"):
        share_groups(np.array(["a"], dtype=object), {"Paid Search": 0.3, "paid-search": 0.3})


def test_route_applies_each_rows_bar_and_tiers():
    bars = SegmentBars("line", {"a": {"threshold": 0.8, "cutoffs": [0.9, 0.8, 0.7]}},
                       {"threshold": 0.3, "cutoffs": [0.5, 0.3, 0.2]})
    raw = np.array([0.85, 0.75, 0.35, 0.95])
    r = route(["1", "2", "3", "4"], raw, threshold=0.99, cutoffs=None, correction=None,
              explore_rate=0.0, segment_bars=bars,
              segment_values=np.array(["a", "a", "b", None], dtype=object))
    assert list(r["is_mql"]) == [True, False, True, True]
    assert list(r["tier"]) == ["B", "C", "B", "A"]
    with pytest.raises(ValueError, match="segment value"):
        route(["1"], raw[:1], threshold=0.5, cutoffs=None, correction=None,
              explore_rate=0.0, segment_bars=bars)


def test_recalibration_splits_capacity_by_share_and_keeps_a_quiet_segments_bar():
    rng = np.random.default_rng(0)
    score = np.r_[rng.uniform(0.3, 0.9, 300), rng.uniform(0.0, 0.4, 300)]
    values = np.array(["a"] * 300 + ["b"] * 300, dtype=object)
    agreement = split_agreement({"a": 0.25, "b": 0.75}, top_share=1.0, capacity_per_week=40.0)
    bars, overall = resolve_segment_bars(score, values, agreement, capacity=40.0, weeks=4.0)
    threshold, _ = bars.for_rows(values)
    mql = score >= threshold
    # 40 MQLs/week over 4 weeks: 40 for a, 120 for b, whatever their scores.
    assert mql[:300].sum() == 40 and mql[300:].sum() == 120
    assert overall.mql_per_week == pytest.approx(40.0)
    # A segment with no recent lead keeps the bar in force rather than losing it.
    again, _ = resolve_segment_bars(score[300:], values[300:], agreement, capacity=40.0,
                                    weeks=4.0, previous=bars)
    assert again.bars["a"]["threshold"] == bars.bars["a"]["threshold"]


def test_the_split_is_part_of_the_policy_key_and_said_in_words():
    one = Agreement()
    split = replace(one, segment_column="line", capacity_share={"a": 0.6})
    assert one.policy_key() != split.policy_key()
    assert "a bar per line (a 60% of capacity" in describe_policy(split.policy_key())


def test_a_bar_set_on_a_handful_of_leads_is_warned_about(caplog):
    """A tiny segment given a large share passes all its leads on a noisy bar: training says
    so, naming the segment and the setting (pipelines/train.py)."""
    import pandas as pd

    from leadq.pipelines.train import _segment_bars

    rng = np.random.default_rng(0)
    values = pd.Series(["web"] * 497 + ["Rare"] * 3)
    score, y = rng.random(500), rng.integers(0, 2, 500)
    with caplog.at_level("WARNING", logger="leadq"):
        _segment_bars(score, y, values, split_agreement({"web": 0.5, "rare": 0.3}))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "rare" in warned[0].lower()
    assert "segments.capacity_share" in warned[0]
