"""Data contracts: what every CRM table must satisfy before leadq uses it. One file, one place.

Every table that enters leadq (leads, deals, feedback for training; leads for scoring) passes
the contract below. There are three outcomes, decided here and nowhere else:

TABLE-LEVEL — stop with exit code 2 (BadInputError), nothing written:
  * the file is missing, unreadable, empty, binary or not in the configured encoding
    (pipelines/io/files.py), or has only a header;
  * a required column is missing (this is also what a wrong delimiter or a renamed id column
    looks like; the message says so);
  * duplicate ids above `contracts.max_duplicate_id_share` of the rows;
  * every row is bad, or more than `contracts.max_rejected_share` of them (a wrong date format
    or a misconfigured column usually shows up this way, not as a few bad rows).
  See `check_columns` and `check_totals`.

ROW-LEVEL — the row goes to the quarantine file (`<stem>.rejected.csv`: original columns plus
`reason`) and the rest goes on. See `evaluate`:
  * leads: id missing or duplicated; created_at missing, unparseable or in the future; a model
    numeric input that is not a number, not finite, or outside a configured bound
    (per-column overrides in `contracts.numeric_bounds`); a contract text cell longer than
    `contracts.max_text_length`; more than `contracts.max_missing_inputs_share` of the model
    inputs empty (a truncated or shifted line);
  * deals: lead id missing or unknown (orphan); closed_at missing, unparseable, in the future
    or before the lead's created_at; outcome outside won_values + lost_values; amount not a
    number or negative;
  * feedback: lead id missing or unknown; feedback_at missing, unparseable or in the future;
    status outside accepted + rejected values; rating outside `contracts.rating_range`;
    first_contact_at present but unparseable.

WARNING — counted per column and reported, the row is used:
  * a category the model never saw in training (the model pools it as infrequent);
  * a numeric value outside the range seen in training;
  * a placeholder ("Unknown", "n/a", ... `contracts.placeholder_values`) in a category column;
  * the training label rate moving more than `contracts.label_rate_max_change` since the
    previous model (pipelines/tracking/contracts.py).

Each rule is declared once, in the rule table of leadq.features.rules (column role, kind,
level, parameters, message); the evaluator here runs one vectorised check per kind (`CHECKS`)
and the Great Expectations suites (`suite_expectations`) are rendered from the same table plus
the training reference (`profile`), stored with each model, and run by `leadq validate` and
`leadq train` with Data Docs. Scoring enforces the same rules per chunk with the vectorised
evaluator here (`evaluate` / `check_rows`), because running GX on every chunk of a 10M-row file
would cost more than scoring it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadq.features.columns import model_inputs
from leadq.features.rules import (
    DEFAULTS,
    EARLIEST,
    ROW,
    TABLE,
    WARNING,
    Kind,
    Rule,
    required_columns,
    rules_for,
    settings,
    suite_expectations,
)
from leadq.features.tables import parse_date_cells
from leadq.features.transform import SMALL_FRAME_ROWS, normalise_category
from leadq.settings import setting

__all__ = ["DEFAULTS", "EARLIEST", "TABLES", "EXAMPLES_PER_REASON", "RowCheck", "check_columns",
           "check_rows", "check_totals", "evaluate", "id_column", "merge_reasons",
           "parse_numbers", "profile", "required_columns", "rule_masks", "settings",
           "suite_expectations"]

TABLES = ("leads", "deals", "feedback", "activities")
EXAMPLES_PER_REASON = 3


def id_column(table: str, params: dict) -> str:
    spec = params["data"][table]
    return spec.get("id") if table == "leads" else spec["lead_id"]


# --------------------------------------------------------------------------------------------
# Row-level rules, vectorised


@dataclass
class RowCheck:
    """What `evaluate` found in one frame (or chunk)."""

    reasons: pd.Series                       # "" = good row; else "; "-joined reasons
    primary: pd.Series                       # the first failed rule per row ("" = good)
    examples: dict[str, list[str]] = field(default_factory=dict)   # reason → offending values
    warnings: dict[str, int] = field(default_factory=dict)         # "unseen:<col>" → count
    warning_examples: dict[str, list[str]] = field(default_factory=dict)
    # Which rows each warning flagged: lets a caller that evaluates several requests' rows in
    # one frame (`leadq serve`) tell each request its own warnings.
    warning_masks: dict[str, np.ndarray] = field(default_factory=dict)
    duplicate_ids: int = 0
    # The numbers and dates the rules parsed, per column, for every row of the frame: typing
    # the good rows reuses them (features.tables.coerce_leads) instead of parsing again.
    parsed: dict[str, dict] = field(default_factory=dict)

    @property
    def bad(self) -> np.ndarray:
        """True for rows that break the contract."""
        if self._bad is None:
            self._bad = (self.primary != "").to_numpy(dtype=bool)
        return self._bad

    def rejected_counts(self) -> dict[str, int]:
        """Rows per first failed rule."""
        if self._counts is None:
            self._counts = self.primary[self.bad].value_counts().to_dict()
        return self._counts

    # Filled by `evaluate`, which knows both without another pass over 200k strings.
    _bad: np.ndarray | None = field(default=None, repr=False)
    _counts: dict[str, int] | None = field(default=None, repr=False)


class _Collector:
    """Accumulates (mask, reason) pairs into per-row reason strings without Python loops."""

    def __init__(self, index: pd.Index) -> None:
        self.index = index
        self.n = len(index)
        self.first = np.full(self.n, -1, dtype=np.int32)
        self.masks: list[np.ndarray] = []
        self.names: list[str] = []
        self.examples: dict[str, list[str]] = {}

    def add(self, mask, reason: str, values: pd.Series | None = None) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        k = len(self.names)
        self.names.append(reason)
        self.masks.append(mask)
        self.first[(self.first < 0) & mask] = k
        if values is not None:
            shown = values[mask].head(EXAMPLES_PER_REASON)
            self.examples[reason] = [_show(v) for v in shown]

    def counts(self) -> dict[str, int]:
        """Rows per first failed rule."""
        hits = np.bincount(self.first[self.first >= 0], minlength=len(self.names))
        return {name: int(k) for name, k in zip(self.names, hits, strict=True) if k}

    def result(self) -> tuple[pd.Series, pd.Series]:
        reasons = np.full(self.n, "", dtype=object)
        primary = np.full(self.n, "", dtype=object)
        if self.names:
            bad = np.flatnonzero(self.first >= 0)
            names = np.asarray(self.names, dtype=object)
            primary[bad] = names[self.first[bad]]
            reasons[bad] = primary[bad]
            for k, mask in enumerate(self.masks):
                extra = np.flatnonzero(mask & (self.first != k) & (self.first >= 0))
                if len(extra):
                    reasons[extra] = reasons[extra] + "; " + self.names[k]
        return (pd.Series(reasons, index=self.index, dtype=object),
                pd.Series(primary, index=self.index, dtype=object))


def _show(value) -> str:
    text = "<missing>" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Below SMALL_FRAME_ROWS rows (a lead scored by `leadq serve`) pandas' fixed cost per call is
# most of the time of judging a lead, so the text checks that depend on the value alone (blank,
# number, length, set membership) look each value up in a memo shared by every frame. A value
# not seen yet is computed by the check's own function on a Series of text, as the bulk path
# computes its distinct values, so both give the same masks (tests/data/test_contract_small_
# frames.py). The id and personal columns never enter it: ids do not repeat, and personal
# values must not outlive their request.
_SMALL_MEMO_LIMIT = 50_000   # values kept per check; the memo starts afresh when full
_SMALL_MEMO_MAX_LENGTH = 200  # a longer text is computed each time, never kept
_SMALL_MEMO_KEYS = 256       # checks kept (a set check's key holds its set; reloads add keys)
_small_lock = threading.Lock()
_small_memo: dict = {}


_typed_dtypes: dict = {}


def _typed(dtype) -> bool:
    """Numbers or dates, not text: asked of every column of every frame, answered once per
    dtype (pandas' checks cost more than judging a one-row column)."""
    # Keyed by identity (a pandas dtype's hash is computed from its attributes on each call);
    # the entry holds the dtype, so its id is not reused while it is in the cache.
    found = _typed_dtypes.get(id(dtype))
    if found is None or found[0] is not dtype:
        if len(_typed_dtypes) > 256:  # categorical dtypes differ by their categories
            _typed_dtypes.clear()
        found = _typed_dtypes[id(dtype)] = (dtype, bool(
            pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype)))
    return found[1]


class _Col:
    """One column's distinct values, computed once per chunk: every text check runs on the
    distinct values and is mapped back through the codes (CRM columns repeat a lot)."""

    def __init__(self, values: pd.Series, *, distinct: bool = False,
                 shared: bool = True) -> None:
        self.values = values
        self.typed = _typed(values.dtype)
        # A column of (nearly) distinct values, such as the id, in Arrow-backed text: row-wise
        # kernels in C beat finding distinct values that are barely fewer than the rows.
        self.row_wise = distinct and isinstance(values.dtype, pd.StringDtype) and \
            values.dtype.storage == "pyarrow"
        self._codes: np.ndarray | None = None
        self._uniques: pd.Series | None = None
        self._memo: dict = {}
        self._cells: list | None = None
        # Only these columns' values may enter the memo shared by every frame (`_small_mapped`).
        self.shared = shared and not distinct
        if not self.typed and 0 < len(values) <= SMALL_FRAME_ROWS:
            # Arrow text: its own list (None for missing) costs a tenth of pandas' tolist.
            cells = values.array.__arrow_array__().to_pylist() if isinstance(
                values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow" \
                else values.tolist()
            # Text cells only: another kind of value (an object column of numbers) would turn
            # into text differently one at a time than among its column's distinct values.
            if all(isinstance(c, str) or c is None or c is pd.NA
                   or (isinstance(c, float) and c != c) for c in cells):
                self._cells = cells

    def _factorize(self) -> tuple[np.ndarray, pd.Series]:
        if self._codes is None:
            codes, uniques = pd.factorize(self.values, use_na_sentinel=True)
            self._codes = np.asarray(codes)
            self._uniques = pd.Series(uniques).astype("string")
        return self._codes, self._uniques

    def mapped(self, key, fn, na, *, by_value: bool = False) -> np.ndarray:
        """fn(distinct values as strings) → one value per row; `na` for missing cells.

        `by_value`: fn's answer for a value depends on nothing else (not on the rule's
        parameters beyond what `key` holds), so small frames may use the shared memo."""
        if key not in self._memo and by_value and self.shared and self._cells is not None:
            self._memo[key] = _small_mapped(self._cells, key, fn, na)
        if key not in self._memo:
            codes, uniques = self._factorize()
            per_unique = np.asarray(fn(uniques))
            if len(per_unique):
                out = per_unique[codes]
                out[codes < 0] = na
            else:
                out = np.full(len(codes), na)
            self._memo[key] = out
        return self._memo[key]

    def missing(self) -> np.ndarray:
        """Missing cells (pandas' isna)."""
        if self._cells is not None:
            # The cells are text or a missing marker (see __init__): isna without a Series.
            return np.fromiter((not isinstance(c, str) for c in self._cells), dtype=bool,
                               count=len(self._cells))
        return self.values.isna().to_numpy()

    def _arrow(self):
        """The Arrow data of a row-wise column: pandas' string methods on it call these
        same Arrow kernels, so calling them directly gives the same answer without the
        Series pandas would build around each step (most of a one-row frame's cost)."""
        return self.values.array.__arrow_array__()

    def blank(self) -> np.ndarray:
        """Missing or whitespace-only cells."""
        if self.typed:
            return self.values.isna().to_numpy()
        if self.row_wise:
            # Several rules ask (missing id, duplicate id): strip 200k ids once.
            if "blank" not in self._memo:
                import pyarrow.compute as pc

                data = self._arrow()
                # isna | (str.strip() == "").fillna(False), kernel by kernel.
                empty = pc.equal(pc.utf8_trim_whitespace(data), "").fill_null(False)
                self._memo["blank"] = np.asarray(pc.or_(data.is_null(), empty), dtype=bool)
            return self._memo["blank"]
        return self.mapped("blank", _blank_of, True, by_value=True).astype(bool)

    def numbers(self) -> np.ndarray:
        if self.typed and pd.api.types.is_numeric_dtype(self.values):
            return self.values.astype("float64").to_numpy()
        return self.mapped("num", _number_of, np.nan, by_value=True).astype("float64")

    def lengths(self) -> np.ndarray:
        if self.typed:
            return np.zeros(len(self.values))
        if self.row_wise:
            import pyarrow.compute as pc

            # str.len().fillna(0), kernel by kernel (see _arrow).
            return np.asarray(pc.utf8_length(self._arrow()).fill_null(0), dtype="float64")
        return self.mapped("len", _length_of, 0.0, by_value=True).astype("float64")

    def in_set(self, allowed: set[str], *, normalise: bool = False) -> np.ndarray:
        """Lower-cased (or model-normalised) value is in `allowed`; False for missing."""
        key = ("in", normalise, frozenset(allowed))

        def fn(u: pd.Series) -> np.ndarray:
            text = normalise_category(u) if normalise else u.str.strip().str.lower()
            return pd.Series(text).isin(allowed).to_numpy(dtype=bool)

        return self.mapped(key, fn, False, by_value=True).astype(bool)

    def duplicated(self) -> np.ndarray:
        """Repeats of an earlier row's value, padding ignored (" L1" is L1, as once typed)."""
        codes, uniques = self._factorize()
        canon = codes
        stripped = uniques.str.strip()
        if (stripped != uniques).any():  # rare: only then is a second factorize worth it
            same, _ = pd.factorize(stripped, use_na_sentinel=True)
            canon = np.where(codes >= 0, np.append(same, -1)[codes], -1)
        return pd.Series(canon).duplicated(keep="first").to_numpy() & (canon >= 0)


def _blank_of(u: pd.Series) -> np.ndarray:
    return (u.str.strip() == "").fillna(True).to_numpy(dtype=bool)


def _number_of(u: pd.Series) -> np.ndarray:
    # np.float64, not "float64": a dtype name is looked up in pandas' registry on each call.
    return pd.to_numeric(u.str.strip(), errors="coerce").astype(np.float64).to_numpy()


def _length_of(u: pd.Series) -> np.ndarray:
    return u.str.len().fillna(0).to_numpy(dtype="float64")


def _small_mapped(cells: list, key, fn, na) -> np.ndarray:
    """`_Col.mapped` for a small frame's text cells, through the shared memo."""
    absent = [not isinstance(c, str) for c in cells]  # None, NA, NaN: what factorize drops
    with _small_lock:
        memo = _small_memo.get(key)
        if memo is None:
            if len(_small_memo) >= _SMALL_MEMO_KEYS:
                _small_memo.clear()
            memo = _small_memo[key] = {}
        found = {c: memo[c] for c, gone in zip(cells, absent, strict=True)
                 if not gone and c in memo}
    todo = list(dict.fromkeys(c for c, gone in zip(cells, absent, strict=True)
                              if not gone and c not in found))
    if todo:
        # The type the bulk path hands fn: factorize's distinct values as pandas text.
        text = pd.Series(todo, dtype=object).astype(pd.StringDtype())
        computed = dict(zip(todo, np.asarray(fn(text)).tolist(), strict=True))
        found.update(computed)
        with _small_lock:
            if len(memo) + len(computed) > _SMALL_MEMO_LIMIT:
                memo.clear()
            memo.update((k, v) for k, v in computed.items() if len(k) <= _SMALL_MEMO_MAX_LENGTH)
    return np.asarray([na if gone else found[c] for c, gone in zip(cells, absent, strict=True)])


def parse_numbers(values: pd.Series) -> pd.Series:
    return pd.Series(_Col(values).numbers(), index=values.index, dtype="float64")


def _stripped(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "").astype(object).where(text.notna() & (text != ""), None)


def gx_view(values: pd.Series, view: str | None, params: dict[str, Any]) -> pd.Series:
    """`values` as the GX expectations of `view` see them (see GX_EXPECTATIONS)."""
    if view is None:
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            return values
        return values.astype(object).where(values.notna(), None)
    if view == "stripped":          # blank → missing, padding gone, as the evaluator reads text
        return _stripped(values)
    if view == "lower-case":        # whitespace-only stays "" (no allowed value), null stays null
        text = values.astype("string").str.strip().str.lower()
        return text.astype(object).where(text.notna(), None)
    if view == "category":          # as the model sees it; a cell it folds to nothing is ""
        norm = normalise_category(values)
        blank = _stripped(values).isna()
        return norm.where(norm.notna() | blank, "").astype(object).where(
            norm.notna() | ~blank, None)
    if view == "year":
        return parse_date_cells(values, params.get("date_format")).dt.year.astype("float64")
    numbers = parse_numbers(values)
    if view == "number":
        return numbers
    finite = numbers.where(np.isfinite(numbers))
    if view == "finite number":
        return finite
    if view == "accepted number":   # only values the row rules let through can warn
        lo, hi = params.get("min"), params.get("max")
        lo, hi = -np.inf if lo is None else lo, np.inf if hi is None else hi
        return finite.where((finite >= lo) & (finite <= hi))
    raise ValueError(f"unknown GX view {view!r}")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


class _Frame:
    """One frame's columns, each wrapped once (`_Col`), and what several rules share."""

    def __init__(self, frame: pd.DataFrame, id_name: str | None,
                 duplicates: np.ndarray | None, personal: frozenset[str] = frozenset(),
                 distinct: frozenset[str] = frozenset()) -> None:
        self.frame = frame
        self.id_name = id_name
        # Columns whose values (nearly) never repeat: the id, and the dates (a timestamp per
        # lead). Judged row by row, and kept out of the shared memo, where every value would
        # be a miss costing a pandas call per lead.
        self.distinct = distinct | {id_name}
        self.duplicates = duplicates
        self.personal = personal
        self.cols: dict[str, _Col] = {}
        self.dates: dict[str, pd.Series] = {}
        self.numbers: dict[str, np.ndarray] = {}  # filled by number rules (see _number)

    def col(self, name: str | None) -> _Col | None:
        if not name or name not in self.frame.columns:
            return None
        if name not in self.cols:
            self.cols[name] = _Col(self.frame[name], distinct=name in self.distinct,
                                   shared=name not in self.personal)
        return self.cols[name]

    def date(self, name: str, fmt: str | None) -> pd.Series:
        if name not in self.dates:
            self.dates[name] = parse_date_cells(self.cols[name].values, fmt)
        return self.dates[name]


# Each kind's vectorised check: (frame, column, rule) → rows that break it (None: not run).
def _not_blank(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return x.blank()


def _unique(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    found = x.duplicated() if f.duplicates is None else np.asarray(f.duplicates, dtype=bool)
    return found & ~x.blank()


# The date rules compare the parsed dates' arrays, not their Series: the same comparison
# (pandas' own, which keeps each date's resolution), without a Series built around each answer.
def _date(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return ~x.blank() & np.asarray(f.date(r.column, r.params["date_format"]).array.isna())


def _not_future(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    limit = _now() + pd.Timedelta(days=r.params["max_future_days"])
    return np.asarray(f.date(r.column, r.params["date_format"]).array > limit, dtype=bool)


def _not_before(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return np.asarray(f.date(r.column, r.params["date_format"]).array < EARLIEST, dtype=bool)


def _after_lead(f: _Frame, x: _Col, r: Rule) -> np.ndarray | None:
    lead = f.col(r.params["lead_id_column"])
    if lead is None:
        return None
    ids = lead.values.astype("string").str.strip()
    lead_at = pd.to_datetime(ids.map(r.params["lead_created"]), errors="coerce")
    return (f.date(r.column, r.params["date_format"]) < lead_at).to_numpy(dtype=bool)


def _known_lead(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    known = r.params["lead_created"]
    return ~x.blank() & ~x.mapped(
        "known", lambda u: u.str.strip().isin(known.index).to_numpy(dtype=bool),
        False).astype(bool)


def _max_length(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return x.lengths() > r.params["max_text_length"]


def _mostly_present(f: _Frame, x: None, r: Rule) -> np.ndarray | None:
    inputs = [f.col(name) for name in r.columns]
    inputs = [c for c in inputs if c is not None]
    if not inputs:
        return None
    # A truncated line or a shifted row: pandas fills the missing cells with NaN, which the
    # model would score as a real, empty lead. isna, not blank(): whitespace-only cells are
    # rare and the email column's distinct values would cost a hash of every address.
    empty = np.zeros(len(f.frame))
    for c in inputs:
        empty += c.missing()
    return empty / len(inputs) > r.params["max_missing_inputs_share"]


def _number(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    numbers = x.numbers()
    f.numbers[r.column] = numbers  # typing the good rows reuses them (RowCheck.parsed)
    return ~x.blank() & np.isnan(numbers)


def _finite(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return np.isinf(x.numbers())


def _min(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    arr = x.numbers()
    return np.isfinite(arr) & (arr < r.params["min"])


def _max(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    arr = x.numbers()
    return np.isfinite(arr) & (arr > r.params["max"])


def _in_set(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    if r.table == "activities":  # types compare as features.activities.type_key spells them
        from leadq.features.activities import type_key

        allowed = set(r.params["allowed"])
        return ~x.mapped(("type_key", frozenset(allowed)),
                         lambda u: u.map(type_key).isin(allowed).to_numpy(dtype=bool),
                         True, by_value=True).astype(bool)
    return ~x.in_set(set(r.params["allowed"]))


def _training_range(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    arr = x.numbers()
    seen = r.params["training_range"]
    # Values the row rules reject are counted there, not again as a warning.
    return np.isfinite(arr) & (arr >= r.params["min"]) & (arr <= r.params["max"]) & (
        (arr < seen[0]) | (arr > seen[1]))


def _placeholder(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    # "Unknown" is a value the model learns as a category; say how common it is.
    return x.in_set(set(r.params["placeholder_values"]))


def _known_category(f: _Frame, x: _Col, r: Rule) -> np.ndarray:
    return ~x.blank() & ~x.in_set(set(r.params["known_categories"]), normalise=True)


CHECKS: dict[Kind, object] = {
    Kind.NOT_BLANK: _not_blank, Kind.UNIQUE: _unique, Kind.DATE: _date,
    Kind.NOT_FUTURE: _not_future, Kind.NOT_BEFORE: _not_before, Kind.AFTER_LEAD: _after_lead,
    Kind.KNOWN_LEAD: _known_lead, Kind.MAX_LENGTH: _max_length,
    Kind.MOSTLY_PRESENT: _mostly_present, Kind.NUMBER: _number, Kind.FINITE: _finite,
    Kind.MIN: _min, Kind.MAX: _max, Kind.IN_SET: _in_set, Kind.TRAINING_RANGE: _training_range,
    Kind.PLACEHOLDER: _placeholder, Kind.KNOWN_CATEGORY: _known_category,
}


def rule_masks(frame: pd.DataFrame, table: str, params: dict, reference: dict | None = None,
               *, duplicates: np.ndarray | None = None, parsed: dict | None = None,
               rules: list[Rule] | None = None) -> list[tuple[Rule, np.ndarray]]:
    """Every row and warning rule of `table` that could run on `frame`, with the rows it
    flags, in rule-table order. Table-level rules are `check_columns` / `check_totals`.
    `parsed`, when given, receives the numbers and dates the rules parsed (RowCheck.parsed).
    `rules`: `rules_for(table, params, reference)` when the caller holds them already (`leadq
    serve` resolves them once per model version, not once per lead)."""
    spec = params["data"][table]
    rules = rules_for(table, params, reference) if rules is None else rules
    f = _Frame(frame, spec.get("id"), duplicates,
               frozenset(spec.get("personal") or ()) if table == "leads" else frozenset(),
               frozenset(r.column for r in rules if r.kind == Kind.DATE and r.column))
    if parsed is not None:
        parsed["numbers"], parsed["dates"] = f.numbers, f.dates
    out = []
    for rule in rules:
        if rule.level not in (ROW, WARNING):
            continue
        x = None
        if rule.column is not None and (x := f.col(rule.column)) is None:
            continue  # an absent column is a table-level problem (check_columns)
        mask = CHECKS[rule.kind](f, x, rule)
        if mask is not None:
            out.append((rule, np.asarray(mask, dtype=bool)))
    return out


def evaluate(frame: pd.DataFrame, table: str, params: dict, reference: dict | None = None,
             *, duplicates: np.ndarray | None = None,
             rules: list[Rule] | None = None) -> RowCheck:
    """Run the row-level rules of `table` on raw rows (text as read, or typed Parquet).

    `reference` is what training saw (see `profile`): its categories and ranges turn into
    warnings; for deals and feedback, `reference["lead_created"]` (lead id → created_at) is
    needed to find orphans and deals closed before their lead. Columns absent from the frame
    are table-level problems (`check_columns`) and are skipped here. `duplicates` marks rows
    whose id an earlier row had, when the caller tracks ids across chunks (IdTracker, or Spark
    over the whole input) so a streamed file is judged like one piece; by default duplicates
    are found within `frame`.
    """
    c = _Collector(frame.index)
    dups = 0
    warnings: dict[str, int] = {}
    warn_examples: dict[str, list[str]] = {}
    warn_masks: dict[str, np.ndarray] = {}
    id_name = params["data"][table].get("id")
    parsed: dict = {}
    for rule, mask in rule_masks(frame, table, params, reference, duplicates=duplicates,
                                 parsed=parsed, rules=rules):
        if rule.level == WARNING:
            if mask.any():
                values = frame[rule.column]
                warnings[rule.message] = int(mask.sum())
                warn_masks[rule.message] = mask
                warn_examples[rule.message] = [
                    _show(v) for v in pd.unique(values[mask])[:EXAMPLES_PER_REASON]]
            continue
        if not mask.any():
            # Nothing to collect, so not even the column for examples: a one-row request
            # meets ~20 rules, and a column lookup costs more than the rule did.
            continue
        shown = rule.column or (id_name if id_name in frame.columns else None)
        c.add(mask, rule.message, frame[shown] if shown else None)
        if rule.kind == Kind.UNIQUE:
            dups = int(mask.sum())
    reasons, primary = c.result()
    return RowCheck(reasons=reasons, primary=primary, examples=c.examples, warnings=warnings,
                    warning_examples=warn_examples, warning_masks=warn_masks, duplicate_ids=dups,
                    parsed=parsed, _bad=c.first >= 0, _counts=c.counts())


def check_rows(frame: pd.DataFrame, table: str, params: dict,
               reference: dict | None = None) -> pd.Series:
    """The reason each row breaks the contract ("" = good row), vectorised, usable per chunk.

    Duplicate ids are found within `frame` only; a caller streaming chunks tracks ids across
    chunks itself (leadq.pipelines.io.quarantine.IdTracker).
    """
    return evaluate(frame, table, params, reference).reasons


def merge_reasons(first: pd.Series, second: pd.Series) -> pd.Series:
    """Join two reason series row by row ("" = no reason)."""
    both = (first != "") & (second != "")
    out = first.where(first != "", second)
    return out.where(~both, first + "; " + second)


# --------------------------------------------------------------------------------------------
# Table-level rules


def check_columns(columns: list[str], table: str, params: dict, *, path, for_training: bool,
                  first_line: str | None = None) -> None:
    """Stop when a required column is missing; hint at a wrong delimiter or a renamed id."""
    from leadq.errors import BadInputError

    spec = params["data"][table]
    required = [r.column for r in rules_for(table, params, for_training=for_training)
                if r.kind == Kind.REQUIRED]
    missing = [c for c in required if c not in columns]
    if not missing:
        return
    shown = ", ".join(repr(c) for c in list(columns)[:12])
    hint = ""
    delim = setting(spec, "delimiter")
    if len(columns) == 1:
        other = [d for d in (",", ";", "\t", "|") if d != delim and d in str(columns[0])]
        if other:
            hint = (f"; the header has a single column that contains {other[0]!r}: wrong "
                    f"delimiter? data.{table}.delimiter is {delim!r}")
    idc = id_column(table, params)
    if idc in missing and len(columns) > 1:
        hint += f"; the id column {idc!r} may have been renamed (set data.{table}."
        hint += "id)" if table == "leads" else "lead_id)"
    raise BadInputError(
        f"{path}: {table} table is missing required column(s) {', '.join(missing)} "
        f"(check: required columns); found: {shown}{hint}"
    )


def check_totals(table: str, params: dict, *, path, rows: int, rejected: dict[str, int],
                 duplicate_ids: int, examples: dict[str, list[str]]) -> None:
    """Table-level verdict once every row was seen: empty, all bad, too many bad, too many dups."""
    from leadq.errors import BadInputError

    limits: dict = {}
    for rule in rules_for(table, params):
        if rule.level == TABLE:
            limits.update(rule.params)
    if rows == 0:
        raise BadInputError(f"{path}: {table} file has a header but no rows (check: not empty)")
    n_bad = sum(rejected.values())
    # The activity log's duplicates are of its own event id, not of the lead id.
    idc = params["data"][table].get("id") if table == "activities" else id_column(table, params)
    dup_share = limits.get("max_duplicate_id_share")
    if dup_share is not None and duplicate_ids / rows > dup_share:
        shown = ", ".join(examples.get(f"{idc}: duplicate id", [])[:EXAMPLES_PER_REASON])
        raise BadInputError(
            f"{path}: column {idc}: {duplicate_ids:,} duplicate ids in {rows:,} rows "
            f"({duplicate_ids / rows:.1%} > contracts.max_duplicate_id_share "
            f"{dup_share:.1%}) (check: unique ids); e.g. {shown}"
        )
    max_bad = limits["max_rejected_share"]
    if n_bad == rows or n_bad / rows > max_bad:
        top = sorted(rejected.items(), key=lambda kv: -kv[1])[:3]
        detail = "; ".join(
            f"{reason} ({count:,} rows, e.g. {', '.join(examples.get(reason, [])[:3])})"
            for reason, count in top)
        what = "every row" if n_bad == rows else (
            f"{n_bad:,} of {rows:,} rows ({n_bad / rows:.0%} > contracts.max_rejected_share "
            f"{max_bad:.0%})")
        raise BadInputError(f"{path}: {table} table: {what} failed the contract: {detail}")


# --------------------------------------------------------------------------------------------
# Training reference and the Great Expectations suites rendered from the rules


def profile(leads: pd.DataFrame, params: dict, label_rate: float | None = None) -> dict:
    """What the model was trained on: known categories, numeric ranges, label rate.

    Only model-input columns are profiled, never personal ones (they are not model inputs,
    the leakage guard makes sure), so the reference is safe to store with the model.
    """
    roles = model_inputs(params)
    personal = set(params["data"]["leads"].get("personal") or [])
    cats = {}
    for col in roles["categorical"]:
        if col in leads and col not in personal:
            values = normalise_category(leads[col]).dropna().unique()
            cats[col] = sorted(map(str, values))
    ranges = {}
    for col in roles["numeric"]:
        if col in leads and col not in personal:
            arr = parse_numbers(leads[col])
            if arr.notna().any():
                ranges[col] = [float(arr.min()), float(arr.max())]
    return {"version": 1, "categories": cats, "numeric_ranges": ranges,
            "rows": int(len(leads)), "label_rate": label_rate}
