"""Where runs and models live (the MLflow store), and which types a saved model may hold.

mlflow is imported inside functions: it costs seconds and `leadq --help` must stay instant.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from importlib.metadata import version as pkg_version
from pathlib import Path

from leadq.pipelines.params.loader import resolve_path
from leadq.settings import setting

CHAMPION, CHALLENGER = "champion", "challenger"
# Every type outside skops' defaults that a fitted leadq model may contain, by exact name. A
# model holding anything else is refused when it is saved, and a registered model whose MLmodel
# lists anything else is refused before it is loaded: skops would otherwise import and run it.
TRUSTED_TYPES = frozenset({
    # leadq's own steps
    "leadq.features.transform.LeadFeatures",
    "leadq.models.factories.signed_log1p",
    "leadq.models.uplift.CallUplift",  # the registered uplift model (two fitted pipelines)
    "leadq.models.segments.SegmentedModel",  # per-segment models with the pooled fallback
    "leadq.models.pairs.PairTargetEncoder",
    "leadq.models.blend.BlendEncoder",  # a blend of candidates: their encoders, their models
    "leadq.models.blend.BlendClassifier",
    # scikit-learn / numpy internals that fitted pipelines hold
    "functools.partial",  # FunctionTransformer's partial(check_array, ...)
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.utils.validation.check_array",
})
# Models registered before leadq's modules moved under the leadq. namespace name these.
_FLAT_PREFIXES = ("features.", "models.", "pipelines.")


@contextlib.contextmanager
def quiet_registry_prints() -> Iterator[None]:
    """MLflow prints "Successfully registered model", "Registered model … already exists" and
    "Created version N" on stderr itself, outside its logger (and re-enables its own stream
    while saving a model, so switching that off does not hold); leadq already says which
    version it registered and what the gate decided. Those lines show only with -v; anything
    else written to stderr meanwhile is passed on."""
    import io
    import logging
    import re
    import sys

    from leadq.pipelines.io.progress import log

    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    caught = io.StringIO()
    try:
        with contextlib.redirect_stderr(caught):
            yield
    finally:
        known = re.compile(r"^(Successfully registered model |Registered model .* already "
                           r"exists|Created version '\d+' of model )")
        rest = [line for line in caught.getvalue().splitlines(keepends=True)
                if not known.match(line)]
        if rest:
            sys.stderr.write("".join(rest))


def tracking_uri(params: dict) -> str:
    """MLFLOW_TRACKING_URI wins; otherwise params.yaml, with a relative sqlite path anchored
    at the params file so every command finds the same store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["mlflow"]["tracking_uri"]
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(resolve_path(params, uri[len(prefix):]).resolve())
    return uri


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def configure(params: dict) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    import mlflow

    uri = tracking_uri(params)
    user_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(user_env["MLFLOW_REGISTRY_URI"] or uri)
    # mlflow exports the URIs to os.environ; undo that so the environment keeps meaning "what
    # the user set" and a second params file in the same process is not overridden by the first.
    for key, value in user_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    name = setting(params["mlflow"], "experiment")
    # Under the registry lock: two first runs on a new sqlite store both ran its schema
    # migration (one failed in alembic_version) and both created the experiment.
    with registry_lock(params):
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            mlflow.set_experiment(experiment_id=experiment.experiment_id)
            return experiment.experiment_id
        artifacts = None
        if is_local_store(uri) and params["mlflow"].get("artifact_location"):
            artifacts = resolve_path(params, params["mlflow"]["artifact_location"]).resolve(
            ).as_uri()
        exp_id = mlflow.create_experiment(name, artifact_location=artifacts)
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id


# Registry updates in this process, per lock file: a thread lock (threads of one process share
# the file lock) and how deep the owning thread holds it (apply_gate calls record_move).
_REGISTRY_LOCKS: dict[str, threading.RLock] = {}
_REGISTRY_DEPTH: dict[str, int] = {}
_REGISTRY_GUARD = threading.Lock()


def registry_lock_path(params: dict) -> Path | None:
    """The file that serialises registry updates on a local store (beside mlflow.db, or in
    the file store's folder); None for a server or database store, where record_move's retry
    keeps the history whole instead."""
    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return db.with_name(f".{db.name}.leadq-registry.lock")
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")) / ".leadq-registry.lock"
    return None


@contextlib.contextmanager
def registry_lock(params: dict) -> Iterator[None]:
    """Hold the registry of a local store for one decision (register → compare with the
    champion → move aliases → record the moves), so two trainings on one store take turns:
    the second compares with the first's outcome, and no alias move goes unrecorded. An
    operating-system file lock: a killed process (kill -9 included) releases it."""
    path = registry_lock_path(params)
    if path is None:
        yield
        return
    key = str(path)
    with _REGISTRY_GUARD:
        rlock = _REGISTRY_LOCKS.setdefault(key, threading.RLock())
    with rlock:
        depth = _REGISTRY_DEPTH.get(key, 0)
        handle = None
        if depth == 0:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path, "a+b")  # noqa: SIM115 - held across the yield
            except OSError:
                handle = None  # a read-only store: nothing of ours is written to it anyway
            if handle is not None:
                _flock(handle, path)
        _REGISTRY_DEPTH[key] = depth + 1
        try:
            yield
        finally:
            _REGISTRY_DEPTH[key] = depth
            if handle is not None:
                handle.close()  # closing the file releases the lock


def _flock(handle, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the retry in record_move still applies
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        from leadq.pipelines.io.progress import log

        log.info("waiting for another leadq process to finish updating the registry (%s)",
                 path)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def trusted_types(model) -> list[str]:
    """The non-default types skops must trust to load this model, checked against TRUSTED_TYPES."""
    from skops.io import dumps, get_untrusted_types

    found = get_untrusted_types(data=dumps(model))
    refused = sorted(set(found) - TRUSTED_TYPES)
    if refused:
        raise TypeError(f"model contains types outside leadq's trusted list: {refused} "
                        "(pipelines/tracking/store.py TRUSTED_TYPES)")
    return sorted(found)


def check_model_types(model_dir: str | Path, uri: str) -> None:
    """Refuse a downloaded model whose MLmodel asks skops to trust a type leadq does not list.

    The list inside MLmodel is written by whoever saved the model; loading trusts it, so it is
    checked against leadq's own list first."""
    import yaml

    from leadq.errors import LeadqError

    mlmodel = Path(model_dir) / "MLmodel"
    if not mlmodel.is_file():
        raise LeadqError(f"cannot load model {uri}: no MLmodel file in what the store returned")
    meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    listed = set(((meta.get("flavors") or {}).get("sklearn") or {}).get("skops_trusted_types")
                 or [])
    refused = sorted(listed - TRUSTED_TYPES)
    if any(t.startswith(_FLAT_PREFIXES) for t in refused):
        raise LeadqError(
            f"cannot load model {uri}: it was registered by a leadq older than 0.2, whose modules "
            f"were not under the leadq. namespace ({', '.join(refused)}); retrain it with "
            "`leadq train` (README: Upgrading)")
    if refused:
        raise LeadqError(f"cannot load model {uri}: it asks to trust types leadq does not list: "
                         f"{', '.join(refused)} (pipelines/tracking/store.py TRUSTED_TYPES)")


def load_sklearn_model(uri: str):
    """The fitted sklearn pipeline behind a model URI, loaded only after check_model_types."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="leadq-model-") as local:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=local)
        check_model_types(path, uri)
        return mlflow.sklearn.load_model(path)


def pip_requirements() -> list[str]:
    names = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")
    return [f"{n}=={pkg_version(n)}" for n in names]


def meets_criteria(metrics: dict[str, float], criteria: dict) -> tuple[bool, str]:
    """min_<metric> / max_<metric> criteria from params.yaml registry.criteria."""
    failures = []
    for key, bound in criteria.items():
        kind, metric = key.split("_", 1)
        value = metrics.get(metric)
        if value is None:
            failures.append(f"{metric} missing")
        elif kind == "min" and value < bound:
            failures.append(f"{metric} {value:.4f} < {bound}")
        elif kind == "max" and value > bound:
            failures.append(f"{metric} {value:.4f} > {bound}")
    if failures:
        return False, "criteria not met: " + "; ".join(failures)
    return True, "meets all criteria" if criteria else "no criteria configured"
