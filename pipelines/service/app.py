"""`leadq serve`'s HTTP API (FastAPI): score a lead the moment it arrives.

A request's leads go through the same row contract and the same scoring core as a row of a
`leadq score` file (leadq.pipelines.scoring.core.check_and_score), so the score, MQL flag,
tier and reasons are those the batch job would give. JSON values are turned into the text a
CSV export would hold for them (numbers in their shortest exact form, true/false, null or ""
as missing) before the contract sees them, which is what makes the two paths agree.

What a web form can put in a request is untrusted: everything that depends on one request's
data (decoding, typing, the contract, features, activity aggregates) can fail only that
request, with a 4xx naming the lead and field. Overload is shed, not queued: a short queue and
a deadline counted from arrival turn into an immediate 503 with Retry-After.

Request bodies hold personal data: they are never logged, and the scoring log keeps only what
the batch output keeps, for answers that reached their client (an answer past its deadline or
whose client hung up is left out of the log: recalibration reads only delivered scores).
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
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from leadq.pipelines.io.progress import log
from leadq.pipelines.service.contract import INT64, known_fields
from leadq.pipelines.service.shedding import BatchCost

API_PREFIX = "/v1"
# Metric labels: known routes by name, anything else (scanners, typos) as one "other" series.
ROUTES = frozenset({f"{API_PREFIX}/score", f"{API_PREFIX}/health", f"{API_PREFIX}/live",
                    f"{API_PREFIX}/ready", f"{API_PREFIX}/model", "/metrics", "/openapi.json",
                    "/docs"})
TOKEN_ENV = "LEADQ_API_TOKEN"
INLINE_JSON_BYTES = 64 * 1024  # bodies parsed on the event loop; larger ones in a thread
ARRIVAL = "leadq.arrival"  # ASGI scope key: monotonic time the request's headers arrived
SHOWN_CHARS = 80  # an id or field name echoed back is cut here: a 1 MB id is not an answer
CLIENT_GONE = 499  # the status logged for an answer whose client hung up (nginx's convention)


class RequestError(Exception):
    """A 4xx/5xx answer: status code, a message, and per-lead details when there are any."""

    def __init__(self, status: int, message: str, rejected: list | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.rejected = status, message, rejected


def serve_settings(params: dict) -> dict:
    return params["serve"]


def shown(text: Any, limit: int = SHOWN_CHARS) -> str:
    """Client-supplied text fit to echo back: cut short, and encodable (a lone surrogate
    would make the answer itself fail to encode)."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _cell(value: Any, field: str, index: int, is_id: bool = False) -> str | None:
    """A JSON value as the text a CSV cell would hold (None = missing)."""
    where = f"lead {index}: field {shown(field)!r}"
    if value is None:
        return None
    if is_id:
        # An id names a lead in the CRM, the scoring log and recalibration: true or 1e309
        # would silently become the ids "true" and "inf".
        if isinstance(value, str):
            pass
        elif isinstance(value, int) and not isinstance(value, bool) and \
                INT64[0] <= value <= INT64[1]:
            return str(value)
        else:
            raise RequestError(422, f"{where}: an id must be a string or an integer within "
                                    f"64 bits, got {_kind(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None  # as a CSV "NaN" cell reads
        if not math.isfinite(value):
            raise RequestError(422, f"{where}: number out of range")
        return repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestError(422, f"{where}: not valid Unicode text (a lone surrogate at "
                                    f"character {exc.start})") from None
        return value
    raise RequestError(422, f"{where}: expected a string, number, boolean or null, got "
                            f"{_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number out of range" if isinstance(value, int) or not math.isfinite(value) \
            else "a fractional number"
    return "an object" if isinstance(value, dict) else "a list"


def leads_frame(leads: list, fields: list[str], id_col: str | None = None
                ) -> tuple[pd.DataFrame, list[str]]:
    """Raw rows as a CSV reader would have produced them, and the unknown fields ignored
    (shortened for echoing)."""
    from pandas._libs.parsers import STR_NA_VALUES  # pandas' own missing-value spellings

    missing_text = set(STR_NA_VALUES) | {""}
    unknown: dict[str, None] = {}
    columns: dict[str, list] = {f: [] for f in fields}
    for i, lead in enumerate(leads):
        if not isinstance(lead, dict):
            raise RequestError(422, f"lead {i}: expected a JSON object of lead fields, got "
                                    f"{type(lead).__name__}")
        for key in lead:
            if key not in columns and len(unknown) < 20:
                unknown.setdefault(shown(key), None)
        for f in fields:
            text = _cell(lead.get(f), f, i, is_id=f == id_col)
            columns[f].append(None if text is None or text in missing_text else text)
    return text_frame(columns), list(unknown)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # what dtype="str" is in pandas 3


def text_frame(columns: dict[str, list]) -> pd.DataFrame:
    """Columns of text (None = missing) as the frame `pd.array(..., dtype="str")` per column
    would make, built from Arrow arrays typed up front: the values are all str or None
    already, so pandas' per-column inference (most of the cost of a one-row frame) is skipped.
    """
    import pyarrow as pa

    arrays = {f: pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(v, pa.large_string())]),
                                            dtype=_STR) for f, v in columns.items()}
    return pd.DataFrame(arrays, copy=False)


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):  # a column's tolist() gives Python ints
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
    """One request waiting in the micro-batch queue, its deadline, and the answer it will get.
    """

    def __init__(self, body: Any, deadline: float, queued_at: float | None = None) -> None:
        self.body = body
        self.deadline = deadline  # time.monotonic() past which nobody waits for the answer
        # From when its wait to be scored counts (serve.max_wait_ms): its arrival, moved on by
        # the time its body took to come in and be parsed, which is not waiting for the worker.
        self.queued_at = time.monotonic() if queued_at is None else queued_at
        self.size = len(body) if isinstance(body, list) else 1
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class Part:
    """One request's leads, read and typed, ready to be scored with others."""

    def __init__(self, pending: Pending | None, single: bool, raw: pd.DataFrame,
                 unknown: list[str], duplicates: np.ndarray) -> None:
        self.pending, self.single, self.raw = pending, single, raw
        self.unknown, self.duplicates = unknown, duplicates


class Scorer:
    """Scores requests in micro-batches: whatever arrives while a batch is being scored is
    scored together next, as one frame through the batch scorer's core. A lead's answer does
    not depend on which other leads shared its batch (every rule and feature is per row, ids
    are checked for duplicates within their own request, warnings are told per request), so
    batching changes only the cost: the fixed cost of a call is paid once per batch instead of
    once per lead. If scoring the combined frame fails, the batch is split in halves and each
    half scored on its own, down to the one request whose data failed it, which alone gets a
    422: one request's data can fail only that request.

    Overload is shed by time (serve.max_wait_ms): a request whose wait to be scored would
    pass the budget is answered 503 at once, at submit time when the scoring queued ahead of
    it is already estimated to take longer (the worker's measured batch cost, BatchCost),
    else when the worker claims it late; and a batch holds no more leads than the worker
    scores within the budget, so the requests behind it are not held by its size. Answered
    requests therefore spend about two budgets at most in the scorer, whatever the per-lead
    cost of the model on this machine is."""

    def __init__(self, params: dict, holder, activity) -> None:
        self.params = params
        self.holder = holder
        self.activity = activity
        self.settings = serve_settings(params)
        self.fields = known_fields(params)
        self.id_col = params["data"]["leads"]["id"]
        self.max_leads = int(self.settings["max_batch"])
        self._queue: queue.Queue = queue.Queue(maxsize=int(self.settings["max_queue"]))
        self._carry: Pending | None = None
        self.max_wait = float(self.settings["max_wait_ms"]) / 1000.0
        self.cost = BatchCost()
        self._count_lock = threading.Lock()
        self._queued_leads = 0  # in the queue or carried: not yet in a batch
        self._busy: tuple[float, float] | None = None  # (batch started, its predicted seconds)
        self._prepared_of: tuple | None = None  # (bundle made without it, its Prepared)
        self._one_thread = False
        self._worker = threading.Thread(target=self._run, name="leadq-score", daemon=True)
        self._worker.start()

    def submit(self, body: Any, deadline: float, queued_at: float | None = None
               ) -> concurrent.futures.Future:
        """Queue a request for scoring (`queued_at`: monotonic time its wait counts from,
        default now); its future holds the answer or a RequestError (503 when shed)."""
        pending = Pending(body, deadline, queued_at)
        try:
            # Its shape first (a list over serve.max_batch, not a lead at all): refused at
            # once, so a huge list never enters the queue's count of leads ahead.
            self._leads(body)
        except RequestError as exc:
            _settle(pending.future, error=exc)
            return pending.future
        waited = time.monotonic() - pending.queued_at
        ahead = self.expected_wait()
        if waited + ahead > self.max_wait:
            # Refused now rather than when the worker reaches it: the client gets its 503 at
            # once, and the queue holds only requests that can still be answered in time.
            _settle(pending.future, error=RequestError(
                503, f"server busy: {waited * 1000:.0f} ms since arrival and about "
                     f"{ahead * 1000:.0f} ms of scoring queued ahead, over serve.max_wait_ms "
                     f"({self.max_wait * 1000:g})"))
            return pending.future
        with self._count_lock:
            self._queued_leads += pending.size
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            self._dequeued(pending)
            _settle(pending.future, error=RequestError(
                503, f"server busy: {self._queue.maxsize} requests waiting (serve.max_queue)"))
        return pending.future

    def expected_wait(self) -> float:
        """Seconds a request queued now would wait for the worker: the rest of the batch being
        scored, then the full batches queued before its own."""
        now = time.monotonic()
        busy = self._busy
        rest = 0.0 if busy is None else max(busy[0] + busy[1] - now, 0.0)
        queued = self._queued_leads
        if not queued:
            return rest
        cap = self.cost.cap(self.max_wait, self.max_leads)
        return rest + (queued // cap) * self.cost.predict(cap)

    def _dequeued(self, pending: Pending) -> None:
        with self._count_lock:
            self._queued_leads -= pending.size

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the worker."""
        self._queue.put(None)
        self._worker.join(timeout=timeout)

    def _live(self, item: Pending) -> bool:
        """Claim a queued request: False for one its caller gave up on, whose deadline has
        passed while it waited, or that waited past serve.max_wait_ms (answered 503 at once:
        scoring it would only delay the rest, and its client is better off retrying)."""
        if not item.future.set_running_or_notify_cancel():
            return False
        now = time.monotonic()
        if now >= item.deadline:
            _settle(item.future, error=RequestError(
                503, "server busy: the request waited past its deadline "
                     "(serve.request_timeout_seconds)"))
            return False
        waited = now - item.queued_at
        if waited > self.max_wait:
            _settle(item.future, error=RequestError(
                503, f"server busy: the request waited {waited * 1000:.0f} ms to be scored, "
                     f"over serve.max_wait_ms ({self.max_wait * 1000:g})"))
            return False
        return True

    def _take(self) -> Pending | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            self._dequeued(item)
            return item  # claimed already, when it did not fit the batch before
        while True:
            item = self._queue.get()
            if item is None:
                return None  # stop
            self._dequeued(item)
            if self._live(item):
                return item  # a request whose caller still waits

    def _run(self) -> None:
        while (first := self._take()) is not None:
            batch, size, stop = [first], first.size, False
            # Leads the worker scores within the wait budget: a larger batch would hold the
            # requests behind it past their budget for the sake of its own size.
            cap = self.cost.cap(self.max_wait, self.max_leads)
            while size < cap:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                self._dequeued(nxt)
                if not self._live(nxt):
                    continue
                if size + nxt.size > cap:
                    with self._count_lock:
                        self._queued_leads += nxt.size  # still waits: ahead of newcomers
                    self._carry = nxt  # first in the next batch
                    break
                batch.append(nxt)
                size += nxt.size
            started = time.monotonic()
            self._busy = (started, self.cost.predict(size))
            try:
                scored = self._score_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiting request learns of it
                log.error("scoring worker: %s", type(exc).__name__)
                for pending in batch:
                    _settle(pending.future, error=exc)
                scored = 0
            self._busy = None
            if scored:  # a batch refused whole (no model yet) says nothing of the cost
                self.cost.observe(scored, time.monotonic() - started)
            if stop:
                return

    def _leads(self, body: Any) -> tuple[list, bool]:
        single = isinstance(body, dict)
        leads = [body] if single else body
        if not isinstance(leads, list) or not leads:
            raise RequestError(422, "expected one lead (a JSON object) or a non-empty list of "
                                    "leads")
        if len(leads) > self.max_leads:
            raise RequestError(413, f"{len(leads)} leads in one request; serve.max_batch is "
                                    f"{self.max_leads}")
        return leads, single

    def read(self, body: Any, pending: Pending | None = None) -> Part:
        """One request's body as raw rows (RequestError naming the lead and field if not)."""
        leads, single = self._leads(body)
        raw, unknown = leads_frame(leads, self.fields, self.id_col)
        if len(leads) == 1:
            dup = np.zeros(1, dtype=bool)  # one lead has no duplicate within its request
        else:
            ids = raw[self.id_col].astype("string").str.strip()
            dup = (ids.duplicated() & ids.notna() & (ids != "")).to_numpy(dtype=bool)
        return Part(pending, single, raw, unknown, dup)

    def dependencies(self):
        """The bundle and activity events to score with now, or a 503 naming what is missing.
        """
        served = self.holder.current if self.holder is not None else None
        if served is None:
            raise RequestError(503, "no model loaded yet (see /v1/ready)")
        events = self.activity.events
        if self.activity.needed and events is None:
            why = self.activity.error or "activity log not loaded yet"
            raise RequestError(503, f"not ready: {why}")
        return served, events

    def _score_batch(self, batch: list[Pending]) -> int:
        """Score a batch, settling each request's future: the leads read and scored (0 when
        it was refused whole), what the batch's time is observed against."""
        try:
            # One bundle and one version of the activity log for the whole batch.
            served, events = self.dependencies()
        except RequestError as exc:
            for pending in batch:
                _settle(pending.future, error=exc)
            return 0
        if not self._one_thread:
            self._one_thread = True
            from threadpoolctl import threadpool_limits

            # OpenMP on this thread only (its limit is per thread), set once a model has loaded
            # the library: a batch's trees are microseconds of work per lead, and waking a
            # team of OpenMP threads for each call cost more than that, most of all on a busy
            # machine. Each row's result is the same on any number of threads.
            threadpool_limits(limits=1, user_api="openmp")
        parts = []
        for pending in batch:
            try:
                parts.append(self.read(pending.body, pending))
            except RequestError as exc:
                _settle(pending.future, error=exc)
            except Exception as exc:  # noqa: BLE001 - this request's data: it alone fails
                log.warning("a request could not be read (%s)", type(exc).__name__)
                _settle(pending.future, error=RequestError(
                    422, f"cannot read the lead(s): {type(exc).__name__}"))
        self._score_isolated(parts, served, events)
        return sum(len(part.raw) for part in parts)

    def _score_isolated(self, parts: list[Part], served, events) -> None:
        if not parts:
            return
        try:
            results = self.score_parts(parts, served, events)
        except Exception as exc:  # noqa: BLE001 - some request's data: find it, fail it alone
            if len(parts) == 1:
                # Only the exception's type is logged: its text may quote the lead's data.
                log.warning("a request's leads could not be scored (%s)", type(exc).__name__)
                message = (str(exc).splitlines() or [""])[0]
                _settle(parts[0].pending.future, error=RequestError(
                    422, f"cannot score the lead(s): {type(exc).__name__}: "
                         f"{shown(message, 300)}"))
                return
            middle = len(parts) // 2
            self._score_isolated(parts[:middle], served, events)
            self._score_isolated(parts[middle:], served, events)
            return
        for part, result in zip(parts, results, strict=True):
            if isinstance(result, RequestError):
                _settle(part.pending.future, error=result)
            else:
                _settle(part.pending.future, result)

    def prepared(self, served):
        """What follows from the params and this version alone (columns by role, activity
        features, the resolved leads contract): built with the bundle when it loads, so it is
        swapped in with it; a bundle made without it (a test's) gets it once, here."""
        found = served.prepared
        if found is None:
            cached = self._prepared_of
            if cached is None or cached[0] is not served:
                from leadq.pipelines.service.state import prepare

                cached = self._prepared_of = (served, prepare(self.params, served.reference))
            found = cached[1]
        return found

    def score_parts(self, parts: list[Part], served, events) -> list:
        """Each part's answer (answer, leads, MQLs, output rows) or RequestError, scored as
        one frame."""
        from leadq.pipelines.scoring.core import check_and_score

        if len(parts) == 1:
            raw, duplicates = parts[0].raw, parts[0].duplicates
        else:
            raw = pd.concat([p.raw for p in parts], ignore_index=True)
            duplicates = np.concatenate([p.duplicates for p in parts])
        scored_at = pd.Timestamp.now(tz="UTC").floor("s")
        check, out = check_and_score(raw, served.model, self.params, reference=served.reference,
                                     scored_at=scored_at, duplicates=duplicates,
                                     explain=bool(self.settings["explain"]), events=events,
                                     prepared=self.prepared(served))
        bad = check.bad
        # Output row of each good input row (check_and_score scores the good rows, in order).
        out_pos = np.cumsum(~bad) - 1
        start, results = 0, []
        for part in parts:
            stop = start + len(part.raw)
            if bad[start:stop].any():
                rejected = [{"index": int(i - start),
                             "id": _shown_id(raw.at[i, self.id_col]),
                             "reason": shown(check.reasons.iloc[i], 500)}
                            for i in range(start, stop) if bad[i]]
                what = rejected[0]["reason"] if part.single else \
                    f"{len(rejected)} lead(s) rejected"
                results.append(RequestError(422, what, rejected))
            else:
                # A request whose leads are the whole batch and all good (a single lead, most
                # often) is the output frame itself: no row selection to pay for.
                rows_out = out if start == 0 and stop == len(out) == len(raw) else \
                    out.iloc[out_pos[start:stop]]
                answer = self._answer(rows_out, check, part.unknown, start, stop, part.single)
                results.append((answer, len(rows_out), int(rows_out["is_mql"].sum()), rows_out))
            start = stop
        return results

    @staticmethod
    def _answer(rows_out: pd.DataFrame, check, unknown: list[str], start: int, stop: int,
                single: bool) -> dict:
        rows = answer_rows(rows_out)
        warnings = [f"{message}: {int(mask[start:stop].sum())}"
                    for message, mask in sorted(check.warning_masks.items())
                    if mask[start:stop].any()]
        warnings += [f"unknown field {name!r} ignored" for name in unknown]
        if single:
            return {**rows[0], "warnings": warnings}
        return {"leads": rows, "warnings": warnings}


def answer_rows(rows_out: pd.DataFrame) -> list[dict]:
    """Output rows as JSON-ready dicts, from each column's values at once: the answer
    `DataFrame.to_dict("records")` gave (each value through _jsonable), without its per-row,
    per-cell boxing (most of the cost of answering one lead)."""
    names = list(rows_out.columns)
    values = [[_jsonable(v) for v in column.tolist()] for _, column in rows_out.items()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _shown_id(value: Any) -> Any:
    value = _jsonable(value)
    return shown(value) if isinstance(value, str) else value


# Leads in the warm-up's micro-batch: more than Tree SHAP's one-call kernel takes
# (leadq.models.explain.ALL_TREES_ROWS), so the few-row kernels are compiled before traffic.
WARM_UP_BATCH = 8


def warm_up_lead(served, events: pd.DataFrame | None, params: dict) -> dict:
    """A lead to score before taking traffic: the model's own input example as a web form
    would send it, under the id of a lead the activity log has events for (so the activity
    aggregation runs on real events)."""
    example = getattr(served.model.pyfunc, "input_example", None)
    lead: dict = {}
    if example is not None and len(example):
        for key, value in pd.DataFrame(example).iloc[0].items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or \
                    value is pd.NaT or value is pd.NA:
                continue
            lead[str(key)] = value.isoformat() if isinstance(value, pd.Timestamp) else \
                _jsonable(value)
    spec = params["data"]["leads"]
    created = spec.get("created_at")
    if created and created not in lead:
        # A champion without date parts (init's choice on under two years of history) has no
        # date in its input example, yet the contract still requires one on every lead.
        lead[created] = warm_up_date(spec.get("date_format"))
    lead_id = "warm-up-0"
    if events is not None and len(events):
        lead_id = str(events["ev_lead"].iloc[len(events) // 2])
    lead[params["data"]["leads"]["id"]] = lead_id
    return lead


def warm_up_date(date_format: str | None) -> str:
    """Now, written as the export writes its lead dates (data.leads.date_format)."""
    now = pd.Timestamp.now(tz="UTC").floor("s")
    if not date_format or date_format in ("ISO8601", "mixed"):
        return now.tz_localize(None).isoformat()
    return now.strftime(date_format)  # aware: a %z or %Z in the format is written, as UTC


def check_fast_path(served) -> str | None:
    """Before a version takes traffic: hold its compiled single-lead transform
    (leadq.models.compiled) equal to its pipeline on the model's own input example, and say in
    the log whether single leads are scored through it (None) or why not (the pipeline then
    scores them, as a batch is scored)."""
    from leadq.models.explain import check_compiled

    sk = served.model.sklearn() if hasattr(served.model, "sklearn") else None
    example = getattr(served.model.pyfunc, "input_example", None)
    if sk is None:
        why = "not a scikit-learn model"
    elif example is None or not len(example):
        why = "the model has no input example to check it on"
    else:
        why = check_compiled(sk, pd.DataFrame(example))
    if why is None:
        log.info("version %s: single leads are scored through its compiled transform",
                 served.key[0])
    else:
        log.info("version %s: single leads are scored through the pipeline (no compiled "
                 "transform: %s)", served.key[0], why)
    return why


def create_app(params: dict, *, model_uri: str | None = None, holder=None) -> FastAPI:
    """The ASGI app. `holder` (tests) replaces the registry-following model holder."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from leadq.pipelines.params.loader import resolve_path
    from leadq.pipelines.service.contract import docs_page, openapi_schema
    from leadq.pipelines.service.scoring_log import ScoringLog
    from leadq.pipelines.service.state import ActivityLog, ModelHolder, Unavailable

    settings = serve_settings(params)
    token = os.environ.get(TOKEN_ENV) or None
    # The token as the bytes a client sends: compared as bytes, so any UTF-8 token can match
    # (surrogateescape: the environment's own bytes, whatever they are).
    expected = None if token is None else b"Bearer " + token.encode("utf-8", "surrogateescape")
    metrics = CollectorRegistry()
    requests_total = Counter("leadq_requests", "HTTP requests by path and status",
                             ["path", "status"], registry=metrics)
    latency = Histogram("leadq_request_seconds", "request latency", ["path"], registry=metrics,
                        buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
                                 30.0, 60.0))
    leads_total = Counter("leadq_leads_scored", "leads scored", registry=metrics)
    undelivered = Counter("leadq_answers_undelivered",
                          "requests whose answer was not delivered (client gone, or past the "
                          "deadline): none of their leads is in the scoring log", ["why"],
                          registry=metrics)
    mql_total = Counter("leadq_mql", "leads scored as MQL", registry=metrics)
    mql_rate = Gauge("leadq_mql_rate", "share of scored leads that were MQLs",
                     registry=metrics)
    version_gauge = Gauge("leadq_model_version", "registry version being served",
                          registry=metrics)
    tally, tally_lock = [0, 0], threading.Lock()  # leads, MQLs: the rate's two counts
    timeout = float(settings["request_timeout_seconds"])
    retry_after = str(max(1, math.ceil(float(settings["retry_after_seconds"]))))
    parsing = asyncio.Semaphore(max(1, int(settings["max_parsing"])))

    scoring_log = None
    if settings.get("scoring_log"):
        scoring_log = ScoringLog(resolve_path(params, settings["scoring_log"]),
                                 flush_rows=settings["log_flush_rows"],
                                 flush_seconds=settings["log_flush_seconds"])

    def warm_up(served, events=None) -> None:
        """Score one lead through the whole path a request takes (typing, contract, activity
        aggregates, model, reasons) before `served` takes traffic: a version that cannot
        score it never does, and numba kernels and caches are built before a real lead waits
        for them. Nothing of it reaches the scoring log."""
        if events is None and activity.needed:
            events = activity.events
            if events is None:
                raise Unavailable(activity.error or "activity log not loaded yet")
        check_fast_path(served)
        lead = warm_up_lead(served, events, params)
        result = scorer.score_parts([scorer.read(lead)], served, events)[0]
        if isinstance(result, RequestError):
            raise RuntimeError(f"the warm-up lead was refused: {result.message}")
        # And a micro-batch of it under other ids: the kernels a few rows take (numba compiles
        # each on its first call, for seconds) are compiled here, not in a request.
        id_col = params["data"]["leads"]["id"]
        size = min(WARM_UP_BATCH, scorer.max_leads)  # no batch is larger than serve.max_batch
        if size > 1:
            batch = [{**lead, id_col: f"{lead[id_col]}-{i}"} for i in range(size)]
            result = scorer.score_parts([scorer.read(batch)], served, events)[0]
            if isinstance(result, RequestError):
                raise RuntimeError(f"the warm-up batch was refused: {result.message}")

    activity = ActivityLog(params, probe=lambda events: holder.current is None or
                           warm_up(holder.current, events))
    holder = holder or ModelHolder(params, model_uri, warm_up=warm_up)
    scorer = Scorer(params, holder, activity)

    def first_load() -> None:
        every = float(settings["reload_seconds"])
        activity.refresh()
        activity.start(float(settings["activity_check_seconds"]))
        while holder.current is None:
            try:
                holder.load()
            except Exception as exc:  # noqa: BLE001 - no champion yet: keep trying
                holder.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("no model to serve yet: %s (retrying every %.0fs)",
                            holder.last_error, every)
                if holder._stop.wait(every):
                    return
        if hasattr(holder, "start"):  # a test's fixed holder follows no registry
            holder.start(every)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        loader = threading.Thread(target=first_load, name="leadq-first-load", daemon=True)
        loader.start()
        yield
        if hasattr(holder, "stop"):
            holder.stop()
        activity.stop()
        loader.join(timeout=5)
        scorer.close()  # what was queued is answered before the log's last write
        if scoring_log is not None:
            scoring_log.close()

    app = FastAPI(title="leadq", version="1",
                  description="Real-time lead scoring: the batch scorer's answers, one lead at "
                              "a time. Same model, MQL bar, tiers and reasons as `leadq score`.",
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.holder = holder
    app.state.activity = activity
    app.state.scoring_log = scoring_log
    app.state.scorer = scorer

    class Guard:
        """The arrival time, the bearer token and the request metrics, as plain ASGI
        middleware: Starlette's BaseHTTPMiddleware (`@app.middleware`) runs each request
        through an extra task and memory streams, a fixed cost of every call that this does
        not have."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            scope[ARRIVAL] = time.monotonic()
            path = scope["path"] if scope["path"] in ROUTES else "other"
            if expected is not None:
                given = next((v for k, v in scope["headers"] if k.lower() == b"authorization"),
                             b"")
                if not hmac.compare_digest(given, expected):
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
    if settings["cors_origins"]:
        from starlette.middleware.cors import CORSMiddleware

        # Outside the token check: a browser's preflight carries no Authorization header.
        app.add_middleware(CORSMiddleware, allow_origins=list(settings["cors_origins"]),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)

    def busy(message: str) -> RequestError:
        return RequestError(503, message)

    async def read_body(request: Request, limit: int) -> bytes:
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise RequestError(413, f"request body over serve.max_body_bytes ({limit})")
        return bytes(body)

    async def read_json(request: Request, deadline: float) -> Any:
        """The body, parsed: its size checked against serve.max_body_bytes before anything is
        read (Content-Length) and while it streams in; a large one read and parsed only with
        one of serve.max_parsing turns, so concurrent large bodies cannot pile up in memory.
        """
        limit = int(settings["max_body_bytes"])
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise RequestError(400, "malformed Content-Length")
        if declared is not None and int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes; serve.max_body_bytes "
                                    f"is {limit}")
        if declared is not None and int(declared) < INLINE_JSON_BYTES:
            # A lead is ~1 KB: parsed in microseconds, less than a hand-off to a thread.
            raw = await read_body(request, limit)
            return _parse(raw)
        try:
            await asyncio.wait_for(parsing.acquire(), max(deadline - time.monotonic(), 0))
        except TimeoutError as exc:
            raise busy(f"server busy: {settings['max_parsing']} large bodies being read "
                       "(serve.max_parsing)") from exc
        try:
            raw = await read_body(request, limit)
            # Off the event loop, so a large body cannot hold up /v1/live and small requests.
            return await asyncio.to_thread(_parse, raw)
        finally:
            parsing.release()

    def refuse(exc: RequestError) -> JSONResponse:
        content: dict = {"detail": exc.message}
        if exc.rejected:
            content["rejected"] = exc.rejected
        headers = {"Retry-After": retry_after} if exc.status == 503 else None
        return JSONResponse(content, exc.status, headers=headers)

    @app.post(f"{API_PREFIX}/score", summary="Score one lead (an object) or a list of leads")
    async def score(request: Request):
        arrival = request.scope.get(ARRIVAL, time.monotonic())
        deadline = arrival + timeout
        try:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                # A browser sends text/plain or a form cross-origin without asking first: only
                # JSON, which it must ask for (CORS), is scored.
                raise RequestError(415, "send the lead(s) as Content-Type: application/json")
            reading = time.monotonic()
            body = await read_json(request, deadline)
            # Its wait to be scored counts from arrival, less the time its body took to come
            # in and be parsed: work for this request, not a queue in front of it.
            queued_at = arrival + (time.monotonic() - reading)
            if time.monotonic() >= deadline:
                raise busy("server busy: the request's body arrived past its deadline "
                           "(serve.request_timeout_seconds)")
            # Reading once more lets the server notice a client that hangs up while it waits.
            await request.is_disconnected()
            future = scorer.submit(body, deadline, queued_at)
            try:
                answer, n, mql, rows = await asyncio.wait_for(
                    asyncio.wrap_future(future), max(deadline - time.monotonic(), 0))
            except TimeoutError as exc:
                undelivered.labels("deadline").inc()
                raise busy(f"server busy: not answered within {timeout:g} s of arrival "
                           "(serve.request_timeout_seconds)") from exc
        except RequestError as exc:
            return refuse(exc)
        if await request.is_disconnected():
            # Nobody receives this answer: it is not logged as if sales had been given it.
            undelivered.labels("client gone").inc()
            return Response(status_code=CLIENT_GONE)
        if scoring_log is not None:
            scoring_log.append(rows)
        leads_total.inc(n)
        mql_total.inc(mql)
        with tally_lock:
            tally[0] += n
            tally[1] += mql
            mql_rate.set(tally[1] / tally[0] if tally[0] else 0.0)
        return JSONResponse(answer)

    def readiness() -> tuple[int, dict]:
        current, errors = holder.current, []
        if current is None:
            errors.append(f"no model loaded: {holder.last_error}" if holder.last_error
                          else "loading the model and scoring a warm-up lead")
        if not activity.ok:
            errors.append(activity.error or "loading the activity log")
        if errors:
            return 503, {"status": "loading" if current is None else "not ready",
                         "error": "; ".join(errors), "errors": errors}
        body = {"status": "ready", "model_version": current.key[0],
                "threshold_version": current.key[1]}
        if holder.last_error:  # still serving this version; the reload that failed says why
            body["reload_error"] = holder.last_error
        if activity.error:  # still scoring with the activity log's previous version
            body["activity_error"] = activity.error
        return 200, body

    @app.get(f"{API_PREFIX}/live", summary="Liveness: the process answers")
    async def live():
        return {"status": "alive"}

    @app.get(f"{API_PREFIX}/ready", summary="Readiness: the champion is loaded, a warm-up lead "
                                           "was scored, and every input it needs is there")
    async def ready():
        status, body = readiness()
        return JSONResponse(body, status, headers={"Retry-After": retry_after}
                            if status == 503 else None)

    @app.get(f"{API_PREFIX}/health", summary="As /v1/ready (kept for existing probes)")
    async def health():
        return await ready()

    @app.get(f"{API_PREFIX}/model", summary="The model being served")
    async def model_info():
        current = holder.current
        if current is None:
            return JSONResponse({"detail": "no model loaded yet", "error": holder.last_error},
                                503, headers={"Retry-After": retry_after})
        m = current.model
        return {"name": current.name, "version": str(m.version), "alias": current.alias,
                "uri": m.uri, "threshold": m.threshold,
                "threshold_version": str(m.threshold_version),
                "trained_at": current.info.get("trained_at"),
                "test_metrics": current.info.get("test_metrics", {}),
                "loaded_at": current.loaded_at, "last_reload_check": holder.last_check,
                "reload_error": holder.last_error, "activity_error": activity.error,
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

    def schema() -> dict:
        current = holder.current
        key = None if current is None else current.key
        if app.openapi_schema is None or app.state.schema_key != key:
            # From the params' roles and the served version's contract reference: rebuilt
            # when another version comes in.
            app.openapi_schema = openapi_schema(app, params, None if current is None
                                                else current.reference)
            app.state.schema_key = key
        return app.openapi_schema

    app.state.schema_key = None
    app.openapi = schema

    @app.get("/docs", include_in_schema=False)
    async def docs():
        # Self-contained: no script or style from a CDN, so it works on a closed network.
        return HTMLResponse(docs_page(schema()))

    return app


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise RequestError(400, f"malformed JSON: {exc}"[:300]) from exc


def app_from_env():
    """Factory for uvicorn workers (`leadq serve --workers N`): params from LEADQ_PARAMS."""
    from leadq.pipelines.params.loader import load_params

    params = load_params(os.environ.get("LEADQ_PARAMS") or None)
    return create_app(params, model_uri=os.environ.get("LEADQ_MODEL_URI") or None)
