"""per_distinct's small-frame path (one lead at a time, `leadq serve`) equals its bulk path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features import transform
from leadq.features.transform import normalise_category, per_distinct, seniority_rank

CELLS = ["Paid-Search ", "paid search", "PAID_SEARCH", None, "", "  ", "Ünïcode Ñame", "CFO",
         "Assistant Director", "student", np.nan, "vp of sales", "n/a", "Owner & Founder",
         "intern", "Head of  Growth", pd.NA, "x" * 300, "42", "Chief", "senior analyst"]


@pytest.mark.parametrize("fn", [normalise_category, seniority_rank])
@pytest.mark.parametrize("dtype", [object, "str"])
def test_small_frames_give_what_the_bulk_path_gives(fn, dtype, monkeypatch):
    values = pd.Series(CELLS * 2, dtype=dtype)
    monkeypatch.setattr(transform, "SMALL_FRAME_ROWS", 0)
    bulk = fn(values)
    monkeypatch.setattr(transform, "SMALL_FRAME_ROWS", 10**6)
    monkeypatch.setattr(transform, "_memo", {})
    small = fn(values)
    memo = fn(values)  # every value from the memo this time
    for got in (small, memo):
        assert got.dtype == bulk.dtype
        pd.testing.assert_series_equal(got, bulk)
    one = [fn(values.iloc[[i]]) for i in range(len(values))]
    for i, got in enumerate(one):
        expected = bulk.iloc[[i]]
        if pd.isna(expected.iloc[0]):
            assert pd.isna(got.iloc[0])
        else:
            assert got.iloc[0] == expected.iloc[0], (CELLS[i % len(CELLS)], got.iloc[0])


def test_all_missing_small_frame_gives_what_the_bulk_path_gives(monkeypatch):
    values = pd.Series([None, np.nan], dtype=object)
    bulk = per_distinct(pd.concat([values] * 20, ignore_index=True),
                        transform._seniority_of_titles).iloc[:2]
    monkeypatch.setattr(transform, "_memo", {})
    monkeypatch.setattr(transform, "_out_dtype", {})
    got = per_distinct(values, transform._seniority_of_titles)
    assert got.isna().all() and len(got) == 2 and got.dtype == bulk.dtype


def test_a_full_memo_starts_afresh_without_losing_what_this_call_needs(monkeypatch):
    monkeypatch.setattr(transform, "_MEMO_LIMIT", 2)
    monkeypatch.setattr(transform, "_memo", {})
    fn = transform._normalise_text
    assert list(per_distinct(pd.Series(["A", "B"]), fn)) == ["a", "b"]
    assert list(per_distinct(pd.Series(["A", "C", "D"]), fn)) == ["a", "c", "d"]
    assert len(transform._memo[fn]) <= 3


def test_long_texts_are_not_kept(monkeypatch):
    monkeypatch.setattr(transform, "_memo", {})
    long = "Paid Search " * 100
    got = normalise_category(pd.Series([long, "Email"]))
    assert got.iloc[0] == long.lower().strip() and got.iloc[1] == "email"
    assert set(transform._memo[transform._normalise_text]) == {"Email"}
