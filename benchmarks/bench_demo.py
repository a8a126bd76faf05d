"""Time `leadq demo` end to end (installation excluded) in a scratch directory and record its
quality figures: test ROC AUC against the oracle's, and ECE. Target: under 3 minutes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"


def main(leads: int | None = None) -> dict:
    exe = shutil.which("leadq") or str(Path(sys.executable).parent / "leadq")
    with tempfile.TemporaryDirectory() as tmp:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(params))
        cmd = [exe, "--json", "demo", "--params", str(Path(tmp) / "params.yaml")]
        if leads:
            cmd += ["--leads", str(leads)]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
        seconds = time.perf_counter() - start
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    result = {
        "leads": summary["leads"],
        "wall_seconds": round(seconds, 1),
        "test_roc_auc": round(summary["test_roc_auc"], 4),
        "oracle_roc_auc": round(summary["oracle_roc_auc"], 4),
        "roc_gap": round(summary["oracle_roc_auc"] - summary["test_roc_auc"], 4),
        "test_ece": round(summary["test_ece"], 4),
        "test_ece_vs_truth": round(summary["test_ece_vs_truth"], 4),
        "candidate": summary["candidate"],
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "demo.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
