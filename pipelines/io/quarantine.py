"""Where rejected rows go, and the accounting that proves no row was lost.

Every run that reads a table keeps an `Accounting`: rows read = rows used + rows rejected, the
rejected rows counted per reason (the first rule each row broke, so the counts add up; the
quarantine file's `reason` column lists every rule). Rejected rows are written, with their
original columns plus `reason`, to a `.rejected.csv` file in the run's output location
(`quarantine_path`) through a temporary file that is renamed into place only when the run
succeeds. A ragged CSV row (more or fewer fields than the header) is rejected like any other
row: its fields go into the columns by position, as far as they go, and two more columns say
where it was and what it said (`source_line`, `raw_line`).
The quarantine holds personal data: it is written owner-only (0600), whatever the umask.
"""

from __future__ import annotations

import contextlib
import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadq.features.contracts import EXAMPLES_PER_REASON, RowCheck, settings
from leadq.features.rules import Kind, rules_for
from leadq.pipelines.io.files import (
    RaggedRow,
    publish_mode,
    publish_together,
    ragged_frame,
    remove_stale_temps,
    temp_beside,
)
from leadq.pipelines.io.run import naming_run, outputs_dir
from leadq.pipelines.io.spreadsheet import guard_formulas
from leadq.pipelines.params.loader import resolve_path
from leadq.settings import setting


def quarantine_path(params: dict | None, *, output: str | Path | None = None,
                    source: str | Path | None = None, table: str = "table") -> Path:
    """Where a run's rejected rows go: never beside an input (an export folder is often
    read-only or shared, and a quarantine holds personal data).

    - `score` (`output` given): `<output stem>.rejected.csv` beside the scores, or in
      contracts.quarantine_dir when set;
    - every other command (`source`: the input table): `<command>-<run id>-<table>-<input
      stem>.rejected.csv` in contracts.quarantine_dir when set, else in outputs.dir
      (default `leadq-out/` beside the params file), named after the run so one run never
      replaces another's quarantine.
    """
    params = params or {}
    configured = settings(params).get("quarantine_dir")
    if output is not None:
        output = Path(output)
        name = f"{output.stem}.rejected.csv"
        return Path(resolve_path(params, configured)) / name if configured else (
            output.parent / name)
    if source is None:
        raise ValueError("quarantine_path: give the scores output or the input table")
    run = naming_run()
    name = f"{run.command}-{run.run_id}-{table}-{Path(source).stem}.rejected.csv"
    folder = Path(resolve_path(params, configured)) if configured else outputs_dir(params)
    return folder / name


@dataclass
class Accounting:
    """Rows read, used and rejected for one table in one run."""

    table: str
    path: str
    read: int = 0
    used: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: Counter = field(default_factory=Counter)
    warning_examples: dict[str, list[str]] = field(default_factory=dict)
    duplicate_ids: int = 0
    quarantine: str | None = None

    def add(self, check: RowCheck) -> None:
        n = len(check.reasons)
        self.read += n
        self.used += n - int(check.bad.sum())
        self.rejected.update(check.rejected_counts())
        for store, new in ((self.examples, check.examples),
                           (self.warning_examples, check.warning_examples)):
            for key, values in new.items():
                have = store.setdefault(key, [])
                have.extend(values[: EXAMPLES_PER_REASON - len(have)])
        self.warnings.update(check.warnings)
        self.duplicate_ids += check.duplicate_ids

    def add_ragged(self, rows: Iterable[RaggedRow]) -> None:
        """Ragged rows: read and rejected, counted by field count like any other reason."""
        for row in rows:
            self.read += 1
            self.rejected[row.reason] += 1
            have = self.examples.setdefault(row.reason, [])
            if len(have) < EXAMPLES_PER_REASON:
                have.append(row.where)

    @property
    def n_rejected(self) -> int:
        return int(sum(self.rejected.values()))

    def balanced(self) -> bool:
        return self.read == self.used + self.n_rejected

    def summary(self) -> str:
        """One line per fact, for the terminal and the log."""
        lines = [f"{self.table} {self.path}: read {self.read:,} = used {self.used:,} + "
                 f"rejected {self.n_rejected:,}"]
        for reason, count in self.rejected.most_common():
            shown = ", ".join(self.examples.get(reason, []))
            lines.append(f"  rejected {count:,}: {reason} (e.g. {shown})")
        for key, count in self.warnings.most_common():
            shown = ", ".join(self.warning_examples.get(key, []))
            lines.append(f"  warning {count:,}: {key} (e.g. {shown})")
        if self.quarantine:
            lines.append(f"  quarantine: {self.quarantine}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"table": self.table, "path": self.path, "read": self.read, "used": self.used,
                "rejected": self.n_rejected, "rejected_by_reason": dict(self.rejected),
                "warnings": dict(self.warnings), "quarantine": self.quarantine}

    def metrics(self) -> dict[str, float]:
        """Counts only (never values), safe to log to MLflow."""
        p = f"contract_{self.table}"
        return {f"{p}_rows_read": self.read, f"{p}_rows_used": self.used,
                f"{p}_rows_rejected": self.n_rejected}


def reason_column(columns) -> str:
    """`reason`, unless the table has a column of that name (sales feedback does: the rejection
    reason): the original columns are kept as they are and the contract's reason is added as
    `quarantine_reason`."""
    name = "reason"
    while name in set(columns):
        name = f"quarantine_{name}"
    return name


def required_columns(table: str, params: dict, *, for_training: bool) -> list[str]:
    """The columns the contract of `table` requires (features.rules' REQUIRED rules)."""
    return [r.column for r in rules_for(table, params, for_training=for_training)
            if r.kind == Kind.REQUIRED]


def formula_guard(params: dict) -> bool:
    """scoring.csv_formula_guard (default on): neutralise spreadsheet formulas in CSV output."""
    return bool(setting(params, "scoring.csv_formula_guard"))


class QuarantineWriter:
    """Appends rejected rows to a temporary CSV; `commit` renames it into place.

    Ragged rows go to a second temporary file (they bring two columns the others lack);
    `commit` then writes one file: the other rows first, with those two columns empty."""

    def __init__(self, path: str | Path, *, formula_guard: bool = True) -> None:
        self.path = Path(path)
        self.rows = 0
        self.formula_guard = formula_guard
        self._tmp: Path | None = None
        self._ragged_tmp: Path | None = None
        # A failed run removes the output folder it made (a run that fails leaves nothing).
        self._made_folder = not self.path.parent.exists()
        remove_stale_temps(self.path)

    def _append(self, out: pd.DataFrame, attr: str) -> None:
        if self.formula_guard:
            out = guard_formulas(out)
        tmp = getattr(self, attr)
        if tmp is None:
            tmp = temp_beside(self.path)
            setattr(self, attr, tmp)
            out.to_csv(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, header=False, mode="a")
        self.rows += len(out)

    def write(self, rows: pd.DataFrame, reasons: pd.Series) -> None:
        if rows.empty:
            return
        out = rows.copy()
        out[reason_column(rows.columns)] = reasons.loc[rows.index].to_numpy()
        self._append(out, "_tmp")

    def write_ragged(self, rows: list[RaggedRow], columns: list[str]) -> None:
        """Ragged rows of a table with these columns, each with its reason, line and text."""
        if not rows:
            return
        out = ragged_frame(rows, list(columns))
        out.insert(len(columns), reason_column(columns), [r.reason for r in rows])
        self._append(out, "_ragged_tmp")

    def _merge(self) -> Path:
        """One file: the other rejected rows, then the ragged ones, columns matched by name (a
        column only one kind has, such as `source_line` or an id-less export's `row_number`,
        is empty for the other)."""
        assert self._ragged_tmp is not None
        merged = temp_beside(self.path)
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(merged, "w", newline="", encoding="utf-8"))
            ragged_rows = csv.DictReader(
                files.enter_context(open(self._ragged_tmp, newline="", encoding="utf-8")))
            header = list(ragged_rows.fieldnames or [])
            other_rows = None
            if self._tmp is not None:
                other_rows = csv.DictReader(
                    files.enter_context(open(self._tmp, newline="", encoding="utf-8")))
                first = list(other_rows.fieldnames or [])
                header = first + [c for c in header if c not in first]
            writer = csv.DictWriter(out, fieldnames=header, restval="", lineterminator="\n")
            writer.writeheader()
            for row in other_rows or ():
                writer.writerow(row)
            for row in ragged_rows:
                writer.writerow(row)
        for tmp in (self._tmp, self._ragged_tmp):
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        self._tmp, self._ragged_tmp = merged, None
        return merged

    def prepare(self) -> None:
        """Do the commit's I/O (merge, file mode) so that `commit` only renames."""
        if self._ragged_tmp is not None:
            self._merge()
        if self._tmp is not None:
            publish_mode(self._tmp, private=True)

    def move(self) -> tuple[Path | None, Path]:
        """(finished temporary file, target) for files.publish_together: None when no row was
        rejected, which removes a stale quarantine from before."""
        self.prepare()
        return self._tmp, self.path

    def commit(self) -> Path | None:
        """Move the file into place; with no rejected rows, remove a stale one from before."""
        tmp, path = self.move()
        publish_together([(tmp, path)])
        self._tmp = None
        return None if tmp is None else path

    def abort(self) -> None:
        for attr in ("_tmp", "_ragged_tmp"):
            tmp = getattr(self, attr)
            if tmp is not None:
                tmp.unlink(missing_ok=True)
                setattr(self, attr, None)
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: another writer's files
                self.path.parent.rmdir()


class IdTracker:
    """Remembers the ids of earlier chunks so a duplicate in a later chunk is caught as in a
    one-piece read. Ids are kept as 64-bit hashes (leadq.models.routing.id_hashes: 8 bytes per id,
    not a Python set); a collision would reject a unique id as a duplicate, a chance of about
    3e-6 at 10M ids.

    The hashes sit in a few sorted runs whose sizes at least halve from one to the next (as
    in a log-structured merge tree): a new chunk's run is merged only into runs no larger
    than itself, so each hash is re-sorted O(log chunks) times. One ever-growing sorted array
    cost a full merge per chunk: 12 s of 10M rows' scoring instead of about 1 s."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def repeats(self, hashes: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Valid rows whose id hash an earlier row had, in an earlier chunk or earlier in this
        one (the first occurrence is not a repeat); then remember this chunk's ids."""
        valid = np.asarray(valid, dtype=bool)
        rows = np.flatnonzero(valid)
        h = np.asarray(hashes, dtype=np.uint64)[rows]
        order = np.argsort(h, kind="stable")  # equal hashes keep their row order
        ordered = h[order]  # sorted keys let searchsorted resume where the last one ended
        again = np.zeros(len(ordered), dtype=bool)
        again[1:] = ordered[1:] == ordered[:-1]
        seen = again.copy()
        for run in self._runs:
            pos = np.minimum(np.searchsorted(run, ordered), len(run) - 1)
            seen |= run[pos] == ordered
        out = np.zeros(len(valid), dtype=bool)
        out[rows[order]] = seen
        new = ordered[~seen]  # ids not remembered yet, distinct and still sorted
        if len(new):
            self._runs.append(new)
            while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
                top = self._runs.pop()
                # Two sorted runs: a stable sort (timsort) merges them in linear time.
                self._runs[-1] = np.sort(np.concatenate([self._runs[-1], top]), kind="stable")
        return out
