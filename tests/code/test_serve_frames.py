"""`leadq serve`'s request frame and answer, built the cheap way, are exactly what the pandas
calls they replace gave: the frame `pd.array(..., dtype="str")` per column made, and the answer
`DataFrame.to_dict("records")` (each value through _jsonable) made, serialised to the same bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from leadq.pipelines.service.app import _jsonable, answer_rows, leads_frame, text_frame

cells = st.none() | st.text(max_size=8) | st.sampled_from(["", "NaN", "null", " x ", "é", "0"])


def reference_frame(columns: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame({f: pd.array(v, dtype="str") for f, v in columns.items()})


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.dictionaries(
    st.text(min_size=1, max_size=6), st.lists(cells, min_size=n, max_size=n), min_size=1,
    max_size=8)))
def test_text_frame_is_the_per_column_str_frame(columns):
    columns = {f: [None if v is None else v for v in vals] for f, vals in columns.items()}
    fast, slow = text_frame(columns), reference_frame(columns)
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    for f in columns:
        assert fast[f].dtype == slow[f].dtype
        assert fast[f].array._pa_array.type == slow[f].array._pa_array.type
        assert fast[f].isna().tolist() == slow[f].isna().tolist()


def test_leads_frame_types_missing_cells_as_before():
    leads = [{"lead_id": 7, "a": 1.5, "b": True, "c": "NaN", "d": None},
             {"lead_id": "x", "a": "", "b": "  y ", "c": float("nan")}]
    frame, unknown = leads_frame(leads, ["lead_id", "a", "b", "c", "d"], "lead_id")
    assert unknown == []
    assert frame["lead_id"].tolist() == ["7", "x"]
    assert frame["a"].iloc[0] == "1.5" and pd.isna(frame["a"].iloc[1])
    assert frame["b"].tolist() == ["true", "  y "]
    assert frame["c"].isna().all() and frame["d"].isna().all()
    assert all(dtype == "str" for dtype in frame.dtypes)


def reference_answer(rows_out: pd.DataFrame) -> list[dict]:
    return [{k: _jsonable(v) for k, v in rec.items()} for rec in rows_out.to_dict("records")]


def output_frame(n: int, seed: int) -> pd.DataFrame:
    """A frame with every kind of column a scoring output holds."""
    rng = np.random.default_rng(seed)
    text = pd.array([None if rng.random() < 0.3 else f"r{i}" for i in range(n)], dtype="str")
    scores = rng.random(n)
    scores[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({
        "lead_id": pd.array([f"L{i}" for i in range(n)], dtype="str"),
        "score": scores,
        "is_mql": rng.random(n) < 0.5,
        "model_version": "3",
        "scored_at": pd.Timestamp("2026-12-06 18:00:00", tz="UTC"),
        "tier": pd.array(rng.choice(["A", "B", "C"], n), dtype="str"),
        "explore": rng.integers(0, 2, n).astype(bool),
        "treatment": rng.integers(0, 2, n),
        "propensity": np.where(rng.random(n) < 0.1, np.inf, rng.random(n)),
        "reasons_positive": text,
        "nullable": pd.array([None if i % 3 else i for i in range(n)], dtype="Int64"),
    })


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10_000))
def test_answer_rows_serialise_to_the_bytes_to_dict_gave(n, seed):
    frame = output_frame(n, seed)
    for rows_out in (frame, frame.iloc[np.arange(n)[::2]]):
        assert json.dumps(answer_rows(rows_out)) == json.dumps(reference_answer(rows_out))


def test_the_warm_up_date_is_written_as_the_export_writes_its_dates():
    from leadq.features.tables import parse_date_cells
    from leadq.pipelines.service.app import warm_up_date

    for fmt in (None, "ISO8601", "%d/%m/%Y %H:%M", "%m-%d-%Y", "%Y-%m-%dT%H:%M:%S%z",
                "%Y-%m-%d %H:%M:%S %Z"):
        text = warm_up_date(fmt)
        parsed = parse_date_cells(pd.Series([text], dtype="string"), fmt)
        assert parsed.notna().all(), (fmt, text)
        when = parsed.iloc[0]
        when = when.tz_convert(None) if when.tzinfo is not None else when
        age = pd.Timestamp.now(tz="UTC").tz_localize(None) - when
        assert pd.Timedelta(0) <= age < pd.Timedelta(days=2), (fmt, text)


def test_the_warm_up_batch_reaches_the_few_row_kernels():
    """The warm-up's micro-batch must be larger than Tree SHAP's one-call size, or the kernels
    a micro-batch takes are compiled (for seconds) inside a request."""
    from leadq.models.explain import ALL_TREES_ROWS, COMPILED_MAX_ROWS
    from leadq.pipelines.service.app import WARM_UP_BATCH

    assert ALL_TREES_ROWS < WARM_UP_BATCH <= COMPILED_MAX_ROWS


def test_integer_outputs_are_json_integers_as_the_answer_schema_says():
    """treatment is an integer 0/1 in the OpenAPI answer schema: the answer must not turn the
    int8 column's values into text."""
    frame = pd.DataFrame({"treatment": np.array([0, 1], dtype=np.int8),
                          "holdout": np.array([False, True]), "score": [0.25, 0.5],
                          "tier": ["C", "A"]})
    rows = answer_rows(frame)
    assert rows == [{"treatment": 0, "holdout": False, "score": 0.25, "tier": "C"},
                    {"treatment": 1, "holdout": True, "score": 0.5, "tier": "A"}]
    assert json.loads(json.dumps(rows))[1]["treatment"] == 1
