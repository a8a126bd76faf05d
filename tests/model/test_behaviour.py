"""Behavioural tests: what must and must not move a lead's score, for each candidate calibrated.

Synthetic leads are built by editing one column of real (synthetic-CRM) rows, everything else
identical, so a failure names exactly which input misbehaves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features.columns import raw_input_columns
from leadq.models.behaviour import TITLE_LADDER, monotone_drop, ordered_values_drop
from leadq.models.factories import make_candidate
from leadq.models.search import fit_candidate

# README: a demo request or a more senior title never lowers a score. Only float noise is
# allowed (logreg clamps coefficients, HGB has monotonic_cst, calibration maps are
# non-decreasing), not a fraction of a point.
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_params, small_crm):
    """Each candidate trained (no search: it is tested elsewhere) and calibrated on validation."""
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.train import train_models
    from tests.conftest import write_params

    path = write_params(tmp_path_factory.mktemp("behaviour"), base_params, small_crm)
    out = {}
    for name in ("logreg", "hgb"):
        params = load_params(path, {"train.candidates": [name], "train.search.enabled": False})
        tables = load_crm(params)
        out[name] = train_models(tables, params)
    out["params"] = params
    out["leads"] = tables.leads
    out["truth"] = pd.read_csv(small_crm["truth"], dtype={"lead_id": str})
    return out


@pytest.fixture(scope="module")
def probe(trained) -> pd.DataFrame:
    """300 out-of-time test leads, raw columns as the scorer receives them (id included)."""
    leads = trained["leads"]
    ids = trained["logreg"].test_frame["lead_id"].head(300)
    return leads.set_index("lead_id").loc[ids].reset_index()


@pytest.mark.parametrize("name", ["logreg", "hgb"])
def test_lead_id_changes_nothing(trained, probe, name):
    model, params = trained[name].model, trained["params"]
    assert "lead_id" not in raw_input_columns(params)
    renamed = probe.copy()
    renamed["lead_id"] = [f"other-{i}" for i in range(len(renamed))]
    shuffled_ids = probe.copy()
    shuffled_ids["lead_id"] = probe["lead_id"].sample(frac=1, random_state=1).to_numpy()
    base = model.predict_proba(probe)[:, 1]
    np.testing.assert_array_equal(model.predict_proba(renamed)[:, 1], base)
    np.testing.assert_array_equal(model.predict_proba(shuffled_ids)[:, 1], base)


@pytest.mark.parametrize("name", ["logreg", "hgb"])
def test_demo_request_never_lowers_the_score(trained, probe, name):
    model = trained[name].model
    drop = monotone_drop(model, probe, "demo_requested", 0, 1)
    assert drop <= TOLERANCE, f"{name}: a demo request lowered a score by {drop:.4f}"
    # And it matters: on average a demo request raises the score.
    lo, hi = probe.copy(), probe.copy()
    lo["demo_requested"], hi["demo_requested"] = 0, 1
    assert (model.predict_proba(hi)[:, 1] - model.predict_proba(lo)[:, 1]).mean() > 0.01


@pytest.mark.parametrize("name", ["logreg", "hgb"])
def test_more_senior_title_never_lowers_the_score(trained, probe, name):
    model = trained[name].model
    drop = ordered_values_drop(model, probe, "job_title", TITLE_LADDER)
    assert drop <= TOLERANCE, f"{name}: a more senior title lowered a score by {drop:.4f}"
    student, cfo = probe.copy(), probe.copy()
    student["job_title"], cfo["job_title"] = "Student", "CFO"
    assert (model.predict_proba(cfo)[:, 1] - model.predict_proba(student)[:, 1]).mean() > 0.02


@pytest.mark.parametrize("name", ["logreg", "hgb"])
def test_the_persona_that_never_converts_scores_low(trained, name):
    result, truth = trained[name], trained["truth"]
    test = result.test_frame.merge(truth[["lead_id", "persona"]], on="lead_id")
    students = test.loc[test["persona"] == "student", "score"]
    assert len(students) > 30
    assert students.mean() < 0.25 * test["score"].mean()
    # Almost all of them sit in the bottom half of the test leads' scores.
    assert (students < test["score"].median()).mean() > 0.9


def test_logreg_coefficients_are_clamped_when_the_data_says_otherwise(trained):
    """Flip demo_requested in training so its fitted effect turns negative: the clamp zeroes it
    and the score no longer falls when a demo is requested."""
    params, leads = trained["params"], trained["leads"]
    labels = trained["logreg"].labels
    rows = leads.loc[labels["label"].notna()]
    y = labels.loc[rows.index, "label"].astype(int)
    flipped = rows[raw_input_columns(params)].copy()
    flipped["demo_requested"] = 1 - flipped["demo_requested"]
    model = fit_candidate("logreg", params, flipped, y)
    names = list(model.named_steps["encode"].get_feature_names_out())
    coef = model.named_steps["model"].coef_[0, names.index("num__demo_requested")]
    assert coef == 0.0
    unclamped = make_candidate("logreg", params).fit(flipped, y)
    assert unclamped.named_steps["model"].coef_[0, names.index("num__demo_requested")] < 0
    assert monotone_drop(model, flipped.head(200), "demo_requested", 0, 1) <= 1e-12
