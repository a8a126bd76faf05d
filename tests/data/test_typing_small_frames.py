"""Typing a lead on its own (`leadq serve`: text cells through a memo of _text's answers)
gives the types and values of typing it among many (the bulk path's string methods), for any
text a web form can send."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from leadq.features.columns import model_inputs
from leadq.features.tables import coerce_leads
from leadq.features.transform import SMALL_FRAME_ROWS

CELLS = ["Paid Search", " PAID-search ", "", " ", "\t", "\u00a0Events\u00a0", "a\x1fb",
         "Ünïcode ß", "x" * 250, None, "CFO", "42", "\u2028", "\x00"]


def _frame(base_params, cells: list) -> pd.DataFrame:
    roles = model_inputs(base_params)
    spec = base_params["data"]["leads"]
    text = [*roles["categorical"], roles["job_title"], roles["email"]]
    n = len(cells)
    data = {c: pd.array([cells[(i + k) % n] for i in range(n)], dtype="str")
            for k, c in enumerate(text)}
    data[spec["id"]] = pd.array([f"L{i}" for i in range(n)], dtype="str")
    for col in roles["numeric"]:
        data[col] = pd.array(["1"] * n, dtype="str")
    data[spec["created_at"]] = pd.array(["2024-01-01"] * n, dtype="str")
    return pd.DataFrame(data)


def _same(base_params, cells: list) -> None:
    frame = _frame(base_params, cells)
    # Enough rows that the bulk path runs on the whole frame.
    big = pd.concat([frame] * (SMALL_FRAME_ROWS // max(len(frame), 1) + 2), ignore_index=True)
    bulk = coerce_leads(big, base_params)
    for i in range(len(frame)):
        one = coerce_leads(big.iloc[[i]], base_params)
        for col in one.columns:
            assert one[col].dtype == bulk[col].dtype, col
            a, b = one[col].iloc[0], bulk[col].iloc[i]
            assert (pd.isna(a) and pd.isna(b)) or a == b, (col, a, b)


def test_awkward_cells_type_alike_alone_and_in_bulk(base_params):
    _same(base_params, CELLS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=6))
def test_any_text_types_alike_alone_and_in_bulk(base_params, cells):
    _same(base_params, [c.encode("utf-8", "replace").decode() if c else c for c in cells])


def test_personal_columns_are_not_kept_in_a_memo(base_params):
    from leadq.features import transform

    roles = model_inputs(base_params)
    frame = _frame(base_params, ["someone@example.com"])
    frame[roles["email"]] = pd.array(["private.person@example.org"], dtype="str")
    coerce_leads(frame, base_params)
    kept = {v for memo in transform._memo.values() for v in memo}
    assert "private.person@example.org" not in kept
    assert np.all(coerce_leads(frame, base_params)[roles["email"]].to_numpy(object)
                  == ["private.person@example.org"])
