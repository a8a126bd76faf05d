"""`leadq score`: score new leads with the champion model and mark the MQLs."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.columns import raw_input_columns
from pipelines.errors import BadInputError, LeadqError
from pipelines.io import peek_columns, table_format
from pipelines.progress import log, step


@dataclass
class ScoringModel:
    """A loaded model and the contract that came with its registry version."""

    pyfunc: Any
    uri: str
    version: str
    threshold: float
    tags: dict
    # The threshold version in force (pipelines.threshold_store): "0" = the training bar.
    threshold_version: str = "0"
    cutoffs: tuple[float, float, float] | None = None
    correction: Any = None  # models.prior_shift.Correction, or None for raw scores

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
        with tempfile.TemporaryDirectory(prefix="leadq-model-") as local:
            # MLflow's own requirements check scans every installed distribution: 1.2 s of
            # each scoring run. The model pins a handful of packages; check those instead.
            model = mlflow.pyfunc.load_model(uri, suppress_warnings=True, dst_path=local)
            warn_environment_mismatch(Path(local), model.metadata, uri)
    except MlflowException as exc:
        raise LeadqError(
            f"cannot load model {uri}: {exc.message.splitlines()[0]} "
            "(train one with `leadq train`, or pass --model-uri)"
        ) from exc
    meta = model.metadata.metadata or {}
    tags = dict(mv.tags) if mv is not None else {}
    threshold = float(tags.get("mql_threshold", meta.get("mql_threshold", 0.5)))
    version = str(mv.version) if mv is not None else str(model.metadata.model_id or uri)
    scoring = ScoringModel(pyfunc=model, uri=uri, version=version, threshold=threshold, tags=tags)
    if mv is not None:
        _apply_threshold_version(scoring, mlflow.MlflowClient(), mv.name, tags)
    return scoring


def warn_environment_mismatch(local: Path, meta: Any, uri: str) -> None:
    """Warn when an installed package or Python differs from what the model was saved with:
    a different scikit-learn can change scores or fail to load."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    found = next(iter(sorted(local.rglob("requirements.txt"))), None)
    lines = found.read_text().splitlines() if found else []
    for line in lines:
        try:
            req = Requirement(line.strip())
        except InvalidRequirement:
            continue  # comments, options such as -r, blank lines
        try:
            have = version(req.name)
        except PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            log.warning("model %s was saved with %s; this environment has %s", uri, req,
                        f"{req.name} {have}" if have else f"no {req.name}")
    saved_py = ((meta.flavors or {}).get("python_function") or {}).get("python_version")
    if saved_py and saved_py.split(".")[:2] != platform.python_version().split(".")[:2]:
        log.warning("model %s was saved with Python %s; this is Python %s", uri, saved_py,
                    platform.python_version())


def _apply_threshold_version(scoring: ScoringModel, client: Any, name: str, tags: dict) -> None:
    """Use the latest recalibrated bar, tiers and correction of this model version."""
    from models.prior_shift import Correction
    from pipelines.threshold_store import current_entry

    entry = current_entry(client, name, scoring.version, tags)
    scoring.threshold = float(entry["threshold"])
    scoring.threshold_version = str(entry["threshold_version"])
    scoring.cutoffs = tuple(entry["cutoffs"]) if entry.get("cutoffs") else None
    scoring.correction = Correction.from_dict(entry.get("correction"))


def score_leads(
    leads: pd.DataFrame,
    model: ScoringModel,
    params: dict,
    *,
    scored_at: pd.Timestamp,
    explain: bool = False,
    id_hashes: np.ndarray | None = None,
) -> pd.DataFrame:
    """The pure scoring step: typed leads in, one output row per lead out.

    With `explain`, reasons_positive / reasons_negative say why (pipelines.reasons).
    `id_hashes` (models.routing.id_hashes of the ids) saves hashing them again.
    """
    from models.routing import route

    id_col = params["data"]["leads"]["id"]
    raw = model.predict_proba(leads[raw_input_columns(params)])
    ids = leads[id_col].array
    r = route(ids, raw, threshold=model.threshold, cutoffs=model.cutoffs,
              correction=model.correction,
              explore_rate=float((params.get("scoring") or {}).get("explore_rate", 0.0) or 0.0),
              hashes=id_hashes)
    out = pd.DataFrame({
        id_col: ids,
        "score": r["score"],
        "is_mql": r["is_mql"],
        "model_version": model.version,
        "scored_at": scored_at,
        "tier": r["tier"],
        "threshold_version": model.threshold_version,
        "explore": r["explore"],
        "sales_propensity": r["sales_propensity"],
        "score_raw": r["score_raw"],
    })
    if explain:
        from pipelines.reasons import reason_columns

        reasons = reason_columns(model, leads[raw_input_columns(params)], params)
        for col in reasons.columns:
            out[col] = reasons[col].to_numpy()
    return out


def main(input_path: str, output_path: str, model_uri: str | None = None,
         params_path: str | None = None, chunk_size: int | None = None,
         explain: bool | None = None) -> dict:
    """Stream the leads file through its contract and the model (pipelines/stream.py):
    good rows are scored, bad rows quarantined beside the output as `<stem>.rejected.csv`,
    and the accounting (read = scored + rejected, per reason) printed and logged."""
    from pipelines.config import load_params
    from pipelines.quarantine import quarantine_path
    from pipelines.stream import DEFAULT_CHUNK_SIZE, score_file
    from pipelines.validate import load_reference

    params = load_params(params_path)
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise BadInputError(f"{output_path}: output would overwrite the input")
    table_format(output_path)  # fail on a bad extension before any work
    # A file that cannot be read or lacks a column is bad input (exit 2), whatever the model.
    columns = peek_columns(input_path, params["data"]["leads"], name="leads")
    if columns is not None:
        from features.contracts import check_columns

        check_columns(columns, "leads", params, path=input_path, for_training=False)
    with step("load model"):
        model = load_scoring_model(params, model_uri)
    log.info("model %s version %s, MQL bar %.4f (threshold version %s)", model.uri,
             model.version, model.threshold, model.threshold_version)
    run_id = model.tags.get("train_run_id") or getattr(model.pyfunc.metadata, "run_id", None)
    reference = load_reference(run_id)
    if reference is None:
        log.warning("model %s has no stored contract reference: unseen categories are not "
                    "counted", model.uri)
    chunk_size = chunk_size or int((params.get("scoring") or {}).get("chunk_size")
                                   or DEFAULT_CHUNK_SIZE)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    if explain is None:
        from pipelines.reasons import explain_by_default

        explain = explain_by_default(input_path, params)
    mql = [0]

    def score_chunk(leads: pd.DataFrame, id_hashes: np.ndarray) -> pd.DataFrame:
        out = score_leads(leads, model, params, scored_at=scored_at, explain=explain,
                          id_hashes=id_hashes)
        mql[0] += int(out["is_mql"].sum())
        return out

    from threadpoolctl import threadpool_limits

    # OpenMP threads in HistGradientBoosting's predict spin-wait: on a busy machine two threads
    # scored 8,000 Olist leads in 2.6 s, one thread in 0.4 s. null = no limit.
    n_threads = (params.get("scoring") or {}).get("n_threads")
    limit = threadpool_limits(limits=int(n_threads)) if n_threads else contextlib.nullcontext()
    with limit:
        acct = score_file(Path(input_path), Path(output_path),
                          quarantine_path(output_path), params, score_chunk,
                          reference=reference, chunk_size=chunk_size)
    print(acct.summary(), file=sys.stderr)
    summary = {"rows": acct.used, "mql": mql[0], "output": str(output_path),
               "model_version": model.version, "threshold": model.threshold,
               "threshold_version": model.threshold_version,
               "accounting": acct.as_dict()}
    log.info("wrote %s: %d leads, %d MQLs (%.1f%%)", output_path, acct.used, mql[0],
             100 * mql[0] / max(acct.used, 1))
    return summary
