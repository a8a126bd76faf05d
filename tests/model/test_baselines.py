"""Every training run measures itself against library defaults (models/baselines.py), logs the
figures, and a model that loses to them is warned about and not promoted; the registered model
is fitted on train + validation and calibrated out of fold (train.final_fit)."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.models.baselines import BASELINES, below_baseline, paired_auc_interval
from leadq.pipelines.io.crm import load_crm
from leadq.pipelines.io.progress import log
from leadq.pipelines.params.loader import effective_params, load_params
from leadq.pipelines.tracking.registry import gate_decision
from leadq.pipelines.train import train_models
from tests.helpers import cli_json

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _export(path, n: int = 3000, seed: int = 3) -> None:
    """Leads carrying their own outcome, no id, no date: `drag` lowers conversion strongly."""
    rng = np.random.default_rng(seed)
    drag = rng.normal(size=n)
    lift = rng.normal(size=n)
    channel = rng.choice(["web", "event", "partner"], size=n)
    logit = -1.0 - 1.6 * drag + 0.6 * lift + np.where(channel == "event", 0.5, 0.0)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    pd.DataFrame({"drag": drag.round(3), "lift": lift.round(3), "channel": channel,
                  "converted": np.where(y, "yes", "no")}).to_csv(path, index=False)


def _params(tmp_path, **extra) -> object:
    leads = tmp_path / "leads.csv"
    _export(leads)
    tree = {"data": {"leads": {"path": str(leads), "label": "converted"}},
            "features": {"categorical": ["channel"], "numeric": ["drag", "lift"]},
            "train": {"candidates": ["logreg"], "search": {"enabled": False}},
            "registry": {"model_name": "baseline-test", "criteria": {}}}
    for dotted, value in extra.items():
        node = tree
        *head, last = dotted.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_every_run_logs_the_baselines_beside_its_own_figures(tmp_path, capsys):
    summary = cli_json(capsys, ["train", "--params", str(_params(tmp_path))])
    run = mlflow.MlflowClient().get_run(summary["run_id"])
    metrics = run.data.metrics
    for name in BASELINES:
        for what in ("roc_auc", "pr_auc", "log_loss"):
            assert f"baseline_{name}_test_{what}" in metrics
        assert 0.5 < metrics[f"baseline_{name}_test_roc_auc"] <= 1.0
    # A healthy model on this export holds its own against the defaults and is promoted.
    best = max(metrics[f"baseline_{n}_test_roc_auc"] for n in BASELINES)
    assert metrics["test_roc_auc"] >= best - 0.005
    assert summary["champion"]
    tags = mlflow.MlflowClient().get_model_version("baseline-test", summary["version"]).tags
    assert "baseline_hgb_test_roc_auc" in tags  # the gate and the report read them there


def test_a_model_that_loses_to_the_baseline_is_warned_about_and_not_promoted(
        tmp_path, capsys, caplog, monkeypatch):
    # Planted loser: `drag` lowers conversion, but the params declare it may only raise a
    # score, so leadq's logistic regression clamps its coefficient to zero; the library
    # default uses it freely.
    params = _params(tmp_path, **{"features.monotonic_increasing": ["drag"]})
    monkeypatch.setattr(log, "propagate", True)  # the CLI turns it off; caplog listens at root
    with caplog.at_level(logging.WARNING, logger="leadq"):
        summary = cli_json(capsys, ["train", "--params", str(params)])
    metrics = mlflow.MlflowClient().get_run(summary["run_id"]).data.metrics
    assert metrics["test_roc_auc"] < metrics["baseline_logreg_test_roc_auc"] - 0.05
    assert any("loses to the logreg baseline" in r.getMessage() for r in caplog.records)
    assert not summary["champion"]
    assert "baseline" in summary["decision"] and "allow_below_baseline" in summary["decision"]
    # By hand it needs --force, as a model failing the criteria does.
    from leadq.pipelines.cli import main as cli

    assert cli(["promote", summary["version"], "--params", str(params)]) != 0
    assert "baseline" in capsys.readouterr().err

    # Knowingly allowed: the same model is promoted.
    allowed = _params(tmp_path, **{"features.monotonic_increasing": ["drag"],
                                   "registry.allow_below_baseline": True})
    again = cli_json(capsys, ["train", "--params", str(allowed)])
    assert again["champion"], again["decision"]


def test_gate_decision_refuses_below_baseline_unless_allowed():
    metrics = {"test_roc_auc": 0.70, "test_pr_auc": 0.3, "baseline_hgb_test_roc_auc": 0.72,
               "baseline_logreg_test_roc_auc": 0.69}
    registry = {**effective_params({})["registry"], "criteria": {}}
    ok, why = gate_decision(metrics, None, None, registry)
    assert not ok and "hgb baseline" in why
    ok, _ = gate_decision(metrics, None, None, {**registry, "allow_below_baseline": True})
    assert ok
    # Within the tolerance is not a loss.
    close = {**metrics, "test_roc_auc": 0.716}
    assert gate_decision(close, None, None, registry)[0]
    assert below_baseline(close, 0.005) is None
    assert below_baseline(metrics, 0.005) == ("hgb", 0.72)
    # A model registered before baselines existed has none: the gate does not invent one.
    assert gate_decision({"test_roc_auc": 0.6, "test_pr_auc": 0.2}, None, None, registry)[0]


def test_paired_interval_covers_zero_for_the_same_scores_and_not_for_a_worse_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good = y + rng.normal(0, 0.8, len(y))
    lo, hi = paired_auc_interval(y, good, good)
    assert lo == hi == 0.0
    lo, hi = paired_auc_interval(y, good, rng.normal(size=len(y)))
    assert lo > 0.1


@pytest.mark.parametrize("final_fit", ["train_validation", "train"])
def test_the_registered_model_uses_all_the_history_before_the_test_set(tmp_path, final_fit):
    params = load_params(_params(tmp_path, **{"train.final_fit": final_fit}))
    result = train_models(load_crm(params, quarantine=False), params)
    split_sizes = result.fingerprint["split_rows"]
    X_fit, _ = result.fit_rows  # noqa: N806
    expected = split_sizes["train"] + (split_sizes["validation"]
                                       if final_fit == "train_validation" else 0)
    assert len(X_fit) == expected
    assert not set(X_fit.index) & set(result.test_inputs.index)  # the test set stays apart
    model = result.model
    if final_fit == "train_validation" and result.calibration["method"] != "none":
        # One map, learnt on out-of-fold decision values, applied to the model fitted on all
        # of train + validation: the calibrated probability is that map of its margin.
        part = model.calibrated_classifiers_[0]
        inner = part.estimator
        margin = inner.decision_function(result.test_inputs)
        expected_p = part.calibrators[0].predict(margin)
        np.testing.assert_allclose(model.predict_proba(result.test_inputs)[:, 1], expected_p,
                                   atol=1e-12)


def test_an_export_without_signal_is_named_in_a_warning(tmp_path, caplog, monkeypatch):
    """Labels drawn independently of every input: training says no candidate beats chance
    out of fold (and says nothing of the kind on the export with signal)."""
    path = _params(tmp_path)
    leads = pd.read_csv(tmp_path / "leads.csv")
    with caplog.at_level("WARNING", logger="leadq"):
        params = load_params(path)
        train_models(load_crm(params, quarantine=False), params)
    assert not any("better than chance" in r.getMessage() for r in caplog.records)
    caplog.clear()
    rng = np.random.default_rng(1)
    leads["converted"] = np.where(rng.random(len(leads)) < 0.3, "yes", "no")
    leads.to_csv(tmp_path / "leads.csv", index=False)
    import leadq.pipelines.train as train_module

    compared = []
    check = train_module._warn_if_no_signal
    monkeypatch.setattr(train_module, "_warn_if_no_signal",
                        lambda *a, **k: compared.append(k.get("compared")) or check(*a, **k))
    with caplog.at_level("WARNING", logger="leadq"):
        params = load_params(path)
        result = train_models(load_crm(params, quarantine=False), params)
    # Every candidate of the final comparison counts: here logreg and its library default.
    assert compared == [2]
    assert any("no candidate ranks leads better than chance out of fold" in r.getMessage()
               for r in caplog.records)
    # Without signal the ranking metric cannot choose: the lowest out-of-fold log loss does.
    chosen = result.validation_metrics
    assert result.candidate == min(chosen, key=lambda n: chosen[n]["log_loss"])


def test_without_signal_the_lowest_log_loss_is_chosen_not_the_luckiest_ranking():
    from leadq.pipelines.train import choose_candidate

    # dbt's out-of-fold figures: the best PR AUC is the most confidently wrong but one.
    selection = {"logreg": {"pr_auc": 0.492, "log_loss": 0.742},
                 "hgb": {"pr_auc": 0.497, "log_loss": 0.711},
                 "logreg-defaults": {"pr_auc": 0.544, "log_loss": 0.737},
                 "hgb-defaults": {"pr_auc": 0.473, "log_loss": 0.827}}
    assert choose_candidate(selection, "pr_auc") == "logreg-defaults"
    assert choose_candidate(selection, "pr_auc", signal=False) == "hgb"


def test_the_chance_check_allows_for_picking_the_best_of_several_candidates(caplog):
    """Labels independent of four candidates' scores: the best of the four looks better than
    chance on a 90 % interval, and the check, widened for four comparisons, still says no."""
    from sklearn.metrics import roc_auc_score

    from leadq.models.metrics import roc_auc_interval
    from leadq.models.oof import OutOfFold
    from leadq.pipelines.train import _warn_if_no_signal

    rng = np.random.default_rng(22)
    y = (rng.random(460) < 0.5).astype(int)
    best = max(rng.normal(size=(4, 460)), key=lambda s: roc_auc_score(y, s))
    assert roc_auc_interval(y, best, level=0.9)[0] > 0.5  # one comparison: "signal"
    oof = OutOfFold(rows=np.arange(460), decision=best, proba=best, y=y, weight=None)
    for compared, warned in ((1, False), (4, True)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="leadq"):
            _warn_if_no_signal("candidate", oof, roc_auc_score(y, best), seed=0,
                               compared=compared)
        assert any("better than chance" in r.getMessage() for r in caplog.records) is warned
