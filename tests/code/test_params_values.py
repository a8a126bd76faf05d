"""Params values that used to hang or crash a run are exit 2 naming the key, within a second
(issue 30: chunk_size 0.5 looped forever, a negative one was an IndexError, an alias bomb took
minutes and 1.5 GB, a list as a column name was "unhashable type", a section written twice
vanished)."""

from __future__ import annotations

import time

import pytest

from leadq.errors import ConfigError
from leadq.pipelines.params.loader import load_params

BOMB = """\
scoring:
  chunk_size: &i [&h [&g [&f [&e [&d [&c [&b [&a [lol, lol, lol, lol, lol, lol, lol, lol, lol],
    *a, *a, *a, *a, *a, *a, *a, *a], *b, *b, *b, *b, *b, *b, *b, *b],
    *c, *c, *c, *c, *c, *c, *c, *c], *d, *d, *d, *d, *d, *d, *d, *d],
    *e, *e, *e, *e, *e, *e, *e, *e], *f, *f, *f, *f, *f, *f, *f, *f],
    *g, *g, *g, *g, *g, *g, *g, *g], *h, *h, *h, *h, *h, *h, *h, *h]
"""

CASES = {
    "fraction-chunk": ("scoring:\n  chunk_size: 0.5\n", "scoring.chunk_size"),
    "negative-chunk": ("scoring:\n  chunk_size: -5\n", "scoring.chunk_size"),
    "zero-chunk": ("scoring:\n  chunk_size: 0\n", "scoring.chunk_size"),
    "float-rows": ("contracts:\n  gx_sample_rows: 1000.0\n", "contracts.gx_sample_rows"),
    "bool-count": ("calibration:\n  folds: true\n", "calibration.folds"),
    "share-zero": ("split:\n  train: 0\n", "split.train"),
    "share-above-one": ("agreement:\n  mql:\n    top_share: 1.5\n", "agreement.mql.top_share"),
    "negative-limit": ("contracts:\n  max_rejected_share: -0.1\n",
                       "contracts.max_rejected_share"),
    "scheduler-share": ("scoring:\n  max_rejected_share: 1.5\n",
                        "scoring.max_rejected_share"),
    "outputs-dir-list": ("outputs:\n  dir: [a, b]\n", "outputs.dir"),
    "list-as-column": ("data:\n  leads:\n    id: [lead_id, other]\n", "data.leads.id"),
    "number-as-column": ("features:\n  email_column: 5\n", "features.email_column"),
    "nested-column-list": ("features:\n  categorical: [[source, campaign], industry]\n",
                           "features.categorical"),
    "window-list": ("features:\n  activity_windows: [7, 0]\n", "features.activity_windows"),
    "section-twice": ("scoring:\n  chunk_size: 10\nlabel:\n  horizon_days: 30\n"
                      "scoring:\n  n_threads: 1\n", "'scoring' is written twice"),
    "key-twice": ("scoring:\n  chunk_size: 10\n  chunk_size: 20\n",
                  "'chunk_size' is written twice"),
    "lookup-key-list": ("data:\n  lookups:\n    firms: {path: f.csv, key: [a, b], columns: [x]}\n",
                        "data.lookups.firms.key"),
    "criterion-list": ("registry:\n  criteria: {min_test_roc_auc: [0.7]}\n",
                       "registry.criteria.min_test_roc_auc"),
    "criterion-name": ("registry:\n  criteria: {test_roc_auc: 0.7}\n",
                       "registry.criteria.test_roc_auc"),
    "alias-bomb": (BOMB, "aliases"),
    "recursive-alias": ("features:\n  categorical: &a [*a]\n", "alias"),
}


@pytest.mark.parametrize("text, names", CASES.values(), ids=CASES.keys())
def test_a_wrong_value_is_a_config_error_naming_the_key_within_a_second(tmp_path, text, names):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert time.perf_counter() - start < 2.0
    assert names in str(err.value) and str(path) in str(err.value)
    assert err.value.exit_code == 2


def test_the_cli_reports_a_bad_value_as_exit_2(tmp_path, capsys):
    from leadq.pipelines.cli import main

    path = tmp_path / "params.yaml"
    path.write_text("scoring:\n  chunk_size: 0.5\n")
    assert main(["params", "--params", str(path)]) == 2
    assert "scoring.chunk_size" in capsys.readouterr().err


def test_sensible_values_and_small_aliases_still_load(tmp_path):
    """What the checks must not refuse: nulls where allowed, 0 where it means "none", an
    ordinary anchor reused once, a YAML merge key overriding a merged value."""
    path = tmp_path / "params.yaml"
    path.write_text(
        "features:\n  categorical: &cats [source, campaign]\n  target_encode: *cats\n"
        "scoring:\n  chunk_size: 5000\n  n_threads: null\n  explore_rate: 0\n"
        "contracts:\n  max_duplicate_id_share: 0\n"
        "data:\n  leads: &leads {id: lead_id, created_at: created_at}\n"
        "  lookups:\n    firms:\n      <<: {path: firms.csv, key: domain}\n"
        "      key: firm_domain\n      columns: [size]\n")
    params = load_params(path)
    assert params["features"]["target_encode"] == ["source", "campaign"]
    assert params["scoring"]["explore_rate"] == 0
    assert params["data"]["lookups"]["firms"]["key"] == "firm_domain"


def test_the_repository_params_and_the_defaults_pass_the_checks():
    from pathlib import Path

    from leadq.pipelines.params.loader import check_values, default_params

    check_values(default_params(), "defaults.yaml")
    load_params(Path(__file__).resolve().parents[2] / "params.yaml")
