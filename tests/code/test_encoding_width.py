"""Sizes that killed training (issue 30): a near-unique category must not become a one-hot
column per value in any logistic regression leadq fits, and an encoding that would still not fit
stops before any fit (exit 2) naming the column and the settings that fix it.

Small frames, encoders only (no model is trained): the widths are asserted on the fitted
ColumnTransformer, so they hold at any size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.errors import EXIT_BAD_INPUT, ConfigError
from leadq.models.baselines import make_baseline, plain_frame
from leadq.models.factories import make_candidate
from leadq.models.search import LIBRARY_CONFIG, with_hyperparameters
from leadq.pipelines.params.loader import load_params

DISTINCT = 1200  # far more than any cap, small enough to encode in a blink
MAX_CATEGORIES = 250  # the documented cap (leadq.models.baselines.MAX_CATEGORIES)


def wide_category_leads(rows: int = 2 * DISTINCT, distinct: int = DISTINCT, seed: int = 0
                        ) -> pd.DataFrame:
    """Leads with their own outcome and a `page` column holding `distinct` values (a URL per
    lead or two), beside an ordinary `source` and a number."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lead_id": [f"L{i:06d}" for i in range(rows)],
        "created_at": (pd.Timestamp("2024-01-01")
                       + pd.to_timedelta(np.arange(rows) % 300, unit="D")).strftime("%Y-%m-%d"),
        "source": rng.choice(["web", "event", "partner"], rows),
        "page": [f"/offer/{i % distinct:05d}" for i in range(rows)],
        "employees": rng.integers(1, 500, rows).astype(float),
        "converted": (rng.uniform(size=rows) < 0.3).astype(int),
    })


def _params(tmp_path: Path, **features) -> dict:
    body = {"data": {"leads": {"path": "leads.csv", "id": "lead_id", "created_at": "created_at",
                               "label": "converted"}},
            "features": {"categorical": ["source", "page"], "numeric": ["employees"],
                         **features},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "outputs": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_params(path)


def _onehot_columns(pipeline, frame: pd.DataFrame, column: str) -> int:
    names = pipeline.named_steps["encode"].get_feature_names_out()
    return sum(n.startswith(f"cat__{column}_") for n in names)


def test_the_cap_is_the_documented_one():
    from leadq.models import baselines

    assert baselines.MAX_CATEGORIES == MAX_CATEGORIES


def test_the_logreg_baseline_one_hot_has_a_bounded_width():
    frame = plain_frame(wide_category_leads()[["source", "page", "employees"]])
    y = wide_category_leads()["converted"]
    model = make_baseline("logreg", frame).fit(frame, y)
    width = model.named_steps["encode"].transform(frame).shape[1]
    assert _onehot_columns(model, frame, "page") == MAX_CATEGORIES
    assert width <= MAX_CATEGORIES + 3 + 1  # page (pooled), source, employees
    # A column below the cap is encoded as the library default does: one column per value.
    assert _onehot_columns(model, frame, "source") == 3
    # An unseen category still scores (all zeros, as handle_unknown="ignore" gave).
    unseen = frame.iloc[:2].assign(source="brand new")
    assert np.isfinite(model.predict_proba(unseen)).all()


@pytest.mark.parametrize("declared", [True, False])
def test_the_library_default_logreg_candidate_is_bounded_like_the_baseline(
        tmp_path, declared):
    params = _params(tmp_path, target_encode=["page"] if declared else [])
    defaults = with_hyperparameters(params, "logreg", LIBRARY_CONFIG["logreg"])
    leads = wide_category_leads()
    pipeline = make_candidate("logreg", defaults)
    encode = pipeline[:-1].fit(leads, leads["converted"])
    width = encode.transform(leads).shape[1]
    # The baseline's encoding (logreg-defaults must equal the LogisticRegression() baseline),
    # declared high-cardinality or not: one-hot, never more than MAX_CATEGORIES columns.
    assert _onehot_columns(pipeline, leads, "page") == MAX_CATEGORIES
    assert width <= MAX_CATEGORIES + 20
    # The size guard's estimate covers what is built.
    from leadq.models.factories import onehot_widths

    assert onehot_widths(defaults, leads)["page"] >= _onehot_columns(pipeline, leads, "page")


def test_an_encoding_over_budget_stops_before_fitting_naming_column_and_setting(tmp_path):
    from leadq.models.factories import check_encoding_size

    leads = wide_category_leads(rows=40_000, distinct=20_000)
    params = _params(tmp_path, max_encoded_mb=50)
    # 40,000 leads × (250 page columns + …) × 8 bytes ≈ 77 MB > 50 MB
    with pytest.raises(ConfigError) as err:
        check_encoding_size(params, leads)
    message = str(err.value)
    assert err.value.exit_code == EXIT_BAD_INPUT
    assert "'page' (250 columns)" in message
    for setting in ("features.max_encoded_mb", "features.target_encode"):
        assert setting in message
    # Declared high-cardinality and without the library-default candidate (target-encoded
    # everywhere), the same leads fit the budget.
    declared = _params(tmp_path, max_encoded_mb=50, target_encode=["page"])
    declared["train"]["compare_defaults"] = False
    check_encoding_size(declared, leads)


def test_train_exits_2_naming_the_column_before_any_model_is_fitted(tmp_path, capsys):
    from leadq.pipelines import cli

    leads = wide_category_leads(rows=6000, distinct=3000)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    _params(tmp_path, max_encoded_mb=1)
    code = cli.main(["train", "--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "'page'" in err and "features.max_encoded_mb" in err
    assert "search logreg" not in err and "Created version" not in err
