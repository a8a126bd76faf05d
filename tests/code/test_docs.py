"""The documentation site: it builds in strict mode, and its reference pages are generated from
the code, so a params key or a command that exists is on its page (docs/hooks/reference.py)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _reference():
    spec = importlib.util.spec_from_file_location("leadq_docs_reference",
                                                  REPO / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    """Every key a user can set, read from the YAML itself (not from the generator's parse)."""
    from leadq.pipelines.params.loader import OPEN_MAPPINGS

    out = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in OPEN_MAPPINGS:
            out += _leaf_keys(value, dotted + ".")
        else:
            out.append(dotted)
    return out


def _rows(page: str) -> dict[str, list[str]]:
    """The params page's table rows by key: [type, default, meaning]."""
    rows = {}
    for line in page.splitlines():
        match = re.match(r"^\| `([\w.]+)` \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = re.split(r"(?<!\\)\|", match.group(2))
    return rows


def test_every_params_key_is_on_the_params_page_with_type_and_default():
    from leadq.pipelines.params.loader import DEFAULTS_PATH

    defaults = yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))
    keys = _leaf_keys(defaults)
    assert len(keys) > 150  # the whole schema, not a section of it
    rows = _rows(_reference().params_markdown())
    missing = [k for k in keys if k not in rows]
    assert not missing, f"params keys missing from docs/reference/params.md: {missing}"
    # Type and default are what defaults.yaml says, and a commented key carries its comment.
    assert rows["label.horizon_days"][0].strip() == "number (integer)"
    assert rows["label.horizon_days"][1].strip() == "`90`"
    assert "won within this many days" in rows["label.horizon_days"][2]
    assert rows["features.activity_windows"][1].strip() == "`[7, 30, 90]`"
    assert rows["agreement.tiers.a_share"][1].strip() == "`0.33`"
    assert rows["train.n_threads"][0].strip() == "number (integer) or null"
    assert "A mapping you set replaces" in rows["registry.criteria"][2]  # continued comment


FILE_SUFFIXES = ("html", "json", "csv", "yaml", "py", "parquet", "db", "md", "j2")


def test_keys_named_in_the_prose_exist(tmp_path):
    # The hand-written pages name parameters too (`agreement.sla_hours`): a key renamed or
    # removed in defaults.yaml must not live on in them. Old names a page mentions on purpose
    # (the loader's MOVED / REMOVED maps, the typo in the unknown-key example) are allowed.
    from leadq.pipelines.params.loader import DEFAULTS_PATH, MOVED, OPEN_MAPPINGS, REMOVED

    defaults = yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))
    known: set[str] = set()

    def walk(node: dict, prefix: str = "") -> None:
        for key, value in node.items():
            known.add(prefix + key)
            if isinstance(value, dict) and prefix + key not in OPEN_MAPPINGS:
                walk(value, prefix + key + ".")

    walk(defaults)
    allowed = set(MOVED) | set(REMOVED) | {"train.min_positive"}

    def is_module(name: str) -> bool:  # `mlflow.sklearn.load_model`, `features.transform`
        head = ".".join(name.split(".")[:2])
        return any(importlib.util.find_spec(m) is not None for m in (head, f"leadq.{head}"))
    stale = []
    for page in sorted((REPO / "docs").rglob("*.md")):
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)", line):
                if (name.split(".")[0] in defaults and name not in known
                        and name.rsplit(".", 1)[1] not in FILE_SUFFIXES and name not in allowed
                        and not any(name.startswith(m + ".") for m in OPEN_MAPPINGS)
                        and not is_module(name)):
                    stale.append(f"{page.relative_to(REPO)}:{number}: {name}")
    assert not stale, stale


def test_a_key_added_to_the_defaults_appears_without_touching_the_generator(tmp_path):
    from leadq.pipelines.params.loader import DEFAULTS_PATH

    text = DEFAULTS_PATH.read_text(encoding="utf-8").replace(
        "report:", "report:\n  brand_new_key: 12            # a key someone adds later", 1)
    path = tmp_path / "defaults.yaml"
    path.write_text(text, encoding="utf-8")
    rows = _rows(_reference().params_markdown(path))
    assert rows["report.brand_new_key"][1].strip() == "`12`"
    assert "a key someone adds later" in rows["report.brand_new_key"][2]


def test_every_command_is_on_the_commands_page_with_its_help(monkeypatch):
    from leadq.pipelines import cli

    reference = _reference()
    page = reference.commands_markdown()
    names = list(reference.subcommands())
    assert len(names) >= 15
    for name, sub in reference.subcommands().items():
        assert f"\n## leadq {name}\n" in page, f"leadq {name} missing from the commands page"
        assert f"usage: leadq {name}" in page
        assert sub.description and sub.description in page
    # A command added later shows up because the page reads the parser.
    build = cli.build_parser

    def with_new_command():
        parser = build()
        sub = next(a for a in parser._actions if a.dest == "command")
        sub.add_parser("brand-new", help="x", description="A command someone adds later.")
        return parser

    monkeypatch.setattr(cli, "build_parser", with_new_command)
    page = reference.commands_markdown()
    assert "\n## leadq brand-new\n" in page and "A command someone adds later." in page


def test_readme_is_short_and_its_doc_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert len(links) >= 5
    reference = _reference()
    generated = {f"docs/{reference.COMMANDS_PAGE}", f"docs/{reference.PARAMS_PAGE}"}
    broken = [link for link in links if link not in generated and not (REPO / link).is_file()]
    assert not broken, broken


def test_docs_site_builds_in_strict_mode(tmp_path):
    # Strict mode turns every warning into a failure: a broken link or anchor, a page left out
    # of the nav, a nav entry without a page (mkdocs.yml `validation`).
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mkdocs is not installed; requirements/ci.lock pins it (docs extra)")
        pytest.skip("mkdocs not installed: make .venv/.installed-test installs it")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=REPO, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = (tmp_path / "site" / "reference" / "commands" / "index.html").read_text()
    assert "leadq recalibrate" in commands
    params = (tmp_path / "site" / "reference" / "params" / "index.html").read_text()
    assert "agreement.sla_hours" in params
