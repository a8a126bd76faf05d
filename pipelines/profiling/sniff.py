"""Guessing what a column or a file is from its contents alone.

Profiling a CRM export has to propose a configuration before anyone has written one: which
delimiter the file uses, which columns hold dates (and in which pattern), which is the record
id, which hold a yes/no outcome or a pipeline stage. Every guess here is pure (text, bytes or a
Series in; a small frozen value out) so it can be tested on a handful of cells and reused by
whatever reads the file.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

SNIFF_RECORDS = 200  # enough rows to outvote a header quirk, few enough to stay instant
DATE_SAMPLE = 5000
ISO = "ISO8601"
# Order is the preference when two patterns parse the same cells: ISO first, then
# 4-digit years before 2-digit ones, day-first before month-first (most CRM exports outside
# the US), plain dates before dates with a time.
DATE_FORMATS = (
    ISO,
    "%Y.%m.%d", "%Y.%m.%d %H:%M", "%Y.%m.%d %H:%M:%S",
    "%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y", "%m/%d/%Y", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S",
    "%d/%m/%y", "%m/%d/%y", "%d/%m/%y %H:%M", "%m/%d/%y %H:%M",
    "%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%y",
    "%d-%m-%Y", "%m-%d-%Y", "%d-%m-%Y %H:%M", "%d-%m-%y",
    "%d-%b-%Y", "%d-%b-%y", "%d %b %Y",
    # 12-hour clocks: Salesforce's and HubSpot's US report exports ("7/1/2024 1:09 AM").
    "%m/%d/%Y %I:%M %p", "%d/%m/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%y %I:%M %p",
    "%Y-%m-%d %I:%M %p",
)
_FIELD = {"%Y": r"\d{4}", "%y": r"\d{2}", "%b": r"[A-Za-z]{3}", "%f": r"\d{1,9}",
          "%p": r"[AaPp]\.?[Mm]\.?"}
_INTEGER = re.compile(r"[+-]?\d+(\.0*)?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
ID_TOKENS = frozenset({"id", "key", "uuid", "guid", "number", "no", "nr", "num", "code", "ref"})
BINARY_PAIRS = (("1", "0"), ("true", "false"), ("t", "f"), ("yes", "no"), ("y", "n"),
                ("won", "lost"), ("win", "loss"), ("converted", "not converted"))
WON_TOKENS = frozenset({"won", "win", "converted", "customer", "signed", "success",
                        "successful", "approved"})
LOST_TOKENS = frozenset({"lost", "loss", "rejected", "disqualified", "dead", "unqualified",
                         "churned", "declined"})
_NEGATIONS = frozenset({"not", "non", "no"})


def name_tokens(name: str) -> list[str]:
    """Lower-case words of a column name, so role hints ("id", "date") match whatever casing
    convention the CRM used: snake_case, camelCase, PascalCase or spaced."""
    words = []
    for piece in re.split(r"[\W_]+", name):
        # An acronym ends where a capitalised word starts: "HTTPServer" → HTTP, Server.
        spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", piece)
        words += [w.lower() for w in spaced.split()]
    return words


# --------------------------------------------------------------------------- files

def sniff_delimiter(text: str, candidates: str = ",;\t|") -> str:
    """The delimiter under which most records have the header's field count. csv.Sniffer
    counts characters per line, so decimal commas in a ';' file or quoted commas fool it;
    parsing with each candidate respects quotes and needs only the field counts to agree."""
    text = text.lstrip("\ufeff")
    cut = max(text.rfind("\n"), text.rfind("\r"))
    if cut >= 0 and cut < len(text) - 1:
        text = text[:cut + 1]  # the head stops mid-record: that record would be short
    best, best_score = ",", (0, 0)
    for delimiter in candidates:
        rows = []
        try:
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                if row:
                    rows.append(len(row))
                if len(rows) >= SNIFF_RECORDS:
                    break
        except csv.Error:  # a NUL byte or a huge field: judge on the records read so far
            pass
        if not rows or rows[0] < 2:
            continue
        score = (sum(n == rows[0] for n in rows), rows[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def line_ending(head: bytes) -> str:
    """"CRLF", "LF" or "CR" by the first line break; "LF" when there is none. A head cut right
    after a CR reads as CRLF: CR-only files (classic Mac OS) are far rarer than a cut CRLF."""
    match = re.search(rb"\r\n?|\n", head)
    if match is None:
        return "LF"
    if match.group() == b"\r" and match.end() < len(head):
        return "CR"
    return "LF" if match.group() == b"\n" else "CRLF"


# --------------------------------------------------------------------------- dates

@dataclass(frozen=True)
class DateGuess:
    """The one pattern that parses a date column, and what a reviewer should know about it."""

    format: str           # a strptime pattern, or "ISO8601"
    parsed_share: float   # share of the (sampled) non-blank cells the pattern parses
    two_digit_year: bool  # %y: parse with parse_dates_as, which fixes the century
    ambiguous: bool       # every cell also parses with day and month swapped
    has_time: bool


def _cells(values: pd.Series) -> pd.Series:
    """Non-blank cells as stripped text: numbers and booleans compare by their spelling."""
    text = values.astype("string").str.strip()
    return text[(text.fillna("") != "").astype(bool)]


@functools.cache
def _shape(fmt: str) -> re.Pattern[str]:
    """The cell shape a pattern may match. strptime's %Y takes a short year (pandas versions
    differ on how short), which would read "23/07/79" as the year 79, and ISO8601 takes "2016"
    or "-5" as dates: numbers and years must not pass as dates, so a cell has to look like its
    pattern."""
    if fmt == ISO:
        return re.compile(r"\d{4}-\d{1,2}-\d{1,2}([T ].+)?")
    parts = re.split(r"(%.)", fmt)
    return re.compile("".join(_FIELD.get(p, r"\d{1,2}") if p.startswith("%") and len(p) == 2
                              else re.escape(p) for p in parts))


def _parse(text: pd.Series, fmt: str) -> pd.Series:
    """Naive-UTC datetimes, NaT where the cell is unparseable or not the pattern's shape."""
    text = text.astype("string").str.strip()
    shaped = text.str.fullmatch(_shape(fmt)).fillna(False).astype(bool)
    # utc=True: a column mixing offsets would otherwise raise even with errors="coerce".
    out = pd.to_datetime(text.where(shaped), format=fmt, errors="coerce", utc=True)
    return out.dt.tz_localize(None)


def _swapped(fmt: str) -> str | None:
    if not fmt.startswith(("%d", "%m")):
        return None  # year-first patterns are never written year-day-month
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _guess(cells: pd.Series, min_share: float) -> DateGuess | None:
    if cells.empty:
        return None
    if len(cells) > DATE_SAMPLE:  # evenly spaced: deterministic and sees the whole file
        cells = cells.iloc[np.unique(np.linspace(0, len(cells) - 1, DATE_SAMPLE).astype(int))]
    counts = {fmt: int(_parse(cells, fmt).notna().sum()) for fmt in DATE_FORMATS}
    best = max(DATE_FORMATS, key=lambda f: counts[f])  # max keeps the first of a tie
    share = counts[best] / len(cells)
    if counts[best] == 0 or share < min_share:
        return None
    swapped = _swapped(best)
    if swapped is not None and swapped not in counts:
        counts[swapped] = int(_parse(cells, swapped).notna().sum())
    has_time = "%H" in best or "%I" in best or bool(
        best == ISO and cells.str.contains(r"[T ]\d{1,2}:\d{2}", regex=True).any())
    return DateGuess(format=best, parsed_share=share, two_digit_year="%y" in best,
                     ambiguous=swapped is not None and counts[swapped] >= counts[best],
                     has_time=has_time)


def sniff_date_format(values: pd.Series, *, today: pd.Timestamp,
                      min_share: float = 0.95) -> DateGuess | None:
    """The pattern that parses at least min_share of the non-blank cells, or None. One
    pattern for the whole column, because training and scoring parse with one configured
    format. `today` is accepted for symmetry with parse_dates_as: the guess does not need it
    (the century of a %y date is settled when parsing)."""
    return _guess(_cells(values), min_share)


def parse_dates_as(values: pd.Series, fmt: str, *, today: pd.Timestamp) -> pd.Series:
    """Dates in the pattern as naive UTC (NaT when unparseable). strptime puts %y 00-68 in the
    2000s, so a birth year "60" would land in 2060; under %y a date after today (plus a day of
    clock slack) is moved back a century, while a recent "16" stays 2016."""
    out = _parse(values, fmt)
    if "%y" in fmt:
        today = pd.Timestamp(today)
        if today.tzinfo is not None:
            today = today.tz_convert("UTC").tz_localize(None)
        late = (out > today + pd.Timedelta(days=1)).fillna(False).astype(bool)
        if late.any():
            out = out.where(~late, out - pd.DateOffset(years=100))
    return out


# --------------------------------------------------------------------------- roles

def id_reason(values: pd.Series, name: str) -> str | None:
    """Why the column looks like a record id, or None. An id is what joins leads to deals and
    feedback, so it must be (nearly) always present and unique and not a measure: a unique
    float such as a duration, e-mail addresses or free text are never ids."""
    if len(values) == 0:
        return None
    cells = _cells(values)
    if len(cells) < 0.999 * len(values) or cells.nunique() < 0.999 * len(cells):
        return None
    if pd.api.types.is_numeric_dtype(values) or cells.str.fullmatch(_NUMBER).all():
        integers = not pd.api.types.is_bool_dtype(values) and cells.str.fullmatch(_INTEGER).all()
        if integers and ID_TOKENS & set(name_tokens(name)):
            return "unique integers, name says id"
        return None  # a unique count or measure is as likely as an id without the name
    if cells.str.len().median() > 64 or cells.str.contains(r"\s", regex=True).mean() > 0.1:
        return None
    if cells.str.contains("@", regex=False).mean() > 0.5:
        return None  # unique per person, but personal data and not what the CRM joins on
    if _guess(cells, 0.95) is not None:
        return None  # second-resolution timestamps are unique too
    return "unique text, no blanks"


def _canonical(cell: str) -> str:
    return str(int(float(cell))) if _INTEGER.fullmatch(cell) else cell.lower()


def binary_values(values: pd.Series) -> tuple[list[str], list[str]] | None:
    """(positive spellings, negative spellings) as they appear, when the column holds exactly
    one known yes/no pair (case-insensitive; "1.0"/"0.0" count as 1/0); else None. The raw
    spellings are returned so a label mapping matches the file byte for byte."""
    distinct = _cells(values).unique()
    if len(distinct) > 16:  # a pair has few spellings; spares a loop over a high-cardinality column
        return None
    spellings: dict[str, set[str]] = {}
    for raw in distinct:
        spellings.setdefault(_canonical(str(raw)), set()).add(str(raw))
    for positive, negative in BINARY_PAIRS:
        if set(spellings) == {positive, negative}:
            return sorted(spellings[positive]), sorted(spellings[negative])
    if len(distinct) == 2:
        # Two stages, one a win and one a loss: Salesforce's "Closed Won" / "Closed Lost".
        by = {_outcome(str(raw)): str(raw) for raw in distinct}
        if set(by) == {"won", "lost"}:
            return [by["won"]], [by["lost"]]
    return None


@dataclass(frozen=True)
class StageValues:
    """A pipeline-stage column's values split by outcome (raw spellings, each tuple sorted)."""

    won: tuple[str, ...]
    lost: tuple[str, ...]
    open: tuple[str, ...]


def _outcome(value: str) -> str:
    tokens = set(name_tokens(value))
    won, lost = bool(tokens & WON_TOKENS), bool(tokens & LOST_TOKENS)
    if won and tokens & _NEGATIONS:
        won, lost = False, True  # "Not converted" is a loss, not a win
    if won == lost:
        return "open"  # neither, or a value naming both outcomes: nothing to settle on
    return "won" if won else "lost"


def stage_values(values: pd.Series, max_values: int = 30) -> StageValues | None:
    """The won, lost and still-open values of a stage column, or None when the column is not
    one: 3..max_values distinct values, at least one meaning won and one meaning lost. A
    two-valued won/lost column is None here; binary_values reads it as a label."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    distinct = _cells(values).unique()
    if not 3 <= len(distinct) <= max_values:
        return None
    split: dict[str, list[str]] = {"won": [], "lost": [], "open": []}
    for value in sorted(str(v) for v in distinct):
        split[_outcome(value)].append(value)
    if not split["won"] or not split["lost"]:
        return None
    return StageValues(won=tuple(split["won"]), lost=tuple(split["lost"]),
                       open=tuple(split["open"]))
