"""The run manifest: what a scheduler or an auditor needs to trust a run without opening its
files. Written only when the command succeeds; see pipelines.io.run for where it goes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from leadq.pipelines.io.files import atomic_target, input_files, refuse_overwrite
from leadq.pipelines.io.run import Run, current, outputs_dir

MANIFEST_VERSION = 1


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _files(path: str | Path) -> list[Path]:
    """The files behind an input path (a directory or glob of part files for `score`)."""
    path = Path(path)
    if path.is_file():
        return [path]
    with contextlib.suppress(Exception):
        return input_files(path, "table")
    return []


def record_table(acct, params: dict | None) -> None:
    """A table the run read and held to its contract: path, checksums and accounting."""
    run = current()
    if run is None:
        return
    if params is not None and run.params is None:
        run.params = params
    files = [{"path": str(f), "bytes": f.stat().st_size, "sha256": file_sha256(f)}
             for f in _files(acct.path)]
    run.tables.append({**acct.as_dict(), "files": files})


def manifest(run: Run, result: object) -> dict:
    """What a scheduler or an auditor needs to trust the run without opening its files."""
    found = result if isinstance(result, dict) else {}
    for table in run.tables:  # the rows each quarantine holds, now that it is published
        if table.get("quarantine") in run.outputs:
            run.outputs[table["quarantine"]]["rows"] = table["rejected"]
    outputs = []
    for entry in run.outputs.values():
        if entry.get("table"):  # a database table: no file to measure
            outputs.append(entry)
            continue
        path = Path(entry["path"])
        if path.is_file():
            outputs.append({**entry, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    finished = datetime.now(UTC)
    return {
        "leadq_manifest": MANIFEST_VERSION,
        "command": run.command,
        "run_id": run.run_id,
        "status": "ok",
        "exit_code": 0,
        "params_file": (run.params or {}).get("_path"),
        # train reports the version it registered as `version`
        "model_version": found.get("model_version") or (
            found.get("version") if run.command == "train" else None),
        "threshold_version": found.get("threshold_version"),
        "inputs": run.tables,
        "outputs": outputs,
        "rows": {t["table"]: {"read": t["read"], "used": t["used"], "rejected": t["rejected"]}
                 for t in run.tables},
        "warnings": run.warnings,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - run.started, 3),
    }


def manifest_path(run: Run, result: object) -> Path | None:
    """`<output>.manifest.json` beside the scores for `score` (into a file); else
    `<outputs.dir>/<command>-<run id>.manifest.json`. None when the run read no table."""
    if not run.tables or run.params is None:
        return None
    found = result if isinstance(result, dict) else {}
    if run.command == "score" and found.get("output") and not found.get("output_table"):
        out = Path(found["output"])
        return out.with_name(f"{out.name}.manifest.json")
    return outputs_dir(run.params) / f"{run.command}-{run.run_id}.manifest.json"


def write_manifest(run: Run, result: object) -> tuple[Path, dict] | None:
    """Publish the run's manifest (atomically; never onto a file the run read)."""
    path = manifest_path(run, result)
    if path is None:
        return None
    body = manifest(run, result)
    reads = [("input", f["path"]) for t in run.tables for f in t["files"]]
    if body["params_file"]:
        reads.append(("params file", body["params_file"]))
    refuse_overwrite(reads, [("run manifest", path)])
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    return path, body
