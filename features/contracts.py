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
    numeric input that is not a number, not finite, or outside [numeric_min, numeric_max]
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

The Great Expectations suites (`build_suites`) are rendered from the same rules plus the
training reference (`profile`), stored with each model, and run by `leadq validate` and
`leadq train` with Data Docs. Scoring enforces the same rules per chunk with the vectorised
evaluator here (`evaluate` / `check_rows`), because running GX on every chunk of a 10M-row file
would cost more than scoring it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadq.features.columns import model_inputs
from leadq.features.tables import parse_date_cells
from leadq.features.transform import normalise_category

TABLES = ("leads", "deals", "feedback")
DEFAULTS: dict = {
    "max_duplicate_id_share": 0.01,
    "max_rejected_share": 0.5,
    "max_text_length": 1000,
    "max_missing_inputs_share": 0.5,
    "placeholder_values": ["unknown", "n/a", "na", "none", "null", "-", "?", "(not set)"],
    "max_future_days": 1,
    "numeric_min": 0.0,
    "numeric_max": 1.0e9,
    "numeric_bounds": {},
    "rating_range": [1, 5],
    "label_rate_max_change": 0.05,
    "gx_sample_rows": 200_000,
    "quarantine_dir": None,
}
EXAMPLES_PER_REASON = 3
EARLIEST = pd.Timestamp("1900-01-01")  # older dates are typos (and overflow nanosecond clocks)


def settings(params: dict) -> dict:
    """The `contracts` section of params.yaml over the defaults above."""
    return {**DEFAULTS, **(params.get("contracts") or {})}


# --------------------------------------------------------------------------------------------
# Which columns each table must have


def required_columns(table: str, params: dict, *, for_training: bool = True) -> list[str]:
    """Columns whose absence is a table-level failure."""
    spec = params["data"][table]
    if table == "leads":
        roles = model_inputs(params)
        cols = [spec["id"], *roles["categorical"], *roles["numeric"]]
        cols += [c for c in (roles["email"], roles["job_title"], spec.get("created_at")) if c]
        if for_training and spec.get("label"):
            cols.append(spec["label"])
    elif table == "deals":
        cols = [spec.get("lead_id"), spec.get("closed_at"), spec.get("outcome")]
    else:
        cols = [spec.get("lead_id"), spec.get("feedback_at"), spec.get("status")]
    return list(dict.fromkeys(c for c in cols if c))


def id_column(table: str, params: dict) -> str:
    spec = params["data"][table]
    return spec["id"] if table == "leads" else spec["lead_id"]


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
    duplicate_ids: int = 0

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


class _Col:
    """One column's distinct values, computed once per chunk: every text check runs on the
    distinct values and is mapped back through the codes (CRM columns repeat a lot)."""

    def __init__(self, values: pd.Series, *, distinct: bool = False) -> None:
        self.values = values
        self.typed = (pd.api.types.is_numeric_dtype(values)
                      or pd.api.types.is_datetime64_any_dtype(values))
        # A column of (nearly) distinct values, such as the id, in Arrow-backed text: row-wise
        # kernels in C beat finding distinct values that are barely fewer than the rows.
        self.row_wise = distinct and isinstance(values.dtype, pd.StringDtype) and \
            values.dtype.storage == "pyarrow"
        self._codes: np.ndarray | None = None
        self._uniques: pd.Series | None = None
        self._memo: dict = {}

    def _factorize(self) -> tuple[np.ndarray, pd.Series]:
        if self._codes is None:
            codes, uniques = pd.factorize(self.values, use_na_sentinel=True)
            self._codes = np.asarray(codes)
            self._uniques = pd.Series(uniques).astype("string")
        return self._codes, self._uniques

    def mapped(self, key, fn, na) -> np.ndarray:
        """fn(distinct values as strings) → one value per row; `na` for missing cells."""
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

    def blank(self) -> np.ndarray:
        """Missing or whitespace-only cells."""
        if self.typed:
            return self.values.isna().to_numpy()
        if self.row_wise:
            return self.values.isna().to_numpy() | (self.values.str.strip() == "").fillna(
                False).to_numpy(dtype=bool)
        return self.mapped("blank", lambda u: (u.str.strip() == "").fillna(True)
                           .to_numpy(dtype=bool), True).astype(bool)

    def numbers(self) -> np.ndarray:
        if self.typed and pd.api.types.is_numeric_dtype(self.values):
            return self.values.astype("float64").to_numpy()
        return self.mapped("num", lambda u: pd.to_numeric(u.str.strip(), errors="coerce")
                           .astype("float64").to_numpy(), np.nan).astype("float64")

    def lengths(self) -> np.ndarray:
        if self.typed:
            return np.zeros(len(self.values))
        if self.row_wise:
            return self.values.str.len().fillna(0).to_numpy(dtype="float64")
        return self.mapped("len", lambda u: u.str.len().fillna(0).to_numpy(dtype="float64"),
                           0.0).astype("float64")

    def in_set(self, allowed: set[str], *, normalise: bool = False) -> np.ndarray:
        """Lower-cased (or model-normalised) value is in `allowed`; False for missing."""
        key = ("in", normalise, frozenset(allowed))

        def fn(u: pd.Series) -> np.ndarray:
            text = normalise_category(u) if normalise else u.str.strip().str.lower()
            return pd.Series(text).isin(allowed).to_numpy(dtype=bool)

        return self.mapped(key, fn, False).astype(bool)

    def duplicated(self) -> np.ndarray:
        """Repeats of an earlier row's value, padding ignored (" L1" is L1, as once typed)."""
        codes, uniques = self._factorize()
        canon = codes
        stripped = uniques.str.strip()
        if (stripped != uniques).any():  # rare: only then is a second factorize worth it
            same, _ = pd.factorize(stripped, use_na_sentinel=True)
            canon = np.where(codes >= 0, np.append(same, -1)[codes], -1)
        return pd.Series(canon).duplicated(keep="first").to_numpy() & (canon >= 0)


def parse_numbers(values: pd.Series) -> pd.Series:
    return pd.Series(_Col(values).numbers(), index=values.index, dtype="float64")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _numeric_bounds(col: str, cfg: dict) -> tuple[float, float]:
    lo, hi = (cfg["numeric_bounds"] or {}).get(col, (cfg["numeric_min"], cfg["numeric_max"]))
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


def _check_id(c: _Collector, col: _Col, name: str, *, unique: bool,
              duplicates: np.ndarray | None = None) -> int:
    missing = col.blank()
    c.add(missing, f"{name}: missing", col.values)
    if not unique:
        return 0
    found = col.duplicated() if duplicates is None else np.asarray(duplicates, dtype=bool)
    dup = found & ~missing
    c.add(dup, f"{name}: duplicate id", col.values)
    return int(dup.sum())


def _check_date(c: _Collector, col: _Col, name: str, fmt: str | None, cfg: dict,
                *, required: bool) -> pd.Series:
    parsed = parse_date_cells(col.values, fmt)
    blank = col.blank()
    if required:
        c.add(blank, f"{name}: missing", col.values)
    c.add(~blank & parsed.isna().to_numpy(), f"{name}: unparseable date (expected {fmt})",
          col.values)
    future = (parsed > _now() + pd.Timedelta(days=float(cfg["max_future_days"]))).to_numpy()
    c.add(future, f"{name}: in the future", col.values)
    c.add((parsed < EARLIEST).to_numpy(), f"{name}: before {EARLIEST.year}", col.values)
    return parsed


def _check_text_length(c: _Collector, col: _Col, name: str, cfg: dict) -> None:
    limit = int(cfg["max_text_length"])
    c.add(col.lengths() > limit, f"{name}: text longer than {limit}", col.values)


def _check_numeric(c: _Collector, col: _Col, name: str, lo: float, hi: float) -> np.ndarray:
    arr = col.numbers()
    c.add(~col.blank() & np.isnan(arr), f"{name}: not a number", col.values)
    c.add(np.isinf(arr), f"{name}: not finite", col.values)
    finite = np.isfinite(arr)
    c.add(finite & (arr < lo), f"{name}: below {lo:g}", col.values)
    c.add(finite & (arr > hi), f"{name}: above {hi:g}", col.values)
    return arr


def _check_in_set(c: _Collector, col: _Col, name: str, allowed: list[str]) -> None:
    allowed_l = {str(v).strip().lower() for v in allowed}
    c.add(~col.in_set(allowed_l), f"{name}: not one of {sorted(allowed_l)}", col.values)


def evaluate(frame: pd.DataFrame, table: str, params: dict, reference: dict | None = None,
             *, duplicates: np.ndarray | None = None) -> RowCheck:
    """Run the row-level rules of `table` on raw rows (text as read, or typed Parquet).

    `reference` is what training saw (see `profile`): its categories and ranges turn into
    warnings; for deals and feedback, `reference["lead_created"]` (lead id → created_at) is
    needed to find orphans and deals closed before their lead. Columns absent from the frame
    are table-level problems (`check_columns`) and are skipped here. `duplicates` marks rows
    whose id an earlier row had, when the caller tracks ids across chunks (IdTracker, or Spark
    over the whole input) so a streamed file is judged like one piece; by default duplicates
    are found within `frame`.
    """
    cfg = settings(params)
    spec = params["data"][table]
    reference = reference or {}
    c = _Collector(frame.index)
    dups = 0
    warnings: dict[str, int] = {}
    warn_examples: dict[str, list[str]] = {}
    cols: dict[str, _Col] = {}

    def col(name: str | None) -> _Col | None:
        if not name or name not in frame.columns:
            return None
        if name not in cols:
            cols[name] = _Col(frame[name], distinct=name == spec.get("id"))
        return cols[name]

    def warn(key: str, mask: np.ndarray, values: pd.Series) -> None:
        if mask.any():
            warnings[key] = int(mask.sum())
            warn_examples[key] = [_show(v) for v in
                                  pd.unique(values[mask])[:EXAMPLES_PER_REASON]]

    if table == "leads":
        roles = model_inputs(params)
        if ident := col(spec["id"]):
            dups = _check_id(c, ident, spec["id"], unique=True, duplicates=duplicates)
        if created := col(spec.get("created_at")):
            _check_date(c, created, spec["created_at"], spec.get("date_format"), cfg,
                        required=True)
        for name in dict.fromkeys([spec["id"], *roles["categorical"], roles["job_title"]]):
            if (x := col(name)) is not None:
                _check_text_length(c, x, name, cfg)
        inputs = [x for x in dict.fromkeys([*roles["categorical"], *roles["numeric"],
                                            roles["email"], roles["job_title"]]) if col(x)]
        if inputs:
            # A truncated line or a shifted row: pandas fills the missing cells with NaN, which
            # the model would score as a real, empty lead.
            empty = np.zeros(len(frame))
            for name in inputs:
                # isna, not blank(): whitespace-only cells are rare and the email column's
                # distinct values would cost a hash of every address.
                empty += cols[name].values.isna().to_numpy()
            limit = float(cfg["max_missing_inputs_share"])
            c.add(empty / len(inputs) > limit,
                  f"row: more than {limit:.0%} of the model inputs missing",
                  frame[spec["id"]] if col(spec["id"]) else None)
        ranges = reference.get("numeric_ranges") or {}
        for name in roles["numeric"]:
            if (x := col(name)) is None:
                continue
            lo, hi = _numeric_bounds(name, cfg)
            arr = _check_numeric(c, x, name, lo, hi)
            if seen := ranges.get(name):
                out = np.isfinite(arr) & (arr >= lo) & (arr <= hi) & (
                    (arr < seen[0]) | (arr > seen[1]))
                warn(f"out_of_training_range:{name}", out, x.values)
        placeholders = {str(v).strip().lower() for v in cfg["placeholder_values"] or []}
        for name in roles["categorical"] if placeholders else []:
            if (x := col(name)) is not None:
                # "Unknown" is a value the model learns as a category; say how common it is.
                warn(f"placeholder:{name}", x.in_set(placeholders), x.values)
        for name, known in (reference.get("categories") or {}).items():
            if (x := col(name)) is not None:
                unseen = ~x.blank() & ~x.in_set(set(known), normalise=True)
                warn(f"unseen_category:{name}", unseen, x.values)
    else:
        lead_col = spec["lead_id"]
        known = reference.get("lead_created")
        ids = None
        if (x := col(lead_col)) is not None:
            _check_id(c, x, lead_col, unique=False)
            ids = x.values.astype("string").str.strip()
            if known is not None:
                orphan = ~x.blank() & ~x.mapped(
                    "known", lambda u: u.str.strip().isin(known.index).to_numpy(dtype=bool),
                    False).astype(bool)
                c.add(orphan, f"{lead_col}: unknown lead", x.values)
        when_name = spec.get("closed_at" if table == "deals" else "feedback_at")
        if (x := col(when_name)) is not None:
            when = _check_date(c, x, when_name, spec.get("date_format"), cfg, required=True)
            if table == "deals" and known is not None and ids is not None:
                lead_at = pd.to_datetime(ids.map(known), errors="coerce")
                early = (when < lead_at).to_numpy(dtype=bool)
                c.add(early, f"{when_name}: before the lead's created_at", x.values)
        if table == "deals":
            if (x := col(spec.get("outcome"))) is not None:
                _check_in_set(c, x, spec["outcome"], list(spec.get("won_values") or ["won"])
                              + list(spec.get("lost_values") or ["lost"]))
            if (x := col(spec.get("amount"))) is not None:
                _check_numeric(c, x, spec["amount"], 0.0, np.inf)
        else:
            if (x := col(spec.get("status"))) is not None:
                _check_in_set(c, x, spec["status"],
                              list(spec.get("accepted_values") or ["accepted"])
                              + list(spec.get("rejected_values") or ["rejected"]))
            if (x := col(spec.get("rating"))) is not None:
                lo, hi = cfg["rating_range"]
                _check_numeric(c, x, spec["rating"], float(lo), float(hi))
            if (x := col(spec.get("first_contact_at"))) is not None:
                _check_date(c, x, spec["first_contact_at"], spec.get("date_format"), cfg,
                            required=False)
    reasons, primary = c.result()
    return RowCheck(reasons=reasons, primary=primary, examples=c.examples, warnings=warnings,
                    warning_examples=warn_examples, duplicate_ids=dups, _bad=c.first >= 0,
                    _counts=c.counts())


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
    missing = [c for c in required_columns(table, params, for_training=for_training)
               if c not in columns]
    if not missing:
        return
    shown = ", ".join(repr(c) for c in list(columns)[:12])
    hint = ""
    delim = spec.get("delimiter", ",")
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

    cfg = settings(params)
    if rows == 0:
        raise BadInputError(f"{path}: {table} file has a header but no rows (check: not empty)")
    n_bad = sum(rejected.values())
    idc = id_column(table, params)
    if table == "leads" and duplicate_ids / rows > float(cfg["max_duplicate_id_share"]):
        shown = ", ".join(examples.get(f"{idc}: duplicate id", [])[:EXAMPLES_PER_REASON])
        raise BadInputError(
            f"{path}: column {idc}: {duplicate_ids:,} duplicate ids in {rows:,} rows "
            f"({duplicate_ids / rows:.1%} > contracts.max_duplicate_id_share "
            f"{cfg['max_duplicate_id_share']:.1%}) (check: unique ids); e.g. {shown}"
        )
    if n_bad == rows or n_bad / rows > float(cfg["max_rejected_share"]):
        top = sorted(rejected.items(), key=lambda kv: -kv[1])[:3]
        detail = "; ".join(
            f"{reason} ({count:,} rows, e.g. {', '.join(examples.get(reason, [])[:3])})"
            for reason, count in top)
        what = "every row" if n_bad == rows else (
            f"{n_bad:,} of {rows:,} rows ({n_bad / rows:.0%} > contracts.max_rejected_share "
            f"{float(cfg['max_rejected_share']):.0%})")
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


def suite_expectations(table: str, params: dict, reference: dict | None = None) -> list[dict]:
    """The contract of `table` as Great Expectations expectation configs (type + kwargs).

    `meta.level` says what a failure means in leadq: table (stop), row (quarantine) or
    warning (report). Personal columns get no expectation, so they never show in Data Docs.
    """
    cfg = settings(params)
    spec = params["data"][table]
    reference = reference or {}
    exp: list[dict] = []

    def add(kind: str, level: str, severity: str = "critical", **kwargs) -> None:
        exp.append({"type": kind, "kwargs": kwargs, "meta": {"level": level},
                    "severity": severity})

    for col in required_columns(table, params):
        add("expect_column_to_exist", "table", column=col)
    idc = id_column(table, params)
    add("expect_column_values_to_not_be_null", "row", column=idc)
    if table == "leads":
        roles = model_inputs(params)
        add("expect_column_values_to_be_unique", "row", column=idc,
            mostly=1.0 - float(cfg["max_duplicate_id_share"]))
        if spec.get("created_at"):
            _date_expectations(add, spec["created_at"], spec.get("date_format"))
        for col in roles["numeric"]:
            lo, hi = _numeric_bounds(col, cfg)
            add("expect_column_values_to_be_between", "row", column=col,
                min_value=None if np.isinf(lo) else lo, max_value=None if np.isinf(hi) else hi)
            seen = (reference.get("numeric_ranges") or {}).get(col)
            if seen:
                add("expect_column_values_to_be_between", "warning", "warning", column=col,
                    min_value=seen[0], max_value=seen[1])
        for col, known in (reference.get("categories") or {}).items():
            add("expect_column_values_to_be_in_set", "warning", "warning", column=col,
                value_set=list(known))
        for col in [*roles["categorical"], roles["job_title"]]:
            if col:
                add("expect_column_value_lengths_to_be_between", "row", column=col,
                    max_value=int(cfg["max_text_length"]))
        add("expect_table_row_count_to_be_between", "table", min_value=1)
    elif table == "deals":
        _date_expectations(add, spec["closed_at"], spec.get("date_format"))
        if spec.get("outcome"):
            add("expect_column_values_to_be_in_set", "row", column=spec["outcome"],
                value_set=list(spec.get("won_values") or ["won"])
                + list(spec.get("lost_values") or ["lost"]))
        if spec.get("amount"):
            add("expect_column_values_to_be_between", "row", column=spec["amount"],
                min_value=0)
    else:
        _date_expectations(add, spec["feedback_at"], spec.get("date_format"))
        add("expect_column_values_to_be_in_set", "row", column=spec["status"],
            value_set=list(spec.get("accepted_values") or ["accepted"])
            + list(spec.get("rejected_values") or ["rejected"]))
        if spec.get("rating"):
            lo, hi = cfg["rating_range"]
            add("expect_column_values_to_be_between", "row", column=spec["rating"],
                min_value=lo, max_value=hi)
    personal = set(params["data"]["leads"].get("personal") or []) if table == "leads" else set()
    return [e for e in exp if e["kwargs"].get("column") not in personal
            or e["type"] == "expect_column_to_exist"]


def _date_expectations(add, col: str, fmt: str | None) -> None:
    # "Not in the future" is enforced by `evaluate`; GX sees dates as the text in the file.
    add("expect_column_values_to_not_be_null", "row", column=col)
    if fmt and fmt.upper() != "ISO8601":
        add("expect_column_values_to_match_strftime_format", "row", column=col,
            strftime_format=fmt)
    else:
        add("expect_column_values_to_be_dateutil_parseable", "row", column=col)
