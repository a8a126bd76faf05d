"""The row contract's small-frame path (one lead at a time, `leadq serve`: a memo per value)
gives the masks and messages of its bulk path (distinct values of the whole column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features import contracts
from leadq.features.contracts import _Col, evaluate, profile

NUMBERS = ["5", " 5 ", "3.0", "1e3", "1e12", "-1", "-0", "+7", "7.", ".5", "2e-3", "inf", "-inf",
           "Infinity", "NaN", "nan", "abc", "0x10", "1,000", "1_000", "١٢", "", "  ",
           "9007199254740993", "12345678901234567890", "99999999999999999999999", "1e400",
           "-1e400", "0.1", "007", None, np.nan]
TEXTS = ["Paid Search", " PAID-search ", "paid_search", "Unknown", "n/a", "(not set)", "-", "?",
         "None", "null", "", " ", "\t", "Ünïcode ß", "x" * 1200, "x" * 250, "NewThing", "Events",
         "events ", "\u00a0Events\u00a0", "a\x1fb", None, np.nan, "42", "CFO"]


def _clear(monkeypatch) -> None:
    monkeypatch.setattr(contracts, "_small_memo", {})


@pytest.mark.parametrize("dtype", [object, "str"])
def test_value_checks_per_row_equal_the_bulk_path(dtype, monkeypatch):
    _clear(monkeypatch)
    allowed = {"paid search", "events", "unknown", "cfo"}
    for cells in (NUMBERS, TEXTS):
        column = pd.Series(cells * 2, dtype=dtype)
        bulk = _Col(column, shared=False)
        expected = {"blank": bulk.blank(), "num": bulk.numbers(), "len": bulk.lengths(),
                    "in": bulk.in_set(allowed), "norm": bulk.in_set(allowed, normalise=True)}
        for attempt in range(2):  # computed, then every value from the memo
            for i in range(len(column)):
                one = _Col(column.iloc[[i]])
                assert one._cells is not None  # the small path is the one under test
                got = {"blank": one.blank(), "num": one.numbers(), "len": one.lengths(),
                       "in": one.in_set(allowed), "norm": one.in_set(allowed, normalise=True)}
                for key, value in got.items():
                    np.testing.assert_array_equal(value, expected[key][[i]],
                                                  err_msg=f"{key} {column.iloc[i]!r} {attempt}")
                    assert value.dtype == expected[key].dtype, key
        # A few rows at once, with repeats and missing cells, in one small frame.
        few = _Col(column.iloc[:20])
        np.testing.assert_array_equal(few.numbers(), expected["num"][:20])
        np.testing.assert_array_equal(few.blank(), expected["blank"][:20])


def test_a_full_memo_starts_afresh_and_long_texts_are_not_kept(monkeypatch):
    _clear(monkeypatch)
    monkeypatch.setattr(contracts, "_SMALL_MEMO_LIMIT", 2)
    assert list(_Col(pd.Series(["1", "2"])).numbers()) == [1.0, 2.0]
    assert list(_Col(pd.Series(["3", "4", "1"])).numbers()) == [3.0, 4.0, 1.0]
    assert len(contracts._small_memo["num"]) <= 3
    _Col(pd.Series(["y" * 500, "z"])).lengths()
    assert set(contracts._small_memo["len"]) == {"z"}


def test_personal_and_id_columns_never_enter_the_memo(base_params, monkeypatch):
    _clear(monkeypatch)
    frame = _messy_leads(base_params, 3)
    evaluate(frame, "leads", base_params)
    kept = {v for memo in contracts._small_memo.values() for v in memo}
    spec = base_params["data"]["leads"]
    for col in [spec["id"], *(spec.get("personal") or [])]:
        if col in frame:
            assert not kept & set(frame[col].dropna()), col


def _messy_leads(params: dict, n: int) -> pd.DataFrame:
    from leadq.features.columns import model_inputs
    from leadq.pipelines.synthetic.crm import generate_crm

    leads = generate_crm(max(n, 200), seed=5)["leads"].head(n).astype(str)
    rng = np.random.default_rng(1)
    roles = model_inputs(params)
    for col in leads.columns:
        if col in roles["numeric"]:
            pool = NUMBERS
        elif col in [*roles["categorical"], roles["job_title"]]:
            pool = TEXTS
        else:
            continue
        hit = rng.random(n) < 0.35
        leads.loc[hit, col] = rng.choice(np.array(pool, dtype=object), hit.sum())
    return leads.reset_index(drop=True)


@pytest.mark.parametrize("dtype", [object, "str"])
def test_evaluate_one_lead_at_a_time_equals_the_whole_frame(base_params, dtype, monkeypatch):
    from leadq.features.tables import coerce_leads

    _clear(monkeypatch)
    frame = _messy_leads(base_params, 300).astype(dtype)
    # Trained on a few of these rows: the rest has unseen categories and out-of-range numbers.
    reference = profile(coerce_leads(frame.head(100), base_params), base_params)
    whole = evaluate(frame, "leads", base_params, reference,
                     duplicates=np.zeros(len(frame), bool))
    assert whole.bad.any() and whole.warnings  # the corpus exercises rules and warnings
    for i in range(len(frame)):
        one = evaluate(frame.iloc[[i]].reset_index(drop=True), "leads", base_params, reference,
                       duplicates=np.zeros(1, bool))
        assert one.reasons.iloc[0] == whole.reasons.iloc[i], (i, frame.iloc[i].to_dict())
        assert one.primary.iloc[0] == whole.primary.iloc[i]
        flagged = {m for m, mask in whole.warning_masks.items() if mask[i]}
        assert set(one.warning_masks) == flagged, i
