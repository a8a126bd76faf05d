"""Deal outcomes, feedback, ids and personal fields can never be model inputs."""

import copy

import pandas as pd
import pytest

from leadq.errors import ConfigError
from leadq.features.columns import assert_no_leakage, raw_input_columns
from leadq.pipelines.params.loader import load_params

PARAMS = load_params("params.yaml")


def with_features(**changes):
    params = copy.deepcopy(PARAMS)
    params["features"].update(changes)
    return params


def test_default_params_pass_the_guard():
    assert_no_leakage(PARAMS)


@pytest.mark.parametrize("column", ["outcome", "amount", "closed_at", "status", "rating",
                                    "reason", "first_contact_at", "feedback_at"])
def test_deal_and_feedback_columns_are_refused(column):
    params = with_features(numeric=[*PARAMS["features"]["numeric"], column])
    with pytest.raises(ConfigError, match=column):
        assert_no_leakage(params)


@pytest.mark.parametrize("column", ["email", "phone", "first_name", "lead_id"])
def test_personal_fields_and_the_id_are_refused_as_direct_inputs(column):
    params = with_features(categorical=[*PARAMS["features"]["categorical"], column])
    with pytest.raises(ConfigError, match=column):
        assert_no_leakage(params)


def test_the_label_column_is_refused():
    params = with_features(numeric=["converted"])
    params["data"]["leads"]["label"] = "converted"
    with pytest.raises(ConfigError, match="converted"):
        assert_no_leakage(params)


def test_fitted_model_sees_no_outcome_or_raw_personal_column():
    """What reaches the estimator: derived flags only, never the raw email or a deal column."""
    from leadq.models.factories import make_hgb

    pipe = make_hgb(PARAMS)
    feats = pipe.named_steps["features"]
    raw = pd.DataFrame({c: ["x"] for c in raw_input_columns(PARAMS)})
    names = set(feats.fit(raw).get_feature_names_out())
    forbidden = {"email", "phone", "first_name", "last_name", "outcome", "amount", "status",
                 "rating", "reason", "lead_id"}
    assert not names & forbidden
    assert "email_corporate" in names
