"""The streaming scorer's background reader and writer: order, errors, early stops."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from leadq.pipelines.scoring.stream import WriteBehind, read_ahead


def _frames(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"bad chunk {i}")
        yield pd.DataFrame({"i": [i]})


def test_read_ahead_keeps_order():
    assert [f["i"].iat[0] for f in read_ahead(_frames(7))] == list(range(7))


def test_read_ahead_raises_the_readers_error_in_the_caller():
    got = []
    with pytest.raises(ValueError, match="bad chunk 3"):
        for frame in read_ahead(_frames(6, fail_at=3)):
            got.append(frame["i"].iat[0])
    assert got == [0, 1, 2]


def test_read_ahead_stops_the_reader_when_the_caller_stops():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = read_ahead(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # what a `for` loop leaving by an exception does
    assert closed.wait(5), "the reader thread kept running"
    assert not any(t.name == "leadq-read-ahead" and t.is_alive() for t in threading.enumerate())


def test_write_behind_writes_in_order():
    written = []

    def slow_write(frame):
        time.sleep(0.01)
        written.append(frame["i"].iat[0])

    writes = WriteBehind(slow_write)
    for frame in _frames(5):
        writes.put(frame)
    writes.close()
    assert written == list(range(5))


def test_write_behind_reports_a_failed_write_and_stops_writing():
    written = []

    def write(frame):
        if frame["i"].iat[0] == 1:
            raise OSError("disk full")
        written.append(frame["i"].iat[0])

    writes = WriteBehind(write)
    with pytest.raises(OSError, match="disk full"):
        for frame in _frames(6):
            writes.put(frame)
        writes.close()
    with pytest.raises(OSError, match="disk full"):
        writes.close()
    assert written == [0]  # nothing after the failure
