"""How long `leadq --help` takes (target: under 1.5 s). Median of 5 runs."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def main() -> None:
    exe = shutil.which("leadq") or str(Path(sys.executable).parent / "leadq")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([exe, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    result = {"leadq_help_median_s": statistics.median(times), "runs_s": times}
    OUT.mkdir(exist_ok=True)
    (OUT / "cli_startup.json").write_text(json.dumps(result, indent=2))
    print(f"leadq --help: median {result['leadq_help_median_s']:.3f}s over 5 runs")


if __name__ == "__main__":
    main()
