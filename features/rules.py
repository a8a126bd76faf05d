"""The contract rule table: every rule of every CRM table, declared once.

`CONTRACT` lists, per table and in evaluation order, one `RuleSpec` per rule: the column role
it applies to, its kind, its level (table / row / warning), the parameters it reads and the
message it reports. `rules_for` resolves the specs against params.yaml (and the training
reference) into `Rule` records. Two renderings are generated from those records and from
nothing else:

  * the vectorised evaluator, `leadq.features.contracts.evaluate` (one NumPy/pandas check per
    kind, per distinct value where that pays);
  * the Great Expectations suites, `suite_expectations` below (one or more GX expectations per
    kind, on a *view* of the column, see `contracts.gx_view`).

A rule GX cannot express carries `evaluator_only` (why); the agreement test
(tests/data/test_rule_table.py) holds every other rule to GX flagging the same rows.

This module is pure: it declares and renders, it never imports GX or reads a file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from leadq.features.columns import model_inputs

TABLE, ROW, WARNING = "table", "row", "warning"
EARLIEST = pd.Timestamp("1900-01-01")  # older dates are typos (and overflow nanosecond clocks)


class Kind(StrEnum):
    """What a rule checks. The evaluator and the GX renderer each map every kind."""

    REQUIRED = "required column"
    NOT_EMPTY = "not empty"
    DUPLICATE_SHARE = "unique ids"
    REJECTED_SHARE = "rejected share"
    NOT_BLANK = "not blank"
    UNIQUE = "unique"
    DATE = "parseable date"
    NOT_FUTURE = "not in the future"
    NOT_BEFORE = "not before the earliest date"
    AFTER_LEAD = "not before the lead"
    KNOWN_LEAD = "known lead"
    MAX_LENGTH = "max text length"
    MOSTLY_PRESENT = "model inputs mostly present"
    NUMBER = "number"
    FINITE = "finite"
    MIN = "minimum"
    MAX = "maximum"
    IN_SET = "in set"
    TRAINING_RANGE = "in training range"
    PLACEHOLDER = "not a placeholder"
    KNOWN_CATEGORY = "known category"


@dataclass(frozen=True)
class RuleSpec:
    """One line of the rule table, before params.yaml names its columns and values."""

    role: str             # which column(s): see `_columns`
    kind: Kind
    level: str            # table / row / warning
    message: str          # reason, warning key or check name; {column} and params fill it
    params: tuple[str, ...] = ()   # names resolved by `_PARAMS`
    evaluator_only: str = ""       # why GX does not see this rule ("" = GX does)


@dataclass(frozen=True)
class Rule:
    """A rule resolved against params: what the evaluator runs and GX renders."""

    id: str                          # "<table>.<column or role>.<kind>", meta.rule in GX
    table: str
    kind: Kind
    level: str
    message: str
    column: str | None = None
    columns: tuple[str, ...] = ()    # multi-column rules (model inputs)
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    evaluator_only: str = ""


_CLOCK = "relative to the clock at run time; GX sees the date as the text in the file"
_CROSS_TABLE = "needs the leads table (lead id → created_at); GX validates one table at a time"
_CROSS_COLUMN = "counts empty cells across the model-input columns of a row"
_ALL_RULES = "counts the rows every row rule rejected"

# Consecutive specs with the same role are expanded column by column (every rule of the first
# numeric column, then every rule of the next), which is the order reasons are listed in.
_DATE_RULES = (
    RuleSpec("{}", Kind.NOT_BLANK, ROW, "{column}: missing"),
    RuleSpec("{}", Kind.DATE, ROW,
             "{column}: unparseable date (expected {date_format}, data.{table}.date_format)",
             ("date_format",)),
    RuleSpec("{}", Kind.NOT_FUTURE, ROW,
             "{column}: in the future (contracts.max_future_days)",
             ("date_format", "max_future_days"),
             evaluator_only=_CLOCK),
    RuleSpec("{}", Kind.NOT_BEFORE, ROW, "{column}: before {earliest_year}",
             ("date_format", "earliest_year")),
)
_NUMBER_RULES = (
    RuleSpec("{}", Kind.NUMBER, ROW, "{column}: not a number"),
    RuleSpec("{}", Kind.FINITE, ROW, "{column}: not finite"),
    # A bound set to null is no rule at all (see `_bound`); `setting` names the parameter
    # that set the bound, so the message says what to change.
    RuleSpec("{}", Kind.MIN, ROW, "{column}: below {min:g}{setting}", ("min_bound",)),
    RuleSpec("{}", Kind.MAX, ROW, "{column}: above {max:g}{setting}", ("max_bound",)),
)


def _for(role: str, specs: tuple[RuleSpec, ...]) -> tuple[RuleSpec, ...]:
    return tuple(RuleSpec(role, s.kind, s.level, s.message, s.params, s.evaluator_only)
                 for s in specs)


def _table_rules(*, duplicates: bool) -> tuple[RuleSpec, ...]:
    out = [RuleSpec("required", Kind.REQUIRED, TABLE, "required columns"),
           RuleSpec("rows", Kind.NOT_EMPTY, TABLE, "not empty")]
    if duplicates:
        out.append(RuleSpec("id", Kind.DUPLICATE_SHARE, TABLE, "unique ids",
                            ("max_duplicate_id_share",)))
    out.append(RuleSpec("rows", Kind.REJECTED_SHARE, TABLE, "rejected share",
                        ("max_rejected_share",), evaluator_only=_ALL_RULES))
    return tuple(out)


CONTRACT: dict[str, tuple[RuleSpec, ...]] = {
    "leads": (
        *_table_rules(duplicates=True),
        RuleSpec("id", Kind.NOT_BLANK, ROW, "{column}: missing"),
        RuleSpec("id", Kind.UNIQUE, ROW, "{column}: duplicate id"),
        *_for("created_at", _DATE_RULES),
        RuleSpec("text", Kind.MAX_LENGTH, ROW,
                 "{column}: text longer than {max_text_length} (contracts.max_text_length)",
                 ("max_text_length",)),
        RuleSpec("inputs", Kind.MOSTLY_PRESENT, ROW,
                 "row: more than {max_missing_inputs_share:.0%} of the model inputs missing "
                 "(contracts.max_missing_inputs_share)",
                 ("max_missing_inputs_share", "id_column"), evaluator_only=_CROSS_COLUMN),
        *_for("numeric", _NUMBER_RULES),
        RuleSpec("numeric", Kind.TRAINING_RANGE, WARNING, "out_of_training_range:{column}",
                 ("bounds", "training_range")),
        RuleSpec("categorical", Kind.PLACEHOLDER, WARNING, "placeholder:{column}",
                 ("placeholder_values",)),
        RuleSpec("known_categories", Kind.KNOWN_CATEGORY, WARNING, "unseen_category:{column}",
                 ("known_categories",)),
    ),
    "deals": (
        *_table_rules(duplicates=False),
        RuleSpec("lead_id", Kind.NOT_BLANK, ROW, "{column}: missing"),
        RuleSpec("lead_id", Kind.KNOWN_LEAD, ROW, "{column}: unknown lead", ("lead_created",),
                 evaluator_only=_CROSS_TABLE),
        *_for("closed_at", _DATE_RULES),
        RuleSpec("closed_at", Kind.AFTER_LEAD, ROW, "{column}: before the lead's created_at",
                 ("date_format", "lead_created", "lead_id_column"),
                 evaluator_only=_CROSS_TABLE),
        RuleSpec("outcome", Kind.IN_SET, ROW, "{column}: not one of {allowed}", ("allowed",)),
        *_for("amount", _NUMBER_RULES),
    ),
    "feedback": (
        *_table_rules(duplicates=False),
        RuleSpec("lead_id", Kind.NOT_BLANK, ROW, "{column}: missing"),
        RuleSpec("lead_id", Kind.KNOWN_LEAD, ROW, "{column}: unknown lead", ("lead_created",),
                 evaluator_only=_CROSS_TABLE),
        *_for("feedback_at", _DATE_RULES),
        RuleSpec("status", Kind.IN_SET, ROW, "{column}: not one of {allowed}", ("allowed",)),
        *_for("rating", _NUMBER_RULES),
        *_for("first_contact_at", tuple(s for s in _DATE_RULES if s.kind != Kind.NOT_BLANK)),
    ),
    # The activity log (features/activities.py): a bad event is quarantined, a type nobody
    # listed is left out with a warning (a new kind of event must not stop scoring).
    "activities": (
        # With an event id, an event exported twice (overlapping exports) is counted once.
        *_table_rules(duplicates=True),
        RuleSpec("id", Kind.UNIQUE, ROW, "{column}: duplicate id"),
        RuleSpec("lead_id", Kind.NOT_BLANK, ROW, "{column}: missing"),
        RuleSpec("lead_id", Kind.KNOWN_LEAD, ROW, "{column}: unknown lead", ("lead_created",),
                 evaluator_only=_CROSS_TABLE),
        *_for("occurred_at", _DATE_RULES),
        RuleSpec("type", Kind.NOT_BLANK, ROW, "{column}: missing"),
        RuleSpec("type", Kind.IN_SET, WARNING, "unknown_activity_type:{column}", ("allowed",)),
        *_for("value", _NUMBER_RULES),
    ),
}


# --------------------------------------------------------------------------------------------
# Resolving the table against params.yaml


DEFAULTS: dict = {
    "max_duplicate_id_share": 0.01,
    "max_rejected_share": 0.5,
    "max_text_length": 1000,
    "max_missing_inputs_share": 0.5,
    "placeholder_values": ["unknown", "n/a", "na", "none", "null", "-", "?", "(not set)"],
    "max_future_days": 1,
    # No bound by default: a numeric input may be negative or large (balances, deltas, scores);
    # only text and infinities are rejected. Values outside the training range are warnings.
    "numeric_min": None,
    "numeric_max": None,
    "numeric_bounds": {},
    "rating_range": [1, 5],
    "label_rate_max_change": 0.05,
    "gx_sample_rows": 200_000,
    "quarantine_dir": None,
}


def settings(params: dict) -> dict:
    """The `contracts` section of params.yaml over the defaults above."""
    return {**DEFAULTS, **(params.get("contracts") or {})}


def required_columns(table: str, params: dict, *, for_training: bool = True) -> list[str]:
    """Columns whose absence is a table-level failure."""
    spec = params["data"][table]
    if table == "leads":
        roles = model_inputs(params)
        cols = [spec.get("id"), *roles["categorical"], *roles["numeric"]]
        cols += [c for c in (roles["email"], roles["job_title"], spec.get("created_at")) if c]
        if for_training:
            cols += [spec.get("label"), spec.get("converted_at")]
        # Columns a lookup table supplies are joined in after reading; its key must be here.
        for lookup in (params["data"].get("lookups") or {}).values():
            supplied = set(lookup.get("columns") or [])
            cols = [c for c in cols if c not in supplied] + [lookup.get("on") or lookup["key"]]
    elif table == "deals":
        cols = [spec.get("lead_id"), spec.get("closed_at"), spec.get("outcome")]
    elif table == "activities":
        cols = [spec.get("lead_id"), spec.get("occurred_at"), spec.get("type"), spec.get("value"),
                spec.get("id")]
    else:
        cols = [spec.get("lead_id"), spec.get("feedback_at"), spec.get("status")]
    return list(dict.fromkeys(c for c in cols if c))


def numeric_bounds(col: str, cfg: dict) -> tuple[float, float]:
    """A numeric input's accepted range, ±inf where unbounded (see `bound_settings`)."""
    (lo, _), (hi, _) = bound_settings(col, cfg)
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


def bound_settings(col: str, cfg: dict) -> tuple[tuple[Any, str], tuple[Any, str]]:
    """(min, the parameter that set it), (max, its parameter) for a numeric input; None =
    unbounded. `contracts.numeric_bounds.<col>` wins over numeric_min / numeric_max, and a
    column set to null there is unbounded on both sides."""
    per_column = cfg.get("numeric_bounds") or {}
    if col in per_column:
        pair = per_column[col]
        lo, hi = (None, None) if pair is None else pair
        where = f"contracts.numeric_bounds.{col}"
        return (lo, where), (hi, where)
    return ((cfg.get("numeric_min"), "contracts.numeric_min"),
            (cfg.get("numeric_max"), "contracts.numeric_max"))


def _columns(role: str, table: str, params: dict, reference: dict,
             for_training: bool) -> list[str]:
    """The columns a role names in params.yaml (data.<table>, features)."""
    spec = params["data"][table]
    if role == "required":
        return required_columns(table, params, for_training=for_training)
    if role == "rows":
        return [""]
    if role == "id":
        return [spec["id"]] if spec.get("id") else []  # no id column: no id rules
    if table != "leads":
        return [spec[role]] if spec.get(role) else []
    roles = model_inputs(params)
    if role == "text":
        return [c for c in dict.fromkeys([spec.get("id"), *roles["categorical"],
                                          roles["job_title"]])
                if c]
    if role == "inputs":
        return [""]
    if role in ("numeric", "categorical"):
        return list(roles[role])
    if role == "known_categories":
        return list(reference.get("categories") or {})
    return [spec[role]] if spec.get(role) else []


def column_date_format(table: str, column: str, spec: dict) -> str | None:
    """The date format of one column: the table's, except a feedback export's first-contact
    column when it has its own (CRMs often export it from another field type)."""
    if table == "feedback" and column and column == spec.get("first_contact_at") \
            and spec.get("first_contact_format"):
        return spec["first_contact_format"]
    return spec.get("date_format")


def _allowed(table: str, spec: dict) -> list[str]:
    if table == "activities":
        from leadq.features.activities import type_key

        return sorted({type_key(v) for v in [*(spec.get("types") or []),
                                             *(spec.get("sales_types") or [])]})
    keys = (("won_values", "won"), ("lost_values", "lost")) if table == "deals" else (
        ("accepted_values", "accepted"), ("rejected_values", "rejected"))
    values = [v for key, default in keys for v in list(spec.get(key) or [default])]
    if table == "deals":
        values += list(spec.get("open_values") or [])
    return sorted({str(v).strip().lower() for v in values})


def _bounds(table: str, column: str, cfg: dict) -> dict:
    """Both bounds as numbers (±inf: none), for the training-range warning."""
    lo, hi = (_bound(table, column, cfg, side) for side in ("min", "max"))
    return {"min": -np.inf if lo is None else lo["min"],
            "max": np.inf if hi is None else hi["max"]}


def _bound(table: str, column: str, cfg: dict, side: str) -> dict | None:
    """One side's bound and the parameter that sets it; None (no rule) when it is null."""
    if table == "leads":
        lo, hi = bound_settings(column, cfg)
        value, setting = lo if side == "min" else hi
    elif table == "deals":
        # A deal amount is money received: never negative, and no parameter changes that.
        value, setting = (0.0 if side == "min" else None), ""
    elif table == "activities":
        value, setting = None, ""  # an event's value (pages, seconds, score) has no bound
    else:
        pair = list(cfg.get("rating_range") or [None, None])
        value, setting = pair[0 if side == "min" else 1], "contracts.rating_range"
    if value is None or np.isinf(float(value)):
        return None
    return {side: float(value), "setting": f" ({setting})" if setting else ""}


def _inputs(params: dict) -> tuple[str, ...]:
    roles = model_inputs(params)
    return tuple(c for c in dict.fromkeys([*roles["categorical"], *roles["numeric"],
                                           roles["email"], roles["job_title"]]) if c)


# name → fn(table, column, spec, cfg, reference) → the rule's parameters (None: rule is void)
_PARAMS: dict[str, Callable[..., dict | None]] = {
    "date_format": lambda t, c, s, cfg, ref: {"date_format": column_date_format(t, c, s)},
    "max_future_days": lambda t, c, s, cfg, ref: {
        "max_future_days": float(cfg["max_future_days"])},
    "earliest_year": lambda t, c, s, cfg, ref: {"earliest_year": EARLIEST.year},
    "max_text_length": lambda t, c, s, cfg, ref: {"max_text_length": int(cfg["max_text_length"])},
    "max_missing_inputs_share": lambda t, c, s, cfg, ref: {
        "max_missing_inputs_share": float(cfg["max_missing_inputs_share"])},
    "id_column": lambda t, c, s, cfg, ref: {"id_column": s.get("id")},
    "lead_id_column": lambda t, c, s, cfg, ref: {"lead_id_column": s["lead_id"]},
    "bounds": lambda t, c, s, cfg, ref: _bounds(t, c, cfg),
    "min_bound": lambda t, c, s, cfg, ref: _bound(t, c, cfg, "min"),
    "max_bound": lambda t, c, s, cfg, ref: _bound(t, c, cfg, "max"),
    "training_range": lambda t, c, s, cfg, ref: (
        {"training_range": [float(v) for v in seen]}
        if (seen := (ref.get("numeric_ranges") or {}).get(c)) else None),
    "placeholder_values": lambda t, c, s, cfg, ref: (
        {"placeholder_values": values}
        if (values := sorted({str(v).strip().lower() for v in cfg["placeholder_values"] or []}))
        else None),
    "known_categories": lambda t, c, s, cfg, ref: {
        "known_categories": list(ref["categories"][c])},
    "allowed": lambda t, c, s, cfg, ref: {"allowed": _allowed(t, s)},
    "lead_created": lambda t, c, s, cfg, ref: (
        {"lead_created": ref["lead_created"]} if ref.get("lead_created") is not None else None),
    "max_duplicate_id_share": lambda t, c, s, cfg, ref: {
        "max_duplicate_id_share": float(cfg["max_duplicate_id_share"])},
    "max_rejected_share": lambda t, c, s, cfg, ref: {
        "max_rejected_share": float(cfg["max_rejected_share"])},
}


def _void(rule_kind: Kind, values: dict) -> bool:
    """A bound at ±inf can never be broken: no rule, no "below -inf" in Data Docs."""
    if rule_kind == Kind.MIN:
        return bool(np.isinf(values["min"]))
    if rule_kind == Kind.MAX:
        return bool(np.isinf(values["max"]))
    return False


def rules_for(table: str, params: dict, reference: dict | None = None, *,
              for_training: bool = True) -> list[Rule]:
    """The rule table of `table` resolved against params (and the training reference), in the
    order the evaluator runs and lists them."""
    cfg = settings(params)
    spec = params["data"][table]
    if table == "feedback":
        # What each status means is the agreement's (agreement.feedback); any other is refused.
        meaning = params["agreement"]["feedback"]
        spec = {**spec, "accepted_values": list(meaning["accepted"]),
                "rejected_values": [*meaning["rejected"], *meaning["not_reached"]]}
    reference = reference or {}
    specs = CONTRACT[table]
    out: list[Rule] = []
    i = 0
    while i < len(specs):
        j = i
        while j < len(specs) and specs[j].role == specs[i].role:
            j += 1
        group = specs[i:j]
        for column in _columns(specs[i].role, table, params, reference, for_training):
            for s in group:
                values: dict[str, Any] = {}
                void = False
                for name in s.params:
                    got = _PARAMS[name](table, column, spec, cfg, reference)
                    if got is None:
                        void = True
                        break
                    values.update(got)
                if void or _void(s.kind, values):
                    continue
                multi = s.kind == Kind.MOSTLY_PRESENT
                shown = {k: v for k, v in values.items() if k != "lead_created"}
                out.append(Rule(
                    id=f"{table}.{column or s.role}.{s.kind.name.lower()}",
                    table=table, kind=s.kind, level=s.level,
                    message=s.message.format(column=column, table=table, **shown),
                    column=None if multi or not column else column,
                    columns=_inputs(params) if multi else (),
                    params=values, evaluator_only=s.evaluator_only))
        i = j
    return out


# --------------------------------------------------------------------------------------------
# The Great Expectations rendering: each kind → expectation(s) on a view of its column

DBL_MAX = sys.float_info.max
# What pandas' ISO8601 parser accepts: the shape here, the calendar by dateutil (Feb 31). pandas
# takes - / . space or backslash between the parts (the same one twice; not checked here).
ISO_DATE_REGEX = (r"^\d{4}(?:[-/. \\]?(?:0?[1-9]|1[0-2])(?:[-/. \\]?(?:0?[1-9]|[12]\d|3[01])"
                  r"(?:[T ](?:[01]?\d|2[0-3])(?::[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)?"
                  r"(?: ?(?:Z|[+-]\d{2}(?::?\d{2})?))?)?)?)?$")
# What pd.to_numeric accepts after strip (it also reads inf / infinity, any case).
NUMBER_REGEX = r"^(?i:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity))$"

# One GX expectation: (view of the column or None for the column as read, type, kwargs).
GxSpec = tuple[str | None, str, dict]


def _gx_date(rule: Rule) -> list[GxSpec]:
    fmt = rule.params.get("date_format")
    if fmt and str(fmt).upper() != "ISO8601":
        return [("stripped", "expect_column_values_to_match_strftime_format",
                 {"strftime_format": fmt})]
    return [("stripped", "expect_column_values_to_match_regex", {"regex": ISO_DATE_REGEX}),
            ("stripped", "expect_column_values_to_be_dateutil_parseable", {})]


GX_EXPECTATIONS: dict[Kind, Callable[[Rule], list[GxSpec]]] = {
    Kind.REQUIRED: lambda r: [(None, "expect_column_to_exist", {})],
    Kind.NOT_EMPTY: lambda r: [(None, "expect_table_row_count_to_be_between", {"min_value": 1})],
    Kind.DUPLICATE_SHARE: lambda r: [(
        "stripped", "expect_column_proportion_of_unique_values_to_be_between",
        {"min_value": 1.0 - r.params["max_duplicate_id_share"]})],
    Kind.NOT_BLANK: lambda r: [("stripped", "expect_column_values_to_not_be_null", {})],
    Kind.UNIQUE: lambda r: [("stripped", "expect_column_values_to_be_unique", {})],
    Kind.DATE: _gx_date,
    Kind.NOT_BEFORE: lambda r: [("year", "expect_column_values_to_be_between",
                                 {"min_value": r.params["earliest_year"]})],
    Kind.MAX_LENGTH: lambda r: [(None, "expect_column_value_lengths_to_be_between",
                                 {"max_value": r.params["max_text_length"]})],
    Kind.NUMBER: lambda r: [("stripped", "expect_column_values_to_match_regex",
                             {"regex": NUMBER_REGEX})],
    # Finite as a range: JSON (suite files, MLflow) has no infinity to list in a set.
    Kind.FINITE: lambda r: [("number", "expect_column_values_to_be_between",
                             {"min_value": -DBL_MAX, "max_value": DBL_MAX})],
    Kind.MIN: lambda r: [("finite number", "expect_column_values_to_be_between",
                          {"min_value": r.params["min"]})],
    Kind.MAX: lambda r: [("finite number", "expect_column_values_to_be_between",
                          {"max_value": r.params["max"]})],
    # A missing outcome is not an allowed one: GX's in-set skips nulls, hence not-null too.
    Kind.IN_SET: lambda r: [("lower-case", "expect_column_values_to_be_in_set",
                             {"value_set": list(r.params["allowed"])}),
                            ("lower-case", "expect_column_values_to_not_be_null", {})],
    Kind.TRAINING_RANGE: lambda r: [("accepted number", "expect_column_values_to_be_between",
                                     {"min_value": r.params["training_range"][0],
                                      "max_value": r.params["training_range"][1]})],
    Kind.PLACEHOLDER: lambda r: [("lower-case", "expect_column_values_to_not_be_in_set",
                                  {"value_set": list(r.params["placeholder_values"])})],
    Kind.KNOWN_CATEGORY: lambda r: [("category", "expect_column_values_to_be_in_set",
                                     {"value_set": list(r.params["known_categories"])})],
}


def gx_column(column: str, view: str | None) -> str:
    """The column name GX sees: the column itself when read as is, else "<column> (<view>)"."""
    return column if view is None else f"{column} ({view})"


def uncovered(rules: list[Rule],
              mapping: dict[Kind, Callable[[Rule], list[GxSpec]]] | None = None) -> list[Rule]:
    """Rules neither rendered for GX nor marked evaluator-only: a gap in the contract."""
    mapping = GX_EXPECTATIONS if mapping is None else mapping
    return [r for r in rules if not r.evaluator_only and r.kind not in mapping]


def suite_expectations(table: str, params: dict, reference: dict | None = None) -> list[dict]:
    """The contract of `table` as Great Expectations expectation configs (type + kwargs).

    `meta.level` says what a failure means in leadq: table (stop), row (quarantine) or warning
    (report); `meta.rule` is the rule's id, `meta.column` / `meta.view` how `gx_view` (in
    contracts.py) builds the column GX checks. Personal columns get no expectation but
    "exists", so they never show in Data Docs.
    """
    personal = set(params["data"]["leads"].get("personal") or []) if table == "leads" else set()
    out: list[dict] = []
    rules = rules_for(table, params, reference)
    if gaps := uncovered(rules):
        raise ValueError(f"contract rules without a GX expectation: {[r.id for r in gaps]}")
    for rule in rules:
        if rule.evaluator_only:
            continue
        if rule.column in personal and rule.kind != Kind.REQUIRED:
            continue
        for view, kind, kwargs in GX_EXPECTATIONS[rule.kind](rule):
            kw = dict(kwargs)
            if rule.column:
                kw = {"column": gx_column(rule.column, view), **kw}
            meta = {"level": rule.level, "rule": rule.id, "column": rule.column, "view": view}
            if view in _VIEW_PARAMS:
                # Infinite bounds as null: suite files are JSON, which has no infinity.
                meta["view_params"] = {k: None if isinstance(v, float) and np.isinf(v) else v
                                       for k, v in rule.params.items()
                                       if k in _VIEW_PARAMS[view]}
            out.append({"type": kind, "kwargs": kw, "meta": meta,
                        "severity": "warning" if rule.level == WARNING else "critical"})
    return out


# --------------------------------------------------------------------------------------------
# Views: the value of a column a GX expectation judges, as the evaluator judges it


_VIEW_PARAMS = {"accepted number": ("min", "max"), "year": ("date_format",)}
