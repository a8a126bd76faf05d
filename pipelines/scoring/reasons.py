"""Per-lead reasons in `leadq score`: when they are on by default, and the columns they add.

Reasons cost an exact Tree SHAP pass (≈ seconds per 100k leads), so they are on by default for
files up to params explain.max_rows leads; --explain / --no-explain override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from leadq.settings import setting

REASON_COLUMNS = ("reasons_positive", "reasons_negative")


def explain_by_default(path: str | Path, params: dict) -> bool:
    from leadq.pipelines.io.files import rows_at_most  # every input form: dirs, globs, .gz

    return rows_at_most(path, setting(params, "explain.max_rows", int), params["data"]["leads"])


def reason_columns(model, rows: pd.DataFrame, params: dict, *,
                   transformed: Any = None, explanation: Any = None) -> pd.DataFrame:
    """reasons_positive / reasons_negative for raw model-input rows, in their order.

    `model` is the scorer's ScoringModel (its pyfunc wraps the registered sklearn model).
    Points refer to the model's calibrated probability (the scorer's score_raw).
    `transformed` is `model.encode(rows)` when the scorer computed it for the scores, and
    `explanation` the explanation the scores were computed from (`explained_scores`).
    """
    from leadq.errors import LeadqError
    from leadq.models.explain import explain_leads

    sk = model.pyfunc.get_raw_model() if hasattr(model, "pyfunc") else model
    top = setting(params, "explain.top", int)
    try:
        return explain_leads(sk, rows, top=top, transformed=transformed,
                             explanation=explanation)
    except ValueError as exc:  # a model type with no exact explanation
        raise LeadqError(f"cannot explain this model's scores: {exc}; score with --no-explain"
                         ) from exc


def explained_scores(model, rows: pd.DataFrame, transformed: Any):
    """The explanation of `rows` and P(convert) from its margin (leadq.models.explain.Scored),
    or None when this model's scores and reasons are computed each on their own."""
    from leadq.errors import LeadqError
    from leadq.models.explain import explain_and_score

    sk = model.sklearn() if hasattr(model, "sklearn") else None
    if sk is None or transformed is None:
        return None
    try:
        return explain_and_score(sk, rows, transformed)
    except ValueError as exc:  # a model type with no exact explanation
        raise LeadqError(f"cannot explain this model's scores: {exc}; score with --no-explain"
                         ) from exc
