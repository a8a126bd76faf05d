"""`leadq score`: score new leads with the champion model and mark the MQLs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.columns import raw_input_columns
from pipelines.data import load_leads
from pipelines.errors import BadInputError, LeadqError
from pipelines.io import table_format, write_table_atomic
from pipelines.progress import log, step


@dataclass
class ScoringModel:
    """A loaded model and the contract that came with its registry version."""

    pyfunc: Any
    uri: str
    version: str
    threshold: float
    tags: dict

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """P(convert) per row, straight from the registered model's pyfunc."""
        out = self.pyfunc.predict(rows)
        out = out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)
        return out[:, 1] if out.ndim == 2 else out


def default_model_uri(params: dict) -> str:
    return (params.get("scoring") or {}).get("model_uri") or (
        f"models:/{params['registry']['model_name']}@champion"
    )


def registry_version(uri: str):
    """The registry ModelVersion behind a models:/NAME@alias or models:/NAME/N URI, else None."""
    import mlflow

    if not uri.startswith("models:/"):
        return None
    ref = uri[len("models:/"):]
    client = mlflow.MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    if "/" in ref:
        name, number = ref.split("/", 1)
        if number.isdigit():
            return client.get_model_version(name, number)
    return None


def load_scoring_model(params: dict, model_uri: str | None = None) -> ScoringModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.tracking import configure

    configure(params)
    uri = model_uri or default_model_uri(params)
    try:
        mv = registry_version(uri)
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise LeadqError(
            f"cannot load model {uri}: {exc.message.splitlines()[0]} "
            "(train one with `leadq train`, or pass --model-uri)"
        ) from exc
    meta = model.metadata.metadata or {}
    tags = dict(mv.tags) if mv is not None else {}
    threshold = float(tags.get("mql_threshold", meta.get("mql_threshold", 0.5)))
    version = str(mv.version) if mv is not None else str(model.metadata.model_id or uri)
    return ScoringModel(pyfunc=model, uri=uri, version=version, threshold=threshold, tags=tags)


def score_leads(
    leads: pd.DataFrame,
    model: ScoringModel,
    params: dict,
    *,
    scored_at: pd.Timestamp,
) -> pd.DataFrame:
    """The pure scoring step: typed leads in, one output row per lead out."""
    id_col = params["data"]["leads"]["id"]
    score = model.predict_proba(leads[raw_input_columns(params)])
    return pd.DataFrame({
        id_col: leads[id_col].to_numpy(),
        "score": score,
        "is_mql": score >= model.threshold,
        "model_version": model.version,
        "scored_at": scored_at,
    })


def main(input_path: str, output_path: str, model_uri: str | None = None,
         params_path: str | None = None) -> dict:
    from pipelines.config import load_params

    params = load_params(params_path)
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise BadInputError(f"{output_path}: output would overwrite the input")
    table_format(output_path)  # fail on a bad extension before any work
    with step(f"read {input_path}"):
        leads = load_leads(params, input_path, for_training=False)
    with step("load model"):
        model = load_scoring_model(params, model_uri)
    log.info("model %s version %s, MQL bar %.4f", model.uri, model.version, model.threshold)
    with step(f"score {len(leads):,} leads"):
        out = score_leads(leads, model, params, scored_at=pd.Timestamp.now(tz="UTC").floor("s"))
    write_table_atomic(out, output_path)
    summary = {"rows": len(out), "mql": int(out["is_mql"].sum()), "output": str(output_path),
               "model_version": model.version, "threshold": model.threshold}
    log.info("wrote %s: %d leads, %d MQLs (%.1f%%)", output_path, len(out), summary["mql"],
             100 * summary["mql"] / max(len(out), 1))
    return summary
