"""`leadq serve`'s HTTP API (FastAPI): score a lead the moment it arrives.

A request's leads go through the same row contract and the same scoring core as a row of a
`leadq score` file (leadq.pipelines.scoring.core.check_and_score), so the score, MQL flag,
tier and reasons are those the batch job would give. JSON values are turned into the text a
CSV export would hold for them (numbers in their shortest exact form, true/false, null or ""
as missing) before the contract sees them, which is what makes the two paths agree.

Request bodies hold personal data: they are never logged, and the scoring log keeps only what
the batch output keeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import math
import os
import queue
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from leadq.pipelines.io.progress import log

API_PREFIX = "/v1"
DEFAULTS = {"max_batch": 1000, "max_body_bytes": 5_000_000, "reload_seconds": 10.0,
            "explain": True, "scoring_log": None, "log_flush_rows": 1000,
            "log_flush_seconds": 5.0, "max_queue": 10_000, "request_timeout_seconds": 30.0}
# Metric labels: known routes by name, anything else (scanners, typos) as one "other" series.
ROUTES = frozenset({f"{API_PREFIX}/score", f"{API_PREFIX}/health", f"{API_PREFIX}/model",
                    "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
TOKEN_ENV = "LEADQ_API_TOKEN"
INLINE_JSON_BYTES = 64 * 1024  # bodies parsed on the event loop; larger ones in a thread


class RequestError(Exception):
    """A 4xx answer: status code, a message, and per-lead details when there are any."""

    def __init__(self, status: int, message: str, rejected: list | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.rejected = status, message, rejected


def serve_settings(params: dict) -> dict:
    return {**DEFAULTS, **(params.get("serve") or {})}


def known_fields(params: dict) -> list[str]:
    """Lead fields the service reads: the model's inputs, the id, the date, personal fields,
    and the export-day counters it knows to leave out (features.snapshot_columns)."""
    from leadq.pipelines.io.crm import leads_required_columns

    spec = params["data"]["leads"]
    extra = [*(spec.get("personal") or []), spec.get("label"), spec.get("converted_at"),
             *(params["features"].get("snapshot_columns") or [])]
    return list(dict.fromkeys([*leads_required_columns(params, for_training=False),
                               *[c for c in extra if c]]))


def _cell(value: Any, field: str, index: int) -> str | None:
    """A JSON value as the text a CSV cell would hold (None = missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None  # as a CSV "NaN" cell reads
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return value
    kind = "an object" if isinstance(value, dict) else "a list"
    raise RequestError(422, f"lead {index}: field {field!r}: expected a string, number, boolean "
                            f"or null, got {kind}")


def leads_frame(leads: list[dict], fields: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Raw rows as a CSV reader would have produced them, and the unknown fields ignored."""
    from pandas._libs.parsers import STR_NA_VALUES  # pandas' own missing-value spellings

    missing_text = set(STR_NA_VALUES) | {""}
    unknown: dict[str, None] = {}
    columns: dict[str, list] = {f: [] for f in fields}
    for i, lead in enumerate(leads):
        if not isinstance(lead, dict):
            raise RequestError(422, f"lead {i}: expected a JSON object of lead fields, got "
                                    f"{type(lead).__name__}")
        for key in lead:
            if key not in columns:
                unknown.setdefault(str(key), None)
        for f in fields:
            text = _cell(lead.get(f), f, i)
            columns[f].append(None if text is None or text in missing_text else text)
    frame = pd.DataFrame({f: pd.array(v, dtype="str") for f, v in columns.items()})
    return frame, list(unknown)


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not math.isfinite(float(value)) else float(value)
    return str(value)


def _settle(future: concurrent.futures.Future, result=None, error=None) -> None:
    """Resolve a request's future; one its caller gave up on (timeout, shutdown) is skipped."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


class Pending:
    """One request waiting in the micro-batch queue, and the answer it will get."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class Scorer:
    """Scores requests in micro-batches: whatever arrives while a batch is being scored is
    scored together next, as one frame through the batch scorer's core. A lead's answer does
    not depend on which other leads shared its batch (every rule and feature is per row, ids
    are checked for duplicates within their own request, warnings are told per request), so
    batching changes only the cost: the fixed cost of a call is paid once per batch instead of
    once per lead. If scoring the combined frame fails, each request is scored alone, so one
    request's data can fail only that request."""

    def __init__(self, params: dict, holder, scoring_log=None) -> None:
        self.params = params
        self.holder = holder
        self.log = scoring_log
        self.settings = serve_settings(params)
        self.fields = known_fields(params)
        self.id_col = params["data"]["leads"]["id"]
        self.max_leads = int(self.settings["max_batch"])
        self._queue: queue.Queue = queue.Queue(maxsize=int(self.settings["max_queue"]))
        self._carry: Pending | None = None
        self._worker = threading.Thread(target=self._run, name="leadq-score", daemon=True)
        self._worker.start()

    def submit(self, body: Any) -> concurrent.futures.Future:
        pending = Pending(body)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            _settle(pending.future, error=RequestError(
                503, f"server busy: {self._queue.maxsize} requests waiting (serve.max_queue)"))
        return pending.future

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the worker."""
        self._queue.put(None)
        self._worker.join(timeout=timeout)

    def _take(self) -> Pending | None:
        while True:
            item = self._carry or self._queue.get()
            self._carry = None
            if item is None or item.future.set_running_or_notify_cancel():
                return item  # None: stop; else a request whose caller still waits

    def _run(self) -> None:
        while (first := self._take()) is not None:
            batch, size, stop = [first], self._size(first), False
            while size < self.max_leads:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if not nxt.future.set_running_or_notify_cancel():
                    continue
                if size + self._size(nxt) > self.max_leads:
                    self._carry = nxt  # first in the next batch
                    break
                batch.append(nxt)
                size += self._size(nxt)
            try:
                self._score_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiting request learns of it
                for pending in batch:
                    _settle(pending.future, error=exc)
            if stop:
                return

    @staticmethod
    def _size(pending: Pending) -> int:
        body = pending.body
        return len(body) if isinstance(body, list) else 1

    def _leads(self, pending: Pending) -> tuple[list, bool]:
        body = pending.body
        single = isinstance(body, dict)
        leads = [body] if single else body
        if not isinstance(leads, list) or not leads:
            raise RequestError(422, "expected one lead (a JSON object) or a non-empty list of "
                                    "leads")
        if len(leads) > self.max_leads:
            raise RequestError(413, f"{len(leads)} leads in one request; serve.max_batch is "
                                    f"{self.max_leads}")
        return leads, single

    def _score_batch(self, batch: list[Pending]) -> None:
        served = self.holder.current  # one bundle for the whole batch: one version per answer
        parts = []
        for pending in batch:
            try:
                if served is None:
                    raise RequestError(503, "no model loaded yet (see /v1/health)")
                leads, single = self._leads(pending)
                raw, unknown = leads_frame(leads, self.fields)
            except RequestError as exc:
                _settle(pending.future, error=exc)
                continue
            ids = raw[self.id_col].astype("string").str.strip()
            dup = (ids.duplicated() & ids.notna() & (ids != "")).to_numpy(dtype=bool)
            parts.append((pending, single, raw, unknown, dup))
        if not parts:
            return
        try:
            self._score_parts(parts, served)
        except ValueError as exc:
            if len(parts) == 1:  # this request's own data (e.g. mixed time zones): a 4xx
                _settle(parts[0][0].future, error=RequestError(
                    422, f"cannot read the lead(s): {exc}".splitlines()[0]))
                return
            for part in parts:  # the combined frame failed: each request on its own
                self._score_batch([part[0]])

    def _score_parts(self, parts: list, served) -> None:
        from leadq.pipelines.scoring.core import check_and_score

        raw = pd.concat([p[2] for p in parts], ignore_index=True)
        duplicates = np.concatenate([p[4] for p in parts])
        scored_at = pd.Timestamp.now(tz="UTC").floor("s")
        check, out = check_and_score(raw, served.model, self.params, reference=served.reference,
                                     scored_at=scored_at, duplicates=duplicates,
                                     explain=bool(self.settings["explain"]))
        bad = check.bad
        # Output row of each good input row (check_and_score scores the good rows, in order).
        out_pos = np.cumsum(~bad) - 1
        start = 0
        for pending, single, part, unknown, _ in parts:
            stop = start + len(part)
            if bad[start:stop].any():
                rejected = [{"index": int(i - start),
                             "id": _jsonable(raw.at[i, self.id_col]),
                             "reason": str(check.reasons.iloc[i])}
                            for i in range(start, stop) if bad[i]]
                what = rejected[0]["reason"] if single else f"{len(rejected)} lead(s) rejected"
                _settle(pending.future, error=RequestError(422, what, rejected))
            else:
                rows_out = out.iloc[out_pos[start:stop]]
                if self.log is not None:
                    self.log.append(rows_out)
                answer = self._answer(rows_out, check, unknown, start, stop, single)
                _settle(pending.future, (answer, len(rows_out), int(rows_out["is_mql"].sum())))
            start = stop

    @staticmethod
    def _answer(rows_out: pd.DataFrame, check, unknown: list[str], start: int, stop: int,
                single: bool) -> dict:
        rows = [{k: _jsonable(v) for k, v in rec.items()} for rec in rows_out.to_dict("records")]
        warnings = [f"{message}: {int(mask[start:stop].sum())}"
                    for message, mask in sorted(check.warning_masks.items())
                    if mask[start:stop].any()]
        warnings += [f"unknown field {name!r} ignored" for name in unknown]
        if single:
            return {**rows[0], "warnings": warnings}
        return {"leads": rows, "warnings": warnings}


def create_app(params: dict, *, model_uri: str | None = None, holder=None) -> FastAPI:
    """The ASGI app. `holder` (tests) replaces the registry-following model holder."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from leadq.pipelines.params.loader import resolve_path
    from leadq.pipelines.service.scoring_log import ScoringLog
    from leadq.pipelines.service.state import ModelHolder

    settings = serve_settings(params)
    token = os.environ.get(TOKEN_ENV) or None
    metrics = CollectorRegistry()
    requests_total = Counter("leadq_requests", "HTTP requests by path and status",
                             ["path", "status"], registry=metrics)
    latency = Histogram("leadq_request_seconds", "request latency", ["path"], registry=metrics,
                        buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))
    leads_total = Counter("leadq_leads_scored", "leads scored", registry=metrics)
    mql_total = Counter("leadq_mql", "leads scored as MQL", registry=metrics)
    mql_rate = Gauge("leadq_mql_rate", "share of scored leads that were MQLs",
                     registry=metrics)
    version_gauge = Gauge("leadq_model_version", "registry version being served",
                          registry=metrics)
    tally, tally_lock = [0, 0], threading.Lock()  # leads, MQLs: the rate's two counts
    timeout = float(settings["request_timeout_seconds"])

    scoring_log = None
    if settings.get("scoring_log"):
        scoring_log = ScoringLog(resolve_path(params, settings["scoring_log"]),
                                 flush_rows=settings["log_flush_rows"],
                                 flush_seconds=settings["log_flush_seconds"])

    def warm_up(served) -> None:
        """Score the model's own input example once, so numba kernels and caches are built
        before the first real lead waits for them."""
        from leadq.pipelines.scoring.core import score_leads

        example = getattr(served.model.pyfunc, "input_example", None)
        if example is None or not len(example):
            return
        rows = pd.DataFrame(example).copy()
        rows[params["data"]["leads"]["id"]] = [f"warm-up-{i}" for i in range(len(rows))]
        # A version that cannot score its own example must not take traffic: the error
        # reaches the holder, which keeps the bundle it has.
        score_leads(rows, served.model, params, scored_at=pd.Timestamp.now(tz="UTC"),
                    explain=bool(settings["explain"]))

    holder = holder or ModelHolder(params, model_uri, warm_up=warm_up)
    scorer = Scorer(params, holder, scoring_log)

    def first_load() -> None:
        every = float(settings["reload_seconds"])
        while holder.current is None:
            try:
                holder.load()
            except Exception as exc:  # noqa: BLE001 - no champion yet: keep trying
                holder.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("no model to serve yet: %s (retrying every %.0fs)",
                            holder.last_error, every)
                if holder._stop.wait(every):
                    return
        holder.start(every)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        loader = None
        if holder.current is None:
            loader = threading.Thread(target=first_load, name="leadq-first-load", daemon=True)
            loader.start()
        yield
        holder.stop()
        if loader is not None:
            loader.join(timeout=5)
        scorer.close()  # what was queued is answered and logged before the log's last write
        if scoring_log is not None:
            scoring_log.close()

    app = FastAPI(title="leadq", version="1",
                  description="Real-time lead scoring: the batch scorer's answers, one lead at "
                              "a time. Same model, MQL bar, tiers and reasons as `leadq score`.",
                  lifespan=lifespan)
    app.state.holder = holder
    app.state.scoring_log = scoring_log

    class Guard:
        """The bearer token and the request metrics, as plain ASGI middleware: Starlette's
        BaseHTTPMiddleware (`@app.middleware`) runs each request through an extra task and
        memory streams, a fixed cost of every call that this does not have."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            path = scope["path"] if scope["path"] in ROUTES else "other"
            if token is not None:
                # As Starlette's request.headers.get reads it: the first such header, latin-1.
                given = next((v.decode("latin-1") for k, v in scope["headers"]
                              if k.lower() == b"authorization"), "")
                expected = f"Bearer {token}"
                if not hmac.compare_digest(given.encode(), expected.encode()):
                    response = JSONResponse({"detail": "missing or wrong bearer token"}, 401,
                                            headers={"WWW-Authenticate": "Bearer"})
                    requests_total.labels(path, "401").inc()
                    await response(scope, receive, send)
                    return

            async def send_status(message) -> None:
                if message["type"] == "http.response.start":
                    # Counted when the answer starts, as the response object was before.
                    requests_total.labels(path, str(message["status"])).inc()
                    latency.labels(path).observe(time.perf_counter() - start)
                await send(message)

            await self.app(scope, receive, send_status)

    app.add_middleware(Guard)

    async def read_body(request: Request) -> bytes:
        limit = int(settings["max_body_bytes"])
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes; serve.max_body_bytes "
                                    f"is {limit}")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise RequestError(413, f"request body over serve.max_body_bytes ({limit})")
        return bytes(body)

    @app.post(f"{API_PREFIX}/score", summary="Score one lead (an object) or a list of leads",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"oneOf": [
                      {"type": "object", "additionalProperties": True},
                      {"type": "array", "items": {"type": "object"}}]}}}}})
    async def score(request: Request):
        try:
            raw = await read_body(request)
            try:
                # A large body is parsed off the event loop so it cannot hold up /v1/health;
                # a small one (a lead is ~1 KB) parses in microseconds, less than the hand-off.
                body = json.loads(raw) if len(raw) < INLINE_JSON_BYTES else \
                    await asyncio.to_thread(json.loads, raw)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
                raise RequestError(400, f"malformed JSON: {exc}"[:300]) from exc
            future = scorer.submit(body)
            try:
                answer, n, mql = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except TimeoutError as exc:
                raise RequestError(503, f"not answered within {timeout:g} s "
                                        "(serve.request_timeout_seconds)") from exc
        except RequestError as exc:
            content = {"detail": exc.message}
            if exc.rejected:
                content["rejected"] = exc.rejected
            return JSONResponse(content, exc.status)
        leads_total.inc(n)
        mql_total.inc(mql)
        with tally_lock:
            tally[0] += n
            tally[1] += mql
            mql_rate.set(tally[1] / tally[0] if tally[0] else 0.0)
        return JSONResponse(answer)

    @app.get(f"{API_PREFIX}/health", summary="Ready once a model is loaded")
    async def health():
        current = holder.current
        if current is None:
            return JSONResponse({"status": "loading", "error": holder.last_error}, 503)
        return {"status": "ready", "model_version": current.key[0],
                "threshold_version": current.key[1]}

    @app.get(f"{API_PREFIX}/model", summary="The model being served")
    async def model_info():
        current = holder.current
        if current is None:
            return JSONResponse({"detail": "no model loaded yet", "error": holder.last_error},
                                503)
        m = current.model
        return {"name": current.name, "version": str(m.version), "alias": current.alias,
                "uri": m.uri, "threshold": m.threshold,
                "threshold_version": str(m.threshold_version),
                "trained_at": current.info.get("trained_at"),
                "test_metrics": current.info.get("test_metrics", {}),
                "loaded_at": current.loaded_at, "last_reload_check": holder.last_check,
                "reload_error": holder.last_error,
                "scoring_log": None if scoring_log is None else {
                    "directory": str(scoring_log.directory),
                    "rows_written": scoring_log.rows_written,
                    "rows_dropped": scoring_log.rows_dropped,
                    "last_error": scoring_log.last_error}}

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
    async def prometheus():
        current = holder.current
        if current is not None and current.key[0].isdigit():
            version_gauge.set(float(current.key[0]))
        return PlainTextResponse(generate_latest(metrics).decode(),
                                 media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env():
    """Factory for uvicorn workers (`leadq serve --workers N`): params from LEADQ_PARAMS."""
    from leadq.pipelines.params.loader import load_params

    params = load_params(os.environ.get("LEADQ_PARAMS") or None)
    return create_app(params, model_uri=os.environ.get("LEADQ_MODEL_URI") or None)
