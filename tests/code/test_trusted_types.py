"""Models load only through leadq's own list of trusted types (skops)."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import yaml
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from leadq.errors import LeadqError
from leadq.pipelines.tracking.store import TRUSTED_TYPES, check_model_types, trusted_types


def _model_dir(tmp_path, types):
    mlmodel = {"flavors": {"sklearn": {"serialization_format": "skops",
                                       "skops_trusted_types": types}}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return tmp_path


def test_listed_types_load(tmp_path):
    check_model_types(_model_dir(tmp_path, sorted(TRUSTED_TYPES)), "models:/leadq/1")


def test_a_type_outside_the_list_is_refused_before_loading(tmp_path):
    with pytest.raises(LeadqError, match="os.system"):
        check_model_types(_model_dir(tmp_path, ["numpy.dtype", "os.system"]), "models:/leadq/1")


def test_a_model_from_before_the_namespace_says_retrain(tmp_path):
    with pytest.raises(LeadqError, match="retrain it with `leadq train`"):
        check_model_types(_model_dir(tmp_path, ["features.transform.LeadFeatures"]),
                          "models:/leadq/1")


def test_only_leadq_namespace_types_of_our_own_are_trusted():
    ours = {t for t in TRUSTED_TYPES if t.split(".")[0] in ("features", "models", "pipelines")}
    assert ours == set()
    # CallUplift: the registered uplift model (issue 29), two fitted pipelines and nothing else.
    assert {t for t in TRUSTED_TYPES if t.startswith("leadq.")} == {
        "leadq.features.transform.LeadFeatures", "leadq.models.factories.signed_log1p",
        "leadq.models.uplift.CallUplift",
        "leadq.models.segments.SegmentedModel",
        "leadq.models.pairs.PairTargetEncoder",
        # A blend of candidates (models/blend.py): their fitted encoders and estimators.
        "leadq.models.blend.BlendEncoder", "leadq.models.blend.BlendClassifier"}


def test_saving_a_model_with_an_unlisted_function_is_refused():
    model = make_pipeline(FunctionTransformer(operator.neg)).fit(np.ones((3, 1)))
    with pytest.raises(TypeError, match="_operator.neg"):
        trusted_types(model)


def test_scoring_refuses_a_registered_model_whose_types_are_not_listed(trained_store,
                                                                       monkeypatch):
    import leadq.pipelines.scoring.model as scoring_model
    import leadq.pipelines.tracking.store as store
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.scoring.model import load_scoring_model

    params = load_params(trained_store["params_path"])
    # A version an earlier test loaded sits in the process's model cache, trusted under the
    # full list; this process must load it afresh under the shorter one.
    monkeypatch.setattr(scoring_model, "_LOADED", {})
    monkeypatch.setattr(store, "TRUSTED_TYPES",
                        store.TRUSTED_TYPES - {"leadq.features.transform.LeadFeatures"})
    with pytest.raises(LeadqError, match="leadq.features.transform.LeadFeatures"):
        load_scoring_model(params)
