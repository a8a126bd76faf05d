"""Team setup: a shared MLflow tracking server backed by PostgreSQL, artifacts served by the
server from a shared location. Train, register, promote and score through it over HTTP.

PostgreSQL and `mlflow server` are started on loopback in throw-away directories and stopped by
PID at the end. .ci/run installs PostgreSQL; locally the test skips only when it is absent.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

PG_USER = "leadq"
PG_DB = "mlflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl (Debian keeps them off PATH), or None."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found is None:
            break
    else:
        # Debian links initdb/pg_ctl into PATH but keeps createdb and friends beside the target.
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` system user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int

    @property
    def uri(self) -> str:
        # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; leadq ships psycopg2 (extra postgres).
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                        "stop", "-m", "fast", "-w"]),
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.datadir, ignore_errors=True)


def start_postgres(bindir: Path) -> Postgres:
    """initdb into a fresh temp dir, listen on 127.0.0.1 only, create the MLflow database."""
    datadir = Path(tempfile.mkdtemp(prefix="leadq-pg-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(datadir, pw.pw_uid, pw.pw_gid)
    port = free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(_as_server_user([
        str(bindir / "initdb"), "-D", str(datadir), "-U", PG_USER, "--auth=trust",
        "--encoding=UTF8", "--no-sync"]), **run)
    # The socket goes into the data dir: /var/run/postgresql may not exist or be writable.
    subprocess.run(_as_server_user([
        str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(datadir / "server.log"), "-w",
        "-o", f"-h 127.0.0.1 -p {port} -k {datadir} -c fsync=off", "start"]), **run)
    pg = Postgres(bindir=bindir, datadir=datadir, port=port)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", PG_USER, PG_DB], **run)
    except BaseException:
        pg.stop()
        raise
    return pg


@dataclass
class MlflowServer:
    proc: subprocess.Popen
    url: str
    artifacts: Path
    log: Path

    def stop(self) -> None:
        """Terminate the server and its workers: it was started in its own process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_mlflow_server(backend_uri: str, artifacts: Path, log: Path,
                        timeout: float = 120.0) -> MlflowServer:
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", str(artifacts), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    handle = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = MlflowServer(proc=proc, url=f"http://127.0.0.1:{port}", artifacts=artifacts,
                          log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {timeout}s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


# --------------------------------------------------------------------------- the test

BINDIR = postgres_bindir()
# Shared with every test module that starts a PostgreSQL server (test_score_database.py).
REQUIRES_POSTGRES = [
    pytest.mark.postgres,
    pytest.mark.skipif(BINDIR is None, reason="PostgreSQL server binaries (initdb, pg_ctl) not "
                       "found: apt-get install -y postgresql (.ci/run does)"),
    pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None,
                       reason="psycopg2 not installed: pip install '.[postgres]'"),
]
pytestmark = REQUIRES_POSTGRES


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("team")
    pg = start_postgres(BINDIR)
    server = None
    try:
        artifacts = base / "shared_artifacts"
        artifacts.mkdir()
        server = start_mlflow_server(pg.uri, artifacts, base / "mlflow_server.log")
        yield {"pg": pg, "server": server, "dir": base}
    finally:
        if server is not None:
            server.stop()
        pg.stop()
    assert server.proc.poll() is not None, "mlflow server still running after stop"


def leadq(args: list[str], env: dict, cwd: Path) -> dict:
    """Run the leadq CLI as a teammate would: a separate process that only knows the URL."""
    proc = subprocess.run([sys.executable, "-m", "leadq.pipelines.cli", "--json", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"leadq {args[0]} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def test_train_promote_score_through_shared_postgres_server(shared_server, make_params,
                                                            small_crm, tmp_path):
    import psycopg2

    server = shared_server["server"]
    # What is under test is the server path, not model quality: one fast candidate, and
    # criteria no model meets, so training registers a challenger that a human then promotes.
    params_path = make_params(tmp_path, small_crm, train__candidates=["logreg"],
                              train__search__enabled=False,
                              registry__criteria={"min_test_roc_auc": 0.999})
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "PYTHONWARNINGS": "ignore",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLFLOW_REGISTRY_URI", None)

    trained = leadq(["train", "--params", str(params_path)], env, tmp_path)
    version = str(trained["version"])
    assert trained["tracking_uri"] == server.url
    assert not trained["champion"]
    promoted = leadq(["promote", version, "--force", "--params", str(params_path)], env,
                     tmp_path)
    assert promoted["champion"] == version

    out = tmp_path / "scores.parquet"
    scored = leadq(["score", "--input", str(small_crm["leads"]), "--output", str(out),
                    "--params", str(params_path)], env, tmp_path)
    scores = pd.read_parquet(out)
    assert len(scores) == len(pd.read_csv(small_crm["leads"], usecols=["lead_id"]))
    assert (scores["model_version"] == version).all()
    assert scored["model_version"] == version

    # Runs, registry and aliases live in PostgreSQL ...
    with psycopg2.connect(host="127.0.0.1", port=shared_server["pg"].port, user=PG_USER,
                          dbname=PG_DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = 'leadq'")
        assert version in {str(r[0]) for r in cur.fetchall()}
        cur.execute("SELECT version FROM registered_model_aliases "
                    "WHERE name = 'leadq' AND alias = 'champion'")
        assert [str(r[0]) for r in cur.fetchall()] == [version]
        cur.execute("SELECT artifact_uri FROM runs WHERE run_uuid = %s", (trained["run_id"],))
        (artifact_uri,) = cur.fetchone()
    # ... and artifacts went over HTTP to the server's shared location, not to this machine.
    assert artifact_uri.startswith("mlflow-artifacts:")
    assert any(p.name == "MLmodel" for p in server.artifacts.rglob("MLmodel"))
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists()
