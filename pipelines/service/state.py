"""The model a service process scores with, and how it follows the registry.

A `Served` bundle (model, contract reference, registry facts) is immutable once built. The
holder swaps the whole bundle in one assignment, so a request that took the old bundle
finishes with it and names the version that scored it, while the next request gets the new
one. A version that fails to load leaves the old bundle in place and is reported.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leadq.pipelines.io.progress import log


class Unavailable(RuntimeError):
    """Something a version needs besides itself (the activity log) is missing: the version is
    not at fault, so it is tried again, not marked as failed."""


@dataclass(frozen=True)
class Served:
    model: Any                  # leadq.pipelines.scoring.model.ScoringModel
    reference: dict | None      # the training run's contracts/reference.json
    name: str
    alias: str | None
    loaded_at: str
    info: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return str(self.model.version), str(self.model.threshold_version)


def _registry_facts(params: dict, version: str) -> dict:
    import mlflow

    from leadq.pipelines.tracking.registry import _version_metrics

    name = params["registry"]["model_name"]
    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, version)
    return {"trained_at": pd.Timestamp(int(mv.creation_timestamp), unit="ms", tz="UTC")
            .isoformat(), "run_id": mv.run_id, "test_metrics": _version_metrics(mv)}


def load_served(params: dict, model_uri: str | None = None) -> Served:
    """Load the champion (or `model_uri`) with its bar, correction and contract reference."""
    from leadq.pipelines.scoring.model import default_model_uri, load_scoring_model
    from leadq.pipelines.tracking.contracts import load_reference

    uri = model_uri or default_model_uri(params)
    model = load_scoring_model(params, uri)
    run_id = model.tags.get("train_run_id") or getattr(model.pyfunc.metadata, "run_id", None)
    alias = uri.split("@", 1)[1] if uri.startswith("models:/") and "@" in uri else None
    info = {}
    if uri.startswith("models:/"):
        try:
            info = _registry_facts(params, str(model.version))
        except Exception as exc:  # noqa: BLE001 - facts for /v1/model only; scoring works
            log.warning("registry facts for version %s unavailable: %s", model.version, exc)
    return Served(model=model, reference=load_reference(run_id),
                  name=params["registry"]["model_name"], alias=alias,
                  loaded_at=pd.Timestamp.now(tz="UTC").isoformat(), info=info)


def registry_key(params: dict, model_uri: str | None) -> tuple[str, str] | None:
    """(version, threshold version) the registry points at now: two cheap registry calls,
    so the poller can tell whether anything moved without downloading a model."""
    from leadq.pipelines.scoring.model import default_model_uri, registry_version
    from leadq.pipelines.tracking.thresholds import TAG_VERSION

    mv = registry_version(model_uri or default_model_uri(params))
    if mv is None:
        return None
    return str(mv.version), str((mv.tags or {}).get(TAG_VERSION, "0"))


def freeze_heap() -> None:
    """Take what is loaded now (libraries, the model, its warm-up caches) out of the cyclic
    garbage collector's sight.

    A loaded model brings ~400k tracked objects; a full collection of them took ~180 ms and came
    about every 500 requests, which alone set the service's p99. Frozen objects are still freed
    by reference counting; the next load unfreezes and collects first (one such pause per
    reload, on the reload thread), so an old bundle's reference cycles do not stay behind."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """The current bundle, and a poller that reloads it when the registry moves."""

    def __init__(self, params: dict, model_uri: str | None = None,
                 warm_up=None) -> None:
        self.params = params
        self.model_uri = model_uri
        self.current: Served | None = None
        self.last_error: str | None = None
        self.last_check: str | None = None
        self._warm_up = warm_up
        self._failed_key: tuple[str, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> Served:
        served = load_served(self.params, self.model_uri)
        if self._warm_up is not None:
            self._warm_up(served)  # raises when it cannot score: then it never takes traffic
        self.current = served
        self.last_error = None
        freeze_heap()
        log.info("serving %s version %s, threshold version %s", served.name, served.key[0],
                 served.key[1])
        return served

    def check(self) -> bool:
        """Reload if the alias or the threshold version moved; True when a new bundle is in."""
        self.last_check = pd.Timestamp.now(tz="UTC").isoformat()
        try:
            key = registry_key(self.params, self.model_uri)
        except Exception as exc:  # noqa: BLE001 - registry unreachable: keep serving
            self._failed(None, exc, "registry check failed")
            return False
        if self.current is not None and (key is None or key == self.current.key):
            # The registry answers and points at what is served: an earlier failure (store
            # unreachable, alias on a broken version since moved back) no longer holds.
            self.last_error, self._failed_key = None, None
            return False  # nothing moved, or a URI outside the registry: nothing to follow
        if key is not None and key == self._failed_key:
            return False  # this version failed to load already; wait for the registry to move
        try:
            self.load()
        except Unavailable as exc:
            self._failed(None, exc, "reload waits")  # the next check tries this version again
            return False
        except Exception as exc:  # noqa: BLE001 - keep serving the old version
            self._failed(key, exc, "reload failed")
            return False
        self._failed_key = None
        return True

    def _failed(self, key, exc: Exception, what: str) -> None:
        self._failed_key = key
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("%s, still serving version %s: %s", what,
                    None if self.current is None else self.current.key[0], self.last_error)

    def start(self, every_seconds: float) -> None:
        def run() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.check()
                except Exception as exc:  # noqa: BLE001 - the poller must outlive any error
                    log.error("reload poller: %s", exc)

        self._thread = threading.Thread(target=run, name="leadq-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class ActivityLog:
    """The activity events a model trained with data.activities needs, held in memory.

    The file is checked every `serve.activity_check_seconds` on this object's own thread; a
    new version is read there and swapped in with one assignment, so no request ever waits
    for the file (a request takes `events` once and scores its whole batch with it). A file
    that is gone makes `events` None and `error` say why: the service is then not ready and
    scoring answers 503, rather than scoring as if the leads had no activity. A new version
    that cannot be read (caught half-written) leaves the old one in place, with `error` set.
    `probe` (the service's warm-up) must score with a new version before it is swapped in."""

    def __init__(self, params: dict, probe=None) -> None:
        self.params = params
        self.needed = bool((params["data"].get("activities") or {}).get("path"))
        self.events: pd.DataFrame | None = None
        self.error: str | None = None
        self._probe = probe
        self._key: tuple | None = None
        self._lock = threading.Lock()  # one refresh at a time (poller, first load)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ok(self) -> bool:
        return not self.needed or self.events is not None

    def refresh(self) -> bool:
        """Check the file; load and swap in a new version. False when it is not usable."""
        if not self.needed:
            return True
        from leadq.pipelines.io.crm import scoring_events, table_location
        from leadq.pipelines.io.database import table_label

        spec = self.params["data"]["activities"]
        path = table_location(self.params, spec["path"])
        with self._lock:
            if isinstance(path, str):  # a database table: loaded once (restart to reload)
                path, key = table_label(path, spec, "activities"), ("database",)
            else:
                try:
                    stat = path.stat()
                except OSError as exc:
                    self._fail(f"activity log {path} unavailable: {exc.strerror or exc}")
                    return False
                key = (stat.st_mtime_ns, stat.st_size)
            if key == self._key and self.events is not None:
                return True
            try:
                events = scoring_events(self.params)
                if self._probe is not None:
                    self._probe(events)
            except Exception as exc:  # noqa: BLE001 - reported in /v1/ready and the log
                message = f"activity log {path} not loaded: {type(exc).__name__}: {exc}"[:500]
                if self.events is None:
                    self._fail(message)
                    return False
                # A version caught half-written: the one loaded before still holds; the next
                # check tries again (the key is not taken).
                if not (self.error or "").startswith(message):
                    log.warning("%s; still scoring with the version loaded before", message)
                self.error = f"{message}; still scoring with the version loaded before"
                return True
            self.events, self._key = events, key
            if self.error is not None:
                log.info("activity log %s loaded again (%d events)", path, len(events))
            self.error = None
            return True

    def _fail(self, message: str) -> None:
        if message != self.error:  # once per cause, not once per check
            log.error("%s; scoring answers 503 until it is back", message)
        self.events, self._key, self.error = None, None, message

    def start(self, every_seconds: float) -> None:
        if not self.needed:
            return

        def run() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.refresh()
                except Exception as exc:  # noqa: BLE001 - the poller must outlive any error
                    log.error("activity log poller: %s", exc)

        self._thread = threading.Thread(target=run, name="leadq-activities", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
