"""Category pairs (models/pairs.py): chosen out of fold on the training rows, encoded inside the
registered Pipeline, explained exactly, and loadable through the trusted-types list."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from leadq.models import explain as ex
from leadq.models.factories import make_candidate
from leadq.models.pairs import PairTargetEncoder
from leadq.models.search import with_hyperparameters


def _leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversion depends on route and origin together (each alone carries little), with a
    third, unrelated category and a number."""
    rng = np.random.default_rng(seed)
    route = rng.choice([f"r{i}" for i in range(30)], n)
    origin = rng.choice([f"o{i}" for i in range(12)], n)
    noise = rng.choice(["a", "b", "c", None], n)
    hot = {(f"r{i}", f"o{j}") for i in range(30) for j in range(12) if (i * 7 + j * 5) % 4 == 0}
    pair_hot = np.array([(r, o) in hot for r, o in zip(route, origin, strict=True)])
    x = rng.normal(size=n)
    logit = -2.0 + 2.2 * pair_hot + 0.4 * x
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"route": route, "origin": origin, "noise": noise, "x": x})
    return frame, y


def test_the_interacting_pair_is_kept_and_noise_pairs_are_not():
    X, y = _leads(6000, seed=0)  # noqa: N806
    enc = PairTargetEncoder(max_pairs=3, min_gain=0.01)
    out = enc.fit_transform(X[["route", "origin", "noise"]], y)
    assert enc.pairs_ == [("route", "origin")]
    assert enc.gains_["route*origin"] > 0.05
    # Fixed width: unused slots are constant, so the estimator's column settings hold.
    assert out.shape == (6000, 3) and np.all(out[:, 1:] == 0)
    assert list(enc.sources()) == [("route", "origin"), (), ()]
    # Cross-fitted on the training rows: a row's own label does not set its encoding, so the
    # in-sample encoding is no better than the encoding of fresh leads.
    from sklearn.metrics import roc_auc_score

    X2, y2 = _leads(6000, seed=1)  # noqa: N806
    fresh = enc.transform(X2[["route", "origin", "noise"]])[:, 0]
    assert roc_auc_score(y, out[:, 0]) < roc_auc_score(y2, fresh) + 0.02
    # A value never seen in training encodes as the overall rate, not an error.
    unseen = pd.DataFrame({"route": ["zz"], "origin": ["o1"], "noise": ["a"]})
    assert enc.transform(unseen)[0, 0] == pytest.approx(y.mean(), abs=1e-9)


def test_no_pair_is_kept_when_none_adds_to_its_columns():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.choice(list("abcd"), 3000), "b": rng.choice(list("xyz"), 3000)})  # noqa: N806
    y = (rng.random(3000) < np.where(X["a"] == "a", 0.4, 0.1)).astype(int)
    enc = PairTargetEncoder(max_pairs=2).fit(X, y)
    assert enc.pairs_ == [] and enc.encoder_ is None
    assert np.all(enc.transform(X) == 0)


@pytest.fixture(scope="module")
def pair_params(base_params):
    params = copy.deepcopy(base_params)
    params["features"].update({"categorical": ["route", "origin", "noise"], "numeric": ["x"],
                               "email_column": None, "job_title_column": None,
                               "target_encode": ["route"], "monotonic_increasing": []})
    params["data"]["leads"]["created_at"] = None
    return params


@pytest.mark.parametrize("name", ["hgb", "logreg"])
def test_pairs_help_inside_the_pipeline_and_are_explained_exactly(pair_params, name):
    from sklearn.metrics import roc_auc_score

    X, y = _leads(8000, seed=4)  # noqa: N806
    X_test, y_test = _leads(4000, seed=5)  # noqa: N806
    with_pairs = make_candidate(name, pair_params).fit(X, y)
    without = make_candidate(name, with_hyperparameters(pair_params, name,
                                                        {"category_pairs": 0})).fit(X, y)
    auc_with = roc_auc_score(y_test, with_pairs.predict_proba(X_test)[:, 1])
    auc_without = roc_auc_score(y_test, without.predict_proba(X_test)[:, 1])
    assert auc_with > auc_without + 0.01, (auc_with, auc_without)
    # Exact explanations: base + contributions = margin; the pair's share goes to both columns.
    exp = ex.explain(with_pairs, X_test.iloc[:300])
    total = exp.base_value + exp.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, with_pairs.decision_function(X_test.iloc[:300]), atol=1e-9)
    assert exp.contributions["origin"].abs().mean() > 0.05


def test_a_pipeline_with_pairs_loads_through_the_trusted_types(pair_params):
    from skops.io import dumps, loads

    from leadq.pipelines.tracking.store import trusted_types

    X, y = _leads(3000, seed=6)  # noqa: N806
    model = make_candidate("hgb", pair_params).fit(X, y)
    trusted = trusted_types(model)
    assert "leadq.models.pairs.PairTargetEncoder" in trusted
    again = loads(dumps(model), trusted=trusted)
    np.testing.assert_allclose(again.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])


def test_transform_matches_target_encoder_for_one_lead_and_for_many():
    """transform does TargetEncoder.transform's lookup itself (and, for a few leads, without
    pandas): the same figures, unseen and blank values included."""
    X, y = _leads(4000, seed=8)  # noqa: N806
    cols = ["route", "origin", "noise"]
    enc = PairTargetEncoder(max_pairs=2).fit(X[cols], y)
    assert enc.pairs_
    fresh = _leads(500, seed=9)[0][cols]
    fresh.loc[fresh.index[:40], "route"] = "never seen"
    fresh.loc[fresh.index[40:60], "origin"] = None
    n = len(enc.pairs_)
    expected = enc.encoder_.transform(enc._codes(
        {c: pd.Index(enc.values_[c]).get_indexer(
            fresh[c].astype(object).where(fresh[c].notna(), "\x00").astype(str)) + 1
         for c in enc.values_}, enc.pairs_))
    np.testing.assert_allclose(enc.transform(fresh)[:, :n], expected, atol=1e-12)
    one_by_one = np.vstack([enc.transform(fresh.iloc[[i]]) for i in range(80)])
    np.testing.assert_allclose(one_by_one[:, :n], expected[:80], atol=1e-12)
