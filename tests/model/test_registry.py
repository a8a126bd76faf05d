"""Champion/challenger gate, promote, rollback, alias history and the small-data guard."""

from __future__ import annotations

import json

import pytest

from leadq.pipelines.cli import main as cli
from leadq.pipelines.params.loader import effective_params
from leadq.pipelines.tracking.registry import champion_periods, champion_stack, gate_decision

# The registry section as a step receives it: the packaged defaults, then these values.
REGISTRY = {**effective_params({})["registry"], "primary_metric": "pr_auc", "tolerance": 0.01,
            "max_champion_age_days": 90,
            "criteria": {"min_test_roc_auc": 0.6, "max_test_ece": 0.05}}


def metrics(pr_auc: float, ece: float = 0.02, roc_auc: float = 0.8) -> dict[str, float]:
    return {"test_pr_auc": pr_auc, "test_ece": ece, "test_roc_auc": roc_auc}


def test_worse_challenger_is_kept_out():
    promoted, reason = gate_decision(metrics(0.40), metrics(0.45), 10, REGISTRY)
    assert not promoted and "≤ champion" in reason


def test_challenger_within_tolerance_is_promoted():
    promoted, reason = gate_decision(metrics(0.445), metrics(0.45), 10, REGISTRY)
    assert promoted and "> champion" in reason


def test_a_challenger_that_ties_the_champion_is_not_promoted():
    """Retraining on identical data gives identical test metrics: the champion stays, even
    though a tie is within the tolerance and even when the champion is old."""
    for age in (10, 120):
        promoted, reason = gate_decision(metrics(0.45), metrics(0.45), age, REGISTRY)
        assert not promoted and "ties the champion" in reason


def test_with_no_tolerance_an_equal_primary_metric_is_not_enough():
    """The comparison is strict: with tolerance 0, a challenger must be better."""
    strict = {**REGISTRY, "tolerance": 0.0}
    promoted, reason = gate_decision(metrics(0.45, ece=0.01), metrics(0.45), 10, strict)
    assert not promoted and "≤ champion 0.4500 − tolerance 0.0" in reason
    assert gate_decision(metrics(0.4501), metrics(0.45), 10, strict)[0]


def test_badly_calibrated_challenger_is_kept_out_even_when_sharper():
    promoted, reason = gate_decision(metrics(0.60, ece=0.09), metrics(0.45), 10, REGISTRY)
    assert not promoted and "ece" in reason


def test_old_champion_is_replaced_by_a_fit_challenger():
    promoted, reason = gate_decision(metrics(0.40), metrics(0.45), 120, REGISTRY)
    assert promoted and "days old" in reason
    # ...but never by one that fails the criteria.
    assert not gate_decision(metrics(0.40, ece=0.2), metrics(0.45), 120, REGISTRY)[0]


def test_first_model_needs_only_the_criteria():
    assert gate_decision(metrics(0.1), None, None, REGISTRY)[0]
    assert not gate_decision(metrics(0.1, roc_auc=0.55), None, None, REGISTRY)[0]


def test_champion_stack_unwinds_rollbacks():
    history = [
        {"alias": "champion", "version": "1", "action": "gate", "at": "2026-01-01T00:00:00"},
        {"alias": "challenger", "version": "2", "action": "register", "at": "2026-01-02"},
        {"alias": "champion", "version": "2", "action": "gate", "at": "2026-01-02T00:00:00"},
        {"alias": "champion", "version": "3", "action": "force", "at": "2026-01-03T00:00:00"},
        {"alias": "champion", "version": "2", "action": "rollback", "at": "2026-01-04T00:00:00"},
    ]
    assert champion_stack(history, "2") == ["1", "2"]
    periods = champion_periods(history)
    assert periods["3"] == [("2026-01-03T00:00:00", "2026-01-04T00:00:00")]
    assert periods["2"][-1] == ("2026-01-04T00:00:00", None)
    # A champion set before history was kept still counts as the current one.
    assert champion_stack([], "5") == ["5"]


def _aliases(params_path):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    configure(load_params(params_path))
    client = mlflow.MlflowClient()
    return {a: str(client.get_model_version_by_alias("leadq", a).version)
            for a in ("champion", "challenger")}, client


@pytest.mark.slow
def test_worse_challenger_not_promoted_then_promote_and_rollback(
        tmp_path, make_params, small_crm, capsys):
    from leadq.pipelines.train import main as train_main

    good = make_params(tmp_path, small_crm)
    first = train_main(str(good))
    assert first["champion"] and first["version"] == "1"

    # A challenger that only sees the country: far worse, but within the absolute criteria,
    # so it is the comparison with the champion on the same test rows that keeps it out.
    worse = make_params(
        tmp_path, small_crm, features__categorical=["country"], features__numeric=[],
        features__email_column=None, features__job_title_column=None,
        features__target_encode=[], features__monotonic_increasing=[],
        train__candidates=["logreg"],
        registry__criteria={"min_test_roc_auc": 0.4, "max_test_ece": 0.2})
    second = train_main(str(worse))
    assert second["version"] == "2" and not second["champion"]
    assert "≤ champion" in second["decision"]
    aliases, client = _aliases(worse)
    assert aliases == {"champion": "1", "challenger": "2"}
    path = client.download_artifacts(second["run_id"], "gate.json", str(tmp_path))
    with open(path) as handle:
        gate = json.load(handle)
    assert gate["decision"] == "keep champion" and gate["champion_version"] == "1"
    assert gate["champion"]["test_pr_auc"] > gate["challenger"]["test_pr_auc"]
    run = client.get_run(second["run_id"])
    assert "champion_test_pr_auc" in run.data.metrics

    # Promote without --force refuses a version that fails the criteria; --force does it.
    strict = make_params(tmp_path, small_crm, registry__criteria={"min_test_roc_auc": 0.99})
    assert cli(["promote", "2", "--params", str(strict)]) == 1
    assert "--force" in capsys.readouterr().err
    assert cli(["promote", "2", "--force", "--params", str(strict)]) == 0
    assert _aliases(strict)[0]["champion"] == "2"

    # Rollback restores the previous champion; a second one has nowhere to go.
    assert cli(["rollback", "--params", str(strict)]) == 0
    assert _aliases(strict)[0]["champion"] == "1"
    assert cli(["rollback", "--params", str(strict)]) == 1
    assert "no previous champion" in capsys.readouterr().err

    capsys.readouterr()
    assert cli(["--json", "models", "--params", str(strict)]) == 0
    out = capsys.readouterr().out
    listing = json.loads(out[out.index("{"):])
    rows = {r["version"]: r for r in listing["versions"]}
    assert "champion" in rows["1"]["aliases"] and "challenger" in rows["2"]["aliases"]
    assert rows["2"]["champion_periods"].count("→") == 1  # champion once, until the rollback
    assert rows["1"]["champion_periods"].count("→") == 2  # first stint, and again now
    assert [e["action"] for e in listing["history"] if e["alias"] == "champion"] == [
        "gate", "force", "rollback"]


def test_unknown_version_is_bad_input(trained_store, capsys):
    assert cli(["promote", "99", "--params", str(trained_store["params_path"])]) == 2
    assert "no version" in capsys.readouterr().err


def test_too_few_positives_stops_training_with_exit_2(tmp_path, make_params, capsys):
    from leadq.pipelines.synthetic.crm import write_crm

    crm = write_crm(tmp_path / "crm", n_leads=250, seed=5)
    path = make_params(tmp_path, crm, train__min_positives=40)
    assert cli(["train", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert "labelled positive leads (train.min_positives = 40)" in err
    assert not (tmp_path / "mlruns").exists()  # nothing logged, nothing registered
    # Lowering the minimum knowingly trains on the same data: the guard is what stopped it.
    lowered = make_params(tmp_path, crm, train__min_positives=5,
                          registry__criteria={}, train__search__enabled=False)
    assert cli(["train", "--params", str(lowered)]) == 0


def test_training_run_logs_search_evaluation_and_gate(trained_store):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    configure(load_params(trained_store["params_path"]))
    client = mlflow.MlflowClient()
    run_id = trained_store["summary"]["run_id"]
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"search.json", "calibration_choice.json", "gate.json", "evaluation"} <= top
    files = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {f"evaluation/{n}.csv" for n in ("gains", "calibration", "tiers", "segments")} <= files
    metrics = client.get_run(run_id).data.metrics
    for key in ("test_capture_top10", "test_capture_top30", "test_tier_a_conversion_rate",
                "test_top2_conversions_share", "behaviour_max_drop_demo_requested"):
        assert key in metrics
    assert metrics["behaviour_max_drop_demo_requested"] <= 1e-12  # ≤ 0: no violation
    assert metrics["behaviour_max_drop_seniority"] <= 1e-12
    with open(client.download_artifacts(run_id, "search.json")) as handle:
        search = json.load(handle)
    assert set(search) == {"logreg", "hgb"}
    # Trial 0 is the hand-set configuration from params.yaml.
    assert search["logreg"]["trials"][0]["params"]["C"] == 1.0


@pytest.mark.slow
def test_retraining_on_identical_data_keeps_the_champion(tmp_path, make_params, small_crm):
    """Issue 30: a second training on the same data and params registered v2 with the same
    test metrics and promoted it; a tie keeps the champion."""
    from leadq.pipelines.train import main as train_main

    path = make_params(tmp_path, small_crm, train__candidates=["logreg"],
                       train__search__enabled=False)
    first = train_main(str(path))
    second = train_main(str(path))
    assert first["champion"] and second["version"] == "2"
    assert not second["champion"] and "ties the champion" in second["decision"]
    aliases, client = _aliases(path)
    assert aliases == {"champion": "1", "challenger": "2"}
    # The run names its process, so a later start can tell a killed run from a live one.
    assert client.get_run(second["run_id"]).data.tags["leadq.pid"].isdigit()
