"""Load a registered model version for scoring, with the bar, tiers and correction in force.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadq.errors import LeadqError
from leadq.pipelines.io.progress import log


@dataclass
class ScoringModel:
    """A loaded model and the contract that came with its registry version."""

    pyfunc: Any
    uri: str
    version: str
    threshold: float
    tags: dict
    # The threshold version in force (leadq.pipelines.tracking.thresholds): "0" = the training bar.
    threshold_version: str = "0"
    cutoffs: tuple[float, float, float] | None = None
    correction: Any = None  # leadq.models.prior_shift.Correction, or None for raw scores
    # The uplift model registered for this version (leadq lift --fit-uplift), or None.
    uplift: Any = None
    uplift_version: str | None = None
    # Its bar on uplift (agreement.route_by: call_value): leads at or above it are MQLs. Set
    # by `leadq lift --fit-uplift` to keep the probability bar's share of MQLs; None for an
    # uplift model registered before the bar existed.
    uplift_cutoff: float | None = None
    # A bar per segment (segments.per_segment_bar): leadq.models.thresholds.SegmentBars, applied
    # by models.routing.route in place of `threshold` and `cutoffs`; None: one bar.
    segment_bars: Any = None

    def encode(self, rows: pd.DataFrame) -> Any:
        """The rows through the model's steps before its estimator, for `predict_proba` and
        the reasons to share (leadq.models.explain.encode_rows), or None when the model
        cannot be scored from them (another flavour, another kind of sklearn model)."""
        from leadq.models.explain import encode_rows

        sk = self.sklearn()
        return None if sk is None else encode_rows(sk, rows)

    def predict_proba(self, rows: pd.DataFrame, *, transformed: Any = None) -> np.ndarray:
        """P(convert) per row from the registered model.

        A scikit-learn model is called directly: the pyfunc wrapper would only re-check the
        rows against the signature (the row contract and typing have done that), which costs
        a third of the time of scoring one lead. Other flavours go through the pyfunc.
        `transformed` is `encode(rows)`: the same probabilities without transforming again."""
        sk = self.sklearn()
        if sk is not None:
            if transformed is not None:
                from leadq.models.explain import predict_encoded

                return predict_encoded(sk, transformed)
            return sk.predict_proba(rows)[:, 1]
        out = self.pyfunc.predict(rows)
        out = out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)
        return out[:, 1] if out.ndim == 2 else out

    def sklearn(self):
        """The fitted scikit-learn pipeline inside the pyfunc, or None for another flavour."""
        if not hasattr(self, "_sk"):
            flavors = getattr(getattr(self.pyfunc, "metadata", None), "flavors", None) or {}
            try:
                self._sk = self.pyfunc.get_raw_model() if "sklearn" in flavors else None
            except (AttributeError, NotImplementedError):
                self._sk = None
        return self._sk


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


def _why_no_champion(uri: str) -> str:
    """For a missing champion alias: the newest version's promotion decision, so the user sees
    that a model exists but was refused, and how to promote it knowingly."""
    import mlflow

    if not uri.startswith("models:/") or "@" not in uri:
        return ""
    name = uri[len("models:/"):].split("@", 1)[0]
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    except Exception:  # noqa: BLE001 - only a hint; the load error is what matters
        return ""
    if not versions:
        return ""
    newest = max(versions, key=lambda v: int(v.version))
    reason = (newest.tags or {}).get("promotion_decision")
    if not reason:
        return ""
    return (f"; version {newest.version} is registered but was not promoted: {reason}. "
            f"Promote it knowingly with `leadq promote {newest.version} --force`, or score it "
            f"with --model-uri models:/{name}/{newest.version}")


_LOADED: dict[tuple, Any] = {}  # the last registered version loaded in this process


def load_scoring_model(params: dict, model_uri: str | None = None) -> ScoringModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    from leadq.pipelines.tracking.store import check_model_types, configure

    configure(params)
    uri = model_uri or default_model_uri(params)
    try:
        # One registry look-up: the version (with its tags: bar, tiers, correction); the
        # artifacts are then fetched by the version's own source, not by resolving again.
        mv = registry_version(uri)
        key = ((mlflow.get_tracking_uri(), mv.name, str(mv.version), str(mv.source))
               if mv is not None else None)
        model = _LOADED.get(key) if key else None
        if model is None:
            with tempfile.TemporaryDirectory(prefix="leadq-model-") as local:
                # MLflow's own requirements check scans every installed distribution: 1.2 s
                # of each scoring run. The model pins a handful of packages; check those.
                source = (mv.source if mv is not None and str(mv.source or "").startswith(
                    ("models:/m-", "runs:/")) else uri)
                path = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=local)
                check_model_types(path, uri)
                model = mlflow.pyfunc.load_model(path, suppress_warnings=True)
                warn_environment_mismatch(Path(local), model.metadata, uri)
            if key:
                # A registered version's artifacts never change: a process that loads it again
                # (leadq serve following the champion alias back and forth) reuses it.
                _LOADED.clear()
                _LOADED[key] = model
    except MlflowException as exc:
        raise LeadqError(
            f"cannot load model {uri}: {exc.message.splitlines()[0]}"
            f"{_why_no_champion(uri)} (train one with `leadq train`, or pass --model-uri)"
        ) from exc
    meta = model.metadata.metadata or {}
    tags = dict(mv.tags) if mv is not None else {}
    threshold = float(tags.get("mql_threshold", meta.get("mql_threshold", 0.5)))
    version = str(mv.version) if mv is not None else str(model.metadata.model_id or uri)
    check_model_inputs(model, params, uri)
    scoring = ScoringModel(pyfunc=model, uri=uri, version=version, threshold=threshold, tags=tags)
    if mv is not None:
        _apply_threshold_version(scoring, mlflow.MlflowClient(), mv.name, tags)
        from leadq.pipelines.tracking.uplift import load_uplift

        scoring.uplift, scoring.uplift_version, scoring.uplift_cutoff = load_uplift(
            params, scoring.version)
    return scoring


def check_model_inputs(model: Any, params: dict, uri: str) -> None:
    """Stop (exit 2) when the model reads columns these params do not give it: a model trained
    with the activity log needs data.activities to score, one trained on other columns needs
    the params it was trained with."""
    from leadq.errors import ConfigError
    from leadq.features.activities import is_activity_feature
    from leadq.features.columns import raw_input_columns

    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return
    have = set(raw_input_columns(params))
    missing = [c for c in schema.input_names() if c not in have]
    if not missing:
        return
    if any(is_activity_feature(c) for c in missing):
        hint = ("it was trained with activity features (data.activities): configure the same "
                "activity log (data.activities.path, types, features.activity_windows)")
    else:
        hint = "score with the params file it was trained with"
    raise ConfigError(f"model {uri} reads input column(s) {', '.join(missing[:8])}"
                      f"{' …' if len(missing) > 8 else ''} that these params do not provide; "
                      f"{hint}")


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
    from leadq.models.prior_shift import Correction
    from leadq.models.thresholds import SegmentBars
    from leadq.pipelines.tracking.thresholds import current_entry

    entry = current_entry(client, name, scoring.version, tags)
    scoring.threshold = float(entry["threshold"])
    scoring.threshold_version = str(entry["threshold_version"])
    scoring.cutoffs = tuple(entry["cutoffs"]) if entry.get("cutoffs") else None
    scoring.correction = Correction.from_dict(entry.get("correction"))
    scoring.segment_bars = SegmentBars.from_dict(entry.get("segment_bars"))
