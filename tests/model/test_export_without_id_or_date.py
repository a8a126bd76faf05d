"""A new user's own export, as the issue tried it: `;`-separated, no id column, no date, numeric
columns with negative values and the leads' own 0/1 label. It must train (GX included), score
(the scores beside the original rows, in input order) and report, from a params file that holds
only what differs from the defaults; and `contracts.numeric_bounds` may be null on either side
or for the whole column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.errors import ConfigError
from leadq.pipelines.cli import main as cli
from tests.helpers import quarantine_file

pytestmark = pytest.mark.slow

SHIFT = 10  # web_visits - SHIFT: about a third of the rows negative


@pytest.fixture(scope="module")
def export(small_crm, tmp_path_factory) -> dict:
    """The synthetic CRM's leads as a telemarketing-style export: no lead_id, no created_at,
    `;` between fields, a negative numeric column and a `converted` label."""
    directory = tmp_path_factory.mktemp("export")
    leads = pd.read_csv(small_crm["leads"], dtype=str)
    truth = pd.read_csv(small_crm["truth"], dtype={"lead_id": str})
    rng = np.random.default_rng(0)
    leads["converted"] = (rng.random(len(truth)) < truth["true_probability"]).astype(int)
    leads["web_visits"] = (leads["web_visits"].astype(int) - SHIFT).astype(str)
    leads = leads.drop(columns=["lead_id", "created_at", "first_name", "last_name", "phone"])
    path = directory / "export.csv"
    leads.to_csv(path, index=False, sep=";")
    return {"dir": directory, "path": path, "leads": leads}


def _params(directory: Path, export_path: Path, **contracts) -> Path:
    """What a user writes: only the differences from the packaged defaults."""
    params = {
        "data": {"leads": {"path": str(export_path), "delimiter": ";", "label": "converted",
                           "personal": ["email"]}},
        "features": {"categorical": ["source", "campaign", "industry", "country"],
                     "numeric": ["employees", "web_visits", "pages_viewed", "email_opens"],
                     "email_column": "email", "job_title_column": "job_title"},
        "train": {"search": {"trials": 2, "timeout_seconds": 5}, "hgb": {"max_iter": 120}},
        "report": {"importance_repeats": 1, "shap_rows": 200},
    }
    if contracts:
        params["contracts"] = contracts
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(export, tmp_path_factory) -> dict:
    from leadq.pipelines.train import main as train_main

    directory = tmp_path_factory.mktemp("no_id_store")
    path = _params(directory, export["path"])
    summary = train_main(str(path))
    return {"params": path, "summary": summary, "dir": directory}


def test_trains_without_id_or_date_and_calls_the_test_set_held_out(export, tmp_path, capsys):
    path = _params(tmp_path, export["path"])
    code, out, err = _run(capsys, ["train", "--params", str(path)])
    assert code == 0, err
    assert "held-out (random split: no date column) test" in out
    assert "out-of-time" not in out and "as of None" not in out + err
    # No row was lost to a "below 0" rule: negative numbers are fine without a bound.
    assert "below 0" not in err


def test_the_run_records_a_random_split(trained):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{trained['dir'] / 'mlflow.db'}")
    run_id = trained["summary"]["run_id"]
    fingerprint = mlflow.artifacts.load_dict(f"runs:/{run_id}/data_fingerprint.json")
    assert fingerprint["split_method"] == "random"
    assert fingerprint["test_set"] == "held-out (random split: no date column)"


def test_scores_sit_beside_the_original_rows_in_input_order(export, trained, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code, printed, err = _run(capsys, ["--json", "score", "--input", str(export["path"]),
                                       "--output", str(out),
                                       "--params", str(trained["params"])])
    assert code == 0, err
    summary = json.loads(printed)
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    original = pd.read_csv(export["path"], sep=";", dtype=str, keep_default_na=False)
    assert summary["rows"] == len(original) == len(scored)
    # Row numbers stand in for the id: 1 = the first data row, in order.
    assert scored["row_number"].astype(int).tolist() == list(range(1, len(original) + 1))
    pd.testing.assert_frame_equal(scored[list(original.columns)], original)
    assert {"score", "is_mql", "tier", "explore"} <= set(scored.columns)
    assert scored["score"].astype(float).between(0, 1).all()


def test_scoring_in_chunks_gives_the_same_rows(export, trained, tmp_path, capsys):
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    for out, extra in ((whole, []), (chunked, ["--chunk-size", "700"])):
        code, _, err = _run(capsys, ["score", "--input", str(export["path"]), "--output",
                                     str(out), "--params", str(trained["params"]), *extra])
        assert code == 0, err
    a, b = (pd.read_csv(p, dtype=str).drop(columns=["scored_at"]) for p in (whole, chunked))
    pd.testing.assert_frame_equal(a, b)  # the explore draw hashes the row number


def test_report_without_a_date(trained, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, _, err = _run(capsys, ["report", "--params", str(trained["params"]), "--out",
                                 str(out)])
    assert code == 0, err
    html = out.read_text()
    assert "held-out (random split: no date column)" in html
    assert "out-of-time" not in html and "as of None" not in html


@pytest.mark.parametrize("bounds, rejected", [
    ({"web_visits": None}, None),
    ({"web_visits": [None, None]}, None),
    ({"web_visits": [None, 5]}, "web_visits: above 5 (contracts.numeric_bounds.web_visits)"),
    ({"web_visits": [-SHIFT, None]}, None),
])
def test_null_bounds_train_with_gx_and_score(export, tmp_path, capsys, bounds, rejected):
    path = _params(tmp_path, export["path"], numeric_bounds=bounds)
    code, _, err = _run(capsys, ["--json", "train", "--params", str(path)])
    assert code == 0, err
    if rejected:
        # The quarantine, not the log: another test's logging set-up may own stderr.
        q = pd.read_csv(quarantine_file(path.parent, "leads", "export"), dtype=str)
        assert (q["web_visits"].astype(int) > 5).all()
        assert q["reason"].str.contains(rejected, regex=False).all()
    else:
        assert "web_visits: below" not in err and "web_visits: above" not in err
    out = tmp_path / "scores.csv"
    code, printed, err = _run(capsys, ["--json", "score", "--input", str(export["path"]),
                                       "--output", str(out), "--params", str(path)])
    assert code == 0, err
    acct = json.loads(printed)["accounting"]
    expected = int((export["leads"]["web_visits"].astype(int) > 5).sum()) if rejected else 0
    assert acct["rejected"] == expected


def test_gx_suite_has_no_bound_for_a_null_side(base_params):
    """The rule table generates no MIN rule for a null lower bound (no "below -inf" in Data
    Docs, no GX expectation with both ends None)."""
    from leadq.features.rules import rules_for, suite_expectations

    params = json.loads(json.dumps(base_params))
    params["contracts"]["numeric_bounds"] = {"employees": [None, 5], "web_visits": None}
    kinds = {(r.column, r.kind.name) for r in rules_for("leads", params)}
    assert ("employees", "MAX") in kinds and ("employees", "MIN") not in kinds
    assert not {("web_visits", "MIN"), ("web_visits", "MAX")} & kinds
    for e in suite_expectations("leads", params, {"numeric_ranges": {"employees": [1, 9]}}):
        if e["type"] == "expect_column_values_to_be_between":
            kw = e["kwargs"]
            assert kw.get("min_value") is not None or kw.get("max_value") is not None


def test_recalibrate_says_it_needs_an_id_and_a_date(tmp_path, capsys):
    from leadq.pipelines.params.loader import effective_params
    from leadq.pipelines.recalibrate import load_window

    params = effective_params({"data": {"leads": {"path": "x.csv", "label": "converted"}}})
    with pytest.raises(ConfigError, match="data.leads.id and data.leads.created_at not set"):
        load_window(params, scores=None, version="1", as_of=None)
