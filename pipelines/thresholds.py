"""`leadq thresholds`: the threshold history of a registered model version.
"""

from __future__ import annotations

from leadq.errors import LeadqError
from leadq.pipelines.tracking.thresholds import TAG_VERSION, history


def main(params_path: str | None = None, *, model_version: str | None = None) -> dict:
    """`leadq thresholds`: the threshold history of a model version (default: the champion)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from leadq.pipelines.io.progress import log
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import CHAMPION, configure

    params = load_params(params_path)
    configure(params)
    client = mlflow.MlflowClient()
    name = params["registry"]["model_name"]
    try:
        mv = (client.get_model_version(name, model_version) if model_version
              else client.get_model_version_by_alias(name, CHAMPION))
    except MlflowException as exc:
        raise LeadqError(f"cannot find model {name} "
                         f"{'version ' + model_version if model_version else '@' + CHAMPION}: "
                         f"{exc.message.splitlines()[0]}") from exc
    rows = history(client, name, str(mv.version))
    current = int(dict(mv.tags).get(TAG_VERSION, "0"))
    import textwrap

    from leadq.features.agreement import describe_policy

    for e in rows:
        d = e.get("decision") or {}
        week = (f"{d['mql_per_week']:.0f} MQLs/week" if "mql_per_week" in d
                else "MQLs/week measured from the first recalibration")
        when = str(e.get("as_of") or "")[:10] or "at training"
        log.info("%s v%s t%s %s %s: bar %.4f, %s; policy: %s", "*" if
                 int(e["threshold_version"]) == current else " ", mv.version,
                 e["threshold_version"], e.get("source", ""), when, float(e["threshold"]),
                 week, describe_policy(e.get("policy")))
        bars = e.get("segment_bars") or {}
        for key, bar in (bars.get("bars") or {}).items():
            log.info("      bar for %s = %s: %.4f (%.0f%% of capacity)", bars["column"], key,
                     float(bar["threshold"]), 100 * float(bar["capacity_share"]))
        change = e.get("policy_change")
        if change:
            log.info("      policy changed by %s: %s", change.get("by"), change.get("reason"))
        for line in textwrap.wrap(str(e.get("reason") or ""), 96):
            log.info("      %s", line)
    return {"model_name": name, "model_version": str(mv.version), "current": current,
            "history": rows}
