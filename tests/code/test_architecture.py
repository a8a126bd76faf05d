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
import yaml

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"leadq": REPO / "leadq", "leadq.features": REPO / "features",
           "leadq.models": REPO / "models", "leadq.pipelines": REPO / "pipelines"}
LAYER = {"leadq.errors": 0, "leadq.settings": 0, "leadq.features": 1, "leadq.models": 2,
         "leadq.pipelines": 3}


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


# --- One home for defaults -------------------------------------------------------------------
# Code reads a parameter through leadq.settings.setting over params merged with defaults.yaml,
# never `cfg.get("trials", 10)` or `cfg.get("trials") or 10`: such a literal can only disagree
# with the file (it did: train.search.trials 10 vs 8, timeout_seconds 60 vs 20).
# Receivers that are not params but share a key's name, each with why.
NOT_PARAMS = {
    ("pipelines/recalibrate.py", "calibration"): "a stored realised-outcome record",
    ("pipelines/recalibrate.py", "accepted"): "a plan row of the scoring log",
    ("pipelines/recalibrate.py", "rejected"): "a plan row of the scoring log",
    ("models/prior_shift.py", "method"): "a correction record read back from MLflow",
    ("pipelines/review.py", "as_of"): "a threshold history entry",
    # Readers take a table spec that `leadq init` builds before any params file exists.
    ("pipelines/io/files.py", "encoding"): "a reader spec (init passes partial ones)",
    ("pipelines/scoring/spark.py", "encoding"): "a reader spec (init passes partial ones)",
    ("pipelines/scoring/spark.py", "delimiter"): "a reader spec (init passes partial ones)",
    # null is a documented value of data.leads.date_format (NULLABLE_KEYS): it means ISO8601.
    ("pipelines/service/contract.py", "date_format"): "null means ISO 8601 (documented)",
}


def _param_names() -> set[str]:
    tree = yaml.safe_load((REPO / "pipelines/params/defaults.yaml").read_text(encoding="utf-8"))
    names: set[str] = set()

    def walk(node: dict) -> None:
        for key, value in node.items():
            names.add(key)
            if isinstance(value, dict):
                walk(value)
    walk(tree)
    return names


def literal_fallbacks(source: str, names: set[str]) -> list[tuple[int, str, str]]:
    """(line, key, code) of every `x.get(KEY, literal)` and `x.get(KEY) or literal` whose KEY
    names a parameter. None and "" are not fallbacks (they mean "not set")."""
    def key_of(node: ast.AST) -> str | None:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in names):
            return node.args[0].value
        return None

    def is_fallback(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value not in (None, "")
        return isinstance(node, ast.List | ast.Dict | ast.Tuple | ast.Name | ast.Attribute)

    found = []
    for node in ast.walk(ast.parse(source)):
        key = key_of(node)
        if key and len(node.args) == 2 and is_fallback(node.args[1]):
            found.append((node.lineno, key, ast.unparse(node)))
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            first, *rest = node.values
            key = key_of(first)
            if key and len(first.args) == 1 and any(isinstance(v, ast.Constant)
                                                    and v.value not in (None, "", False)
                                                    for v in rest):
                found.append((node.lineno, key, ast.unparse(node)))
    return found


def test_the_fallback_detector_finds_both_forms():
    names = {"trials", "dir"}
    source = ("a = cfg.get('trials', 10)\nb = cfg.get('dir') or 'out'\n"
              "c = cfg.get('trials')\nd = tags.get('other', 1)\ne = cfg.get('dir', None)\n")
    assert [(line, key) for line, key, _ in literal_fallbacks(source, names)] == [
        (1, "trials"), (2, "dir")]


def test_no_literal_fallback_for_a_parameter():
    names = _param_names()
    found = []
    for folder in ("features", "models", "pipelines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for line, key, code in literal_fallbacks(path.read_text(encoding="utf-8"), names):
                if (rel, key) not in NOT_PARAMS:
                    found.append(f"{rel}:{line}: {code}")
    assert found == [], (
        "read parameters with leadq.settings.setting(params, 'section.key'): the default lives "
        "in pipelines/params/defaults.yaml only; a receiver that is not params goes in "
        "NOT_PARAMS with why\n" + "\n".join(found))


def test_every_allowed_exception_still_exists():
    """An exception whose code is gone must leave the list, so the list cannot grow stale."""
    names = _param_names()
    seen = {(rel, key) for rel in {r for r, _ in NOT_PARAMS}
            for _, key, _ in literal_fallbacks((REPO / rel).read_text(encoding="utf-8"), names)}
    assert set(NOT_PARAMS) - seen == set()
