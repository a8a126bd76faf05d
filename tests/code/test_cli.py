"""The CLI's start-up path stays light, and its commands are all reachable."""

import subprocess
import sys

HEAVY = ("mlflow", "great_expectations", "sklearn", "shap", "pyspark", "pandas", "matplotlib",
         "sqlalchemy")


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from leadq.pipelines.cli import build_parser; build_parser().format_help(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by `leadq --help`: {out.stdout}"


def _readme_commands() -> set[str]:
    """The command names in the first column of README's "## Commands" table."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            cell = line.split("|")[1]
            names |= {m.split()[0] for m in re.findall(r"`(?:leadq )?([^`]+)`", cell)}
    return names


def test_every_subcommand_has_help():
    from leadq.pipelines.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # Every command README's table documents is reachable (not just a hand-picked few).
    documented = _readme_commands()
    assert len(documented) >= 12, documented
    assert documented <= set(sub.choices), documented - set(sub.choices)
    for name, subparser in sub.choices.items():
        assert subparser.format_help().startswith("usage: leadq " + name)


def test_synth_command_writes_the_four_tables_and_truth(tmp_path):
    from leadq.pipelines.cli import main

    assert main(["synth", "--out", str(tmp_path), "--leads", "300", "--seed", "5"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["activities.csv", "deals.csv", "feedback.csv", "leads.csv", "truth.csv"]


def _subparsers() -> dict:
    from leadq.pipelines.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_subcommand_help_has_a_description_and_an_example():
    # Iterates the parser itself, so a command added later without an entry in
    # pipelines/cli_help.py fails here by name.
    from leadq.pipelines.cli_help import EXAMPLES_HEADING

    for name, subparser in _subparsers().items():
        text = subparser.format_help()
        description = subparser.description or ""
        assert description.strip(), f"leadq {name} --help has no description"
        assert "\n" not in description, f"leadq {name}: the description is one line"
        assert EXAMPLES_HEADING in text, f"leadq {name} --help has no example"
        examples = text.split(EXAMPLES_HEADING, 1)[1].strip().splitlines()
        assert examples and all(e.strip().startswith(f"leadq {name}") for e in examples), \
            (name, examples)


def test_global_flags_before_or_after_the_subcommand():
    from leadq.pipelines.cli import build_parser

    parser = build_parser()
    for argv in (["--json", "-v", "params"], ["params", "--json", "-v"],
                 ["-v", "params", "--json"], ["models", "--params", "p.yaml", "--verbose",
                                              "--json"]):
        args = parser.parse_args(argv)
        assert args.json is True and args.verbose is True, argv
    # Given on neither side, they stay off (the subcommand's copy must not reset them).
    args = parser.parse_args(["params"])
    assert args.json is False and args.verbose is False
    args = parser.parse_args(["--json", "params"])
    assert args.json is True and args.verbose is False


def test_params_json_after_the_subcommand_prints_json(capsys, monkeypatch):
    # README's own line: `leadq params --params params.yaml --json`.
    import json
    from pathlib import Path

    from leadq.pipelines.cli import main

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    repo = Path(__file__).resolve().parents[2]
    assert main(["params", "--params", str(repo / "params.yaml"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["label"]["horizon_days"] == 90 and "data" in printed


def test_mlflow_download_progress_is_off_unless_verbose(monkeypatch, tmp_path):
    from pathlib import Path

    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    from leadq.pipelines.cli import main

    params = str(Path(__file__).resolve().parents[2] / "params.yaml")
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True  # MLflow's own default
    assert main(["-v", "params", "--params", params]) == 0
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True
    assert main(["params", "--params", params]) == 0
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False  # what MLflow's bars read
    # A setting the user made is kept.
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    assert main(["params", "--params", params]) == 0
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True


def test_the_demo_hint_names_the_mlflow_beside_this_python(monkeypatch, tmp_path):
    # The demo prints "browse it  <mlflow> ui ...": a bare `mlflow` fails when .venv/bin is
    # not on PATH, which is how `make run` leaves a newcomer.
    from pathlib import Path

    import pytest

    from leadq.pipelines.demo import _mlflow_command

    beside = Path(sys.executable).parent / "mlflow"
    if not beside.is_file():
        pytest.skip("no mlflow program beside this interpreter")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(beside.parent.parent.parent)  # the folder that holds .venv
    command = _mlflow_command()
    assert not Path(command).is_absolute()
    assert (Path.cwd() / command).resolve() == beside.resolve()


def test_the_exit_code_table_is_in_the_help_and_matches_the_errors(capsys):
    """A scheduler maps these codes to retries and alerts: the documented table and the codes
    the errors carry must agree."""
    from leadq.errors import (
        EXIT_CODES,
        BadInputError,
        LeadqError,
        TooManyRejectedError,
    )
    from leadq.pipelines.cli import build_parser

    assert (LeadqError.exit_code, BadInputError.exit_code, TooManyRejectedError.exit_code) == (
        1, 2, 3)
    assert sorted(EXIT_CODES) == [0, 1, 2, 3]
    epilog = " ".join(build_parser().format_help().split())
    for code, text in EXIT_CODES.items():
        assert f"{code} {text}" in epilog
    score_help = " ".join(build_parser()._subparsers._group_actions[0].choices["score"]
                          .format_help().split())
    assert "--max-rejected-share" in score_help and "--log-format" in score_help


def test_json_log_lines_carry_the_run(capsys):
    import io
    import json
    import logging

    from leadq.pipelines.io.progress import JsonFormatter, log
    from leadq.pipelines.io.run import started

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    try:
        with started("score") as run:
            log.warning("a %s", "warning")
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["level"] == "warning" and line["message"] == "a warning"
    assert (line["command"], line["run_id"]) == ("score", run.run_id)
    assert run.warnings == ["a warning"]  # and the manifest lists it


def test_a_share_outside_0_to_1_is_exit_2_before_any_work(tmp_path, capsys):
    from pathlib import Path

    from leadq.pipelines.cli import main

    repo_params = Path(__file__).resolve().parents[2] / "params.yaml"
    code = main(["score", "--input", str(tmp_path / "leads.csv"), "--output",
                 str(tmp_path / "o.csv"), "--max-rejected-share", "1.5",
                 "--params", str(repo_params)])
    assert code == 2 and "--max-rejected-share 1.5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mlflow_registry_prints_show_only_with_verbose(capsys):
    """MLflow prints its own "Successfully registered model" lines on stderr; leadq says which
    version it registered, so they are hidden unless -v. Anything else still shows."""
    from mlflow.utils.logging_utils import eprint

    from leadq.pipelines.io.progress import setup_logging
    from leadq.pipelines.tracking.store import quiet_registry_prints

    setup_logging(verbose=False)
    with quiet_registry_prints():
        eprint("Successfully registered model 'leadq'.")
        eprint("Created version '3' of model 'leadq'.")
        eprint("a warning the user must see")
    err = capsys.readouterr().err
    assert "Successfully registered" not in err and "Created version" not in err
    assert "a warning the user must see" in err
    setup_logging(verbose=True)
    try:
        with quiet_registry_prints():
            eprint("Successfully registered model 'leadq'.")
        assert "Successfully registered" in capsys.readouterr().err
    finally:
        setup_logging(verbose=False)
