"""The layout promises: one leadq.* namespace, imports that point one way, no circles.

Layers, bottom to top: leadq.errors → leadq.features → leadq.models → leadq.pipelines. A module
may import its own layer or a lower one, never a higher one; features/ and models/ stay pure
(no MLflow, no file I/O). Read from the modules' own source (every import statement, lazy ones
inside functions included), not from a list kept by hand.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"leadq": REPO / "leadq", "leadq.features": REPO / "features",
           "leadq.models": REPO / "models", "leadq.pipelines": REPO / "pipelines"}
LAYER = {"leadq.errors": 0, "leadq.features": 1, "leadq.models": 2, "leadq.pipelines": 3}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            if package == "leadq" and path.parent != folder:
                continue
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


def _layer(module: str) -> int:
    return next(v for k, v in sorted(LAYER.items(), key=lambda kv: -len(kv[0]))
                if module == k or module.startswith(k + "."))


def test_every_module_is_in_a_layer():
    for module in _modules():
        if module == "leadq":
            continue
        assert _layer(module) is not None, module


def test_no_upward_import():
    upward = [f"{m} imports {i}" for m, deps in _graph().items() if m != "leadq"
              for i in deps if i != "leadq" and _layer(i) > _layer(m)]
    assert upward == []


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], " | ".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("package", ["leadq.features", "leadq.models"])
def test_features_and_models_stay_pure(package):
    """No MLflow, no Great Expectations, no Spark below pipelines/; files are read elsewhere."""
    impure = ("mlflow", "great_expectations", "pyspark")
    bad = [f"{m} imports {i}" for m, p in _modules().items() if m.startswith(package)
           for i in _imports(p) if i.split(".")[0] in impure]
    assert bad == []


def test_flat_names_are_banned_in_the_lint_rules():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    banned = config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"]
    assert {"pipelines", "features", "models"} <= set(banned)
    assert "TID" in config["tool"]["ruff"]["lint"]["select"]


def test_declared_packages_cover_every_folder():
    """A sub-package missing from pyproject's list would silently be left out of the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    on_disk = {m for m, p in _modules().items() if p.name == "__init__.py"}
    assert on_disk == declared


@pytest.mark.slow
def test_wheel_holds_only_leadq_paths(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("leadq-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("leadq/", "leadq-"))]
    assert outside == []
    assert "leadq/pipelines/cli.py" in names and "leadq/features/labels.py" in names


def test_flat_names_do_not_import_outside_the_repository(tmp_path):
    """The install adds leadq only: `import models` from elsewhere finds nothing of ours."""
    code = ("import importlib.util, sys; "
            "print([n for n in ('models', 'features', 'pipelines') "
            "if importlib.util.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
