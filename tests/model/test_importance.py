"""Permutation importance on rows encoded once equals shuffling the raw column and running the
whole registered pipeline again, with the same shuffles (models/importance.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadq.models import explain as ex
from leadq.models.blend import blend_pipeline
from leadq.models.calibration import calibrate
from leadq.models.factories import make_candidate
from leadq.models.importance import permutation_importance
from tests.helpers import labelled_split


@pytest.fixture(scope="module")
def data(base_params):
    split = labelled_split(base_params, 3000, seed=17, hgb_iter=30)
    return split["params"], *split["train"], *split["valid"]


@pytest.fixture(scope="module", params=[("hgb", "isotonic"), ("logreg", "sigmoid"),
                                        ("hgb", None), ("blend", "isotonic")])
def model(request, data):
    params, Xt, yt, Xv, yv = data  # noqa: N806
    name, method = request.param
    if name == "blend":  # a blend's rows are one encoded block per member (models/blend.py)
        members = [make_candidate(n, params).fit(Xt, yt) for n in ("hgb", "logreg")]
        pipe = blend_pipeline(members, [0.6, 0.5], -0.1)
    else:
        pipe = make_candidate(name, params).fit(Xt, yt)
    return pipe if method is None else calibrate(pipe, Xv, yv, method=method)


def _on_raw_rows(model, X: pd.DataFrame, y: np.ndarray, repeats: int, seed: int):  # noqa: N803
    """The slow definition: shuffle the raw column, run the whole pipeline (same shuffles)."""
    pipeline, _ = ex.unwrap(model)
    raw = ex.raw_columns_of(pipeline)
    base = roc_auc_score(y, model.predict_proba(X)[:, 1])
    rng = np.random.default_rng(seed)
    out = {}
    for col in X.columns:
        drops = []
        for _ in range(repeats if col in raw else 0):
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(len(y))]
            drops.append(base - roc_auc_score(y, model.predict_proba(shuffled)[:, 1]))
        out[col] = float(np.mean(drops)) if drops else 0.0
    return out


def test_encoded_once_equals_the_whole_pipeline_per_shuffle(model, data):
    X, y = data[3].iloc[:800], np.asarray(data[4])[:800]  # noqa: N806
    fast = permutation_importance(model, X, y, repeats=2, seed=5).set_index("column")
    slow = _on_raw_rows(model, X, y, repeats=2, seed=5)
    assert set(fast.index) == set(X.columns)
    for col, value in slow.items():
        assert fast.loc[col, "importance"] == pytest.approx(value, abs=1e-12), col
    # Derived inputs move with their raw column: the job title's seniority, the email's kind.
    pipeline, _ = ex.unwrap(model)
    assert any(fast.loc[c, "importance"] != 0 for c in ex.raw_columns_of(pipeline))


def test_a_model_it_cannot_encode_falls_back_to_scikit_learn(data):
    from sklearn.dummy import DummyClassifier

    X, y = data[3].iloc[:200], np.asarray(data[4])[:200]  # noqa: N806
    dummy = DummyClassifier(strategy="prior").fit(X, y)
    out = permutation_importance(dummy, X, y, repeats=2)
    assert list(out["importance"]) == [0.0] * len(X.columns)
