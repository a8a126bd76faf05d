"""The blend of candidates (models/blend.py, train.blend_members): chosen only when it beats the
best single candidate out of fold, one Pipeline that takes raw rows, explained exactly, and
loadable through the trusted-types list."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadq.models import explain as ex
from leadq.models.blend import (
    blend_pipeline,
    cross_fitted_stack,
    is_blend,
    member_pipelines,
    positive_stack,
)
from leadq.models.calibration import calibrate_with_map
from leadq.models.oof import OutOfFold
from leadq.models.search import fit_candidate

WIDTH = 16


def _leads(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Conversion from many small linear effects (what logistic regression reads best) and a
    threshold interaction between two inputs (what trees read best)."""
    rng = np.random.default_rng(seed)
    nums = rng.normal(size=(n, WIDTH))
    channel = rng.choice(["web", "event", "partner", None], n)
    logit = (-1.6 + nums @ np.resize([0.3, -0.25, 0.2], WIDTH)
             + 1.8 * ((nums[:, 0] > 0.5) & (nums[:, 1] < 0)) + 0.5 * (channel == "event"))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(nums, columns=[f"x{i}" for i in range(WIDTH)]).assign(channel=channel)
    return frame, pd.Series(y, index=frame.index)


@pytest.fixture(scope="module")
def blend_params(base_params):
    params = copy.deepcopy(base_params)
    params["features"].update({"categorical": ["channel"],
                               "numeric": [f"x{i}" for i in range(WIDTH)],
                               "email_column": None, "job_title_column": None,
                               "target_encode": [], "monotonic_increasing": []})
    params["data"]["leads"]["created_at"] = None
    params["train"]["hgb"]["max_iter"] = 100
    return params


@pytest.fixture(scope="module")
def blended(blend_params):
    """hgb and logreg fitted on 4,000 leads, stacked on their margins on leads they did not
    see (one held-out half here; training uses out-of-fold blocks)."""
    X, y = _leads(4000, seed=0)  # noqa: N806
    names = ["hgb", "logreg"]
    half = len(X) // 2
    margins = np.column_stack([
        fit_candidate(n, blend_params, X.iloc[:half], y.iloc[:half]).decision_function(
            X.iloc[half:]) for n in names])
    members, weights, icpt = positive_stack(names, margins, y.iloc[half:].to_numpy())
    fitted = [fit_candidate(n, blend_params, X, y) for n in members]
    return {"model": blend_pipeline(fitted, weights, icpt), "members": dict(zip(members, fitted,
                                                                               strict=True)),
            "weights": weights, "intercept": icpt, "X": X, "y": y}


def test_the_blend_ranks_fresh_leads_better_than_either_member(blended):
    model = blended["model"]
    assert is_blend(model) and set(blended["members"]) == {"hgb", "logreg"}
    assert (blended["weights"] > 0).all()
    X_test, y_test = _leads(6000, seed=1)  # noqa: N806
    auc = {n: roc_auc_score(y_test, m.predict_proba(X_test)[:, 1])
           for n, m in blended["members"].items()}
    blend_auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert blend_auc > max(auc.values()) + 0.003, (blend_auc, auc)
    # The blend's margin is the stack of its members' margins, lead by lead.
    expected = blended["intercept"] + sum(
        w * m.decision_function(X_test) for w, m in zip(blended["weights"],
                                                         blended["members"].values(),
                                                         strict=True))
    np.testing.assert_allclose(model.decision_function(X_test), expected, atol=1e-10)
    assert [type(p.named_steps["model"]).__name__ for p in member_pipelines(model)] == [
        type(m.named_steps["model"]).__name__ for m in blended["members"].values()]


def test_explanations_of_the_calibrated_blend_are_exact(blended):
    model, X, y = blended["model"], blended["X"], blended["y"]  # noqa: N806
    calibrated, _ = calibrate_with_map(model, X.iloc[:2000], y.iloc[:2000], "isotonic",
                                       model.decision_function(X.iloc[:3000]),
                                       y.iloc[:3000].to_numpy())
    rows = _leads(400, seed=2)[0]
    exp = ex.explain(calibrated, rows)
    total = exp.base_value + exp.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.decision_function(rows), atol=1e-8)
    assert exp.method.startswith("blend: ")
    assert set(exp.contributions.columns) == {*(f"x{i}" for i in range(WIDTH)), "channel"}
    # Each column's contribution is the weighted sum of its contributions to the members.
    parts = [ex.explain(m, rows) for m in blended["members"].values()]
    np.testing.assert_allclose(
        exp.contributions["x0"].to_numpy(),
        sum(w * p.contributions["x0"].to_numpy() for w, p in zip(blended["weights"], parts,
                                                                 strict=True)), atol=1e-10)
    reasons = ex.explain_leads(calibrated, rows)
    assert (reasons["reasons_positive"] != "").mean() > 0.5


def test_a_calibrated_blend_is_scored_and_explained_from_rows_encoded_once(blended):
    """The scorer's and the service's path: the members' blocks encoded once (compiled for a
    few rows) give the probabilities and reasons of the model on raw rows."""
    model, X, y = blended["model"], blended["X"], blended["y"]  # noqa: N806
    calibrated, _ = calibrate_with_map(model, X.iloc[:2000], y.iloc[:2000], "sigmoid",
                                       model.decision_function(X.iloc[:3000]),
                                       y.iloc[:3000].to_numpy())
    rows = _leads(300, seed=3)[0]
    rows.loc[rows.index[:20], "channel"] = "never-seen"
    want = calibrated.predict_proba(rows)[:, 1]
    many = ex.encode_rows(calibrated, rows)  # above the compiled size: the pipeline's steps
    assert len(many) == 2 and many.shape[0] == len(rows)
    np.testing.assert_array_equal(ex.predict_encoded(calibrated, many), want)
    assert ex.check_compiled(calibrated, rows) is None  # the compiled form is in use
    whole = ex.explain(calibrated, rows).contributions
    for start in range(0, 64):  # one lead at a time, as `leadq serve` scores them
        one = rows.iloc[[start]]
        few = ex.encode_rows(calibrated, one)
        # A member's matrix product on one row may sum in another order: the last bit.
        np.testing.assert_allclose(ex.predict_encoded(calibrated, few)[0], want[start],
                                   rtol=1e-12, atol=0)
        np.testing.assert_allclose(
            ex.explain(calibrated, one, transformed=few).contributions.to_numpy(),
            whole.iloc[[start]].to_numpy(), rtol=1e-9, atol=1e-12)
    # The scorer's path with reasons: the scores come from the explanation's margin, and are
    # predict_proba's bit for bit (on many rows and on one).
    scored = ex.explain_and_score(calibrated, rows, many)
    np.testing.assert_array_equal(scored.probability, want)
    for start in range(0, 16):
        one = rows.iloc[[start]]
        np.testing.assert_array_equal(
            ex.explain_and_score(calibrated, one, ex.encode_rows(calibrated, one)).probability,
            ex.predict_encoded(calibrated, ex.encode_rows(calibrated, one)))


def test_a_blend_loads_through_the_trusted_types(blended):
    from skops.io import dumps, loads

    from leadq.pipelines.tracking.store import trusted_types

    model, X = blended["model"], blended["X"]  # noqa: N806
    trusted = trusted_types(model)
    assert {"leadq.models.blend.BlendEncoder", "leadq.models.blend.BlendClassifier"} <= set(
        trusted)
    again = loads(dumps(model), trusted=trusted)
    np.testing.assert_allclose(again.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])


def test_a_refit_gives_the_same_kind_of_model(blended):
    """sklearn's clone-and-fit (what a wrapper may do) refits every member with the weights."""
    from sklearn.base import clone

    X, y = blended["X"].iloc[:1500], blended["y"].iloc[:1500]  # noqa: N806
    again = clone(blended["model"]).fit(X, y)
    assert is_blend(again) and again is not blended["model"]
    assert roc_auc_score(y, again.predict_proba(X)[:, 1]) > 0.7
    np.testing.assert_allclose(again.named_steps["model"].weights_, blended["weights"])
    # The refit members are new fits, not the originals.
    assert all(a is not b for a, b in zip(again.named_steps["model"].estimators_,
                                          blended["model"].named_steps["model"].estimators_,
                                          strict=True))


def _oof(decision: np.ndarray, y: np.ndarray) -> OutOfFold:
    return OutOfFold(rows=np.arange(len(y)), decision=decision,
                     proba=1 / (1 + np.exp(-decision)), y=y, weight=None)


def _selection(oof: dict[str, OutOfFold]) -> dict[str, dict[str, float]]:
    from leadq.models.metrics import classification_metrics

    return {n: classification_metrics(o.y, o.proba) for n, o in oof.items()}


def test_the_blend_is_chosen_only_when_it_beats_the_best_candidate_out_of_fold():
    from leadq.pipelines.train import _blend_candidate

    rng = np.random.default_rng(5)
    n = 8000
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + a + b)))).astype(int)
    # Two candidates that each see half of the signal (plus noise): together they see it all.
    halves = {"hgb": _oof(a + 0.3 * rng.normal(size=n), y),
              "logreg": _oof(b + 0.3 * rng.normal(size=n), y)}
    sel = _selection(halves)
    best = max(sel, key=lambda k: sel[k]["pr_auc"])
    choice = _blend_candidate(halves, sel, "pr_auc", best, seed=0, max_members=3)
    assert choice is not None and set(choice.members) == {"hgb", "logreg"}
    assert choice.name.startswith("blend:")
    assert choice.selection["roc_auc"] > max(s["roc_auc"] for s in sel.values()) + 0.05
    # Its out-of-fold margins are the stack's, on the candidates' own rows.
    np.testing.assert_allclose(choice.oof.decision, choice.intercept + np.column_stack(
        [halves[m].decision for m in choice.members]) @ choice.weights)
    assert _blend_candidate(halves, sel, "pr_auc", best, seed=0, max_members=1) is None

    # The same signal twice over (two candidates that agree): nothing to gain, no blend.
    same = {"hgb": _oof(a + b, y), "hgb-defaults": _oof(a + b + 1e-3 * rng.normal(size=n), y),
            "logreg": _oof(rng.normal(size=n), y)}
    sel = _selection(same)
    assert _blend_candidate(same, sel, "pr_auc", "hgb", seed=0, max_members=3) is None


def test_a_member_that_only_corrects_another_is_dropped():
    rng = np.random.default_rng(6)
    n = 6000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + signal)))).astype(int)
    shared = rng.normal(size=n)
    # "b" is the noise "a" carries: the stack would subtract it (a negative weight).
    margins = np.column_stack([signal + shared, shared, rng.normal(size=n)])
    members, weights, _ = positive_stack(["a", "b", "c"], margins, y)
    assert "b" not in members and (weights > 0).all()
    honest = cross_fitted_stack(margins[:, :1], y)
    # One input: the cross-fitted stack ranks as that input does (up to its folds' intercepts).
    assert roc_auc_score(y, honest) == pytest.approx(roc_auc_score(y, margins[:, 0]), abs=0.005)


def test_a_blend_refitted_in_place_is_not_served_from_its_old_compiled_steps(blended):
    """The compiled form is cached per fitted encoder: a refit (a notebook, a test) rebuilds it
    rather than encoding new rows with the old members' tables."""
    import copy

    model, X, y = copy.deepcopy(blended["model"]), blended["X"], blended["y"]  # noqa: N806
    one = _leads(5, seed=4)[0].iloc[[0]]
    ex.encode_rows(model, one)  # compiled and cached for the fitted encoders
    model.fit(X.iloc[:1500], y.iloc[:1500])
    np.testing.assert_allclose(ex.predict_encoded(model, ex.encode_rows(model, one)),
                               model.predict_proba(one)[:, 1], rtol=1e-12)
