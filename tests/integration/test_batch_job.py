"""The nightly job as a scheduler runs it (issue 30): inputs in a read-only folder, every output
and quarantine file where the job says, a manifest per run, and exit codes a scheduler can act
on (0 ok, 1 internal, 2 bad input, 3 too many rejected rows).

The tests run as root, which ignores a folder's write bit: besides making the input folder
read-only, each test asserts that nothing new appears in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli
from tests.helpers import recalibration_params

pytestmark = pytest.mark.slow

AS_OF = "2026-06-30"
BAD_LEADS = 3   # rows with an unparseable created_at
BAD_DEALS = 2   # deals of a lead that is not in the export


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` with its size and mtime: what a run must leave unchanged."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def read_only(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def job(tmp_path_factory, base_params, small_crm) -> dict:
    """A CRM with a few bad rows in a read-only folder; a work folder holding the params file
    (and so the store and leadq-out/); a scores folder the scheduler gives `score`."""
    root = tmp_path_factory.mktemp("job")
    inputs, work, scores = root / "export", root / "work", root / "scores"
    inputs.mkdir()
    work.mkdir()
    crm = {}
    for table in ("leads", "deals", "feedback"):
        frame = pd.read_csv(small_crm[table], dtype=str, keep_default_na=False)
        if table == "leads":
            frame.loc[frame.index[-BAD_LEADS:], "created_at"] = "not a date"
        if table == "deals":
            frame.loc[frame.index[:BAD_DEALS], "lead_id"] = "L_NOBODY"
        crm[table] = inputs / f"{table}.csv"
        frame.to_csv(crm[table], index=False)
    params = recalibration_params(work, base_params, crm,
                                  recalibration__scores=str(scores / "*.parquet"))
    read_only(inputs)
    before = listing(inputs)
    yield {"inputs": inputs, "work": work, "scores": scores, "crm": crm,
           "params": str(params), "before": before}
    for p in [inputs, *inputs.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="module")
def runs(job) -> dict:
    """train → score → report → recalibrate → plan through the CLI, as a scheduler would."""
    out = {}
    p = job["params"]
    argvs = {
        "train": ["train", "--params", p],
        "score": ["score", "--input", str(job["crm"]["leads"]), "--output",
                  str(job["scores"] / "night1.parquet"), "--params", p],
        "report": ["report", "--out", str(job["work"] / "report.html"), "--params", p],
        "recalibrate": ["recalibrate", "--as-of", AS_OF, "--params", p],
        "plan": ["plan", "--won-deals", "10", "--period", "month", "--as-of", AS_OF,
                 "--params", p],
    }
    for name, argv in argvs.items():
        out[name] = _cli(argv)
    return out


def _cli(argv: list[str]) -> tuple[int, dict | None, str]:
    """`leadq --json ARGV` with stdout/stderr captured by hand (module-scoped fixtures cannot
    use capsys)."""
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli(["--json", *argv])
    text = stdout.getvalue()
    result = None
    if code == 0 and "{" in text:
        result = json.loads(text if text.startswith("{") else text[text.index("\n{") + 1:])
    return code, result, stderr.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_read_only_export_folder_gets_nothing_written_into_it(job, runs):
    for name, (code, _result, err) in runs.items():
        assert code == 0, f"{name}: {err[-2000:]}"
    assert listing(job["inputs"]) == job["before"]
    assert not os.access(job["inputs"], os.W_OK) or os.geteuid() == 0


def test_every_quarantine_file_is_in_the_output_location_and_its_manifest(job, runs):
    out_dir = job["work"] / "leadq-out"
    for name in ("train", "report", "recalibrate", "plan"):
        code, result, _ = runs[name]
        manifest = result["manifest"]
        assert Path(result["manifest_path"]).parent == out_dir, name
        assert json.loads(Path(result["manifest_path"]).read_text())["run_id"] == \
            manifest["run_id"]
        quarantines = {o["path"] for o in manifest["outputs"] if o["kind"] == "quarantine"}
        # leads and deals had bad rows; each has its run's own file in leadq-out/
        for table, n_bad in (("leads", BAD_LEADS), ("deals", BAD_DEALS)):
            entry = next(t for t in manifest["inputs"] if t["table"] == table)
            assert entry["rejected"] >= n_bad, (name, table)
            assert entry["read"] == entry["used"] + entry["rejected"], (name, table)
            q = Path(entry["quarantine"])
            assert q.parent == out_dir and q.name.startswith(f"{name}-{manifest['run_id']}-")
            assert q.name.endswith(f"-{table}-{table}.rejected.csv")
            assert str(q) in quarantines, (name, table)
            assert len(pd.read_csv(q)) == entry["rejected"]
            assert "reason" in pd.read_csv(q).columns
            assert entry["files"][0]["sha256"] == sha256(job["crm"][table])
    assert runs["train"][1]["manifest"]["model_version"] == runs["train"][1]["version"]
    # score: the quarantine and the manifest beside the scores
    code, result, _ = runs["score"]
    scores = job["scores"] / "night1.parquet"
    assert result["manifest_path"] == str(job["scores"] / "night1.parquet.manifest.json")
    manifest = result["manifest"]
    leads = next(t for t in manifest["inputs"] if t["table"] == "leads")
    assert leads["rejected"] == BAD_LEADS
    assert leads["quarantine"] == str(job["scores"] / "night1.rejected.csv")
    kinds = {o["path"]: o for o in manifest["outputs"]}
    assert kinds[str(scores)]["kind"] == "scores" and kinds[str(scores)]["rows"] == leads["used"]
    assert kinds[str(scores)]["sha256"] == sha256(scores)
    assert kinds[leads["quarantine"]]["rows"] == BAD_LEADS
    assert manifest["model_version"] == result["model_version"] is not None
    assert manifest["threshold_version"] == result["threshold_version"] is not None
    assert manifest["seconds"] >= 0 and manifest["started_at"] <= manifest["finished_at"]
    assert "accounting" in result  # the existing JSON output is kept


def test_too_many_rejected_rows_exit_3_and_publish_nothing(job, runs, tmp_path):
    out = tmp_path / "night2.csv"
    code, _, err = _cli(["score", "--input", str(job["crm"]["leads"]), "--output", str(out),
                         "--max-rejected-share", "0.0001", "--params", job["params"]])
    assert code == 3, err
    assert "--max-rejected-share" in err and str(job["crm"]["leads"]) in err
    assert list(tmp_path.iterdir()) == []
    # a share at or above the refused rows' passes
    code, _, err = _cli(["score", "--input", str(job["crm"]["leads"]), "--output", str(out),
                         "--max-rejected-share", "0.01", "--params", job["params"]])
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "night2.csv", "night2.csv.manifest.json", "night2.rejected.csv"]
    assert listing(job["inputs"]) == job["before"]


def test_each_exit_code(job, runs, tmp_path, monkeypatch):
    leads, params = str(job["crm"]["leads"]), job["params"]
    assert _cli(["score", "--input", leads, "--output", str(tmp_path / "a.csv"),
                 "--params", params])[0] == 0
    code, _, err = _cli(["score", "--input", str(tmp_path / "missing.csv"),
                         "--output", str(tmp_path / "b.csv"), "--params", params])
    assert code == 2 and "missing.csv" in err
    assert _cli(["score", "--input", leads, "--output", str(tmp_path / "c.csv"),
                 "--max-rejected-share", "0", "--params", params])[0] == 3

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("leadq.pipelines.scoring.stream.score_file", broken)
    code, _, err = _cli(["score", "--input", leads, "--output", str(tmp_path / "d.csv"),
                         "--params", params])
    assert code == 1 and "RuntimeError: a bug" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv", "a.csv.manifest.json", "a.rejected.csv"]


def test_json_log_lines(job, runs, tmp_path):
    code, _, err = _cli(["--log-format", "json", "score", "--input", str(job["crm"]["leads"]),
                         "--output", str(tmp_path / "e.csv"), "--params", job["params"]])
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "message"} <= set(r) for r in records)
    assert {r["command"] for r in records} == {"score"} and len({r["run_id"] for r in records}) == 1
    assert any("run manifest" in r["message"] for r in records)


def test_a_writable_export_folder_gets_nothing_written_either(tmp_path, base_params, small_crm):
    """The old default wrote `<stem>.rejected.csv` beside a writable input: a shared data
    folder collected quarantine files (personal data) from every training."""
    inputs = tmp_path / "shared"
    inputs.mkdir()
    crm = {}
    for table in ("leads", "deals", "feedback"):
        frame = pd.read_csv(small_crm[table], dtype=str, keep_default_na=False)
        if table == "leads":
            frame.loc[frame.index[-BAD_LEADS:], "created_at"] = "not a date"
        crm[table] = inputs / f"{table}.csv"
        frame.to_csv(crm[table], index=False)
    before = listing(inputs)
    (tmp_path / "work").mkdir()
    params = recalibration_params(tmp_path / "work", base_params, crm)
    code, result, err = _cli(["train", "--params", str(params)])
    assert code == 0, err
    assert listing(inputs) == before
    leads = next(t for t in result["manifest"]["inputs"] if t["table"] == "leads")
    assert Path(leads["quarantine"]).parent == tmp_path / "work" / "leadq-out"


def test_a_failure_is_a_json_log_line_with_its_exit_code(job, runs, tmp_path):
    code, _, err = _cli(["--log-format", "json", "score", "--input", str(tmp_path / "no.csv"),
                         "--output", str(tmp_path / "f.csv"), "--params", job["params"]])
    assert code == 2
    last = json.loads(err.strip().splitlines()[-1])
    assert last["level"] == "error" and last["exit_code"] == 2 and "no.csv" in last["message"]
