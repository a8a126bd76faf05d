"""Reading CRM tables and writing outputs. Format comes from the file extension."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from pipelines.errors import BadInputError

BOM = "\ufeff"


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BadInputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def read_table(path: str | Path, spec: dict | None = None, *, name: str = "table") -> pd.DataFrame:
    """Read a CSV or Parquet table as the user's CRM exported it.

    CSV cells are read as text so every later type decision is explicit and the same for
    training and scoring; a byte-order mark on the header is dropped.
    """
    spec = spec or {}
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{name}: file not found: {path}")
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path,
                sep=spec.get("delimiter", ","),
                encoding=spec.get("encoding", "utf-8"),
                dtype=str,
                keep_default_na=True,
                skipinitialspace=False,
            )
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: cannot decode as {spec.get('encoding', 'utf-8')} "
            f"(byte {exc.start}); set data.{name}.encoding"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise BadInputError(f"{path}: file is empty") from exc
    except pd.errors.ParserError as exc:
        raise BadInputError(f"{path}: cannot parse as CSV: {exc}".splitlines()[0]) from exc
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read {fmt}: {exc}") from exc
    frame.columns = [str(c).lstrip(BOM).strip() for c in frame.columns]
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


def write_table_atomic(frame: pd.DataFrame, path: str | Path, **parquet_kw) -> Path:
    """Write CSV or Parquet to a temporary file beside the target, then rename it into place,
    so a crash never leaves a half-written output that a downstream job could pick up."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False, **parquet_kw)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
