"""`leadq agreement`: the agreement both teams signed (params `agreement:`), in words, with the
bar in force when a champion is registered."""

from __future__ import annotations

from leadq.pipelines.io.progress import log


def in_force(params: dict, model_uri: str | None = None) -> dict | None:
    """The champion's threshold version in force (bar, policy, MQLs a week), or None when no
    model is registered yet. Reads registry tags only: no model is loaded."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from leadq.errors import BadInputError
    from leadq.pipelines.score import require_store
    from leadq.pipelines.tracking.store import CHAMPION, configure
    from leadq.pipelines.tracking.thresholds import current_entry

    try:
        require_store(params, model_uri)  # a local store that does not exist stays uncreated
    except BadInputError:
        return None
    configure(params)
    client = mlflow.MlflowClient()
    name = params["registry"]["model_name"]
    try:
        if model_uri and model_uri.startswith("models:/") and "@" not in model_uri:
            name, version = model_uri[len("models:/"):].split("/")[:2]
            mv = client.get_model_version(name, version)
        else:
            alias = model_uri.split("@")[1] if model_uri and "@" in model_uri else CHAMPION
            mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    entry = current_entry(client, name, str(mv.version), dict(mv.tags))
    return {"model_version": str(mv.version), "threshold": float(entry["threshold"]),
            "threshold_version": int(entry.get("threshold_version") or 0),
            "policy": entry.get("policy"),
            "mql_per_week": entry.get("mql_per_week")
            or (entry.get("decision") or {}).get("mql_per_week")}


def main(params_path: str | None = None, *, model_uri: str | None = None) -> dict:
    from leadq.pipelines.params.loader import agreement_of, load_params

    params = load_params(params_path)
    agreement = agreement_of(params)
    current = in_force(params, model_uri)
    lines = agreement.words(
        mql_per_week=(current or {}).get("mql_per_week"),
        policy_in_force=(current or {}).get("policy"),
        label_rejected_negative=bool(params["label"]["rejected_is_negative"]))
    if current:
        lines.append(f"The bar in force: score ≥ {current['threshold']:.4f} (model version "
                     f"{current['model_version']}, threshold version "
                     f"{current['threshold_version']}).")
    else:
        lines.append("No model is registered yet: `leadq train` sets the first bar with this "
                     "policy.")
    print(f"The agreement ({params['_path']}):")
    for line in lines:
        print(f"  • {line}")
    log.debug("agreement printed")
    return {"agreement": agreement.mql.as_dict() | {
        "capacity_per_week": agreement.capacity_per_week, "sla_hours": agreement.sla_hours,
        "sla_target": agreement.sla_target, "review_days": agreement.review_days,
        "campaign_column": agreement.campaign_column},
        "in_force": current, "sentences": lines}
