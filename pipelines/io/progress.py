"""Progress for long steps: one line when a step starts and one with its duration."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("leadq")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`--log-format json`), for a scheduler's log collector: time
    (UTC, ISO 8601), level, logger, message, and the run's command and id when in a run."""

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        from leadq.pipelines.io.run import current

        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                     timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        run = current()
        if run is not None:
            entry.update(command=run.command, run_id=run.run_id)
        if hasattr(record, "exit_code"):
            entry["exit_code"] = record.exit_code
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """A stderr handler for the `leadq` logger, text or JSON lines. Called again (the CLI
    run twice in one process, as tests do), it replaces its own handler rather than add one;
    handlers others added (a test's log capture) stay beside it."""
    for old in [h for h in log.handlers if getattr(h, "leadq_setup", False)]:
        log.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.leadq_setup = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


@contextmanager
def step(name: str) -> Iterator[None]:
    """Log the start and the duration of a step."""
    log.info("… %s", name)
    start = time.perf_counter()
    yield
    log.info("✓ %s (%.1fs)", name, time.perf_counter() - start)
