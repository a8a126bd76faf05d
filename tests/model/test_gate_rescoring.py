"""The champion/challenger gate on two models trained on different data.

A deliberately weak model (one input: demo_requested) trained on one CRM becomes champion; a
full model trained on another CRM (other seed, other size, so another out-of-time test set)
challenges it. The gate must re-score the champion on the challenger's test rows, not reuse
the champion's own recorded test metrics, and the better challenger must take the title.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

WEAK = {
    "features__categorical": [], "features__numeric": ["demo_requested"],
    "features__email_column": None, "features__job_title_column": None,
    "features__date_parts": False, "features__target_encode": [],
    "features__monotonic_increasing": ["demo_requested"],
    # A weak model is fit to serve only under loose criteria: it must become champion.
    "registry__criteria": {"min_test_roc_auc": 0.5, "max_test_ece": 0.2},
}


def _aliases(client) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model("leadq").aliases.items()}


@pytest.fixture(scope="module")
def gate(tmp_path_factory, base_params, small_crm):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.synthetic.crm import write_crm
    from leadq.pipelines.tracking.registry import read_history
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("gate")
    fast = {"train__candidates": ["logreg"], "train__search__enabled": False}
    (d / "weak").mkdir()
    weak_path = write_params(d / "weak", base_params, small_crm, **fast, **WEAK)
    weak = train_main(str(weak_path))
    configure(load_params(weak_path))
    client = mlflow.MlflowClient()
    after_weak = _aliases(client)

    other_crm = write_crm(d / "crm2", n_leads=3000, seed=11)
    (d / "full").mkdir()
    # Same MLflow store (paths are relative to the params file's directory).
    full_path = write_params(d / "full", base_params, other_crm, **fast,
                             mlflow__tracking_uri=f"sqlite:///{d / 'weak' / 'mlflow.db'}",
                             mlflow__artifact_location=str(d / "weak" / "mlruns"))
    full = train_main(str(full_path))
    configure(load_params(full_path))
    client = mlflow.MlflowClient()
    with open(client.download_artifacts(full["run_id"], "gate.json", str(d))) as handle:
        gate_json = json.load(handle)
    return {"weak": weak, "full": full, "weak_path": weak_path, "full_path": full_path,
            "after_weak": after_weak,
            "after_full": _aliases(client),
            "history": read_history(client, "leadq"), "gate_json": gate_json,
            "full_run_metrics": client.get_run(full["run_id"]).data.metrics,
            "weak_tags": dict(client.get_model_version("leadq", weak["version"]).tags)}


@pytest.fixture(scope="module")
def rescored(gate):
    """The champion (weak, v1) scored here on the challenger's out-of-time test rows."""
    import mlflow
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure
    from leadq.pipelines.train import train_models

    params = load_params(gate["full_path"])
    # The pure training step is deterministic: the same split, the same test rows.
    again = train_models(load_crm(params), params)
    assert again.metrics["test_pr_auc"] == pytest.approx(
        gate["full"]["metrics"]["test_pr_auc"], abs=1e-12)
    configure(params)
    champion = mlflow.sklearn.load_model(f"models:/leadq/{gate['weak']['version']}")
    y = again.test_frame["label"].to_numpy(int)
    p = champion.predict_proba(again.test_inputs)[:, 1]
    return {"test_pr_auc": average_precision_score(y, p), "test_roc_auc": roc_auc_score(y, p),
            "test_log_loss": log_loss(y, p, labels=[0, 1]), "n": len(y)}


def test_gate_rescores_the_champion_on_the_challengers_test_rows(gate, rescored):
    gate_json, run_metrics = gate["gate_json"], gate["full_run_metrics"]
    assert gate_json["champion_version"] == gate["weak"]["version"] == "1"
    assert gate_json["challenger_version"] == gate["full"]["version"] == "2"
    # Two different test sets: not the same number of rows.
    assert rescored["n"] == run_metrics["test_n"] != gate["weak"]["metrics"]["test_n"]
    for key in ("test_pr_auc", "test_roc_auc", "test_log_loss"):
        assert gate_json["champion"][key] == pytest.approx(rescored[key], abs=1e-9), key
        assert run_metrics[f"champion_{key}"] == pytest.approx(rescored[key], abs=1e-9), key
        # ... and not what the champion scored on its own test rows.
        recorded = float(gate["weak_tags"][key])
        assert recorded == pytest.approx(gate["weak"]["metrics"][key], abs=1e-6)
        assert abs(rescored[key] - recorded) > 1e-3, key


def test_a_better_challenger_is_promoted_by_the_gate(gate, rescored):
    weak, full = gate["weak"], gate["full"]
    assert weak["champion"] and gate["after_weak"] == {"champion": "1", "challenger": "1"}
    assert full["champion"]
    assert gate["after_full"] == {"champion": "2", "challenger": "2"}
    gate_json = gate["gate_json"]
    assert gate_json["decision"] == "promote"
    assert gate_json["challenger"]["test_pr_auc"] > rescored["test_pr_auc"] + 0.05
    assert "> champion" in gate_json["reason"] and "same test rows" in gate_json["reason"]
    assert f"{rescored['test_pr_auc']:.4f}" in gate_json["reason"]
    champion_moves = [(e["version"], e["previous"], e["action"]) for e in gate["history"]
                      if e["alias"] == "champion"]
    assert champion_moves == [("1", None, "gate"), ("2", "1", "gate")]
    assert np.isfinite(gate["full_run_metrics"]["champion_test_pr_auc"])
