"""Progress for long steps: one line when a step starts and one with its duration."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("leadq")


def setup_logging(verbose: bool = False) -> None:
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
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
