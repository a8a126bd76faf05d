"""Threshold versions of a registered model: one MLflow run per version, tags point at the latest.

Version 0 is the bar chosen on the model's own validation data at training (tags
`mql_threshold`, `train_run_id` → threshold.json). Each `leadq recalibrate` adds version n+1:
an MLflow run (tags leadq.step=recalibrate, leadq.model_name, leadq.model_version,
leadq.threshold_version; artifact threshold.json with inputs, metrics and reason) plus model-
version tags `threshold_version`, `threshold_current` (JSON the scorer applies) and
`threshold_history` (a compact JSON list). History is keyed by model version, never by alias,
so it stays readable after another version becomes champion.
"""

from __future__ import annotations

import json
from typing import Any

from leadq.errors import LeadqError

TAG_VERSION = "threshold_version"
TAG_CURRENT = "threshold_current"
TAG_HISTORY = "threshold_history"
_HISTORY_KEEP = 40  # compact tag only; the runs keep everything
_TAG_LIMIT = 5000  # MLflow's tag value limit


def load_json_artifact(uri: str) -> dict:
    """mlflow.artifacts.load_dict without the progress bar on stderr (scorer logs stay clean)."""
    import os

    import mlflow

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        return mlflow.artifacts.load_dict(uri)
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def training_tags(decision: Any, agreement: Any) -> dict[str, str]:
    """Threshold version 0 as model-version tags: written here at registration and read back
    by training_entry, the one writer and the one reader. `decision`: the training's
    ThresholdDecision; `agreement`: the Agreement it followed."""
    return {"mql_threshold": repr(decision.threshold), "threshold_policy": decision.policy,
            # The whole policy, not only its name: recalibrate compares it with the agreement.
            "mql_policy": json.dumps(agreement.policy_key()),
            "threshold_reason": decision.reason}


def training_entry(client: Any, name: str, version: str, tags: dict | None = None) -> dict:
    """Threshold version 0: the bar chosen on the model's validation data when it was trained."""

    if tags is None:
        tags = dict(client.get_model_version(name, version).tags)
    entry = {"threshold_version": 0, "threshold": float(tags.get("mql_threshold", 0.5)),
             "cutoffs": None, "correction": None, "source": "train",
             "policy": _policy_tag(tags), "reason": tags.get("threshold_reason", ""),
             "run_id": tags.get("train_run_id"), "model_name": name, "model_version": str(version)}
    run_id = tags.get("train_run_id")
    if run_id:
        try:
            decision = load_json_artifact(f"runs:/{run_id}/threshold.json")
        except Exception:  # noqa: BLE001 - an older run without the artifact still scores
            decision = {}
        if decision.get("cutoffs"):
            entry["cutoffs"] = [float(c) for c in decision["cutoffs"]]
        if decision.get("segment_bars"):
            entry["segment_bars"] = decision["segment_bars"]
        base = decision.get("base_rate")
        if base is not None and 0 < float(base) < 1:
            # The prior the calibrated scores reflect: the reference for prior-shift correction.
            entry["correction"] = {"prior_ref": float(base), "prior_now": float(base),
                                   "method": "none", "platt": None}
        entry["created_at"] = None
    return entry


def _policy_tag(tags: dict) -> dict | None:
    """The MQL policy the training bar followed (agreement.mql at training); None for a model
    trained before the agreement recorded it (recalibration then adopts the agreement's)."""
    try:
        return json.loads(tags["mql_policy"])
    except (KeyError, TypeError, ValueError):
        # Trained before the agreement: only the policy's name was recorded.
        name = tags.get("threshold_policy")
        return {"policy": name} if name else None


def current_entry(client: Any, name: str, version: str, tags: dict | None = None) -> dict:
    """The threshold version the scorer applies for this model version."""
    if tags is None:
        tags = dict(client.get_model_version(name, version).tags)
    if TAG_CURRENT in tags:
        return json.loads(tags[TAG_CURRENT])
    return training_entry(client, name, version, tags)


def history(client: Any, name: str, version: str) -> list[dict]:
    """Every threshold version of one model version, oldest first (version 0 = training)."""
    import mlflow

    entries = [training_entry(client, name, version)]
    filt = (f"tags.`leadq.step` = 'recalibrate' and tags.`leadq.model_name` = '{name}' "
            f"and tags.`leadq.model_version` = '{version}'")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = mlflow.search_runs(experiment_ids=experiments, filter_string=filt,
                              output_format="list", max_results=5000)
    for run in runs:
        try:
            entry = load_json_artifact(f"runs:/{run.info.run_id}/threshold.json")
        except Exception as exc:  # noqa: BLE001
            raise LeadqError(f"threshold run {run.info.run_id} has no readable threshold.json: "
                             f"{exc}") from exc
        entries.append(entry)
    return sorted(entries, key=lambda e: int(e["threshold_version"]))


def _scalar_metrics(entry: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for section in ("decision", "measured", "sla"):
        for k, v in (entry.get(section) or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
                out[f"{section}_{k}"] = float(v)
    for k in ("threshold", "volume_per_week", "score_psi"):
        if isinstance(entry.get(k), int | float):
            out[k] = float(entry[k])
    return out


def _compact_bars(bars: dict) -> dict:
    keep = ("threshold", "cutoffs", "capacity_share")
    return {"column": bars["column"], "pooled": {k: bars["pooled"].get(k) for k in keep},
            "bars": {seg: {k: b.get(k) for k in keep} for seg, b in bars["bars"].items()}}


def save(client: Any, params: dict, name: str, version: str, entry: dict) -> dict:
    """Store `entry` as the next threshold version of model `name` version `version`."""
    import mlflow

    from leadq.pipelines.tracking.store import configure

    configure(params)
    tags = dict(client.get_model_version(name, version).tags)
    number = int(tags.get(TAG_VERSION, "0")) + 1
    entry = {**entry, "threshold_version": number, "model_name": name,
             "model_version": str(version), "source": "recalibrate"}
    with mlflow.start_run(run_name=f"recalibrate-{name}-v{version}-t{number}") as run:
        mlflow.set_tags({"leadq.step": "recalibrate", "leadq.model_name": name,
                         "leadq.model_version": str(version),
                         "leadq.threshold_version": str(number)})
        entry["run_id"] = run.info.run_id
        mlflow.log_params({"policies": json.dumps(entry.get("policies"))[:500],
                           "as_of": str(entry.get("as_of")),
                           "window_days": str(entry.get("window_days"))})
        mlflow.log_metrics(_scalar_metrics(entry))
        mlflow.log_dict(entry, "threshold.json")
    current = {k: entry.get(k) for k in ("threshold_version", "threshold", "cutoffs",
                                         "correction", "run_id", "as_of", "model_name",
                                         "model_version", "capacity_used",
                                         "capacity_measured", "policy")}
    if entry.get("segment_bars"):
        # What the scorer applies, without the per-segment reasons (the run keeps those): the
        # tag must stay whole JSON within MLflow's limit.
        current["segment_bars"] = _compact_bars(entry["segment_bars"])
    current["reason"] = str(entry.get("reason", ""))[:1000]
    current["mql_per_week"] = (entry.get("decision") or {}).get("mql_per_week")
    compact = json.loads(tags.get(TAG_HISTORY, "[]"))
    compact.append([number, round(float(entry["threshold"]), 6), str(entry.get("as_of")),
                    entry["run_id"]])
    text = json.dumps(compact[-_HISTORY_KEEP:])
    while len(text) > _TAG_LIMIT and len(compact) > 1:
        compact = compact[1:]
        text = json.dumps(compact)
    text_current = json.dumps(current)
    if len(text_current) > _TAG_LIMIT:
        # Cut the free text, never the JSON: a truncated tag would not load.
        current["reason"] = current["reason"][:max(0, 1000 - (len(text_current) - _TAG_LIMIT))]
        text_current = json.dumps(current)
    if len(text_current) > _TAG_LIMIT:
        raise LeadqError(f"the threshold version's bars do not fit an MLflow tag "
                         f"({len(text_current)} > {_TAG_LIMIT} characters): too many segments "
                         "in segments.capacity_share")
    client.set_model_version_tag(name, version, TAG_CURRENT, text_current)
    client.set_model_version_tag(name, version, TAG_HISTORY, text)
    # Last: a reader that sees the new number also sees the entry it points to.
    client.set_model_version_tag(name, version, TAG_VERSION, str(number))
    return entry
