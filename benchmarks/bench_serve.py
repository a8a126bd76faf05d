"""`leadq serve` latency on loopback: single-lead requests at fixed rates, and a 1,000-lead batch.

    .venv/bin/python benchmarks/bench_serve.py                 # trains its own demo-like model
    .venv/bin/python benchmarks/bench_serve.py --params params.yaml   # the champion of a store

The load is open-loop: requests are sent on a fixed schedule whatever the server does, and a
request's latency runs from its scheduled send time to the end of its answer, so a slow server
is not hidden by a client that waits for it (coordinated omission). Every run is bounded in
request count and time and talks only to 127.0.0.1. Reasons are on (serve.explain: true).
Past the sustained rate the service sheds load (serve.max_wait_ms, serve.max_queue, the deadline):
the overload run sends twice the sustained rate and reports the 503s (each with Retry-After),
the p99 of the requests that were answered, and the server's RSS before and after. Latency on
a shared machine is noisy: every figure is printed with the load average of its run.
Results go to benchmarks/out/bench_serve.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from common import leads_own_columns

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
LEADQ = [sys.executable, "-m", "leadq.pipelines.cli"]
# uvicorn closes a keep-alive connection idle for 5 s (timeout_keep_alive): a request sent on it
# as it closes fails in the client with BrokenPipeError or ConnectionResetError without the
# server having seen it. Connections idle this long are reopened before use, as HTTP client
# libraries do, and any drop that still happens is counted apart from the server's errors.
IDLE_RECONNECT_S = 4.0
DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
           http.client.RemoteDisconnected)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_store(work: Path, leads: int, activities: bool = True) -> tuple[Path, Path]:
    """A demo-like CRM and champion in `work` (params file, leads file to send)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    crm = work / "crm"
    if not (crm / "leads.csv").exists():
        subprocess.run([*LEADQ, "synth", "--out", str(crm), "--leads", str(leads), "--seed", "7"],
                       check=True)
    for table in ("leads", "deals", "feedback"):
        params["data"][table]["path"] = str(crm / f"{table}.csv")
    if activities:
        # As the demo serves: each request's activity features come from the CRM's log.
        params["data"]["activities"]["path"] = str(crm / "activities.csv")
    else:
        leads_own_columns(params)  # the configuration before the activity log
    # The repository's params.yaml holds only what differs from the defaults: no mlflow section.
    params["mlflow"] = {**(params.get("mlflow") or {}), "tracking_uri": "sqlite:///mlflow.db"}
    params.pop("recalibration", None)
    params["serve"] = {**(params.get("serve") or {}), "scoring_log": None, "access_log": False,
                       "reload_seconds": 30}
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    if not (work / "mlflow.db").exists():
        subprocess.run([*LEADQ, "train", "--params", str(path)], check=True)
    return path, crm / "leads.csv"


class Client:
    """Keep-alive connections from a small thread pool; `send` returns at once."""

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.jobs: queue.Queue = queue.Queue()
        self.results: list[tuple[float, float, int]] = []
        self.error_kinds: Counter = Counter()  # what each error was: an HTTP status or exception
        self.dropped_kinds: Counter = Counter()  # connections dropped under a request, by kind
        self._lock = threading.Lock()
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for w in self.workers:
            w.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        last_used = time.monotonic()
        while (job := self.jobs.get()) is not None:
            scheduled, body = job
            kind, dropped = None, None
            if time.monotonic() - last_used > IDLE_RECONNECT_S:
                conn.close()  # the next request opens a fresh connection
            try:
                conn.request("POST", "/v1/score", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                # A 503 must tell the client when to come back.
                if status == 503 and not (resp.getheader("Retry-After") or "").isdigit():
                    status = -503
                if status not in (200, 503):
                    kind = f"HTTP {status}"
            except DROPPED as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, dropped = -1, type(exc).__name__
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, kind = 0, type(exc).__name__
            last_used = time.monotonic()
            with self._lock:
                self.results.append((scheduled, time.perf_counter(), status))
                if kind is not None:
                    self.error_kinds[kind] += 1
                if dropped is not None:
                    self.dropped_kinds[dropped] += 1

    def send(self, scheduled: float, body: bytes) -> None:
        self.jobs.put((scheduled, body))

    def close(self) -> None:
        for _ in self.workers:
            self.jobs.put(None)
        for w in self.workers:
            w.join(timeout=60)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2 ** 20


def run_rate(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict:
    n = int(rate * seconds)
    # Enough connections for every request the server may hold until its deadline (2 s by
    # default): with fewer, requests queue in the client, where the server cannot shed them.
    client = Client(port, threads=min(400, max(8, int(rate * 2))))
    start = time.perf_counter() + 0.2
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        client.send(scheduled, bodies[i % len(bodies)])
    client.close()
    lat = np.array([(done - sched) * 1000 for sched, done, _ in client.results])
    answered = np.array([(done - sched) * 1000 for sched, done, s in client.results if s == 200])
    statuses = [s for *_, s in client.results]
    ok, dropped = statuses.count(200), statuses.count(-1)
    return {"rate": rate, "requests": n, "ok": ok, "shed_503": statuses.count(503),
            # Any other status, a 503 without Retry-After, no answer in 30 s, refused
            # connections; a connection dropped under a request is counted apart (`dropped`).
            "errors": n - ok - statuses.count(503) - dropped, "dropped": dropped,
            "dropped_kinds": dict(client.dropped_kinds),
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
            "answered_p99_ms": float(np.percentile(answered, 99)) if len(answered) else None,
            "error_kinds": dict(client.error_kinds), "load_average": load_average()}


def sequential(port: int, bodies: list[bytes], n: int, pid: int | None = None) -> dict:
    """One client, one lead at a time: the service's own latency, no queueing, and the server's
    CPU time per request (the floor of its latency however quiet the machine)."""
    import psutil

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    server = psutil.Process(pid) if pid is not None else None
    cpu_before = sum(server.cpu_times()[:2]) if server is not None else 0.0
    lat = []
    for i in range(n):
        t = time.perf_counter()
        conn.request("POST", "/v1/score", body=bodies[i % len(bodies)],
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        lat.append((time.perf_counter() - t) * 1000)
    cpu = (sum(server.cpu_times()[:2]) - cpu_before) / n * 1000 if server is not None else None
    return {"requests": n, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "server_cpu_ms": cpu,
            "load_average": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=None,
                        help="serve this store's champion (default: train one in out/serve)")
    parser.add_argument("--leads-file", type=Path, default=None,
                        help="leads to send (default: the synthetic CRM's)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per fixed rate")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-activities", action="store_true",
                        help="the leads' own columns only, no activity log")
    parser.add_argument("--max-rate", type=float, default=600.0,
                        help="highest rate tried in the sustained-rate search")
    args = parser.parse_args()

    work = OUT / ("serve" if not args.no_activities else "serve-no-activities")
    work.mkdir(parents=True, exist_ok=True)
    if args.params is None:
        params_path, leads_file = prepare_store(work, leads=50_000,
                                                activities=not args.no_activities)
    else:
        params_path, leads_file = args.params, args.leads_file
    leads = pd.read_csv(leads_file, dtype=str, keep_default_na=False).tail(5000)
    records = [{k: v for k, v in r.items() if v != ""} for r in leads.to_dict("records")]
    bodies = [json.dumps(r).encode() for r in records]
    batch = json.dumps(records[:1000]).encode()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LEADQ_API_TOKEN"}
    proc = subprocess.Popen([*LEADQ, "serve", "--params", str(params_path), "--port", str(port),
                             "--workers", str(args.workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict = {"workers": args.workers, "cpus": os.cpu_count()}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/v1/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("leadq serve did not become ready in 120 s")
        run_rate(port, bodies, 20, 3)  # warm-up
        results["sequential"] = sequential(port, bodies, 300, proc.pid)
        results["fixed"] = [run_rate(port, bodies, r, args.seconds) for r in (50, 200)]
        sustained, rate = None, 50.0
        while rate <= args.max_rate:
            r = run_rate(port, bodies, rate, 10)
            if r["p99_ms"] >= 100 or r["ok"] < r["requests"]:
                break
            sustained, rate = r, rate + 50
        results["sustained"] = sustained
        # Twice what it sustains (or twice the first rate it did not): shed, not queued.
        double = 2 * (sustained["rate"] if sustained else rate)
        rss_before = rss_mb(proc.pid)
        over = run_rate(port, bodies, double, args.seconds)
        results["overload"] = {**over, "rss_before_mb": rss_before,
                               "rss_after_mb": rss_mb(proc.pid)}
        times, refused = [], []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(6):
            t = time.perf_counter()
            conn.request("POST", "/v1/score", body=batch,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:  # told, not fatal: the runs above are still reported
                refused.append(f"{resp.status} {answer[:300].decode(errors='replace')}")
                time.sleep(1)
                continue
            times.append(time.perf_counter() - t)
        results["batch_1000_s"] = float(np.median(times[1:])) if len(times) > 1 else None
        results["batch_1000_refused"] = refused
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(f"\nleadq serve on 127.0.0.1, {args.workers} worker(s), {os.cpu_count()} cores, "
          "reasons on")
    q = results["sequential"]
    print(f"sequential single leads: p50 {q['p50_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms, "
          f"server CPU {q['server_cpu_ms']:.1f} ms a request (load average "
          f"{q['load_average']:.2f})")
    print("| load | requests | 200 | 503 | errors | dropped | p50 ms | p95 ms | p99 ms | "
          "p99 answered ms | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    runs = [*results["fixed"], *([results["sustained"]] if results["sustained"] else []),
            results["overload"]]
    for r in runs:
        answered = "n/a" if r["answered_p99_ms"] is None else f"{r['answered_p99_ms']:.1f}"
        print(f"| {r['rate']:.0f} req/s | {r['requests']} | {r['ok']} | {r['shed_503']} | "
              f"{r['errors']} | {r['dropped']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {answered} | {r['load_average']:.2f} |")
    for r in runs:
        if r["error_kinds"]:
            print(f"errors at {r['rate']:.0f} req/s: {r['error_kinds']}")
        if r["dropped_kinds"]:
            print(f"connections dropped under a request at {r['rate']:.0f} req/s (client side, "
                  f"not answered): {r['dropped_kinds']}")
    o = results["overload"]
    answered = "n/a" if o["answered_p99_ms"] is None else f"{o['answered_p99_ms']:.1f} ms"
    print(f"overload at {o['rate']:.0f} req/s: {o['shed_503']} shed with 503 + Retry-After, "
          f"p99 of the answered {answered}, RSS {o['rss_before_mb']:.0f} → "
          f"{o['rss_after_mb']:.0f} MB")
    s = results["sustained"]
    best = "none" if s is None else f"{s['rate']:.0f} req/s (p99 {s['p99_ms']:.1f} ms)"
    print(f"highest sustained rate with p99 < 100 ms: {best}")
    if results["batch_1000_s"] is not None:
        print(f"one 1,000-lead batch: {results['batch_1000_s']:.3f} s")
    for why in results["batch_1000_refused"]:
        print(f"a 1,000-lead batch was refused: {why}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_serve.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
