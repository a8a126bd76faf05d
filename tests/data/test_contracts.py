"""Data contracts: the vectorised row checks, streaming equivalence, the 5% case, GX suites and
Data Docs, and personal data kept out of the model store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.features.contracts import check_rows, merge_reasons, suite_expectations
from leadq.models.routing import id_hashes
from leadq.pipelines.cli import main as cli
from leadq.pipelines.io.quarantine import IdTracker
from tests.helpers import copy_crm, quarantine_file

# The contract's messages name the setting that changes them.
BAD_DATE = "created_at: unparseable date (expected ISO8601, data.leads.date_format)"
FUTURE = "created_at: in the future (contracts.max_future_days)"


@pytest.fixture
def params(base_params) -> dict:
    return json.loads(json.dumps(base_params))


def test_check_rows_returns_one_reason_per_row(params):
    frame = pd.DataFrame({
        "lead_id": ["a", "b", "b", None, "e"],
        "created_at": ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "01/05/2025"],
        "employees": ["10", "-1", "3", "x", "5"],
        **{c: "v" for c in ("source", "campaign", "landing_page", "industry", "country",
                            "job_title", "email")},
        **{c: "1" for c in ("web_visits", "pages_viewed", "content_downloads", "email_opens",
                            "demo_requested")},
    })
    params["contracts"]["numeric_bounds"] = {"employees": [0, None]}  # no bound by default
    reasons = check_rows(frame, "leads", params, None)
    assert list(reasons.index) == list(frame.index)
    assert list(reasons) == [
        "",
        "employees: below 0 (contracts.numeric_bounds.employees)",
        "lead_id: duplicate id",
        "lead_id: missing; employees: not a number",
        BAD_DATE,
    ]


def test_check_rows_deals_needs_the_known_leads(params):
    deals = pd.DataFrame({"deal_id": ["d1", "d2", "d3"], "lead_id": ["a", "zz", "a"],
                          "closed_at": ["2025-02-01", "2025-02-01", "2024-12-01"],
                          "outcome": ["won", "lost", "WON"], "amount": ["1", "2", "3"]})
    known = pd.Series(pd.to_datetime(["2025-01-01"]), index=["a"])
    reasons = check_rows(deals, "deals", params, {"lead_created": known})
    assert list(reasons) == ["", "lead_id: unknown lead", "closed_at: before the lead's created_at"]


def test_id_tracker_finds_repeats_across_and_within_chunks():
    tracker = IdTracker()
    first = tracker.repeats(id_hashes(pd.Series(["a", "b", None, "a"])),
                            np.array([True, True, False, True]))
    second = tracker.repeats(id_hashes(pd.Series(["c", "a", "b", "d", "c"])), np.ones(5, bool))
    third = tracker.repeats(id_hashes(pd.Series(["d", "e", "", "", "e"])),
                            np.array([True, True, False, False, True]))
    assert list(first) == [False, False, False, True]
    assert list(second) == [False, True, True, False, True]
    assert list(third) == [True, False, False, False, True]


def test_id_tracker_matches_a_set_over_many_chunks():
    """The merged sorted runs must remember every id, however the merges fell."""
    rng = np.random.default_rng(3)
    tracker, seen = IdTracker(), set()
    for _ in range(40):
        ids = pd.Series(rng.integers(0, 300, rng.integers(0, 40)).astype(str))
        valid = rng.random(len(ids)) < 0.9
        got = tracker.repeats(id_hashes(ids), valid)
        want = []
        for value, ok in zip(ids, valid, strict=True):
            want.append(bool(ok) and value in seen)
            if ok:
                seen.add(value)
        assert list(got) == want
    assert len(tracker) == len(seen)


def test_merge_reasons():
    a = pd.Series(["", "x", "", "y"])
    b = pd.Series(["", "", "z", "w"])
    assert list(merge_reasons(a, b)) == ["", "x", "z", "y; w"]


def test_suite_has_no_expectation_on_personal_columns(params):
    reference = {"categories": {"source": ["email"]}, "numeric_ranges": {"employees": [1, 9]}}
    exps = suite_expectations("leads", params, reference)
    personal = set(params["data"]["leads"]["personal"])
    on_personal = [(e["kwargs"].get("column"), e["type"]) for e in exps
                   if e["kwargs"].get("column") in personal]
    # Nothing but "exists" on a personal column; the email (a model input, through its
    # corporate flag) gets exactly that one.
    assert {kind for _, kind in on_personal} == {"expect_column_to_exist"}
    assert [kind for col, kind in on_personal if col == "email"] == ["expect_column_to_exist"]
    levels = {e["meta"]["level"] for e in exps}
    assert levels == {"table", "row", "warning"}


def _messy(leads: pd.DataFrame, share: float, seed: int = 0) -> tuple[pd.DataFrame, set[str]]:
    """Spoil `share` of the rows in assorted ways; return the spoilt frame and their ids."""
    rng = np.random.default_rng(seed)
    leads = leads.copy()
    n_bad = int(round(len(leads) * share))
    # Even rows only, so a duplicate's partner (the odd row after it) is otherwise clean.
    rows = 2 * rng.choice(len(leads) // 2, n_bad, replace=False)
    spoilt = set(leads.loc[rows, "lead_id"])
    for k, row in enumerate(rows):
        kind = k % 5
        if kind == 0:
            leads.loc[row, "created_at"] = "31/02/2025"
        elif kind == 1:
            leads.loc[row, "employees"] = "-3"
        elif kind == 2:
            leads.loc[row, "employees"] = "lots"
        elif kind == 3:
            leads.loc[row, "created_at"] = "2999-01-01"
        else:
            leads.loc[row, "lead_id"] = leads.loc[(row + 1) % len(leads), "lead_id"]
            spoilt.discard(leads.loc[row, "lead_id"])  # the first occurrence stays good
    return leads, spoilt


def test_five_percent_bad_rows_scores_the_other_95(trained_store, tmp_path, capsys):
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str).head(2000)
    messy, spoilt = _messy(leads, 0.05)
    path = tmp_path / "leads.csv"
    messy.to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    # Negative numbers are rejected only under a configured bound (none by default).
    bounded = yaml.safe_load(Path(trained_store["params_path"]).read_text())
    bounded["contracts"]["numeric_bounds"] = {"employees": [0, None]}
    # Beside the store's params: its relative MLflow store is the one that holds the model.
    bounded_path = Path(trained_store["params_path"]).with_name(f"bounded_{tmp_path.name}.yaml")
    bounded_path.write_text(yaml.safe_dump(bounded))
    code = cli(["--json", "score", "--input", str(path), "--output", str(out),
                "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                "--params", str(bounded_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    acct = json.loads(captured.out)["accounting"]
    assert acct["read"] == 2000 and acct["rejected"] == 100 and acct["used"] == 1900
    assert sum(acct["rejected_by_reason"].values()) == 100
    assert acct["rejected_by_reason"] == {
        BAD_DATE: 20, "employees: below 0 (contracts.numeric_bounds.employees)": 20,
        "employees: not a number": 20, FUTURE: 20,
        "lead_id: duplicate id": 20}
    scored = pd.read_csv(out, dtype={"lead_id": str})
    quarantined = pd.read_csv(tmp_path / "scores.rejected.csv", dtype=str)
    assert len(scored) == 1900 and scored["score"].between(0, 1).all()
    # Each spoilt row breaks one rule: the quarantine holds exactly them, with that reason.
    assert len(quarantined) == 100
    assert quarantined["reason"].value_counts().to_dict() == acct["rejected_by_reason"]
    spoilt &= set(messy["lead_id"])  # a duplicate's overwritten id is gone from the file
    assert len(spoilt) == 80
    assert spoilt <= set(quarantined["lead_id"]) and not spoilt & set(scored["lead_id"])
    assert scored["lead_id"].is_unique
    assert "read 2,000 = used 1,900 + rejected 100" in captured.err


def test_streamed_output_is_identical_to_one_piece(trained_store, tmp_path, capsys):
    leads = pd.read_csv(trained_store["crm"]["leads"], dtype=str).head(1500)
    messy, _ = _messy(leads, 0.04, seed=1)
    messy.loc[1400, "lead_id"] = messy.loc[3, "lead_id"]  # a duplicate many chunks later
    messy.loc[1401, "lead_id"] = f" {leads.loc[1, 'lead_id']}  "  # padded, chunks later
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"leads.{fmt}"
        messy.to_csv(path, index=False) if fmt == "csv" else messy.to_parquet(path, index=False)
        results = {}
        for chunk in (97, 1_000_000):
            out = tmp_path / f"c{chunk}" / f"scores.{fmt}"
            code = cli(["--json", "score", "--input", str(path), "--output", str(out),
                        "--chunk-size", str(chunk),
                        "--model-uri", f"models:/leadq/{trained_store['summary']['version']}",
                        "--params", str(trained_store["params_path"])])
            captured = capsys.readouterr()
            assert code == 0, captured.err
            read = pd.read_csv if fmt == "csv" else pd.read_parquet
            results[chunk] = (read(out).drop(columns=["scored_at"]),
                              (out.parent / "scores.rejected.csv").read_bytes(),
                              json.loads(captured.out)["accounting"])
        small, whole = results[97], results[1_000_000]
        pd.testing.assert_frame_equal(small[0], whole[0])
        assert small[1] == whole[1]
        assert {k: v for k, v in small[2].items() if k != "quarantine"} == {
            k: v for k, v in whole[2].items() if k != "quarantine"}
        assert small[2]["rejected_by_reason"]["lead_id: duplicate id"] >= 2


@pytest.mark.slow  # renders Great Expectations Data Docs: 20-30 s on a busy 2-core machine
def test_validate_writes_data_docs(params_file, tmp_path, capsys):
    docs = tmp_path / "docs"
    code = cli(["--json", "validate", "--params", str(params_file), "--docs", str(docs)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (docs / "index.html").is_file()
    assert {"leads", "deals", "feedback", "activities"} <= set(summary["gx"])
    assert summary["gx"]["leads"]["failed"]["table"] == []
    assert summary["gx"]["leads"]["failed"]["row"] == []
    for table, acct in summary["accounting"].items():
        # The synthetic CRM is clean: every row of every file read and used.
        rows = len(pd.read_csv(yaml.safe_load(Path(params_file).read_text())["data"][table]
                               ["path"], dtype=str))
        assert (acct["read"], acct["used"], acct["rejected"]) == (rows, rows, 0), table
    assert not list(Path(params_file).parent.glob("*.rejected.csv"))  # validate only reads


@pytest.mark.slow
def test_personal_data_never_reaches_the_model_store(tmp_path, small_crm, make_params, capsys):
    """Plant unique emails (one in a good row, one in a quarantined row), train and score,
    then look for them in every byte under the MLflow store."""
    crm_dir = tmp_path / "crm"
    crm = copy_crm(small_crm, crm_dir)
    leads = pd.read_csv(crm["leads"], dtype=str)
    good, bad = "zq7.planted.person@uniquecorp-x91.example", "bad.row.k2@uniquecorp-x91.example"
    phone = "+99 555 0123987"
    leads.loc[0, ["email", "phone", "last_name"]] = [good, phone, "Plantedname"]
    leads.loc[1, ["email", "created_at"]] = [bad, "not-a-date"]
    leads.to_csv(crm["leads"], index=False)
    store = tmp_path / "store"
    store.mkdir()
    params_path = make_params(store, crm, train__candidates=["logreg"],
                              train__search={"enabled": False},
                              registry__criteria={})
    assert cli(["train", "--params", str(params_path)]) == 0, capsys.readouterr().err
    out = tmp_path / "scored" / "scores.csv"
    assert cli(["score", "--input", str(crm["leads"]), "--output", str(out),
                "--params", str(params_path)]) == 0, capsys.readouterr().err
    # The training quarantine is in the output folder beside the params, never the input's.
    assert bad in quarantine_file(store, "leads").read_text()
    assert not list(crm_dir.glob("*.rejected.csv"))
    # The quarantine (leadq-out/, owner-only) holds rows as they were, personal data included;
    # the model store and the run manifests (counts, paths, checksums) must not.
    outputs = store / "leadq-out"
    manifests = sorted(outputs.glob("*.manifest.json"))
    assert len(manifests) == 1  # train's; score's is beside its output
    files = [p for p in store.rglob("*") if p.is_file() and outputs not in p.parents]
    files += manifests + [out.with_name("scores.csv.manifest.json")]
    assert any(p.name == "index.html" for p in files)  # Data Docs were logged
    assert any(p.name == "leads.suite.json" for p in files)
    assert any(p.name == "reference.json" for p in files)
    for planted in (good, bad, phone, "Plantedname", "uniquecorp-x91"):
        needle = planted.encode()
        hits = [str(p) for p in files if needle in p.read_bytes()]
        assert not hits, f"{planted} found in {hits}"
    # The run logged the accounting as metrics, counts only.
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    configure(load_params(params_path))
    run = mlflow.search_runs(output_format="list")[0]
    assert run.data.metrics["contract_leads_rows_rejected"] == 1
    assert run.data.metrics["contract_leads_rows_read"] == len(leads)
    reference = yaml.safe_load(json.dumps(mlflow.artifacts.load_dict(
        f"runs:/{run.info.run_id}/contracts/reference.json")))
    assert "email" not in reference["categories"]


def test_quarantine_goes_to_the_output_location_never_beside_the_input(tmp_path):
    """Training-side quarantine: in outputs.dir beside the params file (or
    contracts.quarantine_dir), named after the run and the input, whether or not the input's
    folder is writable; scoring's: beside the scores."""
    from leadq.pipelines.io.quarantine import quarantine_path
    from leadq.pipelines.io.run import started

    export = tmp_path / "export"
    params = {"_base_dir": str(tmp_path / "project"), "outputs": {"dir": "leadq-out"}}
    with started("train") as run:
        path = quarantine_path(params, source=export / "deals.csv", table="deals")
    assert path == (tmp_path / "project" / "leadq-out"
                    / f"train-{run.run_id}-deals-deals.rejected.csv")
    params["contracts"] = {"quarantine_dir": "held"}
    with started("report") as run:
        path = quarantine_path(params, source=export / "deals.csv", table="deals")
    assert path == tmp_path / "project" / "held" / f"report-{run.run_id}-deals-deals.rejected.csv"
    assert quarantine_path(params, output=tmp_path / "o" / "s.csv") == (
        tmp_path / "project" / "held" / "s.rejected.csv")
    del params["contracts"]
    assert quarantine_path(params, output=tmp_path / "o" / "s.csv") == (
        tmp_path / "o" / "s.rejected.csv")


def test_label_rate_baseline_is_the_champion_not_the_newest_version():
    from types import SimpleNamespace

    from leadq.pipelines.tracking.contracts import versions_by_preference

    versions = [SimpleNamespace(version=v) for v in ("1", "3", "2", "4")]
    assert [v.version for v in versions_by_preference(versions, "2")] == ["2", "4", "3", "1"]
    assert [v.version for v in versions_by_preference(versions, None)] == ["4", "3", "2", "1"]


def test_label_rate_warning_when_it_moves_more_than_configured(params):
    from leadq.pipelines.tracking.contracts import label_rate_warning

    params["contracts"]["label_rate_max_change"] = 0.05
    assert label_rate_warning({"label_rate": 0.20}, {"label_rate": 0.12}, params) is not None
    assert label_rate_warning({"label_rate": 0.14}, {"label_rate": 0.12}, params) is None
    assert label_rate_warning({"label_rate": 0.14}, None, params) is None


@pytest.mark.slow  # renders Great Expectations Data Docs: 20-30 s on a busy 2-core machine
def test_data_docs_never_carry_markup_from_a_cell(tmp_path, small_crm, make_params, capsys):
    """A value a web form filled with markup reaches Data Docs (HTML) as inert text."""
    log = pd.read_csv(small_crm["activities"], dtype=str)
    log.loc[:4, "activity_type"] = "<script>alert(1)</script>"  # an unknown type: a warning
    leads = pd.read_csv(small_crm["leads"], dtype=str)
    leads.loc[:4, "campaign"] = "<img src=x onerror=alert(2)>"
    (tmp_path / "crm").mkdir()
    crm = {**small_crm, "activities": tmp_path / "crm" / "activities.csv",
           "leads": tmp_path / "crm" / "leads.csv"}
    log.to_csv(crm["activities"], index=False)
    leads.to_csv(crm["leads"], index=False)
    docs = tmp_path / "docs"
    assert cli(["validate", "--params", str(make_params(tmp_path, crm)), "--docs",
                str(docs)]) == 0
    capsys.readouterr()
    pages = "".join(p.read_text(errors="replace") for p in docs.rglob("*.html"))
    assert "alert(1)" in pages or "alert(2)" in pages  # the values are shown ...
    assert "<script>alert(1)" not in pages and "<img src=x" not in pages  # ... as text
