"""The service's scoring log: what `leadq score` would have written, for leads scored online.

Rows are buffered and written as Parquet files under `DIR/scored_date=YYYY-MM-DD/` (by each
row's own scoring day), each file complete and synced before it appears under its name
(written to a temporary name, fsynced, then renamed), so a crash loses at most the rows still
in the buffer and never leaves a half-written file where `leadq recalibrate` or IPW training
would read it. Point `recalibration.scores` (or `train.routing_scores`) at `DIR/*/*.parquet`.

Writing happens on the log's own thread: a slow or failing disk never delays or fails an
answer. A failed write keeps its rows for the next attempt (up to `max_buffer_rows`, beyond
which the oldest are dropped and counted) and is logged.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd

from leadq.pipelines.io.files import temp_beside
from leadq.pipelines.io.progress import log


class ScoringLog:
    def __init__(self, directory: str | Path, *, flush_rows: int = 1000,
                 flush_seconds: float = 5.0, max_buffer_rows: int = 1_000_000) -> None:
        self.directory = Path(directory)
        self.flush_rows = max(int(flush_rows), 1)
        self.flush_seconds = max(float(flush_seconds), 0.05)
        self.max_buffer_rows = int(max_buffer_rows)
        self._rows: list[pd.DataFrame] = []
        self._n = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = 0
        self.files_written = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="leadq-scoring-log", daemon=True)
        self._thread.start()

    def append(self, scored: pd.DataFrame) -> None:
        """Buffer one request's output rows (never raises, never writes in the caller)."""
        with self._lock:
            self._rows.append(scored)
            self._n += len(scored)
            while self._n > self.max_buffer_rows and len(self._rows) > 1:
                dropped = self._rows.pop(0)
                self._n -= len(dropped)
                self.rows_dropped += len(dropped)
            full = self._n >= self.flush_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> list[Path]:
        """Write what is buffered now; on failure keep it for the next attempt."""
        with self._lock:
            rows, self._rows, self._n = self._rows, [], 0
            self._seq += 1
            seq = self._seq
        if not rows:
            return []
        frame = pd.concat(rows, ignore_index=True)
        try:
            paths = self._write(frame, seq)
        except Exception as exc:  # noqa: BLE001 - the rows wait for the next attempt
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("scoring log: cannot write %d rows to %s (%s); kept for the next attempt",
                      len(frame), self.directory, self.last_error)
            with self._lock:
                self._rows.insert(0, frame)
                self._n += len(frame)
            return []
        self.last_error = None
        self.files_written += len(paths)
        self.rows_written += len(frame)
        return paths

    def _write(self, frame: pd.DataFrame, seq: int) -> list[Path]:
        days = pd.to_datetime(frame["scored_at"], utc=True).dt.strftime("%Y-%m-%d")
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        paths = []
        for day, part in frame.groupby(days.to_numpy(), sort=True):
            folder = self.directory / f"scored_date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{stamp}-{os.getpid()}-{seq:06d}.parquet"
            tmp = temp_beside(path)
            try:
                part.reset_index(drop=True).to_parquet(tmp, index=False)
                with open(tmp, "rb") as handle:
                    os.fsync(handle.fileno())  # on disk before it has its final name
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            paths.append(path)
        return paths

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer thread and write what is left."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
        deadline = time.monotonic() + timeout
        while self._n and time.monotonic() < deadline and self.flush():
            pass
