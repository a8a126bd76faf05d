"""The service's scoring log: files by scoring day, complete before they appear, no row lost
when a write fails."""

from __future__ import annotations

import pandas as pd

from leadq.pipelines.service.scoring_log import ScoringLog


def _rows(ids, at: str) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": ids, "score": [0.5] * len(ids),
                         "scored_at": pd.Timestamp(at, tz="UTC")})


def test_rows_go_to_their_own_day_and_files_appear_whole(tmp_path):
    log = ScoringLog(tmp_path / "log", flush_rows=10**6, flush_seconds=3600)
    log.append(_rows(["a", "b"], "2026-06-30 23:59:59"))
    log.append(_rows(["c"], "2026-07-01 00:00:01"))
    written = log.flush()
    log.close()
    days = {p.parent.name: set(pd.read_parquet(p)["lead_id"]) for p in written}
    assert days == {"scored_date=2026-06-30": {"a", "b"}, "scored_date=2026-07-01": {"c"}}
    assert not list((tmp_path / "log").rglob("*.tmp"))


def test_a_failed_write_keeps_its_rows_for_the_next_attempt(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log directory should be")
    log = ScoringLog(blocker, flush_rows=10**6, flush_seconds=3600)
    log.append(_rows(["a", "b"], "2026-06-30 10:00:00"))
    assert log.flush() == [] and log.last_error
    log.append(_rows(["c"], "2026-06-30 10:00:01"))
    blocker.unlink()
    written = log.flush()
    log.close()
    assert log.last_error is None and log.rows_written == 3
    assert set(pd.concat(pd.read_parquet(p) for p in written)["lead_id"]) == {"a", "b", "c"}


def test_the_buffer_is_bounded(tmp_path):
    log = ScoringLog(tmp_path / "x" / "y", flush_rows=10**6, flush_seconds=3600,
                     max_buffer_rows=3)
    for i in range(5):
        log.append(_rows([f"l{i}"], "2026-06-30 10:00:00"))
    assert log.rows_dropped == 2
    log.close()
    assert log.rows_written == 3
