"""`leadq serve` in a subprocess on a free loopback port: the batch scorer's exact answers,
the HTTP contract's status codes, the bearer token, hot reload and the scoring log.

The server is stopped by PID at the end of the module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadq.pipelines.cli import main as cli
from tests.helpers import stop_server

TOKEN = "test-token-7f3a"
RELOAD_SECONDS = 1.0
ONE_BY_ONE = 200
AS_OF = "2026-06-30"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body, token: str | None = TOKEN, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _get(url: str, token: str | None = TOKEN):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            ctype = resp.headers.get("content-type", "")
            return resp.status, (json.loads(body) if "json" in ctype else body.decode())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_until_ready(base: str, proc, log: Path, seconds: float = 90) -> None:
    """Poll /v1/health until the server answers; fail with its log if it exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if _get(f"{base}/v1/health")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.3)
    pytest.fail(f"leadq serve did not become ready in {seconds:.0f} s")


NUMERIC = ("employees", "web_visits", "pages_viewed", "content_downloads", "email_opens",
           "demo_requested")


def _records(frame: pd.DataFrame, typed: bool = False) -> list[dict]:
    """Rows as a web form would send them: text cells, missing ones left out; with `typed`,
    numbers as JSON numbers, as most webhooks send them."""
    out = []
    for row in frame.to_dict("records"):
        lead = {k: v for k, v in row.items() if isinstance(v, str) and v != ""}
        if typed:
            for col in NUMERIC:
                if col in lead:
                    number = float(lead[col])
                    lead[col] = int(number) if number.is_integer() else number
        out.append(lead)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, base_params, small_crm):
    from tests.conftest import write_params

    d = tmp_path_factory.mktemp("serve")
    port = _free_port()
    leads = pd.read_csv(small_crm["leads"], dtype=str, keep_default_na=False)
    # One spoilt row, scored by both paths: the batch quarantines it, the service refuses it.
    spoilt = leads.iloc[[5]].copy()
    spoilt["lead_id"] = "SPOILT-1"
    spoilt["employees"] = "lots"
    sample = pd.concat([leads.head(ONE_BY_ONE), spoilt], ignore_index=True)
    sample_csv = d / "sample.csv"
    sample.to_csv(sample_csv, index=False)
    params = write_params(
        d, base_params, small_crm, train__candidates=["logreg"], train__search={"enabled": False},
        registry__criteria={},
        serve={"reload_seconds": RELOAD_SECONDS, "max_batch": 1000, "max_body_bytes": 2_000_000,
               "explain": True, "scoring_log": str(d / "serve_log"), "log_flush_rows": 500,
               "log_flush_seconds": 1, "access_log": False,
               "max_wait_ms": 2000},  # sixteen clients at once on a busy machine: not shed
        agreement__review_days=182)
    from leadq.pipelines.train import main as train_main

    train_main(str(params))
    assert cli(["score", "--input", str(sample_csv), "--output", str(d / "batch.csv"),
                "--params", str(params), "--explain"]) == 0
    env = {**os.environ, "LEADQ_API_TOKEN": TOKEN}
    env.pop("CI", None)
    with open(d / "server.log", "w") as server_log:  # a file: an unread pipe fills up
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadq.pipelines.cli", "serve", "--params", str(params),
             "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, proc, d / "server.log")
            yield {"base": base, "proc": proc, "dir": d, "params": str(params), "leads": leads,
                   "sample": sample, "batch": pd.read_csv(d / "batch.csv", dtype=str,
                                                          keep_default_na=False),
                   "quarantine": pd.read_csv(d / "batch.rejected.csv", dtype=str),
                   "log": d / "server.log"}
        finally:
            stop_server(proc)


FIELDS = ("is_mql", "tier", "reasons_positive", "reasons_negative", "model_version",
          "threshold_version", "explore")


def _assert_same(answer: dict, row: pd.Series) -> None:
    for key in ("score", "score_raw", "sales_propensity"):
        assert abs(answer[key] - float(row[key])) <= 1e-9, key
    for key in FIELDS:  # the CSV holds text: True, 1, "B"
        assert str(answer[key]) == row[key], (key, answer[key], row[key])
    assert answer["lead_id"] == row["lead_id"]
    assert pd.Timestamp(answer["scored_at"]).tzinfo is not None


def test_one_by_one_and_batch_answers_equal_leadq_score(server):
    batch = server["batch"].set_index("lead_id", drop=False)
    good = server["sample"].head(ONE_BY_ONE)
    # Half the leads with text cells, half with JSON numbers: both read as the CSV did.
    for i, lead in enumerate(_records(good)):
        if i % 2:
            lead = _records(good.iloc[[i]], typed=True)[0]
        status, answer = _post(f"{server['base']}/v1/score", lead)
        assert status == 200, answer
        _assert_same(answer, batch.loc[lead["lead_id"]])
    status, answer = _post(f"{server['base']}/v1/score", _records(good))
    assert status == 200
    assert [a["lead_id"] for a in answer["leads"]] == list(good["lead_id"])
    for a in answer["leads"]:
        _assert_same(a, batch.loc[a["lead_id"]])


def test_concurrent_requests_share_batches_but_not_answers(server):
    """Sixteen clients at once, so requests are scored together in micro-batches: each answer
    is still the batch scorer's for that lead, duplicates are judged per request, and a bad
    request fails alone."""
    from concurrent.futures import ThreadPoolExecutor

    batch = server["batch"].set_index("lead_id", drop=False)
    leads = _records(server["sample"].head(64))
    spoilt = _records(server["sample"].tail(1))[0]
    bodies = [leads[i] for i in range(64)] + [spoilt] * 4
    # The same lead in two concurrent requests is no duplicate: it is within one request.
    bodies += [[leads[0], leads[1]], [leads[1], leads[0]]]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: _post(f"{server['base']}/v1/score", b), bodies))
    for body, (status, answer) in zip(bodies, answers, strict=True):
        if body is spoilt:
            assert status == 422 and answer["rejected"][0]["id"] == "SPOILT-1"
        elif isinstance(body, list):
            assert status == 200, answer
            for lead, got in zip(body, answer["leads"], strict=True):
                _assert_same(got, batch.loc[lead["lead_id"]])
        else:
            assert status == 200, answer
            _assert_same(answer, batch.loc[body["lead_id"]])
            assert answer["warnings"] == []
    status, answer = _post(f"{server['base']}/v1/score", [leads[2], leads[2]])
    assert status == 422 and "duplicate" in answer["rejected"][0]["reason"]


def test_bad_lead_gets_the_quarantine_reason_as_a_422(server):
    spoilt = _records(server["sample"].tail(1))[0]
    status, answer = _post(f"{server['base']}/v1/score", spoilt)
    assert status == 422
    quarantined = server["quarantine"].set_index("lead_id").loc["SPOILT-1", "reason"]
    assert answer["detail"] == quarantined
    assert answer["rejected"] == [{"index": 0, "id": "SPOILT-1", "reason": quarantined}]


def test_unknown_fields_are_ignored_with_a_warning_and_missing_ones_are_missing(server):
    lead = _records(server["sample"].head(1))[0]
    lead.pop("industry")
    lead["utm_content"] = "x"
    status, answer = _post(f"{server['base']}/v1/score", lead)
    assert status == 200
    assert "unknown field 'utm_content' ignored" in answer["warnings"]


@pytest.mark.parametrize("body, raw, status", [
    (None, b'{"lead_id": "L1", ', 400),                           # malformed JSON
    ([{"lead_id": "L1", "employees": {"n": 3}}], None, 422),      # a wrong type
    ("just a string", None, 422),                                 # not a lead
    ([{"lead_id": f"L{i}"} for i in range(1001)], None, 413),     # over serve.max_batch
    (None, b'{"lead_id": "L1", "employees": ' + b"9" * 5000 + b"}", 400),  # an int too long
    (None, b"[" * 100_000 + b"]" * 100_000, 400),                 # nested past recursion
])
def test_bad_requests_get_4xx_never_500(server, body, raw, status):
    code, answer = _post(f"{server['base']}/v1/score", body, raw=raw)
    assert code == status, answer
    assert answer.get("detail")


def test_an_oversized_body_is_refused_with_413_before_it_is_read(server):
    import http.client

    host, port = server["base"].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/v1/score")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2_000_001))  # serve.max_body_bytes + 1
    conn.endheaders()  # no body sent: the answer must not wait for it
    response = conn.getresponse()
    assert response.status == 413
    assert "max_body_bytes" in json.loads(response.read())["detail"]
    conn.close()


def test_without_the_token_every_endpoint_is_401(server):
    lead = _records(server["sample"].head(1))[0]
    assert _post(f"{server['base']}/v1/score", lead, token=None)[0] == 401
    assert _post(f"{server['base']}/v1/score", lead, token="wrong")[0] == 401
    assert _get(f"{server['base']}/v1/health", token=None)[0] == 401
    assert _get(f"{server['base']}/metrics", token=None)[0] == 401


def test_model_metrics_and_openapi(server):
    status, info = _get(f"{server['base']}/v1/model")
    assert status == 200
    assert info["name"] == "leadq" and info["version"] == "1" and info["alias"] == "champion"
    assert info["threshold_version"] == "0" and info["test_metrics"]["test_roc_auc"] > 0.6
    status, text = _get(f"{server['base']}/metrics")
    assert status == 200
    assert 'leadq_requests_total{path="/v1/score",status="200"}' in text
    assert "leadq_request_seconds_bucket" in text and "leadq_mql_rate" in text
    status, spec = _get(f"{server['base']}/openapi.json")
    assert status == 200 and "/v1/score" in spec["paths"]


def test_recalibrate_on_the_scoring_log_equals_recalibrate_on_batch_files(server, capsys):
    """Every lead of the CRM scored online (in batches of 1,000) and as one batch file."""
    d, params, base = server["dir"], server["params"], server["base"]
    leads = server["leads"]
    for start in range(0, len(leads), 1000):
        status, _ = _post(f"{base}/v1/score", _records(leads.iloc[start:start + 1000]))
        assert status == 200
    leads.to_csv(d / "all.csv", index=False)
    assert cli(["score", "--input", str(d / "all.csv"), "--output",
                str(d / "all_scores.parquet"), "--params", params]) == 0
    expected = set(leads["lead_id"])
    deadline = time.monotonic() + 30  # log_flush_seconds is 1: the writer catches up
    while time.monotonic() < deadline:
        files = list((d / "serve_log").glob("scored_date=*/part-*.parquet"))
        logged = set(pd.concat([pd.read_parquet(f) for f in files])["lead_id"]) if files else set()
        if expected <= logged:
            break
        time.sleep(0.2)
    assert expected <= logged, f"{len(expected - logged)} leads not in the scoring log"

    def recalibrate(scores: str) -> dict:
        capsys.readouterr()
        assert cli(["--json", "recalibrate", "--as-of", AS_OF, "--dry-run", "--scores", scores,
                    "--params", params]) == 0
        entry = json.loads(capsys.readouterr().out)
        entry.pop("inputs", None)  # the file names differ, nothing else may
        for key in ("manifest", "manifest_path"):  # the run's own record: ids, timings
            entry.pop(key)
        return entry

    online = recalibrate(str(d / "serve_log" / "*" / "*.parquet"))
    offline = recalibrate(str(d / "all_scores.parquet"))
    assert online["threshold"] == pytest.approx(offline["threshold"], rel=1e-12)
    assert _same_nested(online, offline), (online, offline)


def _same_nested(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same_nested(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, equal_nan=True))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_nested(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_promotion_switches_the_answers_within_the_reload_window(server):
    """A second version becomes champion while a client keeps scoring: no request fails, and
    the answers name the new version soon after the alias moved."""
    base, params = server["base"], server["params"]
    from leadq.pipelines.train import main as train_main

    version = str(train_main(params)["version"])
    assert version == "2"
    lead = _records(server["sample"].head(1))[0]
    statuses, versions, errors, stop = [], [], [], threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status, answer = _post(f"{base}/v1/score", lead)
            except Exception as exc:  # noqa: BLE001 - a dropped connection is a failure too
                errors.append(repr(exc))
                continue
            statuses.append(status)
            versions.append((time.monotonic(), answer.get("model_version")))
            time.sleep(0.02)

    worker = threading.Thread(target=client)
    worker.start()
    try:
        time.sleep(0.5)
        assert cli(["promote", version, "--force", "--params", params]) == 0
        moved = time.monotonic()
        deadline = moved + RELOAD_SECONDS + 15
        while time.monotonic() < deadline and (not versions or versions[-1][1] != version):
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert errors == [] and set(statuses) == {200}
    switched = next((t for t, v in versions if v == version), None)
    assert switched is not None, "answers never named the new version"
    assert all(v == version for t, v in versions if t > switched)
    status, info = _get(f"{base}/v1/model")
    assert info["version"] == version and info["reload_error"] is None


def test_a_version_that_cannot_load_leaves_the_old_one_serving(server):
    """The champion alias moves to a version whose files are gone: the service keeps the
    version it has, says why in /v1/model, and takes the next good version when it comes."""
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    base, params = server["base"], server["params"]
    configure(load_params(params))
    client = mlflow.MlflowClient()
    serving = _get(f"{base}/v1/model")[1]["version"]
    broken = client.create_model_version("leadq", source=str(server["dir"] / "no-such-model"))
    client.set_registered_model_alias("leadq", "champion", broken.version)
    try:
        deadline = time.monotonic() + RELOAD_SECONDS + 20
        info = {}
        while time.monotonic() < deadline:
            info = _get(f"{base}/v1/model")[1]
            if info["reload_error"]:
                break
            time.sleep(0.2)
        assert info["reload_error"] and info["version"] == serving
        status, answer = _post(f"{base}/v1/score", _records(server["sample"].head(1))[0])
        assert status == 200 and answer["model_version"] == serving
        assert "reload failed" in server["log"].read_text()
    finally:
        client.set_registered_model_alias("leadq", "champion", serving)
    # The alias is back on the version served: the error is over, and says so.
    deadline = time.monotonic() + RELOAD_SECONDS + 20
    while time.monotonic() < deadline and _get(f"{base}/v1/model")[1]["reload_error"]:
        time.sleep(0.2)
    assert _get(f"{base}/v1/model")[1]["reload_error"] is None
    assert _get(f"{base}/v1/ready")[0] == 200
