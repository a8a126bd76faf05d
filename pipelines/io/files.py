"""Reading CRM tables and writing outputs. Format comes from the file extension."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from leadq.errors import BadInputError

BOM = "\ufeff"


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BadInputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _sniff(path: Path, name: str) -> None:
    """Refuse what is not a text table before pandas guesses at it."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        raise BadInputError(f"{path}: {name} file is empty (check: readable file)")
    if b"\x00" in head:
        raise BadInputError(f"{path}: {name} file looks binary (NUL bytes), not CSV "
                            "(check: readable file)")


def iter_table(path: str | Path, spec: dict | None = None, *, name: str = "table",
               chunk_size: int | None = None) -> Iterator[pd.DataFrame]:
    """Yield a CSV or Parquet table in chunks of about `chunk_size` rows (None: one piece).

    CSV cells are read as text so every later type decision is explicit and the same for
    training and scoring; a byte-order mark on the header is dropped. Every reading problem,
    even one found in the last chunk, becomes a BadInputError naming the file.
    """
    spec = spec or {}
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{name}: file not found: {path}")
    fmt = table_format(path)
    encoding = spec.get("encoding", "utf-8")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # pre_buffer keeps every column chunk read so far alive; off, memory stays flat
            # however many row groups the file has (1.68x → 1.25x peak RSS from 1M to 10M).
            pf = pq.ParquetFile(path, pre_buffer=False)
            if chunk_size is None:
                frames = iter([pf.read().to_pandas()])
            else:
                frames = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_size))
            first = True
            for frame in frames:
                first = False
                frame.columns = [str(c).lstrip(BOM).strip() for c in frame.columns]
                yield frame
            if first:  # a Parquet file with no row groups still has a schema
                yield pf.schema_arrow.empty_table().to_pandas()
            return
        _sniff(path, name)
        reader = pd.read_csv(
            path,
            sep=spec.get("delimiter", ","),
            encoding=encoding,
            dtype=str,
            keep_default_na=True,
            skipinitialspace=False,
            chunksize=chunk_size,
        )
        if chunk_size is None:
            reader = iter([reader])
        with contextlib.closing(reader) if hasattr(reader, "close") else contextlib.nullcontext():
            for frame in reader:
                frame.columns = [str(c).lstrip(BOM).strip() for c in frame.columns]
                yield frame
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: cannot decode as {encoding} (byte {exc.start}: "
            f"{exc.object[exc.start:exc.start + 4]!r}); set data.{name}.encoding"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise BadInputError(f"{path}: {name} file is empty (check: readable file)") from exc
    except pd.errors.ParserError as exc:
        raise BadInputError(f"{path}: cannot parse as CSV: {exc}".splitlines()[0]) from exc
    except BadInputError:
        raise
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read {fmt}: {exc}") from exc


def peek_columns(path: str | Path, spec: dict | None = None, *,
                 name: str = "table") -> list[str] | None:
    """A table's column names, read without its rows (None: no rows to take them from), so a
    bad file is refused before slow work such as loading a model. Raises what iter_table
    raises for an unreadable file."""
    path = Path(path)
    if table_format(path) == "parquet" and path.is_file():
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInputError(f"{path}: cannot read parquet: {exc}") from exc
        return [str(c).lstrip(BOM).strip() for c in names]
    with contextlib.closing(iter_table(path, spec, name=name, chunk_size=1)) as chunks:
        first = next(chunks, None)
    return None if first is None else list(first.columns)


def read_table(path: str | Path, spec: dict | None = None, *, name: str = "table") -> pd.DataFrame:
    """The whole table in one frame (see iter_table)."""
    return next(iter_table(path, spec, name=name))


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


def temp_beside(path: Path) -> Path:
    """An empty temporary file in the target's directory, so the final rename is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place when the block succeeds and
    remove it when it fails, so a crash never leaves a half-written output that a downstream
    job could pick up."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_table_atomic(frame: pd.DataFrame, path: str | Path, **parquet_kw) -> Path:
    """Write CSV or Parquet atomically (see atomic_target); the format comes from the name."""
    path = Path(path)
    fmt = table_format(path)
    with atomic_target(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False, **parquet_kw)
        else:
            frame.to_csv(tmp, index=False)
    return path
