"""`make test-fast` selects `-m "not slow"`; tests/conftest.py marks slow what trains a model or
starts a service, so a test added later that uses the trained store leaves the fast lane by
itself. Checked on the real collection, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _collect(*args: str, paths: tuple[str, ...] = ("tests",)) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *args, *paths], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {line for line in out.stdout.splitlines() if "::" in line}


# Two pytest collections in subprocesses (about 15 s on a busy machine): it checks the lane, so
# it runs with the full suite rather than in it.
@pytest.mark.slow
def test_the_fast_lane_leaves_out_training_and_services():
    fast = _collect("-m", "not slow")
    assert len(fast) > 200
    # Collecting only the two files that hold the examples below keeps this test cheap.
    everything = _collect(paths=("tests/code/test_trusted_types.py",
                                 "tests/data/test_bad_inputs.py"))
    assert not [t for t in fast if t.startswith(("tests/model/", "tests/integration/"))]
    # Neither marks nor folder put these out: only their use of the trained_store fixture.
    for test in ("tests/code/test_trusted_types.py::"
                 "test_scoring_refuses_a_registered_model_whose_types_are_not_listed",
                 "tests/data/test_bad_inputs.py::test_header_only_exits_2"):
        assert test in everything and test not in fast, test
    assert "tests/code/test_trusted_types.py::test_listed_types_load" in fast
