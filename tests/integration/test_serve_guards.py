"""`leadq serve` in front of a browser, without a model: what is refused before any lead is
read (content type, cross-origin, token bytes, body size), liveness apart from readiness, and
the typed OpenAPI contract with its offline /docs page.

The app runs in-process on uvicorn in a thread, on a free loopback port; its holder never
loads a model, so these tests train nothing.
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from leadq.errors import LeadqError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app):
    """`app` served on 127.0.0.1 by uvicorn in a thread; yields the port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                          log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request with exactly these headers (values may be bytes: sent as they are)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class NoStore:
    """A model holder whose store never answers: the service must stay live and not ready."""

    current = None
    last_error = None
    last_check = None

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.loads = 0

    def load(self):
        self.loads += 1
        raise LeadqError("cannot load model models:/leadq@champion: store unreachable")

    def stop(self) -> None:
        self._stop.set()


def make_app(base_params, **serve):
    from leadq.pipelines.service.app import create_app

    params = copy.deepcopy(base_params)
    params["serve"].update({"scoring_log": None, "reload_seconds": 0.2, **serve})
    holder = NoStore()
    return create_app(params, holder=holder), holder, params


LEAD = json.dumps({"lead_id": "L1", "source": "Email"}).encode()
JSON = {"Content-Type": "application/json"}


def test_only_json_is_scored_and_a_cross_origin_text_post_is_refused(base_params):
    """A web page can post text/plain to any origin without a preflight: it must never reach
    the scorer (415), and with no CORS origins configured no CORS header is ever given."""
    app, _, _ = make_app(base_params)
    scored = []
    app.state.scorer.submit = lambda body, deadline: scored.append(body)  # must not be called
    with running(app) as port:
        for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x"):
            status, headers, body = call(port, "POST", "/v1/score", LEAD, {
                "Content-Type": ctype, "Origin": "https://evil.example"})
            assert status == 415, (ctype, body)
            assert "application/json" in json.loads(body)["detail"]
            assert "access-control-allow-origin" not in headers
        status, headers, _ = call(port, "POST", "/v1/score", LEAD,
                                  {"Origin": "https://evil.example"})  # no content type
        assert status == 415
        # The preflight a browser needs before a JSON post: not granted.
        status, headers, _ = call(port, "OPTIONS", "/v1/score", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert "access-control-allow-origin" not in headers
    assert scored == []


def test_cors_answers_only_the_configured_origins(base_params):
    app, _, _ = make_app(base_params, cors_origins=["https://forms.example.com"])
    with running(app) as port:
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        status, headers, _ = call(port, "OPTIONS", "/v1/score", headers={
            "Origin": "https://forms.example.com", **preflight})
        assert status == 200
        assert headers["access-control-allow-origin"] == "https://forms.example.com"
        status, headers, _ = call(port, "OPTIONS", "/v1/score", headers={
            "Origin": "https://evil.example", **preflight})
        assert headers.get("access-control-allow-origin") != "https://evil.example"


def test_a_utf8_token_is_compared_as_bytes(base_params, monkeypatch):
    token = "clé-secrète-✓"
    monkeypatch.setenv("LEADQ_API_TOKEN", token)
    app, _, _ = make_app(base_params)
    with running(app) as port:
        good = b"Bearer " + token.encode("utf-8")
        assert call(port, "GET", "/v1/live", headers={"Authorization": good})[0] == 200
        for wrong in (b"Bearer " + token.encode("utf-8")[:-1], b"Bearer " + b"\xff" * 5,
                      b"Bearer " + token.encode("latin-1", "replace"), b""):
            assert call(port, "GET", "/v1/live", headers={"Authorization": wrong})[0] == 401
        assert call(port, "GET", "/v1/live")[0] == 401


def test_live_answers_while_ready_says_why_it_is_not(base_params):
    """No model can be loaded: live is 200, ready (and the old health) 503 naming the cause,
    scoring 503 with Retry-After."""
    app, holder, _ = make_app(base_params)
    with running(app) as port:
        deadline = time.monotonic() + 10
        while holder.loads < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        assert call(port, "GET", "/v1/live")[0] == 200
        for path in ("/v1/ready", "/v1/health"):
            status, headers, body = call(port, "GET", path)
            assert status == 503 and headers["retry-after"].isdigit()
            assert "store unreachable" in json.loads(body)["error"]
        status, headers, body = call(port, "POST", "/v1/score", LEAD,
                                     {"Content-Type": "application/json"})
        assert status == 503 and headers["retry-after"].isdigit()
        assert "no model" in json.loads(body)["detail"]


def test_body_size_is_checked_before_parsing(base_params):
    app, _, _ = make_app(base_params, max_body_bytes=1000)
    parsed = []
    from leadq.pipelines.service import app as app_module

    real = app_module._parse
    with running(app) as port:
        app_module._parse = lambda raw: parsed.append(len(raw)) or real(raw)
        try:
            big = b'{"lead_id": "' + b"x" * 2000 + b'"}'
            status, _, body = call(port, "POST", "/v1/score", big,
                                   {"Content-Type": "application/json"})
            assert status == 413 and "max_body_bytes" in json.loads(body)["detail"]
            # Chunked, with no Content-Length: refused as the bytes stream in.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/score", body=iter([big[:600], big[600:]]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            assert conn.getresponse().status == 413
            conn.close()
        finally:
            app_module._parse = real
    assert parsed == []


@pytest.mark.parametrize("raw", [
    b'{"lead_id": true}', b'{"lead_id": 1e309}', b'{"lead_id": 1.5}',
    b'{"lead_id": 99999999999999999999}', b'{"lead_id": "L\\ud800x"}',
    b'{"lead_id": "L1", "industry": "\\udfff"}',
])
def test_typing_errors_name_the_field_before_any_model_is_needed(base_params, raw):
    """Decoding and typing are per request and need no model: a wrong id or a lone surrogate
    is the request's own 422, whatever the service's state."""
    from leadq.pipelines.service.app import RequestError, Scorer

    app, _, params = make_app(base_params)
    scorer: Scorer = app.state.scorer
    with pytest.raises(RequestError) as err:
        scorer.read(json.loads(raw))
    assert err.value.status == 422
    assert "'lead_id'" in err.value.message or "'industry'" in err.value.message
    scorer.close()


def test_a_huge_id_or_field_name_is_not_echoed_back(base_params):
    from leadq.pipelines.service.app import SHOWN_CHARS

    app, _, _ = make_app(base_params)
    part = app.state.scorer.read({"lead_id": "L1", "k" * 1_000_000: 1, "\ud800": 2})
    assert all(len(name) <= SHOWN_CHARS + 1 for name in part.unknown)
    assert all(name.encode("utf-8") for name in part.unknown)  # no lone surrogate left
    app.state.scorer.close()


def test_openapi_request_schema_lists_the_contract_fields_with_their_types(base_params):
    """The request schema comes from the params roles: every model input, the id and the date
    by name, numbers as numbers, categories as strings; 4xx/413/415/503 documented; /docs has
    no script or style from elsewhere."""
    from leadq.features.columns import model_inputs
    from leadq.pipelines.service.app import known_fields

    app, _, params = make_app(base_params)
    with running(app) as port:
        status, _, body = call(port, "GET", "/openapi.json")
        assert status == 200
        spec = json.loads(body)
        status, headers, page = call(port, "GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    post = spec["paths"]["/v1/score"]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/Lead"} in request["oneOf"]
    lead = spec["components"]["schemas"]["Lead"]
    roles = model_inputs(params)
    leads_spec = params["data"]["leads"]
    assert set(lead["properties"]) == set(known_fields(params))
    assert roles["numeric"] and roles["categorical"]
    for name in roles["numeric"]:
        assert "number" in lead["properties"][name]["type"], name
    for name in roles["categorical"]:
        assert lead["properties"][name]["type"] == ["string", "null"], name
    id_types = {t["type"] for t in lead["properties"][leads_spec["id"]]["oneOf"]}
    assert id_types == {"string", "integer"}
    assert lead["properties"][leads_spec["created_at"]]["format"] == "date-time"
    assert set(lead["required"]) == {leads_spec["id"], leads_spec["created_at"]}
    assert {"200", "400", "401", "413", "415", "422", "503"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["503"]["headers"]
    text = page.decode()
    assert "<script" not in text and "cdn" not in text.lower()
    assert 'src="http' not in text and 'href="http' not in text
    for name in roles["numeric"] + roles["categorical"]:
        assert f"<code>{name}</code>" in text


def test_an_unreachable_store_is_named_in_readiness(base_params, tmp_path, monkeypatch):
    """The registry at a closed port: not ready, and the answer says it is the store (with
    the retry settings `leadq serve` sets, within seconds)."""
    from leadq.pipelines.service.app import create_app

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    params = copy.deepcopy(base_params)
    params["_path"] = str(tmp_path / "params.yaml")
    params["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{free_port()}"
    params["serve"].update({"scoring_log": None, "reload_seconds": 0.5})
    app = create_app(params)
    with running(app) as port:
        deadline, body = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            status, _, raw = call(port, "GET", "/v1/ready")
            body = json.loads(raw)
            assert status == 503
            if "127.0.0.1" in body.get("error", ""):
                break
            time.sleep(0.2)
        assert "no model loaded" in body["error"] and "127.0.0.1" in body["error"], body
        assert call(port, "GET", "/v1/live")[0] == 200


def test_large_bodies_are_parsed_a_bounded_number_at_a_time(base_params):
    """serve.max_parsing: concurrent large bodies wait for a turn instead of all being held
    and parsed at once (the memory of 16 parsed 5 MB bodies was the audit's 1.7 GB)."""
    from leadq.pipelines.service import app as app_module

    app, _, _ = make_app(base_params, max_parsing=2)
    real, lock = app_module._parse, threading.Lock()
    busy, peak = [0], [0]

    def slow_parse(raw: bytes):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.2)
        with lock:
            busy[0] -= 1
        return real(raw)

    big = json.dumps([{"lead_id": f"L{i}", "source": "x" * 100} for i in range(800)]).encode()
    assert len(big) > app_module.INLINE_JSON_BYTES
    with running(app) as port:
        app_module._parse = slow_parse
        try:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: call(port, "POST", "/v1/score", big, {
                    "Content-Type": "application/json"}), range(6)))
        finally:
            app_module._parse = real
        # Two 800-lead bodies do not fit one batch of serve.max_batch (1,000): the second is
        # carried to the next batch, and the worker must live on.
        assert app.state.scorer._worker.is_alive()
    assert peak[0] == 2, peak
    for status, _, raw in answers:  # parsed, then refused at once: no model in this app
        assert status == 503 and "no model" in json.loads(raw)["detail"], raw


def test_a_request_that_does_not_fit_the_batch_is_scored_in_the_next(base_params):
    """Two 800-lead requests queued together exceed serve.max_batch (1,000): the second is
    carried to the next batch and answered, and the scoring worker lives on."""
    from leadq.pipelines.service.app import RequestError

    app, _, _ = make_app(base_params)
    scorer = app.state.scorer
    entered, release = threading.Event(), threading.Event()

    class Held:
        @property
        def current(self):
            entered.set()
            release.wait(10)

    scorer.holder = Held()
    far = time.monotonic() + 60
    first = scorer.submit({"lead_id": "L0"}, far)
    assert entered.wait(10)  # the worker holds the first request
    big = [{"lead_id": f"L{i}"} for i in range(800)]
    rest = [scorer.submit(big, far), scorer.submit(big, far)]
    release.set()
    for future in (first, *rest):
        with pytest.raises(RequestError, match="no model"):
            future.result(timeout=10)
    assert scorer._worker.is_alive()
    scorer.close()


class HeldScorer:
    """Stands in for the scoring of a batch (no model here): holds the worker on its first
    batch until released, records which requests each batch held, and answers each lead."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[list] = []

    def __call__(self, batch) -> int:
        from leadq.pipelines.service.app import _settle

        self.batches.append([p.body for p in batch])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        for pending in batch:
            leads = pending.body if isinstance(pending.body, list) else [pending.body]
            _settle(pending.future, ({"lead_id": leads[0].get("lead_id")}, len(leads), 0,
                                     None))
        return 0  # nothing really scored: the cost model learns nothing from it

    def scored_ids(self) -> set:
        return {lead["lead_id"] for batch in self.batches for body in batch
                for lead in (body if isinstance(body, list) else [body])}


def test_a_request_that_waited_past_max_wait_is_shed_with_retry_after_and_never_scored(
        base_params):
    """serve.max_wait_ms: a request the worker reaches after waiting longer than the budget
    is answered 503 with Retry-After when the worker reaches it, and never scored (so never
    in the scoring log); once the worker is free, requests are scored again."""
    app, _, _ = make_app(base_params, max_wait_ms=300)
    scorer = app.state.scorer
    held = HeldScorer()
    scorer._score_batch = held
    lead = lambda lead_id: json.dumps({"lead_id": lead_id}).encode()  # noqa: E731
    with running(app) as port:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(call, port, "POST", "/v1/score", lead("HELD"), JSON)
            assert held.entered.wait(30)  # the worker is busy with HELD
            late = pool.submit(call, port, "POST", "/v1/score", lead("LATE"), JSON)
            deadline = time.monotonic() + 30
            # LATE waits in the queue (or, on a machine stalled past the budget before it got
            # there, is refused on the way in: the same 503)
            while scorer._queued_leads < 1 and not late.done():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.6)  # well past the 300 ms budget: how much longer does not matter
            held.release.set()
            status, headers, raw = late.result(30)
            assert first.result(30)[0] == 200
        assert status == 503, raw
        assert headers["retry-after"].isdigit()
        assert "serve.max_wait_ms" in json.loads(raw)["detail"]
        assert "LATE" not in held.scored_ids()

        # Under the budget (a generous one: the machine may be busy) a request is scored.
        scorer.max_wait = 30.0
        status, _, raw = call(port, "POST", "/v1/score", lead("IN-TIME"), JSON)
        assert status == 200, raw
        assert json.loads(raw)["lead_id"] == "IN-TIME"
        assert "IN-TIME" in held.scored_ids()


def test_a_request_behind_more_scoring_than_the_budget_is_refused_at_once(base_params):
    """The worker's measured batch cost says how long the queue ahead takes: a request that
    would wait past serve.max_wait_ms behind it is refused when it is submitted, not after
    waiting; and a batch holds no more leads than the worker scores within the budget."""
    from leadq.pipelines.service.app import RequestError

    app, _, _ = make_app(base_params, max_wait_ms=10_000)
    scorer = app.state.scorer
    for n in (1, 11, 1, 11):  # as measured: 3 s a batch plus 1 s a lead (a slow machine)
        scorer.cost.observe(n, 3.0 + 1.0 * n)
    cap = scorer.cost.cap(scorer.max_wait, scorer.max_leads)
    assert 2 <= cap <= 8  # about (10 s - 3 s) / 1 s
    held = HeldScorer()
    scorer._score_batch = held
    far = time.monotonic() + 60
    futures = [scorer.submit({"lead_id": "HELD"}, far)]
    assert held.entered.wait(30)
    # Fewer leads than one batch queued ahead: each waits only for the batch being scored.
    futures += [scorer.submit({"lead_id": f"S{i}"}, far) for i in range(cap - 1)]
    futures.append(scorer.submit([{"lead_id": f"B{i}"} for i in range(2 * cap)], far))
    assert not any(f.done() for f in futures[1:])
    # Now three batches' worth are queued: two full batches (about 20 s) before this one.
    refused = scorer.submit({"lead_id": "REFUSED"}, far)
    assert refused.done()
    with pytest.raises(RequestError, match="queued ahead") as caught:
        refused.result(0)
    assert caught.value.status == 503
    held.release.set()
    for future in futures:
        future.result(30)
    assert "REFUSED" not in held.scored_ids()
    sizes = [sum(len(b) if isinstance(b, list) else 1 for b in batch)
             for batch in held.batches]
    # HELD alone; the singles together; the list, larger than a batch, alone after them.
    assert sizes == [1, cap - 1, 2 * cap], sizes
    assert scorer._queued_leads == 0
    scorer.close()


def test_a_list_over_max_batch_is_refused_before_it_counts_as_leads_queued(base_params):
    """A huge list is a 413 at submit: it never enters the queue's count of leads ahead (every
    newcomer would be shed behind it) nor the batch cost the shedding learns from."""
    from leadq.pipelines.service.app import RequestError

    app, _, _ = make_app(base_params, max_wait_ms=10_000)
    scorer = app.state.scorer
    scorer.cost.observe(1, 0.02)
    before = scorer.cost.coefficients()
    future = scorer.submit([{"lead_id": f"L{i}"} for i in range(scorer.max_leads + 1)],
                           time.monotonic() + 60)
    assert future.done()
    with pytest.raises(RequestError) as caught:
        future.result(0)
    assert caught.value.status == 413
    assert scorer._queued_leads == 0 and scorer.expected_wait() < 1.0
    assert scorer.cost.coefficients() == before
    refused = scorer.submit("not a lead", time.monotonic() + 60)
    with pytest.raises(RequestError) as caught:
        refused.result(0)
    assert caught.value.status == 422
    scorer.close()
