"""CSV cells that a spreadsheet would run as formulas, neutralised (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@` (and
some read a leading tab or carriage return as the start of one), so a lead id such as
`=HYPERLINK("http://…")` in a scores file becomes a live link or a command when a marketer opens
it. The rule, as OWASP gives it: a text cell whose first character is one of `= + - @ \\t \\r`
and which is not a number gets a leading `'`, which spreadsheets show as text and do not
evaluate. Numbers such as `-5` or `+1.5e3` stay as they are, so numeric columns still read as
numbers. Only CSV written for people is guarded; Parquet keeps the raw values.
"""

from __future__ import annotations

import re

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number, optionally signed, with an optional exponent: what a spreadsheet reads
# as a number, not a formula.
NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(NUMBER)


def guard_cell(value: str) -> str:
    """One cell by the rule (for header names and single values)."""
    if value.startswith(TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def needs_guard(value: object) -> bool:
    """True for a cell the rule would prefix: what a check of a written file looks for."""
    return (isinstance(value, str) and value.startswith(TRIGGERS)
            and not _NUMBER.fullmatch(value))


def guard_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell (and column name) that a spreadsheet would evaluate prefixed
    with `'`; the same object when nothing needs it, so clean chunks cost one vectorised scan
    per text column and no copy."""
    out = frame
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        if isinstance(series.dtype, pd.CategoricalDtype):
            # A Parquet dictionary column: its cells are text like any other's.
            series = series.astype(object)
        if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
            continue  # numbers, booleans, timestamps cannot hold a formula
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) != "string":
            # Dates, decimals or mixed cells (Parquet date32/decimal columns): no .str accessor;
            # only the text cells among them can carry a formula.
            flagged = series.map(needs_guard).astype(bool)
        else:
            starts = series.str.startswith(TRIGGERS)
            if starts.dtype != bool:  # object columns: missing cells give NA
                starts = starts.fillna(False).astype(bool)
            if not starts.any():
                continue
            flagged = starts & ~series.str.fullmatch(NUMBER).fillna(False).astype(bool)
        if not flagged.any():
            continue
        if out is frame:
            out = frame.copy()
        fixed = series.astype(object).copy()
        fixed[flagged.to_numpy()] = "'" + series[flagged].astype(str)
        out.isetitem(i, fixed)
    names = [guard_cell(c) if isinstance(c, str) else c for c in frame.columns]
    if names != list(frame.columns):
        if out is frame:
            out = frame.copy()
        out.columns = names
    return out
