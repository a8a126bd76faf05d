"""`make bench`: every benchmark script in turn, each as its own process, results in
benchmarks/out/. The slow ones (10M-row scoring, Spark) are left to be run by hand; see
benchmarks/README.md for what each measures and its target."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_cli_startup.py"],
    ["bench_demo.py"],
    ["bench_training.py"],
    ["bench_explain.py"],
    ["bench_validation.py"],
    ["bench_scoring.py", "--sizes", "1000000", "--no-spark"],
    ["bench_serve.py", "--workers", "2"],
]


def main() -> int:
    failed = []
    for script, *args in RUNS:
        start = time.perf_counter()
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        code = subprocess.run([sys.executable, str(HERE / script), *args]).returncode
        print(f"=== {script}: exit {code} in {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
