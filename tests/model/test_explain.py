"""Per-lead explanations: exact contributions, grouped to raw columns, in plain words."""

from __future__ import annotations

import re
from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import pytest

from leadq.features.columns import raw_input_columns
from leadq.models import explain as ex
from leadq.models.calibration import calibrate
from leadq.models.factories import make_candidate
from tests.helpers import labelled_split


@pytest.fixture(scope="module")
def lead_data(base_params):
    return labelled_split(base_params, 6000, seed=11, hgb_iter=60)


@pytest.fixture(scope="module", params=["hgb", "logreg"])
def calibrated(request, lead_data):
    pipe = make_candidate(request.param, lead_data["params"]).fit(*lead_data["train"])
    return request.param, calibrate(pipe, *lead_data["valid"], method="isotonic")


def test_contributions_plus_base_equal_the_model_margin(calibrated, lead_data):
    name, model = calibrated
    X = lead_data["valid"][0]  # noqa: N806
    exp = ex.explain(model, X)
    pipeline, _ = ex.unwrap(model)
    margin = pipeline.decision_function(X)
    total = exp.base_value + exp.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, margin, rtol=0, atol=1e-9)
    # One column per raw CRM column: one-hot and derived inputs are summed back.
    assert list(exp.contributions.columns) == list(dict.fromkeys(raw_input_columns(
        lead_data["params"])))
    assert ("Tree SHAP" in exp.method) == (name == "hgb")
    # An uncalibrated pipeline (calibration "none") is explained the same way.
    plain = ex.explain(pipeline, X)
    np.testing.assert_allclose(plain.contributions.to_numpy(), exp.contributions.to_numpy(),
                               atol=1e-12)


def test_points_map_the_margin_onto_the_calibrated_probability(calibrated, lead_data):
    _, model = calibrated
    X = lead_data["valid"][0]  # noqa: N806
    exp = ex.explain(model, X)
    _, calibrators = ex.unwrap(model)
    points, p, p0 = ex.to_points(exp, calibrators)
    np.testing.assert_allclose(p, model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    moved = (np.abs(exp.margin - exp.base_value) > 1e-9) & (np.abs(p - p0) > 1e-12)
    assert moved.mean() > 0.5
    # Where the calibrated score moved from the base, the points add up to it exactly.
    np.testing.assert_allclose(points.sum(axis=1).to_numpy()[moved], 100 * (p - p0)[moved],
                               rtol=0, atol=1e-9)
    # The mapping never flips a contribution's sign.
    assert ((np.sign(points.to_numpy()) * np.sign(exp.contributions.to_numpy())) >= 0).all()


def test_tree_shap_matches_shap_on_numeric_splits(lead_data):
    """shap's TreeExplainer is exact for HGB without categorical splits: same values."""
    shap = pytest.importorskip("shap")
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = lead_data["train"]  # noqa: N806
    num = X[["employees", "demo_requested"]]
    hgb = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=0)
    hgb.fit(num.to_numpy(float), y)
    rows = num.iloc[:300].to_numpy(float)
    ours, base = ex.tree_shap_hgb(hgb, rows)
    theirs = shap.TreeExplainer(hgb).shap_values(rows)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(base + ours.sum(axis=1), hgb.decision_function(rows), atol=1e-9)


def _path_dependent_expectation(tree: dict, x: np.ndarray, known: set[int], node: int = 0):
    """E[f(x) | x_S] by the tree's training covers (Lundberg et al. Algorithm 1)."""
    if tree["is_leaf"][node]:
        return tree["value"][node]
    left, right = tree["left"][node], tree["right"][node]
    if tree["feature"][node] in known:
        nxt = left if tree["go_left"](x, node) else right
        return _path_dependent_expectation(tree, x, known, nxt)
    w = tree["count"]
    return (w[left] * _path_dependent_expectation(tree, x, known, left)
            + w[right] * _path_dependent_expectation(tree, x, known, right)) / w[node]


def test_tree_shap_is_exact_shapley_with_categorical_splits():
    """Brute force over all feature subsets on a small HGB with native categorical splits."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    n = 3000
    cat = rng.integers(0, 6, n).astype(float)
    cat[rng.random(n) < 0.05] = np.nan
    num = rng.normal(size=(n, 2))
    logit = np.where(np.isin(cat, [1, 4]), 1.2, -0.5) + num[:, 0] - 0.5 * num[:, 1] * (cat == 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = np.column_stack([cat, num])  # noqa: N806
    hgb = HistGradientBoostingClassifier(max_iter=8, max_leaf_nodes=6,
                                         categorical_features=[True, False, False],
                                         random_state=0).fit(X, y)
    assert any(p[0].nodes["is_categorical"].any() for p in hgb._predictors)
    probe = np.vstack([X[:20], [[7.0, 0.1, -0.2]], [[np.nan, 1.0, 1.0]]])  # unseen, missing
    ours, base = ex.tree_shap_hgb(hgb, probe)
    np.testing.assert_allclose(base + ours.sum(axis=1), hgb.decision_function(probe), atol=1e-9)

    known_bits, f_idx_map = hgb._bin_mapper.make_known_categories_bitsets()
    trees = []
    for (pred,) in hgb._predictors:
        nodes = pred.nodes

        def go_left(x, i, nodes=nodes, pred=pred):
            v, node = x[nodes["feature_idx"][i]], nodes[i]
            if np.isnan(v):
                return bool(node["missing_go_to_left"])
            if node["is_categorical"]:
                if v < 0:
                    return bool(node["missing_go_to_left"])
                code = int(v)
                bits = pred.raw_left_cat_bitsets[node["bitset_idx"]]
                if (bits[code // 32] >> (code % 32)) & 1:
                    return True
                kb = known_bits[f_idx_map[node["feature_idx"]]]
                return False if (kb[code // 32] >> (code % 32)) & 1 else bool(
                    node["missing_go_to_left"])
            return v <= node["num_threshold"]

        trees.append({"is_leaf": nodes["is_leaf"], "value": nodes["value"],
                      "left": nodes["left"], "right": nodes["right"],
                      "feature": nodes["feature_idx"], "count": nodes["count"].astype(float),
                      "go_left": go_left})
    m = X.shape[1]
    for r, x in enumerate(probe):
        def v(subset, x=x):
            return sum(_path_dependent_expectation(t, x, set(subset)) for t in trees)

        for i in range(m):
            others = [j for j in range(m) if j != i]
            phi = 0.0
            for k in range(m):
                for s in combinations(others, k):
                    weight = factorial(k) * factorial(m - k - 1) / factorial(m)
                    phi += weight * (v((*s, i)) - v(s))
            assert ours[r, i] == pytest.approx(phi, abs=1e-9)


def test_reasons_are_plain_words_without_personal_data(calibrated, lead_data):
    _, model = calibrated
    X = lead_data["valid"][0].head(300)  # noqa: N806
    reasons = ex.explain_leads(model, X)
    assert list(reasons.columns) == ["reasons_positive", "reasons_negative"]
    pattern = re.compile(r"^[\w ]+ = [^:;]+: [+-]\d+\.\d points$")
    for col, sign in (("reasons_positive", "+"), ("reasons_negative", "-")):
        parts = [p for cell in reasons[col] for p in cell.split("; ") if p]
        assert parts, col
        assert all(pattern.match(p) and f": {sign}" in p for p in parts), parts[:5]
        assert max(len([p for p in cell.split("; ") if p]) for cell in reasons[col]) <= 3
    text = " ".join(reasons["reasons_positive"]) + " ".join(reasons["reasons_negative"])
    leads = lead_data["leads"].set_index("lead_id")
    for col in ("email", "first_name", "last_name", "phone"):
        # Only values longer than 4 characters: short first names also occur in job titles.
        values = [v for v in leads[col].dropna().astype(str) if len(v) > 4]
        assert not any(v in text for v in values[:2000]), col
    assert "@" not in text
    assert re.search(r"email domain = (corporate|free-mail)", text)


def test_score_adds_reasons_and_no_explain_removes_them(trained_store, tmp_path):
    from leadq.pipelines.cli import main as cli

    version = trained_store["summary"]["version"]
    common = ["--input", str(trained_store["crm"]["leads"]), "--model-uri",
              f"models:/leadq/{version}", "--params", str(trained_store["params_path"])]
    on, off = tmp_path / "on.csv", tmp_path / "off.csv"
    assert cli(["score", *common, "--output", str(on)]) == 0  # small file: on by default
    assert cli(["score", *common, "--output", str(off), "--no-explain"]) == 0
    with_reasons, without = pd.read_csv(on, keep_default_na=False), pd.read_csv(off)
    assert {"reasons_positive", "reasons_negative"} <= set(with_reasons.columns)
    assert not {"reasons_positive", "reasons_negative"} & set(without.columns)
    np.testing.assert_allclose(with_reasons["score"], without["score"], atol=1e-12)
    assert (with_reasons["reasons_positive"] != "").mean() > 0.5
    # Leads the model scores high get positive reasons first.
    top = with_reasons.nlargest(50, "score")
    assert (top["reasons_positive"] != "").all()


def test_explain_max_rows_turns_default_reasons_off(trained_store, tmp_path):
    import yaml

    from leadq.pipelines.cli import main as cli

    params = yaml.safe_load(trained_store["params_path"].read_text())
    params["explain"] = {"max_rows": 100}
    # Same store as the trained model (a relative sqlite path is relative to the params file).
    params["mlflow"]["tracking_uri"] = f"sqlite:///{trained_store['dir'] / 'mlflow.db'}"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "scores.csv"
    version = trained_store["summary"]["version"]
    assert cli(["score", "--input", str(trained_store["crm"]["leads"]), "--output", str(out),
                "--model-uri", f"models:/leadq/{version}", "--params", str(path)]) == 0
    assert "reasons_positive" not in pd.read_csv(out).columns


def test_linear_reasons_do_not_depend_on_the_batch(lead_data):
    """A registered logistic regression measures reasons from its training mean, so a lead
    gets the same reasons alone, in a chunk of 50 or in the whole file (streamed or Spark)."""
    from leadq.models.search import fit_candidate

    X, y = lead_data["train"]  # noqa: N806
    pipe = fit_candidate("logreg", lead_data["params"], X, y)
    stored = getattr(pipe.steps[-1][1], ex.REFERENCE_ATTR)
    np.testing.assert_allclose(stored, ex._encoded(pipe, X).mean(axis=0), atol=1e-12)
    model = calibrate(pipe, *lead_data["valid"], method="sigmoid")
    valid = lead_data["valid"][0]
    whole = ex.explain_leads(model, valid)
    for lo in (0, 50, 700):
        part = ex.explain_leads(model, valid.iloc[lo:lo + 50])
        pd.testing.assert_frame_equal(part, whole.iloc[lo:lo + 50])
    alone = ex.explain_leads(model, valid.iloc[[3]])
    pd.testing.assert_frame_equal(alone, whole.iloc[[3]])
    exp = ex.explain(model, valid)  # still exact against the model's margin
    np.testing.assert_allclose(exp.base_value + exp.contributions.sum(axis=1).to_numpy(),
                               ex.unwrap(model)[0].decision_function(valid), atol=1e-9)


def test_tree_shap_of_a_few_rows_equals_the_threaded_kernels(lead_data):
    """A few rows run on the calling thread (serial kernels: `leadq serve`'s single leads),
    many rows on numba's threads: the values are identical."""
    Xv = lead_data["valid"][0]  # noqa: N806
    pipe = make_candidate("hgb", lead_data["params"]).fit(*lead_data["train"])
    hgb = pipe.steps[-1][1]
    X = hgb._preprocess_X(pipe[:-1].transform(Xv.iloc[:200]), reset=False)  # noqa: N806
    assert len(X) > ex.SERIAL_SHAP_ROWS
    bulk, base = ex.tree_shap_hgb(hgb, X)
    for i in range(0, len(X), 7):
        one, one_base = ex.tree_shap_hgb(hgb, X[i:i + 1])
        np.testing.assert_array_equal(one, bulk[i:i + 1])
        assert one_base == base
