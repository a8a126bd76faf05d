"""One command's run as a scheduler sees it: an id, the tables read, the files published, the
warnings and the timings, written as a manifest when the run succeeds (pipelines.io.manifest).

The CLI opens a run around every command (`started`); the I/O helpers record into it: each
checked table (manifest.record_table, with its row accounting) and each file published through
pipelines.io.files (`record_output`). A command called as a library function outside a run
records nothing, and each of its quarantine files is named after a run id of its own.

Where files go (docs/reference/outputs.md): `leadq score` writes beside its --output
(`<output>.manifest.json`); every other command writes under params `outputs.dir` (default
`leadq-out/` beside the params file), never beside an input: a nightly job's export folder is
often read-only or shared, and a quarantine holds personal data.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from leadq.settings import setting

# The `leadq` logger, named rather than imported: pipelines.io.progress formats log lines with
# the current run's id, so it imports this module.
log = logging.getLogger("leadq")


def new_run_id(now: datetime | None = None) -> str:
    """UTC time to the second plus a random suffix: sorts by time, and two runs started in the
    same second (two trainings on one store) still never share a file name."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class Run:
    command: str
    run_id: str = field(default_factory=new_run_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    params: dict | None = None
    tables: list[dict] = field(default_factory=list)
    outputs: dict[str, dict] = field(default_factory=dict)  # by path: a file published twice
    warnings: list[str] = field(default_factory=list)       # is listed once


_current: ContextVar[Run | None] = ContextVar("leadq_run", default=None)
def current() -> Run | None:
    return _current.get()


def naming_run() -> Run:
    """The run whose command and id name a file: the CLI's, or, for a command called as a
    library function, a new one per file (one process may train twice: a shared id would let
    the second training's quarantine replace the first's)."""
    return current() or Run(command="run")


class _WarningLog(logging.Handler):
    """Keeps every warning the run logs, for the manifest."""

    def __init__(self, run: Run) -> None:
        super().__init__(logging.WARNING)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.run.warnings.append(record.getMessage())


@contextlib.contextmanager
def started(command: str) -> Iterator[Run]:
    run = Run(command=command)
    token = _current.set(run)
    handler = _WarningLog(run)
    log.addHandler(handler)
    try:
        yield run
    finally:
        log.removeHandler(handler)
        _current.reset(token)


def record_output(path: str | Path, kind: str | None = None, rows: int | None = None) -> None:
    """A file the run published (renamed into place)."""
    run = current()
    if run is None:
        return
    path = Path(path)
    entry = run.outputs.setdefault(str(path), {"path": str(path)})
    entry["kind"] = kind or entry.get("kind") or (
        "quarantine" if path.name.endswith(".rejected.csv") else "file")
    if rows is not None:
        entry["rows"] = rows


def record_table_output(label: str, rows: int | None = None, kind: str = "scores") -> None:
    """A database table the run wrote (its committed rows), by its label (URL without the
    password, and the table's name)."""
    run = current()
    if run is None:
        return
    run.outputs[label] = {"path": label, "kind": kind, "table": True, "rows": rows}


def outputs_dir(params: dict) -> Path:
    """params outputs.dir, relative to the params file."""
    from leadq.pipelines.params.loader import resolve_path

    return Path(resolve_path(params, setting(params, "outputs.dir")))
