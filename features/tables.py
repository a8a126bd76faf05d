"""Raw CRM tables → typed frames with canonical role names (pure functions, no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.features.agreement import FeedbackMeaning, normalise_rating
from leadq.features.columns import model_inputs
from leadq.features.labels import (
    label_leads,
    labels_from_column,
    labels_from_conversion_date,
    resolve_as_of,
)
from leadq.features.text import stripped_string
from leadq.features.transform import SMALL_FRAME_ROWS, per_value_cells
from leadq.settings import setting


def parse_date_cells(values: pd.Series, date_format: str | None) -> pd.Series:
    """Parse date cells with the configured format (padding ignored); unparseable cells become
    NaT. Keeps the parser's resolution, so the contracts can see a year-2999 date as a future
    date instead of overflowing nanoseconds."""
    out = values
    if not pd.api.types.is_datetime64_any_dtype(values):
        text = stripped_string(values)
        try:
            out = pd.to_datetime(text, format=date_format or "ISO8601", errors="coerce")
        except ValueError:
            # Mixed UTC offsets ("…Z" beside "…+02:00"): one naive UTC clock, as below.
            out = pd.to_datetime(text, format=date_format or "ISO8601", errors="coerce",
                                 utc=True)
    # A NumPy datetime dtype has no time zone; asking the .dt accessor costs more than a
    # one-row parse.
    if not isinstance(out.dtype, np.dtype) and getattr(out.dt, "tz", None) is not None:
        # Leads, deals and feedback are compared with one another: keep one naive UTC clock.
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def parse_dates(values: pd.Series, date_format: str | None) -> pd.Series:
    """parse_date_cells in nanoseconds, for rows that passed their contract."""
    return parse_date_cells(values, date_format).astype("datetime64[ns]")


def _text(values: pd.Series) -> pd.Series:
    """Text with padding stripped and blank cells missing, Arrow-backed (pandas' own string
    type). Building a Python string per row was the costliest step of typing a chunk, and the
    model's first step (LeadFeatures) works per distinct value, so it never needs them."""
    if 0 < len(values) <= SMALL_FRAME_ROWS and values.dtype == _STR:
        import pyarrow as pa
        import pyarrow.compute as pc

        # A few rows (`leadq serve`; personal columns, which no memo may keep): the Arrow
        # kernels the steps below call (strip, == "", mask), on the data, without a Series
        # around each step.
        data = pc.utf8_trim_whitespace(values.array.__arrow_array__())
        data = pc.if_else(pc.equal(data, "").fill_null(False), pa.scalar(None, data.type),
                          data)
        return pd.Series(pd.arrays.ArrowStringArray(data, dtype=_STR), index=values.index,
                         name=values.name, copy=False)
    out = values.astype("str").str.strip()
    return out.mask(out == "")


_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # what dtype="str" is in pandas 3


def _small_texts(columns: list[pd.Series]) -> list:
    """_text of a few rows' columns (a lead scored by `leadq serve`): each value looked up in
    the memo of _text's own answers (features.transform.per_value_cells), as pandas' string
    methods cost more per call than a lead's whole model. The columns' cells go through the
    memo together, so the values it has not seen yet cost one call of _text, not one per
    column (_text is per value). Never for personal columns: their values must not outlive
    the request. Arrays of _text's type (not Series: the caller puts them in a frame, where a
    Series would be aligned on its index first)."""
    # Arrow text: its own list (None for missing, as NaN is to the memo) beats pandas' tolist.
    cells = [values.array.__arrow_array__().to_pylist() if values.dtype == _STR
             else values.tolist() for values in columns]
    found = per_value_cells([c for column in cells for c in column], _text)
    if found is None:
        return [_text(values) for values in columns]
    out, start = [], 0
    for column in cells:
        out.append(_str_array(found[start:start + len(column)]))
        start += len(column)
    return out


def _str_array(cells: np.ndarray):
    """pd.array(cells, dtype="str") for text cells (NaN = missing), built as pandas builds it
    (Arrow large_string), without its per-value type inference: a third of typing a lead."""
    import pyarrow as pa

    data = pa.array(cells, type=pa.large_string(), from_pandas=True)
    return pd.arrays.ArrowStringArray(pa.chunked_array([data]), dtype=_STR)


def _ids(values: pd.Series):
    """Ids as stripped text (missing stays missing). Arrow-backed, not Python objects: ids are
    never a model input, and scoring hashes and writes them as Arrow strings."""
    if 0 < len(values) <= SMALL_FRAME_ROWS and values.dtype == _STR:
        import pyarrow.compute as pc

        # The kernel str.strip calls, on the data, for a few rows (see stripped_string).
        data = pc.utf8_trim_whitespace(values.array.__arrow_array__())
        return pd.arrays.ArrowStringArray(data, dtype=_STR)
    return values.astype("str").str.strip()


def coerce_leads(leads: pd.DataFrame, params: dict, parsed: dict | None = None,
                 roles: dict | None = None) -> pd.DataFrame:
    """Give every model input column its type: text for categories, float for numbers, datetime.

    `parsed`: numbers and dates the contract already parsed from these rows
    (features.contracts.RowCheck.parsed, restricted to them), reused instead of parsing the
    text a second time. `roles`: `model_inputs(params)`, when the caller worked them out once."""
    spec = params["data"]["leads"]
    roles = model_inputs(params) if roles is None else roles
    numbers = (parsed or {}).get("numbers") or {}
    dates = (parsed or {}).get("dates") or {}
    # Shallow: every typed column replaces its column in `out` (copy-on-write keeps `leads` as
    # it was), so copying each block's data first was wasted on a one-lead frame.
    out = leads.copy(deep=False)
    if spec.get("id"):  # an export without an id column is scored by row (pipelines/score.py)
        out[spec["id"]] = _ids(leads[spec["id"]])
    created = spec.get("created_at")
    if created and created in out:
        if created in dates:
            out[created] = pd.Series(dates[created], index=leads.index).astype("datetime64[ns]")
        else:
            out[created] = parse_dates(leads[created], spec.get("date_format"))
    small = 0 < len(leads) <= SMALL_FRAME_ROWS
    personal = set(spec.get("personal") or []) | {roles["email"]}
    text = [c for c in dict.fromkeys([*roles["categorical"], roles["job_title"],
                                      roles["email"]]) if c and c in out]
    memo = [c for c in text if small and c not in personal]
    for col, typed in zip(memo, _small_texts([leads[c] for c in memo]) if memo else [],
                          strict=True):
        out[col] = typed
    for col in text:
        if col not in memo:
            out[col] = _text(leads[col])
    for col in roles["numeric"]:
        if col in numbers:
            out[col] = np.asarray(numbers[col], dtype=np.float64)
        elif col in out:
            out[col] = pd.to_numeric(leads[col], errors="coerce").astype("float64")
    return out


def canonical_deals(deals: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """deals[lead_id, closed_at, won, amount]; a file of won deals only has no outcome column."""
    out = pd.DataFrame({
        "lead_id": deals[spec["lead_id"]].astype("string").str.strip().astype(object),
        "closed_at": parse_dates(deals[spec["closed_at"]], spec.get("date_format")),
    })
    if spec.get("outcome"):
        outcome = deals[spec["outcome"]].astype("string").str.strip().str.lower()
        won_values = {str(v).lower() for v in setting(spec, "won_values")}
        out["won"] = outcome.isin(won_values).fillna(False).astype(bool)
        # A deal still being worked is neither: it leaves the table, its lead undecided.
        open_values = {str(v).lower() for v in spec.get("open_values") or []}
        if open_values:
            out = out[~outcome.isin(open_values).fillna(False).to_numpy(bool)]
    else:
        out["won"] = True
    if spec.get("amount") and spec["amount"] in deals:
        out["amount"] = pd.to_numeric(deals[spec["amount"]], errors="coerce")
    else:
        out["amount"] = np.nan
    return out


def canonical_feedback(feedback: pd.DataFrame, spec: dict,
                       meaning: FeedbackMeaning | None = None) -> pd.DataFrame:
    """feedback[lead_id, feedback_at, accepted, rejected, not_reached, rating, reason,
    first_contact_at, rep]; `meaning` is the agreement's reading of the status values."""
    meaning = meaning or FeedbackMeaning()
    flags = meaning.classify(feedback[spec["status"]])
    out = pd.DataFrame({
        "lead_id": feedback[spec["lead_id"]].astype("string").str.strip().astype(object),
        "feedback_at": parse_dates(feedback[spec["feedback_at"]], spec.get("date_format")),
        "accepted": flags["accepted"].to_numpy(bool),
        "rejected": flags["rejected"].to_numpy(bool),
        "not_reached": flags["not_reached"].to_numpy(bool),
        "status": _text(feedback[spec["status"]]).to_numpy(),
    })
    col = spec.get("rating")
    out["rating"] = (normalise_rating(feedback[col], meaning.rating_values).to_numpy(float)
                     if col in feedback else np.nan)
    rep = spec.get("rep")
    out["rep"] = _text(feedback[rep]).to_numpy() if rep in feedback else np.nan
    reason = spec.get("reason")
    out["reason"] = _text(feedback[reason]) if reason in feedback else np.nan
    first = spec.get("first_contact_at")
    out["first_contact_at"] = (
        parse_dates(feedback[first], spec.get("first_contact_format") or spec.get("date_format"))
        if first in feedback else pd.NaT
    )
    return out


def build_labels(
    leads: pd.DataFrame,
    deals: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    params: dict,
) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Labels for typed leads (see coerce_leads) and canonical deals/feedback; returns as-of."""
    spec = params["data"]["leads"]
    label_params = params["label"]
    if spec.get("label"):
        return labels_from_column(leads[spec["label"]], column=spec["label"],
                                  won=spec.get("label_won"), lost=spec.get("label_lost"),
                                  open_values=spec.get("label_open")), None
    created_col = spec.get("created_at")
    if spec.get("converted_at"):
        fmt = spec.get("converted_at_format") or spec.get("date_format")
        converted = parse_dates(leads[spec["converted_at"]], fmt)
        cells = leads[spec["converted_at"]].astype("string").str.strip()
        unread = int(((cells != "").fillna(False) & converted.isna()).sum())
        if unread > 0.05 * max(int((cells != "").fillna(False).sum()), 1):
            from leadq.errors import BadInputError

            raise BadInputError(
                f"data.leads.converted_at: {unread:,} filled cells of {spec['converted_at']!r} "
                f"are not dates in the format {fmt!r}; set data.leads.converted_at_format")
        created = leads[created_col] if created_col else None
        as_of = resolve_as_of(label_params, converted, created)
        return labels_from_conversion_date(
            created, converted, horizon_days=setting(label_params, "horizon_days", int),
            as_of=as_of, matured_only=setting(label_params, "matured_only", bool)), as_of
    if not created_col or not spec.get("id"):
        raise ValueError("data.leads.id and data.leads.created_at are required to label leads "
                         "from deals (or set data.leads.label)")
    as_of = resolve_as_of(
        label_params,
        leads[created_col],
        None if deals is None else deals["closed_at"],
        None if feedback is None else feedback["feedback_at"],
    )
    canon = pd.DataFrame({"lead_id": leads[spec["id"]], "created_at": leads[created_col]})
    labels = label_leads(
        canon,
        deals,
        feedback,
        horizon_days=setting(label_params, "horizon_days", int),
        as_of=as_of,
        rejected_is_negative=setting(label_params, "rejected_is_negative", bool),
        lost_is_negative=setting(label_params, "lost_is_negative", bool),
        matured_only=setting(label_params, "matured_only", bool),
    )
    return labels, as_of
