"""`leadq serve`'s single-lead path gives `leadq score`'s answers: 300 leads, each posted alone,
get the batch scorer's score, tier, MQL flag and reasons, on three kinds of champion.

A lead posted alone takes the service's fast path (its activity aggregates in NumPy on its own
events, features.activities.few_leads; its text typed through a memo; the model's steps before
its estimator through their compiled form, leadq.models.compiled; the micro-batch of one
through the scoring core), while
`leadq score` scores the same 300 leads as one file (the DuckDB join of the same rule). The
champions: the demo's configuration (activity log, both candidates), a leads-only champion
(no activity log), a logistic-regression champion (its linear reasons, not Tree SHAP), a
gradient-boosting one (Tree SHAP) and a blend of candidates, all with the activity log.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli
from tests.integration.test_serve_guards import call, running
from tests.integration.test_serve_isolation import ready, wait_for

pytestmark = pytest.mark.slow
N_LEADS = 300
JSON = {"Content-Type": "application/json"}
EXACT = ("lead_id", "is_mql", "tier", "reasons_positive", "reasons_negative", "explore",
         "treatment", "holdout", "model_version", "threshold_version")
NUMBERS = ("score", "score_raw", "sales_propensity", "propensity")


def leads_only(crm: dict) -> dict:
    return {k: v for k, v in crm.items() if k != "activities"}


CHAMPIONS = {
    # The demo's own configuration: activity log, logreg and hgb compete, search on.
    "demo": (lambda crm: crm, {}),
    "leads-only": (leads_only, {"train__candidates": ["hgb"], "train__blend_members": 0,
                                "train__search": {"enabled": False}}),
    "logistic": (lambda crm: crm, {"train__candidates": ["logreg"], "train__blend_members": 0,
                                   "train__search": {"enabled": False}}),
    # Whichever kind the demo's configuration picks, gradient boosting (Tree SHAP reasons) on
    # the activity log's aggregates is covered too.
    "boosting": (lambda crm: crm, {"train__candidates": ["hgb"], "train__blend_members": 0,
                                   "train__search": {"enabled": False}}),
    # A blend (models/blend.py; here of hgb and its library-default configuration, which
    # out of fold beat either on this CRM): each member's encoder compiled.
    "blend": (lambda crm: crm, {"train__candidates": ["hgb"],
                                "train__search": {"enabled": False}}),
}


@pytest.fixture(scope="module", params=list(CHAMPIONS))
def champion(request, tmp_path_factory, base_params, small_crm):
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    pick, changes = CHAMPIONS[request.param]
    d = tmp_path_factory.mktemp(f"fast-{request.param}")
    crm = pick(small_crm)
    path = write_params(d, base_params, crm, registry__criteria={},
                        serve={"scoring_log": None, "explain": True,
                               "request_timeout_seconds": 30}, **changes)
    train_main(str(path))
    leads = pd.read_csv(small_crm["leads"], dtype=str, keep_default_na=False)
    sample = leads.sample(N_LEADS, random_state=11)
    sample.to_csv(d / "sample.csv", index=False)
    assert cli(["score", "--input", str(d / "sample.csv"), "--output", str(d / "batch.csv"),
                "--params", str(path), "--explain"]) == 0
    batch = pd.read_csv(d / "batch.csv", dtype=str, keep_default_na=False)
    return {"name": request.param, "params": load_params(path), "sample": sample,
            "batch": batch.set_index("lead_id", drop=False), "crm": crm}


def test_single_lead_answers_equal_the_batch_scorer(champion):
    from leadq.pipelines.service.app import create_app

    batch = champion["batch"]
    assert len(batch) >= N_LEADS - 5  # nearly every sampled lead passes the contract
    app = create_app(champion["params"])
    compared = 0
    with running(app) as port:
        assert wait_for(lambda: ready(port)[0] == 200, 120), ready(port)
        sklearn_model = app.state.holder.current.model.sklearn()
        # Single leads go through the compiled transform (leadq.models.compiled), not the
        # pipeline's per-call path: what is compared below is that path's answers.
        from leadq.models.explain import _compiled
        from leadq.models.explain import unwrap as unwrap_model
        from leadq.pipelines.service.app import check_fast_path

        assert check_fast_path(app.state.holder.current) is None
        assert not isinstance(_compiled(unwrap_model(sklearn_model)[0]), Exception)
        for row in champion["sample"].to_dict("records"):
            lead = {k: v for k, v in row.items() if v != ""}
            status, _, body = call(port, "POST", "/v1/score", json.dumps(lead).encode(), JSON)
            if row["lead_id"] not in batch.index:
                assert status == 422, body  # refused by the contract in both
                continue
            assert status == 200, body
            answer, expected = json.loads(body), batch.loc[row["lead_id"]]
            for key in NUMBERS:
                assert abs(answer[key] - float(expected[key])) <= 1e-9, (key, row["lead_id"])
            for key in EXACT:
                assert str(answer[key]) == expected[key], (key, answer[key], expected[key])
            compared += 1
    assert compared == len(batch)
    assert batch["reasons_positive"].ne("").any() and batch["reasons_negative"].ne("").any()
    from leadq.models.explain import raw_columns_of, unwrap

    pipeline = unwrap(sklearn_model)[0]
    estimator = type(pipeline.steps[-1][1]).__name__
    reads_log = any(c.startswith("act_") for c in raw_columns_of(pipeline))
    if champion["name"] == "logistic":
        assert estimator == "LogisticRegression" and reads_log
    elif champion["name"] == "leads-only":
        assert estimator == "HistGradientBoostingClassifier" and not reads_log
    elif champion["name"] == "boosting":
        assert estimator == "HistGradientBoostingClassifier" and reads_log
    elif champion["name"] == "blend":
        assert estimator == "BlendClassifier" and reads_log
    else:
        assert reads_log  # the demo's champion reads the activity log's aggregates


def test_what_follows_from_the_version_is_worked_out_once_per_load(champion, monkeypatch):
    """Columns by role, the activity features and the resolved leads contract are built with
    the bundle when it loads: scoring leads never works them out again, and a reload brings
    its own, built before it is swapped in."""
    from leadq.features import activities as activity_features
    from leadq.features import columns, rules, tables
    from leadq.pipelines.io import activities
    from leadq.pipelines.scoring import core
    from leadq.pipelines.service.app import Scorer
    from leadq.pipelines.service.state import ActivityLog, ModelHolder, prepare

    params = champion["params"]
    holder = ModelHolder(params)
    first = holder.load()
    assert first.prepared == prepare(params, first.reference)
    activity = ActivityLog(params)
    assert activity.refresh()
    scorer = Scorer(params, holder, activity)
    leads = [{k: v for k, v in row.items() if v != ""}
             for row in champion["sample"].head(20).to_dict("records")]

    def answers() -> list:
        served, events = scorer.dependencies()
        parts = [scorer.read(lead) for lead in leads]
        return [r if not hasattr(r, "message") else r.message
                for r in (scorer.score_parts([p], served, events)[0] for p in parts)]

    before = answers()

    def recomputed(*args, **kwargs):
        raise AssertionError("worked out again on the request path")

    for module, name in ((tables, "model_inputs"), (core, "raw_input_columns"),
                         (activities, "activity_spec"), (activity_features, "activity_spec"),
                         (columns, "model_inputs"), (rules, "model_inputs")):
        monkeypatch.setattr(module, name, recomputed)
    monkeypatch.setattr("leadq.features.contracts.rules_for", recomputed)
    after = answers()
    for old, new in zip(before, after, strict=True):
        if isinstance(old, str):
            assert old == new
        else:
            assert {k: v for k, v in old[0].items() if k != "scored_at"} == \
                {k: v for k, v in new[0].items() if k != "scored_at"}
    monkeypatch.undo()
    second = holder.load()
    assert second is not first and second.prepared is not first.prepared
    assert second.prepared == first.prepared
    scorer.close()


def test_single_lead_answers_are_the_bytes_the_frame_answer_gave(champion):
    """The answer built from the output's columns (answer_rows) serialises to the bytes
    `DataFrame.to_dict("records")` gave, on this champion's real outputs for every sampled
    lead (reasons, tiers, missing values, the scoring time)."""
    from leadq.pipelines.service.app import Scorer
    from leadq.pipelines.service.state import ActivityLog, ModelHolder
    from tests.code.test_serve_frames import reference_answer

    params = champion["params"]
    holder = ModelHolder(params)
    served = holder.load()
    activity = ActivityLog(params)
    assert activity.refresh()
    scorer = Scorer(params, holder, activity)
    compared = 0
    for row in champion["sample"].to_dict("records"):
        part = scorer.read({k: v for k, v in row.items() if v != ""})
        result = scorer.score_parts([part], served, activity.events)[0]
        if hasattr(result, "message"):
            continue
        answer, _, _, rows_out = result
        old = {**reference_answer(rows_out)[0], "warnings": answer["warnings"]}
        assert json.dumps(answer) == json.dumps(old)
        compared += 1
    assert compared >= N_LEADS - 5
    scorer.close()
