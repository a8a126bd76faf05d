"""The lock files CI installs from hold every declared dependency, at a version the ranges allow.

A dependency added to pyproject.toml but not to the locks would be missing on a fresh machine
(`make run` installs the lock, then leadq with --no-deps); `make lock` re-resolves them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / lock).read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[canonicalize_name(m[1])] = m[2]
    return pins


@pytest.mark.parametrize("lock, extras", [("run.lock", ()),
                                          ("ci.lock", ("dev", "spark", "postgres", "docs")),
                                          ("notebooks.lock", ("notebooks",))])
def test_lock_pins_every_dependency_within_its_range(lock, extras):
    pins = _pins(lock)
    wanted = list(PROJECT["dependencies"])
    for extra in extras:
        wanted += PROJECT["optional-dependencies"][extra]
    problems = []
    for spec in wanted:
        req = Requirement(spec)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in requirements/{lock}")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} in requirements/{lock} is outside {spec}")
    assert problems == [], "run `make lock`: " + "; ".join(problems)


def test_locks_installed_into_one_venv_agree():
    # `make notebooks` installs notebooks.lock over run.lock (and `make test` over ci.lock) in
    # the same .venv: a package pinned differently would be swapped under the other's feet.
    run, ci, notebooks = _pins("run.lock"), _pins("ci.lock"), _pins("notebooks.lock")
    for name, other in (("run.lock", run), ("ci.lock", ci)):
        clash = {p: (v, other[p]) for p, v in notebooks.items() if p in other and other[p] != v}
        assert clash == {}, f"notebooks.lock and {name} pin differently: {clash}"
