"""`leadq serve` with a champion trained on the activity log: a poisoned member of a micro-batch
fails alone (Hypothesis, with `leadq score` as the oracle), readiness follows the warm-up and
the activity log, overload and abandoned answers never reach the scoring log as delivered.

The app runs in-process on uvicorn (tests.integration.test_serve_guards.running); the model is
trained once for the module.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadq.pipelines.cli import main as cli
from tests.integration.test_serve_guards import call, running

pytestmark = pytest.mark.slow
N_VALID = 24
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_params, small_crm):
    """A champion trained with the activity log (a copy this module may delete), and the
    batch scorer's answers for N_VALID leads."""
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("serve-isolation")
    crm = {**small_crm, "activities": d / "activities.csv"}
    shutil.copy(small_crm["activities"], crm["activities"])
    path = write_params(d, base_params, crm, train__candidates=["hgb"],
                        train__search={"enabled": False}, registry__criteria={},
                        serve={"scoring_log": str(d / "serve_log"), "reload_seconds": 0.5,
                               "activity_check_seconds": 0.3, "log_flush_seconds": 60,
                               "log_flush_rows": 100_000, "request_timeout_seconds": 5,
                               # Micro-batches on a busy machine may wait longer than the
                               # default budget: shedding is not what these tests are about.
                               "max_wait_ms": 5000, "explain": True})
    train_main(str(path))
    leads = pd.read_csv(small_crm["leads"], dtype=str, keep_default_na=False)
    sample = leads.sample(N_VALID, random_state=5)
    sample.to_csv(d / "sample.csv", index=False)
    assert cli(["score", "--input", str(d / "sample.csv"), "--output", str(d / "batch.csv"),
                "--params", str(path), "--explain"]) == 0
    batch = pd.read_csv(d / "batch.csv", dtype=str, keep_default_na=False)
    assert len(batch) == N_VALID  # every sampled lead passes the contract: all are oracles
    valid = [{k: v for k, v in row.items() if v != ""} for row in sample.to_dict("records")]
    return {"dir": d, "params": load_params(path), "valid": valid,
            "batch": batch.set_index("lead_id", drop=False)}


def wait_for(predicate, seconds: float = 30, every: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


def ready(port: int) -> tuple[int, dict]:
    status, _, body = call(port, "GET", "/v1/ready")
    return status, json.loads(body)


@pytest.fixture(scope="module")
def served(store):
    from leadq.pipelines.service.app import create_app

    app = create_app(store["params"])
    with running(app) as port:
        assert wait_for(lambda: ready(port)[0] == 200, 120), ready(port)
        yield {"app": app, "port": port, **store}


def assert_same(answer: dict, row: pd.Series) -> None:
    for key in ("score", "score_raw", "sales_propensity"):
        assert abs(answer[key] - float(row[key])) <= 1e-9, key
    for key in ("is_mql", "tier", "reasons_positive", "reasons_negative", "model_version",
                "threshold_version", "explore", "lead_id"):
        assert str(answer[key]) == row[key], (key, answer[key], row[key])


# Arbitrary JSON, with the strings JSON can carry but UTF-8 cannot (lone surrogates).
surrogates = st.builds(lambda a, c: a + chr(c) + a, st.text(max_size=4),
                       st.integers(0xD800, 0xDFFF))
texts = st.text(max_size=12) | surrogates | st.sampled_from(["", " ", "NaN", "1e309", "-0"])
numbers = st.integers() | st.floats() | st.sampled_from([2 ** 63, -(2 ** 63) - 1, 10 ** 30])
scalars = st.none() | st.booleans() | numbers | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(texts, inner, max_size=3), max_leaves=6)


@st.composite
def poison(draw, valid: list[dict], fields: list[str]):
    """A request that may be anything: a JSON value, a valid lead with one field or key made
    arbitrary, or a list of such leads."""
    def spoilt_lead() -> dict:
        lead = dict(draw(st.sampled_from(valid)))
        if draw(st.booleans()):
            lead[draw(st.sampled_from(fields))] = draw(values)
        else:
            lead[draw(texts)] = draw(values)
        return lead

    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(values)
    if kind == 1:
        return spoilt_lead()
    if kind == 2:
        return [spoilt_lead() for _ in range(draw(st.integers(1, 3)))]
    # Data that passes typing and the contract yet breaks scoring (see deep_failure).
    return {**draw(st.sampled_from(valid)), "industry": BOOM}


BOOM = "BOOM: fails past the contract"


@pytest.fixture
def deep_failure(monkeypatch):
    """Scoring raises on a frame holding a BOOM lead, as a rule or feature might on data the
    contract let through (the lone surrogate once did): the scorer must find the request it
    came from and fail it alone."""
    from leadq.pipelines.scoring import core

    real = core.check_and_score
    frames = []

    def check_and_score(raw, *args, **kwargs):
        boom = bool((raw["industry"] == BOOM).any())
        frames.append(boom)
        if boom:
            raise ValueError("cannot encode industry")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(core, "check_and_score", check_and_score)
    return frames


def test_a_poisoned_member_of_a_micro_batch_fails_alone(served, deep_failure):
    """Valid leads and arbitrary requests scored as one micro-batch: every valid lead gets the
    batch scorer's answer, every other request a 4xx or an answer, never anything else."""
    from leadq.pipelines.service.app import Pending, RequestError, known_fields

    scorer = served["app"].state.scorer
    valid, batch = served["valid"], served["batch"]
    fields = known_fields(served["params"])

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(picks=st.lists(st.integers(0, len(valid) - 1), min_size=1, max_size=4, unique=True),
           bad=st.lists(poison(valid, fields), min_size=1, max_size=3), seed=st.integers(0, 99))
    def check(picks, bad, seed):
        members = [(True, valid[i]) for i in picks] + [(False, b) for b in bad]
        random.Random(seed).shuffle(members)
        pending = [Pending(body, time.monotonic() + 120) for _, body in members]
        scorer._score_batch(pending)
        for (is_valid, body), p in zip(members, pending, strict=True):
            error = p.future.exception(timeout=0)
            if is_valid:
                assert error is None, error
                answer = p.future.result(timeout=0)[0]
                assert_same(answer, batch.loc[body["lead_id"]])
            elif error is not None:
                assert isinstance(error, RequestError), repr(error)
                assert 400 <= error.status < 500, (error.status, error.message)
                json.dumps({"detail": error.message, "rejected": error.rejected},
                           ensure_ascii=False).encode("utf-8")  # the 4xx itself can be sent
            if not is_valid and isinstance(body, dict) and body.get("industry") == BOOM:
                assert error is not None and error.status == 422

    check()
    assert any(deep_failure)  # the generated batches did hit the deep failure


def test_arbitrary_bodies_over_http_never_get_a_5xx(served):
    """The same over HTTP, bytes and all, concurrently with valid leads (so they share
    micro-batches): valid answers equal the batch scorer's, nothing is a 5xx."""
    port, valid, batch = served["port"], served["valid"], served["batch"]
    fields = ["lead_id", "employees", "created_at", "industry"]

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(bad=st.lists(st.binary(max_size=64)
                        | poison(valid, fields).map(lambda b: json.dumps(b).encode()),
                        min_size=1, max_size=3),
           picks=st.lists(st.integers(0, len(valid) - 1), min_size=1, max_size=3, unique=True))
    def check(bad, picks):
        jobs = [(True, json.dumps(valid[i]).encode()) for i in picks] + [(False, b) for b in bad]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(lambda job: call(port, "POST", "/v1/score", job[1], JSON),
                                    jobs))
        for (is_valid, _), (status, _, raw) in zip(jobs, answers, strict=True):
            assert status < 500, (status, raw)
            if is_valid:
                assert status == 200, raw
                answer = json.loads(raw)
                assert_same(answer, batch.loc[answer["lead_id"]])

    check()


class Gate:
    """Holds the scoring worker (it asks for the model) until released."""

    def __init__(self, holder) -> None:
        self.holder, self.entered, self.open = holder, threading.Event(), threading.Event()

    @property
    def current(self):
        self.entered.set()
        assert self.open.wait(30)
        return self.holder.current


def logged_ids(directory) -> set[str]:
    files = list(directory.glob("scored_date=*/part-*.parquet"))
    return set(pd.concat([pd.read_parquet(f) for f in files])["lead_id"]) if files else set()


def undelivered(port: int, why: str) -> float:
    text = call(port, "GET", "/metrics")[2].decode()
    line = next((x for x in text.splitlines()
                 if x.startswith(f'leadq_answers_undelivered_total{{why="{why}"}}')), "")
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_overload_is_shed_and_abandoned_answers_are_not_logged_as_delivered(served):
    """With the worker held: a client that hangs up, requests past their deadline and requests
    beyond serve.max_queue get no delivered answer (503 with Retry-After for those who wait),
    and none of them is in the scoring log; a request answered afterwards is."""
    app, port = served["app"], served["port"]
    scorer, log = app.state.scorer, app.state.scoring_log
    lead = served["valid"][0]
    body = lambda lead_id: json.dumps({**lead, "lead_id": lead_id}).encode()  # noqa: E731

    # A client that sends its lead and hangs up while it is being scored.
    gate = Gate(scorer.holder)
    scorer.holder = gate
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        gone = body("GONE-1")
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: " + str(len(gone)).encode() + b"\r\n\r\n" + gone)
        assert gate.entered.wait(10)
        sock.close()
        time.sleep(0.5)  # the server sees the connection close while the lead is scored
    finally:
        scorer.holder = gate.holder
        gate.open.set()
    assert wait_for(lambda: undelivered(port, "client gone") == 1, 10)

    # Clients that wait while the worker is held: the queue holds 4, the rest are shed at
    # once, and the queued ones get a 503 at their deadline (5 s after arrival).
    gate = Gate(scorer.holder)
    scorer.holder = gate
    scorer._queue.maxsize = 4  # serve.max_queue, small enough to fill here
    try:
        held = threading.Thread(target=call, args=(port, "POST", "/v1/score", body("HELD-1"),
                                                   JSON))
        held.start()  # the worker takes it and waits at the gate
        assert gate.entered.wait(10)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda i: (call(port, "POST", "/v1/score", body(f"LATE-{i}"), JSON),
                           time.monotonic() - started), range(8)))
        held.join()
    finally:
        scorer._queue.maxsize = served["params"]["serve"]["max_queue"]
        scorer.holder = gate.holder
        gate.open.set()
    for (status, headers, raw), seconds in answers:
        assert status == 503, raw
        assert headers["retry-after"].isdigit()
        assert seconds < 8, seconds  # the deadline, not the client's patience
    details = [json.loads(raw)["detail"] for (_, _, raw), _ in answers]
    assert sum("max_queue" in d for d in details) == 4, details
    assert sum("request_timeout_seconds" in d for d in details) == 4, details
    assert undelivered(port, "deadline") >= 5  # HELD-1 and the four queued

    status, _, raw = call(port, "POST", "/v1/score", body("KEPT-1"), JSON)
    assert status == 200, raw
    time.sleep(0.5)  # whatever the held worker still finishes
    log.flush()
    ids = logged_ids(log.directory)
    assert "KEPT-1" in ids
    assert not {"GONE-1", "HELD-1", *(f"LATE-{i}" for i in range(8))} & ids


def test_ready_waits_for_the_warm_up_and_follows_the_activity_log(store, monkeypatch):
    """Not ready while the warm-up lead cannot be scored (the model itself loads fine), ready
    once it can, not ready again (and scoring 503) while the activity log is gone."""
    from leadq.pipelines.service import app as app_module

    params = store["params"]
    created = params["data"]["leads"]["created_at"]
    real = app_module.warm_up_lead
    refused = []

    def no_date(served_, events, params_):
        refused.append(1)
        return {k: v for k, v in real(served_, events, params_).items() if k != created}

    monkeypatch.setattr(app_module, "warm_up_lead", no_date)
    app = app_module.create_app(params)
    activities = store["dir"] / "activities.csv"
    with running(app) as port:
        assert wait_for(lambda: len(refused) >= 2, 60)
        status, body = ready(port)
        assert status == 503 and "warm-up" in body["error"], body
        assert call(port, "GET", "/v1/live")[0] == 200
        assert app.state.holder.current is None  # the loaded model took no traffic
        monkeypatch.setattr(app_module, "warm_up_lead", real)
        assert wait_for(lambda: ready(port)[0] == 200, 30), ready(port)
        lead = json.dumps(store["valid"][0]).encode()
        assert call(port, "POST", "/v1/score", lead, JSON)[0] == 200

        os.replace(activities, activities.with_suffix(".moved"))
        try:
            assert wait_for(lambda: ready(port)[0] == 503, 10)
            status, body = ready(port)
            assert "activity log" in body["error"] and "activities.csv" in body["error"]
            status, headers, raw = call(port, "POST", "/v1/score", lead, JSON)
            assert status == 503 and "activity log" in json.loads(raw)["detail"]
            assert headers["retry-after"].isdigit()
        finally:
            os.replace(activities.with_suffix(".moved"), activities)
        assert wait_for(lambda: ready(port)[0] == 200, 10), ready(port)
        assert "error" not in ready(port)[1]
        assert call(port, "POST", "/v1/score", lead, JSON)[0] == 200


def test_a_champion_without_date_inputs_gets_ready_and_answers_as_the_batch_scorer(
        tmp_path, base_params, small_crm):
    """`init` turns date parts off on under two years of history (olist): the model then has no
    date among its inputs, but the contract still requires one on every lead. The warm-up lead
    must carry it, in the export's own date format, or the service never becomes ready."""
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import create_app
    from leadq.pipelines.train import main as train_main
    from tests.conftest import write_params

    fmt = "%d/%m/%Y %H:%M"
    leads = pd.read_csv(small_crm["leads"], dtype=str, keep_default_na=False)
    leads["created_at"] = pd.to_datetime(leads["created_at"], format="ISO8601").dt.strftime(fmt)
    crm = {**small_crm, "leads": tmp_path / "leads.csv"}
    leads.to_csv(crm["leads"], index=False)
    path = write_params(tmp_path, base_params, crm, train__candidates=["hgb"],
                        train__search={"enabled": False}, registry__criteria={},
                        features__date_parts=False, data__leads__date_format=fmt,
                        serve={"scoring_log": str(tmp_path / "serve_log"), "explain": True,
                               "max_batch": 4})  # under the warm-up's own micro-batch
    train_main(str(path))
    sample = leads.sample(5, random_state=8)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    assert cli(["score", "--input", str(tmp_path / "sample.csv"), "--output",
                str(tmp_path / "batch.csv"), "--params", str(path), "--explain"]) == 0
    batch = pd.read_csv(tmp_path / "batch.csv", dtype=str, keep_default_na=False)
    batch = batch.set_index("lead_id", drop=False)

    app = create_app(load_params(path))
    with running(app) as port:
        assert wait_for(lambda: ready(port)[0] == 200, 120), ready(port)
        for row in sample.to_dict("records"):
            lead = {k: v for k, v in row.items() if v != ""}
            status, _, raw = call(port, "POST", "/v1/score", json.dumps(lead).encode(), JSON)
            assert status == 200, raw
            assert_same(json.loads(raw), batch.loc[row["lead_id"]])
