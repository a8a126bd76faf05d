"""The pieces a table is read in: a frame of rows and the ragged CSV rows found while reading
it. Shared by the file reader (pipelines.io.files) and the database reader
(pipelines.io.database), apart from both so neither imports the other's module to make one."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# --------------------------------------------------------------------------- ragged rows

@dataclass
class RaggedRow:
    """A CSV row with more or fewer fields than the header."""

    source: str          # the file it came from
    line: int | None     # its physical line number in that file (1 = the header)
    fields: int
    expected: int
    text: str            # the row as it is in the file
    values: list[str] = field(default_factory=list)  # its fields, split as CSV

    @property
    def reason(self) -> str:
        return f"ragged row: {self.fields} fields, header has {self.expected}"

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else "line ?"


@dataclass
class Chunk:
    """A piece of a table and the ragged rows found while reading it."""

    frame: pd.DataFrame
    ragged: list[RaggedRow] = field(default_factory=list)
