"""The bad-input corpus: every messy export gets its documented outcome, and no row is lost.

Leads cases run `leadq score` with the session's trained model (the streamed scoring path);
deals and feedback cases run the training-time contract (`load_crm`, `leadq validate`).
Each case asserts the exit code, that the message names the problem, the quarantine contents,
that the accounting adds up (read = scored + rejected, per reason) and that a failed run leaves
no output, quarantine or temporary file behind.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from tests.helpers import quarantine_file

N = 200  # rows per corpus leads file

# The contract's messages name the setting that changes them.
BAD_DATE = "created_at: unparseable date (expected ISO8601, data.leads.date_format)"
BAD_FEEDBACK_DATE = "feedback_at: unparseable date (expected ISO8601, data.feedback.date_format)"
MOSTLY_EMPTY = "row: more than 50% of the model inputs missing (contracts.max_missing_inputs_share)"
FUTURE = "created_at: in the future (contracts.max_future_days)"


@pytest.fixture(scope="module")
def base_leads(small_crm) -> pd.DataFrame:
    return pd.read_csv(small_crm["leads"], dtype=str).head(N).reset_index(drop=True)


def _score(trained_store, path: Path, tmp_path: Path, capsys, *, out_name="scores.csv",
           params_path: Path | None = None):
    out = tmp_path / "out" / out_name
    code = cli(["--json", "score", "--input", str(path), "--output", str(out),
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(params_path or trained_store["params_path"])])
    captured = capsys.readouterr()
    summary = json.loads(captured.out) if code == 0 else None
    return code, summary, captured.err, out


def _quarantine(out: Path) -> Path:
    return out.parent / f"{out.stem}.rejected.csv"


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not _quarantine(out).exists()
    if out.parent.exists():
        assert list(out.parent.iterdir()) == [], "temporary files left behind"


def _assert_accounting(summary: dict, out: Path, *, read: int,
                       rejected: dict[str, int]) -> pd.DataFrame:
    acct = summary["accounting"]
    assert acct["read"] == read and acct["used"] == read - sum(rejected.values())
    assert acct["rejected_by_reason"] == rejected
    assert acct["rejected"] == sum(rejected.values())
    scored = pd.read_csv(out, dtype={"lead_id": str})
    assert len(scored) == acct["used"] == summary["rows"]
    q = _quarantine(out)
    if rejected:
        quarantined = pd.read_csv(q, dtype=str, keep_default_na=False)
        assert len(quarantined) == acct["rejected"]
        # The reason column lists every rule a row breaks, the one it is counted under first.
        assert Counter(quarantined["reason"].str.split("; ").str[0]) == Counter(rejected)
        return quarantined
    assert not q.exists()
    return pd.DataFrame()


def _write(frame: pd.DataFrame, path: Path, **kw) -> Path:
    frame.to_csv(path, index=False, **kw)
    return path


# ---------------------------------------------------------------- table-level: exit 2, nothing


@pytest.mark.parametrize("case, content, expected", [
    ("empty file", b"", "empty"),
    ("whitespace only", b"\n\n  \n", "empty"),
    ("binary garbage", bytes(range(256)) * 8, "binary"),
    ("binary without NUL", bytes(range(128, 256)) * 8, "cannot decode as utf-8"),
])
def test_unreadable_files_exit_2(trained_store, tmp_path, capsys, case, content, expected):
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2, case
    assert str(path) in err and expected in err
    _assert_nothing_written(out)


def test_header_only_exits_2(trained_store, base_leads, tmp_path, capsys):
    path = _write(base_leads.iloc[:0], tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "header but no rows" in err
    _assert_nothing_written(out)


def test_wrong_delimiter_exits_2_with_hint(trained_store, base_leads, tmp_path, capsys):
    path = _write(base_leads, tmp_path / "leads.csv", sep=";")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2
    assert "wrong delimiter" in err and "';'" in err and "lead_id" in err
    _assert_nothing_written(out)


def test_missing_column_exits_2_naming_it(trained_store, base_leads, tmp_path, capsys):
    path = _write(base_leads.drop(columns=["employees"]), tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "employees" in err and "required column" in err
    _assert_nothing_written(out)


def test_renamed_id_column_exits_2(trained_store, base_leads, tmp_path, capsys):
    path = _write(base_leads.rename(columns={"lead_id": "LeadID"}), tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "lead_id" in err and "renamed" in err and "'LeadID'" in err
    _assert_nothing_written(out)


def test_non_utf8_bytes_exit_2_naming_encoding(trained_store, base_leads, tmp_path, capsys):
    """With an explicit encoding, bytes it cannot decode stop the run; the message names the
    byte offset and an encoding that would work. (`encoding: auto` reads this file as the
    legacy encoding with a warning: tests/data/test_file_formats.py.)"""
    leads = base_leads.copy()
    leads.loc[150, "last_name"] = "Müller-Größe"
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False, encoding="latin-1")
    params = yaml.safe_load(Path(trained_store["params_path"]).read_text())
    params["data"]["leads"]["encoding"] = "utf-8"
    explicit = Path(trained_store["params_path"]).with_name("params_utf8.yaml")
    explicit.write_text(yaml.safe_dump(params))
    out = tmp_path / "out" / "scores.csv"
    code = cli(["score", "--input", str(path), "--output", str(out),
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(explicit)])
    err = capsys.readouterr().err
    first_bad = next(i for i, b in enumerate(path.read_bytes()) if b > 127)
    assert code == 2 and "cannot decode as utf-8" in err and "encoding" in err
    assert f"at byte {first_bad:,}" in err and "cp1252" in err
    _assert_nothing_written(out)


def test_duplicate_ids_above_tolerance_exit_2(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[100:119, "lead_id"] = leads.loc[0:19, "lead_id"].to_numpy()  # 10% duplicates
    path = _write(leads, tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2
    assert "duplicate ids" in err and "lead_id" in err and leads.loc[0, "lead_id"] in err
    _assert_nothing_written(out)


def test_all_null_id_column_exits_2(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads["lead_id"] = ""
    path = _write(leads, tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "every row" in err and "lead_id: missing" in err
    _assert_nothing_written(out)


def test_every_row_bad_found_at_the_end_of_the_stream_writes_nothing(
        trained_store, base_leads, tmp_path, capsys):
    """Chunks of 50: the verdict 'every row bad' only exists after the last chunk."""
    leads = base_leads.copy()
    leads["created_at"] = "not a date"
    path = _write(leads, tmp_path / "leads.csv")
    out = tmp_path / "out" / "scores.parquet"
    code = cli(["score", "--input", str(path), "--output", str(out), "--chunk-size", "50",
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(trained_store["params_path"])])
    err = capsys.readouterr().err
    assert code == 2 and "every row" in err and "created_at: unparseable date" in err
    assert "not a date" in err
    _assert_nothing_written(out)


@pytest.mark.parametrize("case", ["missing_column", "binary"])
def test_bad_file_is_bad_input_even_without_a_model(trained_store, base_leads, tmp_path, capsys,
                                                    case):
    """The input is judged before the model is loaded: a broken file is exit 2 (bad input),
    not exit 1 (no such model)."""
    path = tmp_path / "leads.csv"
    if case == "missing_column":
        _write(base_leads.drop(columns=["industry"]), path)
    else:
        path.write_bytes(b"\x00\x01\x02" * 100)
    out = tmp_path / "out" / "scores.csv"
    code = cli(["score", "--input", str(path), "--output", str(out),
                "--model-uri", "models:/leadq/999", "--params", str(trained_store["params_path"])])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err
    assert ("industry" in err) if case == "missing_column" else ("binary" in err)
    _assert_nothing_written(out)


def test_unreadable_line_deep_in_the_file_writes_nothing(trained_store, base_leads, tmp_path,
                                                        capsys):
    """The reader runs ahead on its own thread: an undecodable byte in a late chunk (with an
    explicit encoding) must still stop the run with exit 2 and leave no output, although
    earlier chunks were scored. (A row with the wrong field count is quarantined instead.)"""
    path = _write(base_leads, tmp_path / "leads.csv")
    with open(path, "ab") as handle:
        handle.write(b"L_broken," + b",".join([b"\xff\xfe"] * (len(base_leads.columns) - 1))
                     + b"\n")
    params = yaml.safe_load(Path(trained_store["params_path"]).read_text())
    params["data"]["leads"]["encoding"] = "utf-8"
    explicit = Path(trained_store["params_path"]).with_name("params_utf8_deep.yaml")
    explicit.write_text(yaml.safe_dump(params))
    out = tmp_path / "out" / "scores.parquet"
    code = cli(["score", "--input", str(path), "--output", str(out), "--chunk-size", "50",
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(explicit)])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "cannot decode as utf-8" in err
    _assert_nothing_written(out)


def test_failed_write_mid_stream_leaves_nothing(trained_store, base_leads, tmp_path, capsys,
                                                monkeypatch):
    """Chunks are written on a background thread; a write failing on the third chunk (a full
    disk) must fail the run and remove the temporary output."""
    from leadq.pipelines.scoring.stream import ChunkWriter

    real_write, calls = ChunkWriter.write, []

    def failing_write(self, frame):
        calls.append(len(frame))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(ChunkWriter, "write", failing_write)
    path = _write(base_leads, tmp_path / "leads.csv")
    out = tmp_path / "out" / "scores.parquet"
    code = cli(["score", "--input", str(path), "--output", str(out), "--chunk-size", "50",
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(trained_store["params_path"])])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err  # not bad input: exit 1
    assert len(calls) >= 3
    _assert_nothing_written(out)


def test_mostly_bad_rows_exit_2(trained_store, base_leads, tmp_path, capsys):
    """Three date formats, two of them not the configured one: a misconfiguration, not noise."""
    leads = base_leads.copy()
    ts = pd.to_datetime(leads["created_at"])
    leads.loc[0::3, "created_at"] = ts[0::3].dt.strftime("%m/%d/%Y")
    leads.loc[1::3, "created_at"] = ts[1::3].dt.strftime("%d.%m.%Y")
    path = _write(leads, tmp_path / "leads.csv")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "max_rejected_share" in err and "created_at" in err
    _assert_nothing_written(out)


# ---------------------------------------------------------------- row-level: quarantined


def _row_case(trained_store, tmp_path, capsys, leads: pd.DataFrame, rejected: dict[str, int],
              params_path: Path | None = None, **write_kw
              ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    path = _write(leads, tmp_path / "leads.csv", **write_kw)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys,
                                     params_path=params_path)
    assert code == 0, err
    quarantined = _assert_accounting(summary, out, read=len(leads), rejected=rejected)
    assert f"read {len(leads):,} = used {len(leads) - sum(rejected.values()):,}" in err
    for reason in rejected:
        assert reason in err
    for key, count in summary["accounting"]["warnings"].items():
        assert f"warning {count:,}: {key}" in err  # unseen categories are reported
    return summary, quarantined, pd.read_csv(out, dtype={"lead_id": str})


def test_three_date_formats_quarantines_the_odd_ones(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    ts = pd.to_datetime(leads["created_at"])
    leads.loc[[3, 4], "created_at"] = ts[[3, 4]].dt.strftime("%m/%d/%Y")
    leads.loc[[7], "created_at"] = ts[[7]].dt.strftime("%d.%m.%Y")
    _, q, scored = _row_case(trained_store, tmp_path, capsys, leads,
                             {BAD_DATE: 3})
    assert list(q["lead_id"]) == list(leads.loc[[3, 4, 7], "lead_id"])
    assert list(q["created_at"]) == list(leads.loc[[3, 4, 7], "created_at"])
    assert set(q.columns) == set(leads.columns) | {"reason"}  # original columns plus reason
    assert not set(q["lead_id"]) & set(scored["lead_id"])


def test_future_dates_are_quarantined(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[[10, 11], "created_at"] = "2999-01-01 10:00:00"
    _, q, _ = _row_case(trained_store, tmp_path, capsys, leads,
                        {FUTURE: 2})
    assert set(q["reason"]) == {FUTURE}


def test_duplicate_and_null_ids_are_quarantined(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[50, "lead_id"] = leads.loc[49, "lead_id"]
    leads.loc[60, "lead_id"] = None
    _, q, scored = _row_case(trained_store, tmp_path, capsys, leads,
                             {"lead_id: duplicate id": 1, "lead_id: missing": 1})
    assert scored["lead_id"].is_unique
    assert (q["lead_id"] == leads.loc[49, "lead_id"]).sum() == 1


def test_padded_copy_of_an_id_is_a_duplicate(trained_store, base_leads, tmp_path, capsys):
    """" L7 " is typed as L7, so it must not reach the output a second time."""
    leads = base_leads.copy()
    leads.loc[70, "lead_id"] = f"  {leads.loc[30, 'lead_id']} "
    _, q, scored = _row_case(trained_store, tmp_path, capsys, leads,
                             {"lead_id: duplicate id": 1})
    assert scored["lead_id"].is_unique
    assert q["lead_id"].str.strip().tolist() == [leads.loc[30, "lead_id"]]


def _bounded_params(trained_store, directory: Path, bounds: dict) -> Path:
    """The store's params with contracts.numeric_bounds set (scoring reads them at run time)."""
    params = yaml.safe_load(Path(trained_store["params_path"]).read_text())
    params["contracts"]["numeric_bounds"] = bounds
    # Beside the store's params: its relative MLflow store is the one that holds the model.
    path = Path(trained_store["params_path"]).with_name(f"bounded_{directory.name}.yaml")
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("value, reason", [
    ("many", "employees: not a number"),
    ("inf", "employees: not finite"),
    ("-inf", "employees: not finite"),
])
def test_bad_numbers_are_quarantined(trained_store, base_leads, tmp_path, capsys, value, reason):
    leads = base_leads.copy()
    leads.loc[[5, 6], "employees"] = value
    _, q, _ = _row_case(trained_store, tmp_path, capsys, leads, {reason: 2})
    # The quarantine CSV is safe to open in a spreadsheet: "-inf" would be a formula there.
    shown = value if value[0] not in "-+" or value[1:2].isdigit() else "'" + value
    assert list(q["employees"]) == [shown, shown]


@pytest.mark.parametrize("value, reason", [
    ("-5", "employees: below 0 (contracts.numeric_bounds.employees)"),
    ("1e12", "employees: above 1e+09 (contracts.numeric_bounds.employees)"),
])
def test_numbers_outside_configured_bounds_are_quarantined(trained_store, base_leads, tmp_path,
                                                         capsys, value, reason):
    """A bound is a setting: the reason names it, so the user knows what to change."""
    leads = base_leads.copy()
    leads.loc[[5, 6], "employees"] = value
    bounded = _bounded_params(trained_store, tmp_path, {"employees": [0, 1e9]})
    _, q, _ = _row_case(trained_store, tmp_path, capsys, leads, {reason: 2},
                        params_path=bounded)
    assert list(q["employees"]) == [value, value]


@pytest.mark.parametrize("value", ["-5", "1e12"])
def test_numbers_are_unbounded_by_default(trained_store, base_leads, tmp_path, capsys, value):
    """No bound configured: a negative or huge number is scored (outside the training range it
    is a warning, not a rejection)."""
    leads = base_leads.copy()
    leads.loc[[5, 6], "employees"] = value
    summary, _, scored = _row_case(trained_store, tmp_path, capsys, leads, {})
    assert len(scored) == len(leads)
    assert summary["accounting"]["warnings"]["out_of_training_range:employees"] >= 2


def test_nan_is_missing_and_scored(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[[5, 6], "employees"] = "NaN"
    _, _, scored = _row_case(trained_store, tmp_path, capsys, leads, {})
    assert len(scored) == N and scored["score"].notna().all()


def test_ten_thousand_character_strings_are_quarantined(trained_store, base_leads, tmp_path,
                                                        capsys):
    leads = base_leads.copy()
    leads.loc[9, "job_title"] = "x" * 10_000
    leads.loc[8, "first_name"] = "y" * 10_000  # not a model input: harmless, scored
    _, q, scored = _row_case(trained_store, tmp_path, capsys, leads,
                             {"job_title: text longer than 1000 (contracts.max_text_length)": 1})
    assert len(q.loc[0, "job_title"]) == 10_000
    assert leads.loc[8, "lead_id"] in set(scored["lead_id"])


def test_truncated_last_line(trained_store, base_leads, tmp_path, capsys):
    """A file cut off in transfer: its last line has fewer fields than the header, a ragged
    row, quarantined with its line number and text (tests/data/test_file_formats.py)."""
    path = _write(base_leads, tmp_path / "full.csv")
    text = path.read_text()
    cut = text.rstrip("\n")
    last = cut.rindex("\n") + 1
    cut = cut[: last + len(",".join(base_leads.iloc[N - 1, :3])) + 4]  # cut in `campaign`
    trunc = tmp_path / "leads.csv"
    trunc.write_text(cut)
    code, summary, err, out = _score(trained_store, trunc, tmp_path / "x", capsys)
    assert code == 0, err
    reason = f"ragged row: 4 fields, header has {len(base_leads.columns)}"
    q = _assert_accounting(summary, out, read=N, rejected={reason: 1})
    assert q.loc[0, "lead_id"] == base_leads.loc[N - 1, "lead_id"]
    assert q.loc[0, "raw_line"] == cut[last:] and q.loc[0, "source_line"] == str(N + 1)


# ---------------------------------------------------------------- accepted as is


@pytest.mark.parametrize("case", ["bom", "crlf", "extra columns", "unicode names", "one row"])
def test_harmless_variants_are_scored_in_full(trained_store, base_leads, tmp_path, capsys, case):
    leads = base_leads.copy()
    kw: dict = {}
    if case == "bom":
        kw = {"encoding": "utf-8-sig"}
    elif case == "crlf":
        kw = {"lineterminator": "\r\n"}
    elif case == "extra columns":
        leads["utm_medium"] = "cpc"
        leads.insert(0, "row_no", np.arange(N).astype(str))
    elif case == "unicode names":
        leads.loc[:3, "first_name"] = ["José", "Zoë", "李", "Ωmega 🚀"]
        leads.loc[:3, "industry"] = ["Financé", "ソフト", "Retail", "Other"]
    elif case == "one row":
        leads = leads.head(1)
    summary, _, scored = _row_case(trained_store, tmp_path, capsys, leads, {}, **kw)
    assert list(scored["lead_id"]) == list(leads["lead_id"])
    if case == "unicode names":
        assert summary["accounting"]["warnings"].get("unseen_category:industry") == 2


def test_unseen_categories_are_scored_and_counted(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[:4, "campaign"] = "cmp_never_seen"
    leads.loc[5:6, "source"] = "Carrier pigeon"
    summary, _, scored = _row_case(trained_store, tmp_path, capsys, leads, {})
    assert summary["accounting"]["warnings"] == {"unseen_category:campaign": 5,
                                                 "unseen_category:source": 2}
    assert len(scored) == N


# ---------------------------------------------------------------- deals and feedback (training)


@pytest.fixture
def crm_copy(small_crm, tmp_path) -> dict[str, Path]:
    out = {}
    for table in ("leads", "deals", "feedback"):
        out[table] = tmp_path / f"{table}.csv"
        out[table].write_bytes(Path(small_crm[table]).read_bytes())
    return out


def _load(make_params, tmp_path, crm):
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params

    return load_crm(load_params(make_params(tmp_path, crm)))


def test_deal_before_lead_orphan_and_bad_outcome_are_quarantined(make_params, tmp_path, crm_copy):
    leads = pd.read_csv(crm_copy["leads"], dtype=str)
    deals = pd.read_csv(crm_copy["deals"], dtype=str)
    created = dict(zip(leads["lead_id"], leads["created_at"], strict=True))
    deals.loc[0, "closed_at"] = str(pd.Timestamp(created[deals.loc[0, "lead_id"]])
                                    - pd.Timedelta(days=3))
    deals.loc[1, "lead_id"] = "L_ORPHAN"
    deals.loc[2, "outcome"] = "maybe"
    deals.loc[3, "amount"] = "-100"
    deals.to_csv(crm_copy["deals"], index=False)
    tables = _load(make_params, tmp_path, crm_copy)
    acct = tables.accounting["deals"]
    assert (acct.read, acct.used) == (len(deals), len(deals) - 4)
    assert dict(acct.rejected) == {
        "closed_at: before the lead's created_at": 1, "lead_id: unknown lead": 1,
        "outcome: not one of ['lost', 'won']": 1, "amount: below 0": 1}
    q = pd.read_csv(quarantine_file(tmp_path, "deals"), dtype=str)
    assert list(q["deal_id"]) == list(deals.loc[:3, "deal_id"])
    assert list(q["reason"]) == ["closed_at: before the lead's created_at",
                                 "lead_id: unknown lead", "outcome: not one of ['lost', 'won']",
                                 "amount: below 0"]
    assert len(tables.deals) == len(deals) - 4 and not set(tables.deals.index) & {0, 1, 2, 3}


def test_feedback_bad_rating_status_and_orphan_are_quarantined(make_params, tmp_path, crm_copy):
    fb = pd.read_csv(crm_copy["feedback"], dtype=str)
    fb.loc[0, "rating"] = "9"
    fb.loc[1, "status"] = "perhaps"
    fb.loc[2, "lead_id"] = "L_NOBODY"
    fb.loc[3, "feedback_at"] = "yesterday"
    fb.to_csv(crm_copy["feedback"], index=False)
    tables = _load(make_params, tmp_path, crm_copy)
    acct = tables.accounting["feedback"]
    assert (acct.read, acct.used) == (len(fb), len(fb) - 4)
    assert dict(acct.rejected) == {
        "rating: above 5 (contracts.rating_range)": 1,
        "status: not one of ['accepted', 'rejected']": 1,
        "lead_id: unknown lead": 1, BAD_FEEDBACK_DATE: 1}
    q = pd.read_csv(quarantine_file(tmp_path, "feedback"), dtype=str, keep_default_na=False)
    # Feedback has its own `reason` column (why sales rejected): kept, the contract's beside it.
    pd.testing.assert_frame_equal(q.drop(columns="quarantine_reason"),
                                  fb.loc[:3].fillna(""), check_dtype=False)
    assert list(q["quarantine_reason"]) == [
        "rating: above 5 (contracts.rating_range)", "status: not one of ['accepted', 'rejected']",
        "lead_id: unknown lead", BAD_FEEDBACK_DATE]
    assert len(tables.feedback) == len(fb) - 4


def test_bad_leads_rows_in_training_are_quarantined_in_the_output_folder(make_params,
                                                                         tmp_path, crm_copy):
    leads = pd.read_csv(crm_copy["leads"], dtype=str)
    deals = pd.read_csv(crm_copy["deals"], dtype=str)
    fb = pd.read_csv(crm_copy["feedback"], dtype=str)
    # A lead that has both deals and feedback (the cascade has something to move).
    row = leads.index[leads["lead_id"].isin(deals["lead_id"])
                      & leads["lead_id"].isin(fb["lead_id"])][0]
    lead = leads.loc[row, "lead_id"]
    leads.loc[row, "created_at"] = "garbage"
    leads.to_csv(crm_copy["leads"], index=False)
    tables = _load(make_params, tmp_path, crm_copy)
    assert dict(tables.accounting["leads"].rejected) == {
        BAD_DATE: 1}
    q = pd.read_csv(quarantine_file(tmp_path, "leads"), dtype=str)
    assert q["lead_id"].tolist() == [lead]
    assert lead not in set(tables.leads["lead_id"])
    # The lead's deals and feedback now refer to an unknown lead: quarantined, not lost.
    for table, frame, why in (("deals", deals, "reason"), ("feedback", fb, "quarantine_reason")):
        theirs = frame.index[frame["lead_id"] == lead]
        acct = tables.accounting[table]
        assert dict(acct.rejected) == {"lead_id: unknown lead": len(theirs)}, table
        assert (acct.read, acct.used) == (len(frame), len(frame) - len(theirs)), table
        q = pd.read_csv(quarantine_file(tmp_path, table), dtype=str)
        assert q["lead_id"].tolist() == [lead] * len(theirs)
        assert set(q[why]) == {"lead_id: unknown lead"}
        used = getattr(tables, table)
        assert lead not in set(used["lead_id"]) and not set(used.index) & set(theirs)


@pytest.mark.parametrize("table, change, expected", [
    ("deals", "drop closed_at", "closed_at"),
    ("feedback", "semicolons", "wrong delimiter"),
    ("deals", "header only", "header but no rows"),
])
def test_validate_table_level_failures_exit_2(make_params, tmp_path, crm_copy, capsys,
                                              table, change, expected):
    frame = pd.read_csv(crm_copy[table], dtype=str)
    if change.startswith("drop"):
        frame = frame.drop(columns=[change.split()[1]])
        frame.to_csv(crm_copy[table], index=False)
    elif change == "semicolons":
        frame.to_csv(crm_copy[table], index=False, sep=";")
    else:
        frame.iloc[:0].to_csv(crm_copy[table], index=False)
    params = make_params(tmp_path, crm_copy)
    code = cli(["validate", "--params", str(params), "--docs", str(tmp_path / "docs")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and str(crm_copy[table]) in err
    assert not (tmp_path / "docs").exists()


def test_parquet_input_with_bad_rows(trained_store, base_leads, tmp_path, capsys):
    leads = base_leads.copy()
    leads.loc[3, "created_at"] = "soon"
    path = tmp_path / "leads.parquet"
    leads.to_parquet(path, index=False)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    q = _assert_accounting(summary, out, read=N,
                           rejected={BAD_DATE: 1})
    assert q["lead_id"].tolist() == [leads.loc[3, "lead_id"]]


def test_params_yaml_parses(tmp_path, base_params):
    assert yaml.safe_load(yaml.safe_dump(base_params))["contracts"]["max_rejected_share"] == 0.5
