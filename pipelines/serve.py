"""`leadq serve`: the real-time scoring API (FastAPI on uvicorn) for the champion model.

The app lives in leadq.pipelines.service.app; this is the command that starts it. With
`--workers N`, uvicorn starts N processes, each loading the model and following the registry
on its own (the params file reaches them through LEADQ_PARAMS).
"""

from __future__ import annotations

import os
from pathlib import Path

from leadq.errors import BadInputError


def main(params_path: str | None = None, *, host: str | None = None, port: int | None = None,
         workers: int | None = None, model_uri: str | None = None) -> dict:
    import uvicorn

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.service.app import TOKEN_ENV, app_from_env

    params = load_params(params_path)  # fail fast (exit 2) on a bad file, before binding
    if not params["data"]["leads"].get("id"):
        raise BadInputError("leadq serve needs data.leads.id: every answer and every row of "
                            "the scoring log is keyed by the lead's id")
    cfg = params["serve"]
    host = host or cfg["host"]
    port = int(port if port is not None else cfg["port"])
    workers = int(workers if workers is not None else cfg["workers"])
    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get(TOKEN_ENV):
        from leadq.pipelines.io.progress import log

        log.warning("serving on %s without %s: anyone who can reach this address can score "
                    "leads", host, TOKEN_ENV)
    # The registry is asked at start and every serve.reload_seconds: a store that does not
    # answer must show in /v1/ready within seconds, not after MLflow's default ~4 minutes of
    # retries (made for batch jobs riding out rate limits). The user's own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ["LEADQ_PARAMS"] = str(Path(params["_path"]))
    if model_uri:
        os.environ["LEADQ_MODEL_URI"] = model_uri
    # One process: the app object directly. Several: an import string, built in each worker.
    target = app_from_env() if workers == 1 else "leadq.pipelines.service.app:app_from_env"
    uvicorn.run(target, host=host, port=port, workers=workers, factory=workers > 1,
                log_level="info", access_log=bool(cfg["access_log"]))
    return {"stopped": True, "host": host, "port": port}
