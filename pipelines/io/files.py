"""Reading CRM tables and writing outputs.

Inputs: CSV (`.csv`, `.tsv`, `.txt`; compressed as `.gz`, `.bz2`, `.zst` or a `.zip` holding one
CSV), Parquet (`.parquet`/`.pq`) and Excel (`.xlsx`/`.xlsm`); a directory or a glob of CSV or
Parquet files reads as one table. CSV is parsed by pyarrow's streaming reader: cells stay text,
pandas' missing-value spellings read as missing, and a row with more or fewer fields than the
header (a ragged row) is handed back to the caller, with its line number and raw text, to be
quarantined instead of failing the file. Outputs are written atomically (a temporary file
beside the target, renamed into place) with the mode the umask gives.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import glob
import gzip
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leadq.errors import BadInputError
from leadq.pipelines.io.chunks import Chunk, RaggedRow
from leadq.pipelines.io.progress import log
from leadq.pipelines.io.run import record_output
from leadq.pipelines.io.spreadsheet import guard_formulas
from leadq.pipelines.io.urls import is_database_url

BOM = "\ufeff"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
COMPRESSED = (".gz", ".bz2", ".zst", ".zip")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
LEGACY_ENCODING = "cp1252"  # what Excel on Windows saves "CSV" as in Western Europe and the US
HEAD_BYTES = 1 << 16        # enough for the header and the delimiter sniff
BLOCK_BYTES = 8 << 20       # pyarrow parse block: fewer, larger blocks parse faster
_GLOB = re.compile(r"[*?\[]")


# --------------------------------------------------------------------------- formats and paths

def _suffixes(path: str | Path) -> tuple[str, str]:
    """(format suffix, compression suffix): leads.csv.gz → ('.csv', '.gz')."""
    name = Path(str(path).rstrip("/")).name.lower()
    stem, comp = os.path.splitext(name)
    if comp in COMPRESSED:
        inner = os.path.splitext(stem)[1]
        return (inner or ".csv"), comp  # leads.gz: a compressed CSV with no inner suffix
    return comp, ""


def table_format(path: str | Path) -> str:
    """'csv', 'parquet' or 'excel', from the name (a directory: from the files in it)."""
    p = Path(path)
    if p.is_dir():
        files = _directory_files(p)
        return table_format(files[0]) if files else "csv"
    suffix, comp = _suffixes(path)
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES and not comp:
        return "parquet"
    if suffix in EXCEL_SUFFIXES and not comp:
        return "excel"
    raise BadInputError(
        f"{path}: unsupported file type {suffix + comp!r} (use .csv, .tsv, .txt, optionally "
        "compressed as .gz/.bz2/.zst/.zip, .parquet or .xlsx)")


def output_format(path: str | Path) -> str:
    """'csv' or 'parquet': the formats leadq writes."""
    suffix, comp = _suffixes(path)
    if suffix in (".csv", ".txt") and not comp:
        return "csv"
    if suffix in PARQUET_SUFFIXES and not comp:
        return "parquet"
    raise BadInputError(f"{path}: cannot write {suffix + comp!r}: write .csv or .parquet")


def _is_table_file(p: Path) -> bool:
    name = p.name
    if name.startswith((".", "_", "~$")) or name.endswith((".tmp", ".rejected.csv")):
        return False  # hidden, Spark's _SUCCESS, Excel lock files, our temps and quarantines
    try:
        table_format(p)
    except BadInputError:
        return False
    return p.is_file()


def _directory_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if _is_table_file(p))


def input_files(path: str | Path, name: str = "table") -> list[Path]:
    """The files a `--input` names: one file, every table file in a directory (sorted), or
    the files a glob matches (sorted). They must all be of one format."""
    text = str(path)
    p = Path(text)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = _directory_files(p)
        what = f"directory {p}"
    elif _GLOB.search(text):
        files = sorted(Path(f) for f in glob.glob(text) if _is_table_file(Path(f)))
        what = f"pattern {text!r}"
    else:
        raise BadInputError(f"{name}: file not found: {p}")
    if not files:
        raise BadInputError(f"{name}: {what} holds no CSV, Parquet or Excel file "
                            "(expected a file, or a directory of CSV/Parquet files)")
    kinds = {table_format(f) for f in files}
    if len(kinds) > 1 or "excel" in kinds and len(files) > 1:
        shown = ", ".join(f.name for f in files[:6])
        raise BadInputError(f"{name}: {what} mixes formats ({shown}): one table is read from "
                            "files of one format (and one Excel file at most)")
    return files


# --------------------------------------------------------------------------- headers

_VALUE_LIKE = re.compile(
    r"[+-]?\d[\d.,]*(e[+-]?\d+)?%?"            # 42, 3.5, 1,200, 1e6, 12%
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?"  # 2024-05-01, 2024.05.01 10:00
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"          # 01/05/2024
    r"|[^@\s]+@[^@\s]+\.\w+"                     # an email address
    r"|\+?[\d ()-]{7,}"                         # a phone number
    r"|true|false", re.IGNORECASE)


def check_header(names: list[str], path: str | Path, name: str,
                 required: Iterable[str] | None = None) -> None:
    """Table-level refusals of a header (`names` as written): a first line that looks like a
    data row (the export has no header), the same name twice (after trimming and
    case-folding: leadq would have to pick one), or an unnamed column where the params need a
    column the header lacks."""
    clean = _clean_names(names)
    looks = [c for c in clean if c and _VALUE_LIKE.fullmatch(c)]
    if len(looks) >= 2 and len(looks) >= 0.25 * len(clean):
        # Positions and kinds only: a header-less export's first line is a lead (an email, a
        # phone number), and messages reach logs.
        where = [i + 1 for i, c in enumerate(clean) if c and _VALUE_LIKE.fullmatch(c)][:5]
        raise BadInputError(
            f"{path}: {name} header looks like a data row ({len(looks)} of {len(clean)} "
            f"names are numbers, dates, emails or phone numbers, e.g. columns {where}) "
            "(check: header row): export the file with its header line")
    seen: dict[str, list[str]] = {}
    for raw, col in zip(names, clean, strict=True):
        seen.setdefault(col.casefold(), []).append(str(raw).lstrip(BOM))
    dups = [" = ".join(repr(c) for c in group) for key, group in seen.items()
            if len(group) > 1 and key]
    if dups:
        raise BadInputError(
            f"{path}: {name} header names a column more than once: {'; '.join(dups)} "
            "(check: unique column names; names are compared trimmed and case-folded): "
            "rename or drop the copies in the export")
    empty = [i + 1 for i, c in enumerate(clean) if not c]
    missing = [c for c in (required or []) if c and c not in clean]
    if empty and missing:
        raise BadInputError(
            f"{path}: {name} header has no name for column(s) "
            f"{', '.join(map(str, empty))} and the params need column(s) {', '.join(missing)} "
            "that it lacks (check: named columns): name the columns in the export")


def _clean_names(names: Iterable) -> list[str]:
    return [str(c).lstrip(BOM).strip() for c in names]


# --------------------------------------------------------------------------- encodings

def _bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Python's utf-16 codec reads the BOM and drops it
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM: mostly-ASCII text has a NUL in every other byte."""
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.3 * half and even < 0.02 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.02 * half:
        return "utf-16-be"
    return None


def _first_bad_byte(open_bytes: Callable[[], io.BufferedIOBase],
                    encoding: str) -> tuple[int, bytes] | None:
    """Offset and bytes of the first byte `encoding` cannot decode (None: it all decodes)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open_bytes() as handle:
        while True:
            block = handle.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # The decoder's buffer holds the undecoded tail of the previous block.
                pending = len(decoder.getstate()[0]) if hasattr(decoder, "getstate") else 0
                start = offset - pending + exc.start
                return max(start, 0), exc.object[exc.start:exc.start + 4]
            if not block:
                return None
            offset += len(block)


def _would_work(open_bytes, tried: str, spec: dict) -> str:
    """The first encoding among the likely ones that decodes the whole file."""
    candidates = [spec.get("legacy_encoding") or LEGACY_ENCODING, LEGACY_ENCODING, "latin-1"]
    for enc in dict.fromkeys(c for c in candidates if codecs.lookup(c).name
                             != codecs.lookup(tried).name):
        if _first_bad_byte(open_bytes, enc) is None:
            return enc
    return "latin-1"


def _decode_error(path, name: str, encoding: str, where: tuple[int, bytes], open_bytes,
                  spec: dict) -> BadInputError:
    offset, raw = where
    works = _would_work(open_bytes, encoding, spec)
    return BadInputError(
        f"{path}: cannot decode as {encoding} at byte {offset:,} ({raw!r}); the file decodes "
        f"as {works}: set data.{name}.encoding: {works} (or auto, with data.{name}."
        f"legacy_encoding: {works}) (check: encoding)")


def _garbled_utf8(open_bytes: Callable[[], io.BufferedIOBase], codec: str) -> bool:
    """Whether reading the file as the single-byte `codec` garbles UTF-8 text: it is valid
    UTF-8 and holds multi-byte sequences. One pass over the file, made only when a legacy
    encoding is pinned in params."""
    if codec in ("utf-8", "utf-8-sig", "ascii") or "16" in codec or "32" in codec:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    accented = False
    with open_bytes() as handle:
        while block := handle.read(1 << 20):
            accented = accented or not block.isascii()
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return accented


def _choose_encoding(path, name: str, spec: dict, head: bytes, open_bytes,
                     *, full_scan: bool) -> str:
    """The encoding to read with: a BOM wins; `auto` detects UTF-16 and otherwise reads UTF-8,
    falling back to the legacy encoding (with a warning) when the file is not valid UTF-8."""
    configured = str(spec.get("encoding") or "auto")
    bom = _bom_encoding(head)
    if bom:
        return bom  # a byte-order mark says what the file is, whatever params expected
    utf16 = _utf16_without_bom(head)
    if configured.lower() != "auto":
        try:
            codec = codecs.lookup(configured).name
        except LookupError as exc:
            raise BadInputError(f"data.{name}.encoding: unknown encoding {configured!r}") from exc
        if b"\x00" in head and "16" not in codec and "32" not in codec:
            if utf16:
                raise BadInputError(
                    f"{path}: cannot decode as {configured}: the file looks like {utf16} "
                    f"without a byte-order mark (NUL in every other byte); set data.{name}."
                    f"encoding: {utf16} (or auto) (check: encoding)")
            raise BadInputError(f"{path}: {name} file looks binary (NUL bytes), not CSV "
                                "(check: readable file)")
        if full_scan and _garbled_utf8(open_bytes, codec):
            # The training export was Latin-1, tonight's is UTF-8: every accent would turn
            # into two characters (é → Ã©) and each such category would be new to the model.
            log.warning("%s: data.%s.encoding is %s, but the file reads as UTF-8 with accented "
                        "text: read as %s, that text is garbled; set data.%s.encoding: auto "
                        "(UTF-8, falling back to legacy_encoding)", path, name, configured,
                        configured, name)
        return configured
    if utf16:
        return utf16
    if b"\x00" in head:
        raise BadInputError(f"{path}: {name} file looks binary (NUL bytes), not CSV "
                            "(check: readable file)")
    if not full_scan:  # the header alone: judge the bytes read so far
        open_bytes = lambda: io.BytesIO(head[:_complete_utf8(head)])  # noqa: E731
    bad = _first_bad_byte(open_bytes, "utf-8")
    if bad is None:
        return "utf-8"
    legacy = spec.get("legacy_encoding") or LEGACY_ENCODING
    if _first_bad_byte(open_bytes, legacy) is not None:
        raise _decode_error(path, name, "utf-8", bad, open_bytes, spec)
    if full_scan:  # once per read, not again for the header peek
            log.warning("%s is not UTF-8 (byte %s: %r): read as %s (data.%s.legacy_encoding); "
                    "set data.%s.encoding to silence this", path, f"{bad[0]:,}", bad[1], legacy,
                    name, name)
    return legacy


# --------------------------------------------------------------------------- CSV

def _complete_utf8(head: bytes) -> int:
    """Length of `head` without a UTF-8 sequence cut at its end."""
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the start of the last character
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4
            return len(head) - back if need > back else len(head)
    return len(head)


def _opener(path: Path, name: str) -> Callable[[], io.BufferedIOBase]:
    """A function that opens the file's (decompressed) bytes from the start."""
    comp = _suffixes(path)[1]
    if comp == ".gz":
        return lambda: gzip.open(path, "rb")
    if comp == ".bz2":
        return lambda: bz2.open(path, "rb")
    if comp == ".zst":
        def open_zst():
            import pyarrow as pa

            try:
                return pa.input_stream(str(path), compression="zstd")
            except (pa.ArrowNotImplementedError, ValueError) as exc:
                raise BadInputError(f"{path}: this pyarrow cannot read .zst: {exc}") from exc
        return open_zst
    if comp == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()
                           and not m.filename.startswith("__MACOSX/")
                           and not Path(m.filename).name.startswith(".")]
        except zipfile.BadZipFile as exc:
            raise BadInputError(f"{path}: not a readable zip file ({exc})") from exc
        if len(members) != 1:
            shown = ", ".join(m.filename for m in members[:6]) or "nothing"
            raise BadInputError(f"{path}: a zip must hold exactly one CSV file, this one holds "
                                f"{len(members)} ({shown}) (check: readable file)")

        def open_member():
            zf = zipfile.ZipFile(path)
            handle = zf.open(members[0])
            handle.close_zip = zf  # keeps the archive open as long as the member is read
            return handle
        return open_member
    return lambda: open(path, "rb")


def _read_head(open_bytes, path, name: str) -> bytes:
    try:
        with open_bytes() as handle:
            return handle.read(HEAD_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInputError(f"{path}: cannot read {name} file: {exc} (check: readable file)") \
            from exc


def _delimiter(path: Path, spec: dict, text: str) -> str:
    configured = spec.get("delimiter")
    if _suffixes(path)[0] == ".tsv":
        return "\t"  # the extension says how the file is separated
    if configured and configured != "auto":
        return configured  # one character: the params loader checks it (_one_delimiter)
    from leadq.pipelines.profiling.sniff import sniff_delimiter

    return sniff_delimiter(text)


def describe_csv(path: str | Path, spec: dict | None = None, *, name: str = "table") -> dict:
    """What the reader makes of a CSV file with `encoding: auto` and `delimiter: auto`:
    encoding, whether it starts with a byte-order mark, delimiter and line ends (for
    `leadq init`, which writes down what differs from the defaults)."""
    from leadq.pipelines.profiling.sniff import line_ending

    path = Path(path)
    spec = {"encoding": "auto", "delimiter": "auto", **(spec or {})}
    open_bytes = _opener(path, name)
    head = _read_head(open_bytes, path, name)
    plan, _ = _plan_csv(path, spec, name, full_scan=True, required=None)
    utf8 = plan.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    return {"encoding": plan.encoding, "bom": _bom_encoding(head) is not None,
            "legacy": not utf8 and _bom_encoding(head) is None
            and _utf16_without_bom(head) is None,
            "delimiter": plan.delimiter, "line_end": line_ending(head), "columns": plan.clean}


def _header(text: str, delimiter: str) -> list[str]:
    """The first record of the file, parsed as CSV (a quoted name may hold a line break)."""
    reader = csv.reader(io.StringIO(text.lstrip(BOM), newline=""), delimiter=delimiter)
    return next(reader, [])


@dataclass
class _CsvPlan:
    encoding: str
    delimiter: str
    names: list[str]      # as written (pyarrow's column names)
    clean: list[str]      # trimmed, BOM dropped: what leadq calls them


def _plan_csv(path: Path, spec: dict, name: str, *, full_scan: bool,
              required: Iterable[str] | None) -> tuple[_CsvPlan, Callable]:
    open_bytes = _opener(path, name)
    head = _read_head(open_bytes, path, name)
    if not head.strip() or head.strip() in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE,
                                            codecs.BOM_UTF16_BE):
        raise BadInputError(f"{path}: {name} file is empty (check: readable file)")
    encoding = _choose_encoding(path, name, spec, head, open_bytes, full_scan=full_scan)
    text = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        decoded = text.decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, name, encoding, (exc.start, head[exc.start:exc.start + 4]),
                            open_bytes, spec) from exc
    if not decoded.strip(BOM + " \r\n\t"):
        raise BadInputError(f"{path}: {name} file is empty (check: readable file)")
    decoded = decoded.lstrip(BOM + "\r\n")
    delimiter = _delimiter(path, spec, decoded)
    names = _header(decoded, delimiter)
    clean = _clean_names(names)
    check_header(names, path, name, required)
    return _CsvPlan(encoding, delimiter, names, clean), open_bytes


def _iter_csv(path: Path, spec: dict, name: str, chunk_size: int | None,
              required: Iterable[str] | None, header_only: bool = False,
              expect: list[str] | None = None) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from pandas._libs.parsers import STR_NA_VALUES

    plan, open_bytes = _plan_csv(path, spec, name, full_scan=not header_only, required=required)
    if expect is not None and plan.clean != expect:
        raise BadInputError(f"{path}: header differs from the first file's ({', '.join(expect[:6])}"
                            f", …): the files of one table must have the same columns")
    if header_only:
        yield Chunk(pd.DataFrame({c: pd.Series([], dtype="str") for c in plan.clean}))
        return
    ragged: list[RaggedRow] = []

    def on_invalid(row) -> str:
        # Called by pyarrow for each row whose field count differs from the header's.
        values = next(csv.reader([row.text], delimiter=plan.delimiter), [])
        ragged.append(RaggedRow(source=str(path), line=row.number, fields=row.actual_columns,
                                expected=row.expected_columns, text=row.text, values=values))
        return "skip"

    codec = codecs.lookup(plan.encoding).name
    read_options = pacsv.ReadOptions(
        use_threads=False,  # row numbers of ragged rows are only known single-threaded
        block_size=BLOCK_BYTES,
        # pyarrow reads UTF-8 natively (and drops a UTF-8 BOM); anything else is transcoded.
        encoding="utf8" if codec in ("utf-8", "utf-8-sig") else plan.encoding)
    parse_options = pacsv.ParseOptions(delimiter=plan.delimiter, newlines_in_values=True,
                                       invalid_row_handler=on_invalid)
    # pandas' default missing-value spellings ("", NA, null, NaN, n/a, …), as pd.read_csv read
    # them: the contract tests pin those semantics.
    convert_options = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in plan.names}, null_values=list(STR_NA_VALUES),
        strings_can_be_null=True, quoted_strings_can_be_null=True, check_utf8=True)
    handle = open_bytes()
    offset = 0
    try:
        reader = pacsv.open_csv(handle, read_options=read_options, parse_options=parse_options,
                                convert_options=convert_options)
        pending: list = []
        have = 0
        yielded = False

        def emit(table) -> Chunk:
            nonlocal offset
            frame = table.to_pandas()
            frame.columns = plan.clean
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            found = list(ragged)
            ragged.clear()
            return Chunk(frame, found)

        for batch in reader:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            have += batch.num_rows
            # pyarrow's batches are blocks of bytes; chunks are `chunk_size` rows, as before.
            while chunk_size is not None and have >= chunk_size:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                rest = table.slice(chunk_size)
                pending, have = rest.to_batches(), rest.num_rows
                yielded = True
                yield emit(table.slice(0, chunk_size))
        if pending or not yielded or ragged:
            yield emit(pa.Table.from_batches(pending, schema=reader.schema))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message.lower():
            where = _first_bad_byte(open_bytes, "utf-8") or (0, b"")
            raise _decode_error(path, name, "utf-8", where, open_bytes, spec) from exc
        if "Empty CSV file" in message:
            raise BadInputError(f"{path}: {name} file is empty (check: readable file)") from exc
        raise BadInputError(f"{path}: cannot parse as CSV: {message.splitlines()[0]}") from exc
    except UnicodeDecodeError as exc:
        where = _first_bad_byte(open_bytes, plan.encoding) or (exc.start, b"")
        raise _decode_error(path, name, plan.encoding, where, open_bytes, spec) from exc
    except (EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise BadInputError(f"{path}: cannot read {name} file: {exc} (check: readable file)") \
            from exc
    finally:
        handle.close()
        archive = getattr(handle, "close_zip", None)
        if archive is not None:
            archive.close()


# --------------------------------------------------------------------------- Parquet, Excel

def _iter_parquet(path: Path, name: str, chunk_size: int | None,
                  required: Iterable[str] | None, header_only: bool = False,
                  expect: list[str] | None = None) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    # pre_buffer keeps every column chunk read so far alive; off, memory stays flat
    # however many row groups the file has (1.68x → 1.25x peak RSS from 1M to 10M).
    pf = pq.ParquetFile(path, pre_buffer=False)
    clean = _clean_names(pf.schema_arrow.names)
    check_header(pf.schema_arrow.names, path, name, required)
    if expect is not None and clean != expect:
        raise BadInputError(f"{path}: columns differ from the first file's: the files of one "
                            "table must have the same columns")
    if header_only:
        yield Chunk(_renamed(pf.schema_arrow.empty_table().to_pandas(), clean))
        return
    if chunk_size is None:
        frames = iter([pf.read().to_pandas()])
    else:
        frames = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_size))
    first = True
    for frame in frames:
        first = False
        yield Chunk(_renamed(frame, clean))
    if first:  # a Parquet file with no row groups still has a schema
        yield Chunk(_renamed(pf.schema_arrow.empty_table().to_pandas(), clean))


def _renamed(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    frame.columns = names
    return frame


def _excel_text(value) -> object:
    """An Excel cell as the text a CSV export would hold (None: missing)."""
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # Excel stores 42 as 42.0
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _iter_excel(path: Path, spec: dict, name: str, chunk_size: int | None,
                required: Iterable[str] | None, header_only: bool = False) -> Iterator[Chunk]:
    """The first sheet (or data.<table>.sheet) read row by row in openpyxl's read-only mode."""
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise BadInputError(f"{path}: reading Excel needs openpyxl") from exc
    from pandas._libs.parsers import STR_NA_VALUES

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read xlsx: {exc} (check: readable file)") from exc
    try:
        sheet = spec.get("sheet")
        if sheet is None:
            ws = book.worksheets[0]
        elif isinstance(sheet, int) and 0 <= sheet < len(book.worksheets):
            ws = book.worksheets[sheet]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise BadInputError(f"{path}: no sheet {sheet!r} (data.{name}.sheet); the workbook "
                                f"has {', '.join(map(repr, book.sheetnames))}")
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        while header is not None and all(v is None for v in header):
            header = next(rows, None)  # leading blank rows
        if header is None:
            raise BadInputError(f"{path}: {name} file is empty (no rows on sheet "
                                f"{ws.title!r}) (check: readable file)")
        names = [("" if v is None else str(v)) for v in header]
        while names and not names[-1]:
            names.pop()  # openpyxl pads rows to the sheet's widest
        clean = _clean_names(names)
        check_header(names, path, name, required)
        n = len(clean)
        na = set(STR_NA_VALUES)
        empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in clean})
        if header_only:
            yield Chunk(empty)
            return
        buffer: list[list] = []
        ragged: list[RaggedRow] = []
        offset, yielded = 0, False
        line = 1 + (ws.min_row or 1) - 1

        def emit() -> Chunk:
            nonlocal offset
            frame = pd.DataFrame(buffer, columns=clean, dtype="str") if buffer else empty.copy()
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            chunk = Chunk(frame, list(ragged))
            buffer.clear()
            ragged.clear()
            return chunk

        for values in rows:
            line += 1
            cells = [_excel_text(v) for v in values]
            while cells and cells[-1] is None:
                cells.pop()
            if not cells:
                continue  # a blank row, as a blank CSV line
            cells = [None if (c is None or c in na) else c for c in cells]
            if len(cells) > n:
                ragged.append(RaggedRow(source=str(path), line=line, fields=len(cells),
                                        expected=n, values=["" if c is None else c
                                                            for c in cells],
                                        text=",".join("" if c is None else c for c in cells)))
                continue
            buffer.append(cells + [None] * (n - len(cells)))
            if chunk_size is not None and len(buffer) >= chunk_size:
                yielded = True
                yield emit()
        if buffer or ragged or not yielded:
            yield emit()
    finally:
        book.close()


# --------------------------------------------------------------------------- the reading API

def iter_chunks(path: str | Path, spec: dict | None = None, *, name: str = "table",
                chunk_size: int | None = None, required: Iterable[str] | None = None,
                header_only: bool = False) -> Iterator[Chunk]:
    """Yield a table in chunks of `chunk_size` rows (None: one piece), each with the ragged
    rows found while reading it; a directory or glob yields its files one after another.

    CSV cells are read as text so every later type decision is explicit and the same for
    training and scoring; a byte-order mark on the header is dropped. Every reading problem,
    even one found in the last chunk, becomes a BadInputError naming the file. `required`:
    the columns the caller's params need (for the header checks' messages).

    This is the one place every command reads a table through: a `path` that is a database
    URL (pipelines.io.database) reads `spec`'s `table` or `query` there instead, streamed in
    the same chunks.
    """
    spec = spec or {}
    if is_database_url(path):  # data.<name>.path is a database URL: its table or query
        from leadq.pipelines.io import database as db

        yield from db.iter_table(str(path), spec, name=name, chunk_size=chunk_size,
                                 header_only=header_only)
        return
    files = input_files(path, name)
    expect: list[str] | None = None
    offset = 0
    for file in files:
        fmt = table_format(file)
        try:
            if fmt == "parquet":
                chunks = _iter_parquet(file, name, chunk_size, required, header_only, expect)
            elif fmt == "excel":
                chunks = _iter_excel(file, spec, name, chunk_size, required, header_only)
            else:
                chunks = _iter_csv(file, spec, name, chunk_size, required, header_only, expect)
            for chunk in chunks:
                if expect is None:
                    expect = list(chunk.frame.columns)
                if len(files) > 1:  # one running index over the files, as for one file
                    chunk.frame.index = pd.RangeIndex(offset, offset + len(chunk.frame))
                offset += len(chunk.frame)
                yield chunk
        except BadInputError:
            raise
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInputError(f"{file}: cannot read {fmt}: {exc}") from exc
        if header_only:
            return


def rows_at_most(path: str | Path, limit: int, spec: dict | None = None) -> bool:
    """True when the table at `path` (any input form) has at most `limit` data rows, reading
    no more than it needs: Parquet footers, else the lines of the (decompressed) text."""
    files = input_files(path)
    if all(table_format(f) == "parquet" for f in files):
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in files) <= limit
    rows = 0
    for file in files:
        if table_format(file) == "excel":
            for chunk in iter_chunks(file, spec, chunk_size=limit + 1):
                rows += len(chunk.frame)
                break
        else:
            with _opener(file, "table")() as handle:
                lines = 0
                while block := handle.read(1 << 20):
                    lines += block.count(b"\n")
                    if rows + lines > limit + 1:
                        return False
                rows += max(lines - 1, 0)  # less the header
        if rows > limit:
            return False
    return True


def ragged_error(row: RaggedRow) -> BadInputError:
    # No cell values: the row is a lead's (names, emails), and messages reach logs.
    return BadInputError(f"{row.source}: {row.reason} at {row.where} (check: ragged rows)")


def iter_table(path: str | Path, spec: dict | None = None, *, name: str = "table",
               chunk_size: int | None = None) -> Iterator[pd.DataFrame]:
    """The frames of iter_chunks, for callers that cannot quarantine: a ragged row stops the
    read with a BadInputError naming its line."""
    for chunk in iter_chunks(path, spec, name=name, chunk_size=chunk_size):
        if chunk.ragged:
            raise ragged_error(chunk.ragged[0])
        yield chunk.frame


def peek_columns(path: str | Path, spec: dict | None = None, *,
                 name: str = "table") -> list[str] | None:
    """A table's column names, read without its rows, so a bad file is refused before slow
    work such as loading a model. Raises what iter_chunks raises for an unreadable file or a
    refused header."""
    with contextlib.closing(iter_chunks(path, spec, name=name, header_only=True)) as chunks:
        first = next(chunks, None)
    return None if first is None else list(first.frame.columns)


def read_table(path: str | Path, spec: dict | None = None, *, name: str = "table") -> pd.DataFrame:
    """The whole table in one frame (see iter_table)."""
    frames = list(iter_table(path, spec, name=name))
    return frames[0] if len(frames) == 1 else pd.concat(frames)


def read_table_ragged(path: str | Path, spec: dict | None = None, *, name: str = "table",
                      required: Iterable[str] | None = None
                      ) -> tuple[pd.DataFrame, list[RaggedRow]]:
    """The whole table in one frame and its ragged rows (see iter_chunks)."""
    chunks = list(iter_chunks(path, spec, name=name, required=required))
    frame = chunks[0].frame if len(chunks) == 1 else pd.concat([c.frame for c in chunks])
    return frame, [r for c in chunks for r in c.ragged]


def ragged_frame(rows: list[RaggedRow], columns: list[str]) -> pd.DataFrame:
    """Ragged rows in a table's columns (fields by position, as far as they go), with where
    they came from and their raw text, for the quarantine."""
    n = len(columns)
    data = [(r.values + [None] * n)[:n] for r in rows]
    frame = pd.DataFrame(data, columns=columns, dtype=object)
    many = len({r.source for r in rows}) > 1
    frame["source_line"] = [f"{Path(r.source).name}:{r.line}" if many else r.line for r in rows]
    frame["raw_line"] = [r.text for r in rows]
    return frame


def require_columns(
    frame: pd.DataFrame, columns: list[str], *, path: str | Path, name: str
) -> None:
    """Stop with a message naming the file and every missing column."""
    missing = [c for c in columns if c and c not in frame.columns]
    if missing:
        shown = ", ".join(list(frame.columns)[:12])
        raise BadInputError(
            f"{path}: {name} table is missing required column(s) {', '.join(missing)}; "
            f"found: {shown}"
        )


# --------------------------------------------------------------------------- writing

def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask can only
    be read by setting it, which races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: Path, *, private: bool = False) -> None:
    """Give a finished temporary file the mode a plain `open` would have (mkstemp makes it
    0600 and the rename keeps that); `private` files (quarantines: personal data) stay 0600."""
    os.chmod(path, 0o600 if private else 0o666 & ~current_umask())


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temps(path: Path) -> None:
    """Remove the temporary files a killed run left beside `path` (`.<name>.<pid>-*.tmp` of a
    process that is gone, or of the older `.<name>.*.tmp` form), so they do not pile up."""
    prefix = _temp_prefix(path)
    if not path.parent.is_dir():
        return
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        middle = tmp.name[len(prefix):-len(".tmp")]
        pid_text = middle.split("-", 1)[0]
        if pid_text.isdigit() and "-" in middle:
            pid = int(pid_text)
            if pid == os.getpid():
                continue  # this process's own (another writer of the same target)
            try:
                os.kill(pid, 0)
                continue  # a live run is writing it
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, someone else's
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            log.info("removed a temporary file left by an earlier run: %s", tmp)


def temp_beside(path: Path) -> Path:
    """An empty temporary file in the target's directory (created if missing), so the final
    rename is atomic; the name carries this process's id so a later run can tell a killed
    run's leftovers from a live one's."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the output directory {path.parent}: "
                                 f"{exc.strerror}") from exc
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}-", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    return Path(tmp)


def same_path(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` name one file: the same inode when both exist (a hard link or a
    symlink is caught), else the same resolved path."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_overwrite(reads: Iterable[tuple[str, str | Path]],
                     writes: Iterable[tuple[str, str | Path]]) -> None:
    """Stop before any work when a path the command writes (or replaces, or removes) is one
    it reads: a user's export must never be replaced by an output or a quarantine. Each item
    is (what it is, path), named in the message. A target that is a directory is refused too,
    since it could only fail later, after the work."""
    reads = list(reads)
    for what, target in writes:
        for source_what, source in reads:
            if same_path(target, source):
                raise BadInputError(
                    f"{target}: the {what} would replace {source}, the {source_what} this "
                    f"command reads; write the {what} to another path (leadq never writes to "
                    "a path it reads)")
        if Path(target).is_dir():
            raise BadInputError(f"{target}: the {what} path is a directory; give a file path "
                                "(or remove the directory)")


def publish_together(moves: list[tuple[Path | None, Path]]) -> None:
    """Rename each finished temporary file onto its target (None: remove the target), all or
    none: when one move fails, the targets already replaced get their earlier file back and
    every temporary file is removed, so a failure publishes nothing.

    The earlier file is kept through a hard link (a copy where links are not allowed) rather
    than moved aside, so each target is always either the old or the new file."""
    backups: list[tuple[Path, Path | None]] = []  # (target, its earlier file) in move order
    try:
        for tmp, target in moves:
            backup = None
            if target.exists() and not target.is_dir():
                backup = temp_beside(target)
                backup.unlink()
                try:
                    os.link(target, backup)
                except OSError:
                    shutil.copy2(target, backup)
            backups.append((target, backup))
            if tmp is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(tmp, target)
    except BaseException:
        for target, backup in reversed(backups):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                elif not target.is_dir():
                    target.unlink(missing_ok=True)
        for tmp, _ in moves:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    finally:
        for _, backup in backups:
            if backup is not None:
                backup.unlink(missing_ok=True)
    for tmp, target in moves:  # listed in the run's manifest
        if tmp is not None:
            record_output(target)


@contextlib.contextmanager
def atomic_target(path: str | Path, *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place when the block succeeds and
    remove it when it fails, so a crash never leaves a half-written output that a downstream
    job could pick up."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        publish_mode(tmp, private=private)
        os.replace(tmp, path)
        record_output(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_table_atomic(frame: pd.DataFrame, path: str | Path, *, formula_guard: bool = True,
                       **parquet_kw) -> Path:
    """Write CSV or Parquet atomically (see atomic_target); the format comes from the name.
    CSV cells a spreadsheet would evaluate are neutralised (leadq.pipelines.io.spreadsheet)
    unless `formula_guard` is off."""
    path = Path(path)
    fmt = output_format(path)
    with atomic_target(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False, **parquet_kw)
        else:
            (guard_formulas(frame) if formula_guard else frame).to_csv(tmp, index=False)
    return path
