"""LeadFeatures: raw lead rows → model inputs, as the first step of the registered Pipeline.

Living inside the Pipeline means the registered model takes the CRM's raw rows, so training and
scoring can never derive features differently.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadq.features.columns import DERIVED_DATE_PARTS, DERIVED_FROM_EMAIL, DERIVED_SENIORITY
from leadq.features.text import SMALL_FRAME_ROWS

FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "hotmail.com", "outlook.com",
    "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mail.com", "gmx.com", "gmx.de",
    "proton.me", "protonmail.com", "yandex.ru", "qq.com", "163.com", "uol.com.br", "bol.com.br",
})

# Ordered from most to least senior; the first pattern that matches a title wins.
SENIORITY_RULES: tuple[tuple[int, str], ...] = (
    (5, r"\b(?:ceo|cfo|cto|coo|cmo|cio|cro|chief|owner|founder|co-?founder|president|partner)\b"),
    (4, r"\b(?:vp|svp|evp|vice president|head|director)\b"),
    (3, r"\b(?:manager|lead|principal)\b"),
    (2, r"\b(?:analyst|coordinator|specialist|executive|associate|consultant|engineer|officer)\b"),
    (1, r"\b(?:intern|trainee|assistant|apprentice)\b"),
    (0, r"\b(?:student|pupil|graduate)\b"),
)
_SENIORITY_RE = [(rank, re.compile(pattern)) for rank, pattern in SENIORITY_RULES]


# Below this many rows (a lead scored by `leadq serve`), pandas' fixed cost per call dwarfs the
# work: values are looked up in a per-function memo instead, each new value computed by `fn`
# itself on a Series, so both paths give the same answer (tests/code/test_transform.py).
# Values compare as pandas' factorize compares them (1 == 1.0). SMALL_FRAME_ROWS is defined in
# features.text (a module with no leadq import, so the activity features can use it too).
_MEMO_LIMIT = 50_000       # values kept per function; the memo starts afresh when full
_MEMO_MAX_LENGTH = 200     # a longer text is computed each time, never kept
_memo_lock = threading.Lock()
_memo: dict[Callable, dict] = {}
_out_dtype: dict[Callable, np.dtype] = {}


def _per_value(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    out = per_value_cells(values.tolist(), fn)
    if out is None:  # every value missing, and nothing computed yet to tell the output type
        return fn(values.iloc[:0]).reindex(values.index)
    return pd.Series(out, index=values.index, dtype=out.dtype)


def column_arrays(X: pd.DataFrame, columns: list[str]) -> dict[str, Any]:  # noqa: N803
    """Each column's values as its array (what `X[col].array` / `.to_numpy()` hold), without
    building a Series per column: on a lead or two that Series costs more than the work on
    its values. Uses pandas' own column accessor where this pandas has it."""
    get = getattr(X, "_get_column_array", None)
    if get is None or not X.columns.is_unique:
        return {c: X[c].array if not isinstance(X[c].dtype, np.dtype) else X[c].to_numpy()
                for c in columns}
    locate = X.columns.get_loc
    return {c: get(locate(c)) for c in columns}


def per_value_cells(cells: list, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray | None:
    """per_distinct's small-frame answer for a list of cells, as an array (None when every
    cell is missing and `fn` has not told its output type yet): the compiled single-lead path
    (leadq.models.compiled) reads the same memo without building a Series."""
    absent = [pd.isna(c) for c in cells]
    with _memo_lock:
        memo = _memo.setdefault(fn, {})
        found = {c: memo[c] for c, gone in zip(cells, absent, strict=True)
                 if not gone and c in memo}
    todo = list(dict.fromkeys(c for c, gone in zip(cells, absent, strict=True)
                              if not gone and c not in found))
    if todo:
        mapped = fn(pd.Series(todo, dtype=object)).to_numpy()
        computed = dict(zip(todo, mapped.tolist(), strict=True))
        found.update(computed)
        with _memo_lock:
            _out_dtype.setdefault(fn, mapped.dtype)
            if len(memo) + len(computed) > _MEMO_LIMIT:
                memo.clear()
            memo.update((k, v) for k, v in computed.items()
                        if not (isinstance(k, str) and len(k) > _MEMO_MAX_LENGTH))
    dtype = _out_dtype.get(fn)
    if dtype is None:
        return None
    if any(absent) and dtype.kind != "f":
        dtype = np.dtype(object)
    return np.array([np.nan if gone else found[c] for c, gone in zip(cells, absent, strict=True)],
                    dtype=dtype)


def per_distinct(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a string function once per distinct value: CRM category columns repeat a few
    hundred values over millions of rows, so this is what keeps scoring fast."""
    if 0 < len(values) <= SMALL_FRAME_ROWS:
        return _per_value(values, fn)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = fn(pd.Series(uniques, dtype=object)).to_numpy()
    if len(mapped) == 0:
        return fn(values.iloc[:0]).reindex(values.index)
    out = mapped[np.maximum(codes, 0)]
    missing = codes < 0
    if missing.any():
        out = out.astype(object) if out.dtype.kind != "f" else out.copy()
        out[missing] = np.nan
    # An explicit dtype: pandas 3 would turn an object array of text into Arrow strings, a
    # per-row copy that callers (sklearn's encoders) then undo with another.
    return pd.Series(out, index=values.index, dtype=out.dtype)


def _normalise_text(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.lower().str.replace(r"[\s_\-]+", " ", regex=True).str.strip()
    text = text.mask(text == "")
    return text.astype(object).where(text.notna(), np.nan)


def normalise_category(values: pd.Series) -> pd.Series:
    """Fold messy spellings ('Paid-Search ', 'paid search') onto one category."""
    return per_distinct(values, _normalise_text).astype(object)


def display_category(values: pd.Series) -> pd.Series:
    """The spelling a person reads for each category: spellings the model folds together
    (normalise_category) show as the most frequent raw one, so a campaign reads the same in the
    report's insights, campaign quality, `plan` and `review`."""
    raw = values.astype("string").str.strip()
    raw = raw.mask(raw == "")
    key = normalise_category(raw)
    frame = pd.DataFrame({"key": key, "raw": raw}).dropna()
    if frame.empty:
        return pd.Series(np.nan, index=values.index, dtype=object)
    counts = frame.groupby(["key", "raw"]).size().reset_index(name="n")
    # Most frequent spelling per key; ties go to the alphabetically first, so it is stable.
    best = (counts.sort_values(["key", "n", "raw"], ascending=[True, False, True])
            .drop_duplicates("key").set_index("key")["raw"])
    return key.map(best).astype(object)


def display_like(values: pd.Series, reference: pd.Series) -> pd.Series:
    """display_category of `values` with the spellings chosen over `reference` (the whole
    leads table), so a period's campaign reads as it does in every other output."""
    raw = reference.astype("string").str.strip()
    shown = display_category(reference)
    mapping = dict(zip(normalise_category(raw).dropna(), shown.dropna(), strict=False))
    return normalise_category(values.astype("string").str.strip()).map(mapping).astype(object)


def email_is_corporate(values: pd.Series) -> pd.Series:
    """1.0 for a company domain, 0.0 for free-mail, NaN when there is no usable address."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Every address is distinct, so this runs per row: in Arrow's vectorised kernels rather
    # than a Python regex per row (20x faster on a million leads).
    text = pa.array(values.astype("string").array)  # Arrow-backed: no copy
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    text = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    domain = pc.struct_field(pc.extract_regex(text, r"@(?P<domain>[^@\s]+)$"), [0])
    free = pc.is_in(domain, value_set=pa.array(sorted(FREE_MAIL_DOMAINS), type=pa.string()))
    flag = np.where(free.to_numpy(zero_copy_only=False), 0.0, 1.0)
    flag[~pc.is_valid(domain).to_numpy(zero_copy_only=False)] = np.nan
    return pd.Series(flag, index=values.index, dtype="float64")


def seniority_rank(values: pd.Series) -> pd.Series:
    """0 (student) … 5 (C-level/owner); NaN when the title is missing or unrecognised."""
    return per_distinct(values, _seniority_of_titles).astype(np.float64)


def _seniority_of_titles(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.lower().str.replace(r"[._]", "", regex=True)
    rank = pd.Series(np.nan, index=values.index, dtype="float64")
    for level, pattern in reversed(_SENIORITY_RE):
        # Walk from least to most senior so a senior word overrides ("Assistant Director" → 4).
        rank = rank.mask(text.str.contains(pattern, na=False), float(level))
    return rank


class LeadFeatures(TransformerMixin, BaseEstimator):
    """Derive model inputs from raw lead columns; stateless apart from the output names."""

    def __init__(
        self,
        categorical: tuple[str, ...] = (),
        numeric: tuple[str, ...] = (),
        email: str | None = None,
        job_title: str | None = None,
        created_at: str | None = None,
    ) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.email = email
        self.job_title = job_title
        self.created_at = created_at

    def fit(self, X: pd.DataFrame, y=None) -> LeadFeatures:  # noqa: N803 - sklearn naming
        self.feature_names_out_ = np.asarray(self.categorical_out() + self.numeric_out(), object)
        return self

    def categorical_out(self) -> list[str]:
        return list(self.categorical)

    def numeric_out(self) -> list[str]:
        names = list(self.numeric)
        if self.email:
            names.append(DERIVED_FROM_EMAIL)
        if self.job_title:
            names.append(DERIVED_SENIORITY)
        if self.created_at:
            names.extend(DERIVED_DATE_PARTS)
        return names

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        missing = [c for c in self.source_columns() if c not in X.columns]
        if missing:
            raise KeyError(f"lead rows are missing model input column(s): {', '.join(missing)}")
        out = {col: normalise_category(X[col]) for col in self.categorical}
        # np.float64, not "float64": pandas looks a dtype name up in its registry on every
        # call, a cost that shows when scoring one lead at a time.
        for col in self.numeric:
            out[col] = pd.to_numeric(X[col], errors="coerce").astype(np.float64)
        if self.email:
            out[DERIVED_FROM_EMAIL] = email_is_corporate(X[self.email])
        if self.job_title:
            out[DERIVED_SENIORITY] = seniority_rank(X[self.job_title])
        if self.created_at:
            out.update(self._date_parts(X[self.created_at]))
        return pd.DataFrame(out, index=X.index)

    def _date_parts(self, values: pd.Series, small: bool = False) -> dict[str, np.ndarray]:
        if small and pd.api.types.is_datetime64_any_dtype(values):
            # A typed lead or two: each Timestamp's own calendar fields, which the column's
            # .dt accessors return per element, without two more Series.
            cells = values.tolist()
            day = np.array([np.nan if v is pd.NaT else v.dayofyear for v in cells], np.float64)
            weekday = np.array([np.nan if v is pd.NaT else v.dayofweek for v in cells],
                               np.float64)
        else:
            when = pd.to_datetime(values, errors="coerce", format="mixed")
            day = when.dt.dayofyear.to_numpy(dtype=np.float64, na_value=np.nan)
            weekday = when.dt.dayofweek.to_numpy(dtype=np.float64, na_value=np.nan)
        angle = 2 * np.pi * (day - 1) / 365.25
        return {DERIVED_DATE_PARTS[0]: np.sin(angle), DERIVED_DATE_PARTS[1]: np.cos(angle),
                DERIVED_DATE_PARTS[2]: weekday}

    def transform_cells(self, X: pd.DataFrame) -> dict[str, np.ndarray]:  # noqa: N803
        """transform(X)'s columns as arrays, for a few rows (a lead scored by `leadq serve`):
        the same functions and memos as transform, without building the output frame or a
        Series per column (the compiled single-lead path, leadq.models.compiled)."""
        out: dict[str, np.ndarray] = {}
        arrays = column_arrays(X, [*self.categorical, *self.numeric])
        for col in self.categorical:
            found = per_value_cells(arrays[col].tolist(), _normalise_text)
            out[col] = (normalise_category(X[col]).to_numpy() if found is None
                        else found).astype(object)
        for col in self.numeric:
            values = arrays[col]
            out[col] = values if isinstance(values, np.ndarray) and \
                values.dtype == np.float64 else \
                pd.to_numeric(X[col], errors="coerce").astype(np.float64).to_numpy()
        if self.email:
            out[DERIVED_FROM_EMAIL] = email_is_corporate(X[self.email]).to_numpy()
        if self.job_title:
            found = per_value_cells(X[self.job_title].tolist(), _seniority_of_titles)
            out[DERIVED_SENIORITY] = (seniority_rank(X[self.job_title]).to_numpy()
                                      if found is None else found.astype(np.float64))
        if self.created_at:
            out.update(self._date_parts(X[self.created_at], small=True))
        return out

    def source_columns(self) -> list[str]:
        cols = list(self.categorical) + list(self.numeric)
        return cols + [c for c in (self.email, self.job_title, self.created_at) if c]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.categorical_out() + self.numeric_out(), dtype=object)
