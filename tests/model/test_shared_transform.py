"""Scoring and explaining from one transform (`encode_rows`) gives the bit-identical scores and
the same reasons as calling predict_proba and explain_leads each on the raw rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV

from leadq.models import explain as ex
from leadq.models.calibration import calibrate
from leadq.models.factories import make_candidate
from tests.helpers import labelled_split


@pytest.fixture(scope="module")
def data(base_params):
    split = labelled_split(base_params, 3000, seed=13, hgb_iter=30)
    return split["params"], *split["train"], *split["valid"]


@pytest.fixture(scope="module", params=[("hgb", "sigmoid"), ("hgb", "isotonic"),
                                        ("logreg", "sigmoid"), ("logreg", None)])
def model(request, data):
    params, Xt, yt, Xv, yv = data  # noqa: N806
    name, method = request.param
    pipe = make_candidate(name, params).fit(Xt, yt)
    return pipe if method is None else calibrate(pipe, Xv, yv, method=method)


def test_scores_from_the_shared_transform_are_bit_identical(model, data):
    X = data[3]  # noqa: N806
    transformed = ex.encode_rows(model, X)
    assert transformed is not None
    np.testing.assert_array_equal(ex.predict_encoded(model, transformed),
                                  model.predict_proba(X)[:, 1])
    for i in range(0, 40):  # one lead at a time, as `leadq serve` scores
        row = X.iloc[[i]]
        np.testing.assert_array_equal(ex.predict_encoded(model, ex.encode_rows(model, row)),
                                      model.predict_proba(row)[:, 1])


def test_scores_from_the_explanation_are_predict_proba_bit_for_bit(model, data):
    """With reasons on, the scorer takes the scores from the explanation's margin instead of
    running the model again: the same numbers, to the last bit, on many leads and on one."""
    X = data[3].iloc[:300]  # noqa: N806
    scored = ex.explain_and_score(model, X, ex.encode_rows(model, X))
    if not hasattr(model, "calibrated_classifiers_"):
        assert scored is None  # an uncalibrated pipeline is scored by its own predict_proba
        return
    np.testing.assert_array_equal(scored.probability, model.predict_proba(X)[:, 1])
    pd.testing.assert_frame_equal(ex.explain_leads(model, X, explanation=scored.explanation),
                                  ex.explain_leads(model, X))
    for i in range(0, 40):
        row = X.iloc[[i]]
        one = ex.explain_and_score(model, row, ex.encode_rows(model, row))
        np.testing.assert_array_equal(one.probability, model.predict_proba(row)[:, 1])


def test_an_input_predict_proba_refuses_is_refused_with_reasons_too(model, data):
    """The logistic margin's shortcut skips scikit-learn's input checks only where they pass:
    an infinite encoded input fails with reasons as it fails without them."""
    from sklearn.linear_model import LogisticRegression

    pipeline, _ = ex.unwrap(model)
    if not isinstance(pipeline.steps[-1][1], LogisticRegression) or \
            not hasattr(model, "calibrated_classifiers_"):
        pytest.skip("the shortcut is the calibrated logistic model's")
    row = data[3].iloc[[0]]
    encoded = np.array(ex.encode_rows(model, row), dtype=np.float64)
    encoded[0, 0] = np.inf
    with pytest.raises(ValueError):
        ex.predict_encoded(model, encoded)
    with pytest.raises(ValueError):
        ex.explain_and_score(model, row, encoded)


def test_reasons_from_the_shared_transform_are_the_same(model, data):
    X = data[3].iloc[:300]  # noqa: N806
    shared = ex.explain_leads(model, X, transformed=ex.encode_rows(model, X))
    pd.testing.assert_frame_equal(shared, ex.explain_leads(model, X))


def test_small_frames_show_what_the_bulk_path_shows(model, data):
    X = data[3].iloc[:120].copy()  # noqa: N806
    X.iloc[3, :] = np.nan  # every column missing in one lead
    pipeline, _ = ex.unwrap(model)
    bulk = ex.display_values(X, pipeline)
    for i in range(len(X)):
        one = ex.display_values(X.iloc[[i]], pipeline)
        for col, shown in bulk.items():
            assert one[col][0] == shown[i], (col, X.iloc[i][col])
            assert one[col].dtype == shown.dtype


def test_a_model_of_several_pipelines_is_not_scored_from_one_transform(data):
    params, Xt, yt, Xv, yv = data  # noqa: N806
    ensemble = CalibratedClassifierCV(make_candidate("logreg", params), cv=2).fit(Xv, yv)
    assert ex.encode_rows(ensemble, Xv) is None
    with pytest.raises(ValueError):
        ex.predict_encoded(ensemble, Xv)


def test_the_scorer_scores_from_one_transform_only_with_reasons(data, monkeypatch):
    from leadq.pipelines.scoring.core import score_leads
    from leadq.pipelines.scoring.model import ScoringModel

    params, Xt, yt, Xv, yv = data  # noqa: N806
    sk = calibrate(make_candidate("logreg", params).fit(Xt, yt), Xv, yv, method="sigmoid")
    scoring = ScoringModel(pyfunc=SimpleNamespace(get_raw_model=lambda: sk), uri="test",
                           version="1", threshold=0.1, tags={})
    scoring._sk = sk
    leads = Xv.copy()
    leads[params["data"]["leads"]["id"]] = [f"L{i}" for i in range(len(leads))]
    at = pd.Timestamp("2026-01-01", tz="UTC")
    with_reasons = score_leads(leads, scoring, params, scored_at=at, explain=True)
    without = score_leads(leads, scoring, params, scored_at=at, explain=False)
    np.testing.assert_array_equal(with_reasons["score_raw"], without["score_raw"])
    np.testing.assert_array_equal(with_reasons["score_raw"], sk.predict_proba(Xv)[:, 1])
    calls = []
    original = ex.encode_rows
    monkeypatch.setattr(ex, "encode_rows", lambda m, x: calls.append(len(x)) or original(m, x))
    score_leads(leads, scoring, params, scored_at=at, explain=True)
    assert calls == [len(leads)]
