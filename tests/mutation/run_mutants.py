"""Break each tested promise in turn, in a scratch copy of the tree, and see whether the suite
notices (`make mutants`; not part of `make test`).

Each mutant is a hand-written, minimal change that breaks one promise the README makes (the
exact text replaced is in mutants.toml beside this file). For each one the runner copies the
working tree, applies the change, runs the tests named for that promise and records whether
they failed ("killed") or passed ("survived": the suite would not notice that promise
breaking). The real checkout is never modified.

    .venv/bin/python tests/mutation/run_mutants.py            # all mutants
    .venv/bin/python tests/mutation/run_mutants.py cascade    # only the named ones
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MUTANTS_FILE = Path(__file__).with_name("mutants.toml")


@dataclass(frozen=True)
class Mutant:
    id: str
    promise: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


def load_mutants(path: Path = MUTANTS_FILE) -> list[Mutant]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Mutant(**{**m, "tests": tuple(m["tests"])}) for m in data["mutant"]]

# The editable install maps leadq.pipelines/.features/.models to the real checkout; in the
# scratch copy these links make the copy's (mutated) folders win, since the copy's root is
# first on sys.path when pytest runs there.
LINKS = {"pipelines": "../pipelines", "features": "../features", "models": "../models"}


def scratch_copy(dest: Path) -> Path:
    """The working tree as git sees it (tracked and untracked-not-ignored files)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for name, target in LINKS.items():
        (dest / "leadq" / name).symlink_to(target, target_is_directory=True)
    return dest


def run_tests(root: Path, tests: list[str], timeout: int) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.pop("CI", None)  # a mutant run is local: integration tests may skip
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return proc.returncode, (lines[-1] if lines else proc.stderr.strip()[-200:])


def check_imports_from_copy(root: Path) -> None:
    code = "import leadq.pipelines, leadq.features, leadq.models; print(leadq.pipelines.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True).stdout.strip()
    if not out.startswith(str(root)):
        raise SystemExit(f"the scratch copy imports leadq from {out}, not from {root}")


def apply(root: Path, m: Mutant) -> None:
    path = root / m.file
    text = path.read_text(encoding="utf-8")
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutant {m.id}: the text to replace occurs {count} times in {m.file} "
                         "(the code moved on: update tests/mutation/mutants.toml)")
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip checking that the named tests pass unmutated")
    args = parser.parse_args(argv)
    mutants = load_mutants()
    chosen = [m for m in mutants if not args.ids or m.id in args.ids]
    unknown = set(args.ids) - {m.id for m in mutants}
    if unknown:
        parser.error(f"unknown mutant id(s): {sorted(unknown)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="leadq-mutants-") as tmp:
        root = scratch_copy(Path(tmp) / "leadq")
        check_imports_from_copy(root)
        if not args.no_baseline:
            tests = sorted({t for m in chosen for t in m.tests})
            code, last = run_tests(root, tests, args.timeout * 2)
            print(f"baseline (unmutated): exit {code}: {last}", flush=True)
            if code != 0:
                print("the named tests fail without any mutation: fix the suite first",
                      file=sys.stderr)
                return 1
        for m in chosen:
            original = (root / m.file).read_text(encoding="utf-8")
            apply(root, m)
            start = time.monotonic()
            code, last = run_tests(root, list(m.tests), args.timeout)
            seconds = time.monotonic() - start
            (root / m.file).write_text(original, encoding="utf-8")
            # pytest: 1 = tests failed; 2-4 = errors (collection, usage); 5 = nothing ran
            killed = code in (1, 2, 3)
            verdict = "killed" if killed else ("NO TESTS RAN" if code == 5 else "SURVIVED")
            results.append({"id": m.id, "promise": m.promise, "file": m.file,
                            "tests": list(m.tests), "verdict": verdict, "exit": code,
                            "seconds": round(seconds, 1), "last_line": last})
            print(f"{m.id:<28} {verdict:<9} {seconds:6.1f}s  {last}", flush=True)
    print()
    print("| mutant | promise broken | file | killed? | by |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['id']} | {r['promise']} | {r['file']} | {r['verdict']} | "
              f"{', '.join(r['tests'])} |")
    killed = sum(r["verdict"] == "killed" for r in results)
    print(f"\n{killed} of {len(results)} mutants killed")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
