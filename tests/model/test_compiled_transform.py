"""The compiled single-lead transform (leadq.models.compiled) equals `pipeline[:-1].transform`
on every kind of pipeline leadq fits: gradient boosting and logistic regression, with and
without category pairs, target-encoded or one-hot/native high-cardinality columns, rare
categories pooled or not, the missing indicator, log or linear numbers, calibrated, and each
member of a segmented model. Leads are compared one at a time (as `leadq serve` scores) and in
small batches, including leads with every field missing and categories never seen."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from leadq.models import explain as ex
from leadq.models.calibration import calibrate
from leadq.models.compiled import NotCompiled, compile_transform, matches
from leadq.models.factories import make_candidate
from tests.helpers import labelled_split

N_SINGLE = 320


@pytest.fixture(scope="module")
def data(base_params):
    split = labelled_split(base_params, 3000, seed=21, hgb_iter=20)
    return split["params"], *split["train"], *split["valid"]


VARIANTS = {
    "hgb": ("hgb", {}),
    "hgb-native-no-pairs-unpooled": ("hgb", {"features": {"target_encode": ["campaign"]},
                                             "train": {"hgb": {"category_pairs": 0,
                                                               "high_cardinality": "native",
                                                               "pool_rare": False}}}),
    "hgb-target-encoded": ("hgb", {"features": {"target_encode": ["campaign", "landing_page"]}}),
    "logreg": ("logreg", {}),
    "logreg-target-encoded": ("logreg", {"features": {"target_encode": ["campaign"]}}),
    "logreg-onehot-linear": ("logreg", {"features": {"target_encode": ["campaign"]},
                                        "train": {"logreg": {"high_cardinality": "onehot",
                                                             "numeric_scale": "linear",
                                                             "missing_indicator": False,
                                                             "pool_rare": False,
                                                             "category_pairs": 0}}}),
}


def _merge(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict):
            out[key] = _merge(out.get(key) or {}, value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module", params=list(VARIANTS))
def pipeline(request, data):
    params, Xt, yt, _, _ = data  # noqa: N806
    name, changes = VARIANTS[request.param]
    return make_candidate(name, _merge(params, changes)).fit(Xt, yt)


def _awkward(X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """Leads the training rows never had: every field missing, unseen categories, padding."""
    odd = X.iloc[:4].copy()
    odd.iloc[0, :] = np.nan
    text = [c for c in X.columns if X[c].dtype == object or isinstance(X[c].dtype,
                                                                       pd.StringDtype)]
    for c in text:
        odd.iloc[1, odd.columns.get_loc(c)] = "never seen in training"
        odd.iloc[2, odd.columns.get_loc(c)] = "  " + str(X[c].dropna().iloc[0]).upper() + " "
    numeric = [c for c in X.columns if pd.api.types.is_float_dtype(X[c])]
    for c in numeric:
        odd.iloc[3, odd.columns.get_loc(c)] = -1e12
    return odd


def test_every_kind_of_pipeline_compiles_and_equals_the_pipeline(pipeline, data):
    X = data[3]  # noqa: N806
    compiled = compile_transform(pipeline)
    leads = pd.concat([_awkward(X), X.iloc[:N_SINGLE]])
    want = np.asarray(pipeline[:-1].transform(leads), dtype=np.float64)
    for i in range(len(leads)):  # one lead at a time, as `leadq serve` scores
        got = compiled.transform(leads.iloc[[i]])
        np.testing.assert_array_equal(got, want[[i]], err_msg=f"lead {i}")
    for start in range(0, 96, 32):  # a micro-batch of several requests
        np.testing.assert_array_equal(compiled.transform(leads.iloc[start:start + 32]),
                                      want[start:start + 32])
    assert matches(compiled, pipeline, leads.iloc[:32])


def test_the_hgb_input_step_compiles_and_the_trees_sum_the_same(pipeline, data, monkeypatch):
    """HGB's own categorical input step, compiled: its output, the margin summed from it and
    the Tree SHAP values of a row or two equal scikit-learn's and the per-tree path's."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from leadq.models.compiled import compile_hgb_input, hgb_margin

    hgb = pipeline.steps[-1][1]
    if not isinstance(hgb, HistGradientBoostingClassifier):
        pytest.skip("a logistic pipeline has no HGB input step")
    X = data[3]  # noqa: N806
    encoded = np.asarray(pipeline[:-1].transform(pd.concat([_awkward(X), X.iloc[:200]])),
                         dtype=np.float64)
    fast = compile_hgb_input(hgb)
    categorical = np.flatnonzero(hgb.is_categorical_)
    assert len(categorical)  # the variants all have categorical inputs
    odd = encoded[:3].copy()
    odd[:, categorical] = [[500.0], [-1.0], [np.nan]]  # codes never seen, and missing
    encoded = np.vstack([odd, encoded])
    want = hgb._preprocess_X(encoded, reset=False)
    for i in range(len(encoded)):
        np.testing.assert_array_equal(fast(encoded[[i]]), want[[i]], err_msg=f"row {i}")
    np.testing.assert_array_equal(hgb_margin(hgb, fast(encoded)), hgb.decision_function(encoded))
    # A few rows' margin from the packed trees in one kernel call: the same sums, row by row.
    margins = hgb.decision_function(encoded)
    for i in range(len(encoded)):
        np.testing.assert_array_equal(ex._hgb_margin(hgb, fast(encoded[[i]])),
                                      margins[[i]], err_msg=f"row {i}")
    pre = fast(encoded[:40])
    few = [ex.tree_shap_hgb(hgb, pre[i:i + 2])[0] for i in range(0, 40, 2)]
    monkeypatch.setattr(ex, "ALL_TREES_ROWS", 0)  # the per-tree path, rows grouped
    for i, got in zip(range(0, 40, 2), few, strict=True):
        np.testing.assert_array_equal(got, ex.tree_shap_hgb(hgb, pre[i:i + 2])[0])


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_models_score_the_same_from_the_compiled_rows(data, method):
    params, Xt, yt, Xv, yv = data  # noqa: N806
    model = calibrate(make_candidate("hgb", params).fit(Xt, yt), Xv, yv, method=method)
    assert ex.check_compiled(model, Xv.iloc[:8]) is None
    leads = pd.concat([_awkward(Xv), Xv.iloc[:100]])
    want = model.predict_proba(leads)[:, 1]
    for i in range(len(leads)):
        row = leads.iloc[[i]]
        encoded = ex.encode_rows(model, row)
        assert isinstance(encoded, np.ndarray)
        np.testing.assert_array_equal(ex.predict_encoded(model, encoded), want[[i]])
    # And the reasons from the compiled rows are those of the pipeline's own.
    for i in range(0, 30):
        row = leads.iloc[[i]]
        pd.testing.assert_frame_equal(
            ex.explain_leads(model, row, transformed=ex.encode_rows(model, row)),
            ex.explain_leads(model, row, transformed=ex.unwrap(model)[0][:-1].transform(row)))


def test_each_member_of_a_segmented_model_compiles(data):
    from leadq.models.segments import SegmentedModel

    params, Xt, yt, Xv, yv = data  # noqa: N806
    top = Xt["source"].value_counts().index[0]
    model = SegmentedModel(column="source", pooled=make_candidate("hgb", params),
                           members={top: make_candidate("logreg", params)}).fit(Xt, yt)
    # As training stores it: the linear reasons' fixed reference (else they are measured from
    # the mean of the leads explained together, and differ alone and in bulk by design).
    member = model.members_[next(iter(model.members_))]
    ex.set_explain_reference(member, Xt[Xt["source"] == top])
    assert model.members_
    for member in [model.pooled_, *model.members_.values()]:
        pipe = ex.unwrap(member)[0]
        assert matches(compile_transform(pipe), pipe, pd.concat([_awkward(Xv), Xv.iloc[:28]]))
    # Scored and explained one lead at a time (each through its segment's compiled steps),
    # a segmented model gives its bulk answers.
    leads = pd.concat([_awkward(Xv), Xv.iloc[:120]])
    want = model.predict_proba(leads)
    reasons = ex.explain_leads(model, leads)
    for i in range(len(leads)):
        row = leads.iloc[[i]]
        # Bulk and single rows may differ in the last bit (BLAS sums a matrix product in
        # another order), as the batch scorer's own chunks do; nothing more.
        np.testing.assert_allclose(model.predict_proba(row), want[[i]], rtol=0, atol=1e-12)
        if i < 40:
            pd.testing.assert_frame_equal(ex.explain_leads(model, row), reasons.iloc[[i]])


def test_a_step_it_does_not_know_falls_back_to_the_pipeline(data):
    from sklearn.preprocessing import QuantileTransformer

    params, Xt, yt, Xv, _ = data  # noqa: N806
    pipe = make_candidate("logreg", params)
    encode = pipe.named_steps["encode"]
    name, numeric, cols = encode.transformers[-1] if encode.transformers[-1][0] == "num" else \
        next(t for t in encode.transformers if t[0] == "num")
    numeric.steps.insert(1, ("quantile", QuantileTransformer(n_quantiles=50)))
    pipe.fit(Xt, yt)
    with pytest.raises(NotCompiled, match="QuantileTransformer"):
        compile_transform(pipe)
    reason = ex.check_compiled(pipe, Xv.iloc[:4])
    assert reason is not None and "QuantileTransformer" in reason
    row = Xv.iloc[[0]]
    # No compiled form: encode_rows gives the pipeline's own output.
    np.testing.assert_array_equal(ex.encode_rows(pipe, row), pipe[:-1].transform(row))


def test_a_compiled_form_that_disagrees_is_switched_off(data, monkeypatch):
    from leadq.models import compiled as cm

    params, Xt, yt, Xv, _ = data  # noqa: N806
    pipe = make_candidate("logreg", params).fit(Xt, yt)
    real = cm.CompiledTransform.transform
    monkeypatch.setattr(cm.CompiledTransform, "transform",
                        lambda self, X: real(self, X) + 1e-12)  # noqa: N803
    assert "differed" in ex.check_compiled(pipe, Xv.iloc[:4])
    row = Xv.iloc[[0]]
    np.testing.assert_array_equal(ex.encode_rows(pipe, row), pipe[:-1].transform(row))
