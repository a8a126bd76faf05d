"""The weekly job reads what the nightly job wrote (issue 30): `recalibrate` and `plan` take the
database URL `score --output` upserted into as their scores (recalibration.scores / --scores)
and give the same answer as from the same scores in a file."""

from __future__ import annotations

import json

import pytest

from leadq.errors import ConfigError
from leadq.pipelines.cli import main as cli
from tests.helpers import cli_json, recalibration_params

AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_params, small_crm):
    from leadq.pipelines.train import main as train_main

    d = tmp_path_factory.mktemp("recal_db")
    path = recalibration_params(d, base_params, small_crm, agreement__review_days=182,
                                outputs__dir=str(d / "out"))
    train_main(str(path))
    url = f"duckdb:///{d / 'warehouse.duckdb'}"
    for out in (str(d / "scores.parquet"), url):
        assert cli(["score", "--input", str(small_crm["leads"]), "--output", out,
                    "--no-explain", "--params", str(path)]) == 0
    return {"params": str(path), "file": str(d / "scores.parquet"), "url": url}


def _rounded(value):
    """Sums over rows read in another order differ in the last bits."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _answer(capsys, argv: list[str]) -> dict:
    result = cli_json(capsys, argv)
    for key in ("manifest", "manifest_path", "inputs"):
        result.pop(key, None)
    return _rounded(result)


@pytest.mark.parametrize("command", ["recalibrate", "plan"])
def test_scores_from_the_database_table_give_the_file_answer(store, capsys, command):
    extra = ["--dry-run"] if command == "recalibrate" else ["--won-deals", "20"]
    argv = [command, *extra, "--as-of", AS_OF, "--params", store["params"]]
    from_file = _answer(capsys, [*argv, "--scores", store["file"]])
    from_table = _answer(capsys, [*argv, "--scores", store["url"]])
    import difflib
    a = json.dumps(from_file, sort_keys=True, default=str, indent=1).splitlines()
    b = json.dumps(from_table, sort_keys=True, default=str, indent=1).splitlines()
    assert a == b, "\n".join(list(difflib.unified_diff(a, b, lineterm=""))[:40])


def test_a_missing_scores_table_names_it_and_the_setting(store, tmp_path, capsys):
    import duckdb

    duckdb.connect(str(tmp_path / "other.duckdb")).close()
    url = f"duckdb:///{tmp_path / 'other.duckdb'}"
    code = cli(["recalibrate", "--dry-run", "--as-of", AS_OF, "--params", store["params"],
                "--scores", url])
    assert code == 2
    err = capsys.readouterr().err
    assert "leadq_scores" in err and "database.scores_table" in err


def test_a_password_in_the_scores_url_is_refused(tmp_path, base_params, small_crm):
    from leadq.pipelines.params.loader import load_params

    path = recalibration_params(tmp_path, base_params, small_crm,
                                recalibration__scores="postgresql://u:secret@h/db")
    with pytest.raises(ConfigError, match="recalibration.scores.*password"):
        load_params(path)
