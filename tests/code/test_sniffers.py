"""The profiling guesses: delimiters, line endings, date patterns, ids, yes/no pairs, stages."""

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.profiling.sniff import (
    StageValues,
    binary_values,
    id_reason,
    line_ending,
    name_tokens,
    parse_dates_as,
    sniff_date_format,
    sniff_delimiter,
    stage_values,
)

TODAY = pd.Timestamp("2024-06-01")


@pytest.mark.parametrize("name, tokens", [
    ("Lead_Creation_Date", ["lead", "creation", "date"]),
    ("PageValues", ["page", "values"]),
    ("closeDate", ["close", "date"]),
    ("DOB", ["dob"]),
    ("booking_complete", ["booking", "complete"]),
    ("EMI", ["emi"]),
    ("mql_id", ["mql", "id"]),
    ("ExitRates", ["exit", "rates"]),
    ("LeadNumber", ["lead", "number"]),
    ("HTTPStatus code", ["http", "status", "code"]),
])
def test_name_tokens(name, tokens):
    assert name_tokens(name) == tokens


# --------------------------------------------------------------------------- files

def test_semicolons_win_over_decimal_commas():
    text = "lead;amount;rate\n1;1,5;0,25\n2;2,75;0,5\n3;10;1,125\n"
    assert sniff_delimiter(text) == ";"


def test_quoted_commas_do_not_add_fields():
    text = 'id,company,city\n1,"Acme, Inc",Berlin\n2,"Foo; Bar, Ltd",Paris\n3,Plain,"Rome"\n'
    assert sniff_delimiter(text) == ","


def test_quoted_line_break_is_one_record():
    text = 'id|note|n\n1|"two\nlines, here"|3\n2|x|4\n'
    assert sniff_delimiter(text) == "|"


def test_tabs_and_pipes():
    assert sniff_delimiter("a\tb\tc\n1\t2,5\t3\n4\t5\t6\n") == "\t"
    assert sniff_delimiter("a|b|c\n1|2|3\n4|5;6|7\n") == "|"


def test_a_head_cut_mid_record_is_not_counted():
    # The cut last line has 2 ';' fields and 1 ',' field; the complete rows decide.
    text = "a,b,c\n1,2,3\n4,5,6\n7;8"
    assert sniff_delimiter(text) == ","


def test_single_column_falls_back_to_comma():
    assert sniff_delimiter("email\na@x.io\nb@y.io\n") == ","
    assert sniff_delimiter("") == ","


@pytest.mark.parametrize("head, ending", [
    (b"a,b\r\n1,2\r\n", "CRLF"), (b"a,b\n1,2\r\n", "LF"), (b"a,b\r1,2\r", "CR"),
    (b"a,b", "LF"), (b"a,b\r", "CRLF"),
])
def test_line_ending(head, ending):
    assert line_ending(head) == ending


# --------------------------------------------------------------------------- dates

def _guess(cells, **kw):
    return sniff_date_format(pd.Series(cells, dtype=object), today=TODAY, **kw)


def test_iso_with_offsets_and_plain_dates():
    cells = ["2021-03-04T05:06:07Z", "2021-03-04 05:06:07+00:00", "2021-03-04", None, " "]
    guess = _guess(cells)
    assert guess.format == "ISO8601" and guess.parsed_share == 1.0 and guess.has_time
    parsed = parse_dates_as(pd.Series(cells), guess.format, today=TODAY)
    assert parsed.dt.tz is None  # naive UTC, comparable with every other table
    assert parsed.iloc[0] == parsed.iloc[1] == pd.Timestamp("2021-03-04 05:06:07")
    assert parsed.iloc[3:].isna().all()


def test_iso_date_only_has_no_time():
    guess = _guess(["2021-03-04", "2021-12-31"])
    assert guess.format == "ISO8601" and not guess.has_time


def test_dotted_year_first():
    assert _guess(["2018.02.01", " 2018.02.03 "]).format == "%Y.%m.%d"
    guess = _guess(["2018.02.26 19:58", "2018.03.01 00:05"])
    assert guess.format == "%Y.%m.%d %H:%M" and guess.has_time and not guess.ambiguous


def test_two_digit_years_take_the_century_before_today():
    dob = pd.Series(["23/07/79", "01/01/60", "15/07/16", "29/02/00"])
    guess = sniff_date_format(dob, today=TODAY)
    assert guess.format == "%d/%m/%y" and guess.two_digit_year and not guess.ambiguous
    parsed = parse_dates_as(dob, guess.format, today=TODAY)
    assert parsed.tolist() == [pd.Timestamp("1979-07-23"), pd.Timestamp("1960-01-01"),
                               pd.Timestamp("2016-07-15"), pd.Timestamp("2000-02-29")]


def test_four_digit_pattern_never_reads_a_two_digit_year():
    cells = pd.Series(["23/07/79", "13/01/1980"])
    assert parse_dates_as(cells, "%d/%m/%Y", today=TODAY).isna().tolist() == [True, False]
    assert _guess(["23/07/1979", "13/01/1980"]).format == "%d/%m/%Y"


def test_month_first_decided_by_a_day_over_twelve():
    guess = _guess(["01/02/17", "12/31/17", "03/04/18"])
    assert guess.format == "%m/%d/%y" and not guess.ambiguous
    guess = _guess(["1/2/2017", "12/31/2017 "])
    assert guess.format == "%m/%d/%Y" and not guess.ambiguous


def test_every_day_up_to_twelve_is_day_first_and_ambiguous():
    guess = _guess(["01/02/2017", "12/11/2017", "05/06/2018"])
    assert guess.format == "%d/%m/%Y" and guess.ambiguous
    assert _guess(["01.02.2017", "12.11.2017"]).ambiguous
    assert not _guess(["13.02.2017", "12.11.2017"]).ambiguous


def test_times_and_other_layouts():
    assert _guess(["01/02/2017 10:30", "25/12/2017 23:59"]).format == "%d/%m/%Y %H:%M"
    assert _guess(["01/02/2017 10:30:05"]).format == "%d/%m/%Y %H:%M:%S"
    assert _guess(["2017/02/01"]).format == "%Y/%m/%d"
    assert _guess(["25.12.2017", "1.2.2018"]).format == "%d.%m.%Y"
    assert _guess(["25-12-2017"]).format == "%d-%m-%Y"
    assert _guess(["04-Mar-2021", "05-APR-2021"]).format == "%d-%b-%Y"


@pytest.mark.parametrize("cells", [
    ["2016", "2017", "2018"], ["12345", "20210304"], ["1.5", "12.5", "3.25"], ["-5", "10"],
    ["web", "email"], [None, " "],
])
def test_numbers_years_and_text_are_not_dates(cells):
    assert _guess(cells) is None


def test_a_column_mostly_not_dates_is_not_a_date():
    assert _guess(["2021-03-04"] * 9 + ["soon"]) is None
    assert _guess(["2021-03-04"] * 9 + ["soon"], min_share=0.9).parsed_share == 0.9


def test_large_columns_are_sampled():
    cells = pd.Series(pd.date_range("2020-01-01", periods=50_000, freq="h").strftime("%d/%m/%Y"))
    guess = sniff_date_format(cells, today=TODAY)
    assert guess.format == "%d/%m/%Y" and not guess.ambiguous


# --------------------------------------------------------------------------- ids

def test_unique_text_is_an_id():
    assert id_reason(pd.Series(["L-001", "L-002", "a9f3"]), "whatever") == "unique text, no blanks"


def test_integers_are_ids_only_when_the_name_says_so():
    ids = pd.Series(np.arange(1000, 1100))
    for name in ("id", "ID", "lead_id", "mql_id", "opportunity_id", "LeadNumber"):
        assert id_reason(ids, name) == "unique integers, name says id"
    assert id_reason(ids.astype(str), "lead_id") is not None
    assert id_reason(ids, "page_views") is None
    assert id_reason(ids.astype(float), "lead_id") is not None  # read as float beside a blank


def test_measures_emails_duplicates_blanks_free_text_dates_are_not_ids():
    assert id_reason(pd.Series(np.linspace(0.1, 99.9, 200)), "duration_id") is None
    assert id_reason(pd.Series([f"p{i}@x.io" for i in range(50)]), "email") is None
    assert id_reason(pd.Series(["a", "b", "a"]), "id") is None
    assert id_reason(pd.Series(["a", "b", None]), "id") is None
    assert id_reason(pd.Series(["a", "b", " "]), "id") is None
    assert id_reason(pd.Series([f"call me on day {i}" for i in range(50)]), "note") is None
    stamps = pd.date_range("2021-01-01", periods=50, freq="s").strftime("%Y-%m-%dT%H:%M:%S")
    assert id_reason(pd.Series(stamps), "created") is None


# --------------------------------------------------------------------------- labels

@pytest.mark.parametrize("cells, pair", [
    (["TRUE", "FALSE", "TRUE"], (["TRUE"], ["FALSE"])),
    (["0", "1", " 1 "], (["1"], ["0"])),
    (["Y", "N", None], (["Y"], ["N"])),
    (["1.0", "0.0"], (["1.0"], ["0.0"])),
    (["Yes", "no", "YES"], (["YES", "Yes"], ["no"])),
    (["Converted", "Not Converted"], (["Converted"], ["Not Converted"])),
])
def test_binary_pairs(cells, pair):
    assert binary_values(pd.Series(cells, dtype=object)) == pair


def test_binary_from_typed_columns():
    assert binary_values(pd.Series([1.0, 0.0, np.nan])) == (["1.0"], ["0.0"])
    assert binary_values(pd.Series([True, False])) == (["True"], ["False"])


@pytest.mark.parametrize("cells", [["1", "1"], ["1", "0", "2"], ["yes", "n"], ["a", "b"], []])
def test_not_binary(cells):
    assert binary_values(pd.Series(cells, dtype=object)) is None


def test_stage_values():
    stages = pd.Series(["Won", "Lost", "Engaging", "Prospecting", "Won", None])
    assert stage_values(stages) == StageValues(won=("Won",), lost=("Lost",),
                                               open=("Engaging", "Prospecting"))
    crm = pd.Series(["Closed Won", "closed_lost", "Negotiation", "Not Converted", "Customer"])
    assert stage_values(crm) == StageValues(won=("Closed Won", "Customer"),
                                            lost=("Not Converted", "closed_lost"),
                                            open=("Negotiation",))


def test_not_stages():
    assert stage_values(pd.Series(["Won", "Lost"])) is None  # binary_values' job
    assert stage_values(pd.Series(["Won", "Open", "Negotiation"])) is None  # nothing lost
    assert stage_values(pd.Series([f"Won {i}" for i in range(40)] + ["Lost"])) is None
    assert stage_values(pd.Series([1, 2, 3])) is None
