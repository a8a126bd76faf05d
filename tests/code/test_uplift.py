"""models/uplift.py: the Qini curve and coefficient on hand-checkable data, and the T- and
X-learners finding a planted effect (those train small models: slow)."""

from __future__ import annotations

import numpy as np
import pytest

from leadq.models.uplift import TLearner, XLearner, qini_coefficient, qini_curve, top_share_effect


def test_qini_curve_counts_incremental_conversions_by_hand():
    # Ranked best first: (t, y) = (1,1), (0,0), (1,1), (0,1).
    u = np.array([4, 3, 2, 1])
    t = np.array([1, 0, 1, 0])
    y = np.array([1, 0, 1, 1])
    share, q = qini_curve(u, t, y)
    np.testing.assert_allclose(share, [0.25, 0.5, 0.75, 1.0])
    # k=1: 1 treated conversion, no control yet → 1; k=2: 1 − 0·1/1; k=3: 2 − 0·2/1; k=4: 2 − 1·2/2.
    np.testing.assert_allclose(q, [1, 1, 2, 1])
    assert qini_coefficient(u, t, y) == pytest.approx(np.mean(q - share * q[-1]) / 4)
    # Equal propensities change nothing (the weights cancel in the ratio).
    np.testing.assert_allclose(qini_curve(u, t, y, np.full(4, 0.3))[1], q)


def _planted(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2))
    t = rng.random(n) < 0.5
    uplift = np.where(x[:, 0] > 0.5, 0.25, 0.0)
    y = (rng.random(n) < 0.1 + t * uplift).astype(int)
    return x, t, y, uplift


def test_qini_prefers_the_true_ranking_to_random_and_reversed():
    x, t, y, uplift = _planted(20000, 1)
    score = uplift + np.random.default_rng(2).random(len(t)) * 1e-3  # break ties
    good = qini_coefficient(score, t, y)
    assert good > 0.01  # the planted ranking: about 0.0156 (0.25 × ½ × ⅛)
    assert qini_coefficient(-score, t, y) < 0 < good
    assert abs(qini_coefficient(np.random.default_rng(3).random(len(t)), t, y)) < good / 4
    top = top_share_effect(score, t, y, 0.2)
    assert top["top"] == pytest.approx(0.25, abs=0.04) and top["random"] < 0.2


@pytest.mark.slow
def test_t_and_x_learners_find_a_planted_effect():
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x, t, y, uplift = _planted(8000, 4)
    xt, tt, yt, ut = _planted(4000, 5)
    for learner in (TLearner(lambda: DecisionTreeClassifier(max_depth=2, random_state=0)),
                    XLearner(lambda: DecisionTreeClassifier(max_depth=2, random_state=0),
                             lambda: DecisionTreeRegressor(max_depth=2, random_state=0))):
        pred = learner.fit(x, t, y).predict(xt)
        assert np.corrcoef(pred, ut)[0, 1] > 0.9, type(learner).__name__
        assert qini_coefficient(pred, tt, yt) >= 0.8 * qini_coefficient(ut, tt, yt)
    with pytest.raises(ValueError, match="both treated and control"):
        TLearner(LinearRegression).fit(x, np.ones(len(x)), y)


@pytest.mark.slow
def test_lift_data_fits_uplift_models_and_refuses_too_few_rows(tmp_path, capsys):
    import json

    import pandas as pd

    from leadq.pipelines.cli import main as cli

    x, t, y, _ = _planted(6000, 6)
    table = tmp_path / "test.csv"
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "treated": t.astype(int), "bought": y}).to_csv(
        table, index=False)
    argv = ["lift", "--data", str(table), "--treatment-column", "treated", "--outcome-column",
            "bought", "--uplift-features", "x1,x2"]
    assert cli(["--json", *argv]) == 0
    out = capsys.readouterr().out
    up = json.loads(out[out.index("{"):])["uplift"]
    assert up["n_held_out"] + up["n_fit"] == 6000
    for name in ("t_learner", "x_learner"):
        assert up[name]["qini"] > 0.005, name
        assert up[name]["top_20"]["top"] > up[name]["top_20"]["random"] + 0.05, name
    pd.DataFrame({"x1": x[:500, 0], "x2": x[:500, 1], "treated": t[:500].astype(int),
                  "bought": y[:500]}).to_csv(table, index=False)
    assert cli(argv) == 2
    captured = capsys.readouterr()
    assert "held-out split" in captured.err and "more rows" in captured.err
    assert captured.out == ""  # no half answer before the refusal
