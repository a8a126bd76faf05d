"""The T-learner over leadq's own logistic pipeline on the synthetic CRM, whose truth knows each
lead's chance with and without a call: on held-out randomised leads its Qini coefficient is
within 80% of the oracle's (the true uplift), and its top decile's predicted uplift is checked
against the effect measured there (on leads not used to fit it)."""

from __future__ import annotations

import copy

import numpy as np
import pytest


@pytest.mark.slow
def test_t_learner_qini_is_within_80_percent_of_the_oracle(base_params):
    from leadq.features.columns import raw_input_columns
    from leadq.features.tables import coerce_leads
    from leadq.models.factories import make_candidate
    from leadq.models.lift import average_effect
    from leadq.models.routing import explore_uniform, holdout_uniform
    from leadq.models.uplift import TLearner, qini_coefficient
    from leadq.pipelines.synthetic.crm import generate_crm

    params = copy.deepcopy(base_params)
    crm = generate_crm(30000, seed=5)
    truth = crm["truth"]
    X = coerce_leads(crm["leads"], params)[raw_input_columns(params)]  # noqa: N806
    ids = truth["lead_id"].to_numpy(object)
    # A 50/50 randomised test drawn from the id; 60% of leads fit, 40% held out.
    t = holdout_uniform(ids) < 0.5
    p1, p0 = truth["p_called"].to_numpy(), truth["p_not_called"].to_numpy()
    y = (np.random.default_rng(1).random(len(t)) < np.where(t, p1, p0)).astype(int)
    fit = explore_uniform(ids) < 0.6
    test = ~fit
    model = TLearner(lambda: make_candidate("logreg", params)).fit(X[fit], t[fit], y[fit])
    pred = model.predict(X[test])
    oracle = (p1 - p0)[test]
    q_model = qini_coefficient(pred, t[test], y[test])
    q_oracle = qini_coefficient(oracle, t[test], y[test])
    assert q_oracle > 0
    assert q_model >= 0.8 * q_oracle, (q_model, q_oracle)
    # Honest calibration of the top decile: the measured effect there (held-out leads) is
    # far above the average and its interval holds the true mean uplift of those leads.
    top = np.zeros(test.sum(), bool)
    top[np.argsort(-pred)[: len(pred) // 10]] = True
    measured = average_effect(y[test][top], t[test][top], min_group=50)
    assert measured.low <= oracle[top].mean() <= measured.high
    assert measured.effect > 2 * oracle.mean()
