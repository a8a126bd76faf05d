"""The uplift model registered beside the conversion model (issue 29): `leadq lift
--fit-uplift` fits it on the randomised scored leads and registers it as
`<registry.model_name>-uplift`, tagged with the conversion model version it was fitted for;
scoring with that version adds a per-lead `uplift` column. The version also carries the bar
on the call's value (tags `uplift_cutoff`, `value_cutoff`): what agreement.route_by:
call_value routes by (models/uplift.value_bar). Loaded, like every model, only
through the trusted-types check (store.load_sklearn_model)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from leadq.pipelines.io.progress import log

FOR_VERSION = "for_version"  # the tag naming the conversion model version it belongs to
# The bar on the call's value, as uplift (what scoring compares: it holds whatever deal value
# and call cost the agreement states later, as the gain is increasing in the uplift) and as the
# gain under the agreement's terms when it was set (what people read).
UPLIFT_CUTOFF = "uplift_cutoff"
VALUE_CUTOFF = "value_cutoff"


def uplift_model_name(params: dict) -> str:
    return f"{params['registry']['model_name']}-uplift"


def register_uplift(params: dict, model: Any, *, for_version: str, figures: dict,
                    sample: pd.DataFrame) -> dict:
    """Log the fitted uplift model (models.uplift.CallUplift) in its own run and register it,
    tagged with the conversion model version and its held-out figures."""
    import math

    import mlflow
    from mlflow.models import infer_signature

    from leadq.pipelines.tracking.runs import owner_tags
    from leadq.pipelines.tracking.store import (
        configure,
        pip_requirements,
        quiet_registry_prints,
        trusted_types,
    )

    configure(params)
    name = uplift_model_name(params)
    with mlflow.start_run(run_name=f"uplift-for-{for_version}", tags=owner_tags()) as run:
        mlflow.set_tags({"leadq.step": "uplift", FOR_VERSION: for_version})
        mlflow.log_metrics({k: float(v) for k, v in figures.items()
                            if isinstance(v, int | float) and math.isfinite(v)})
        with quiet_registry_prints():
            info = mlflow.sklearn.log_model(
                model, name="uplift", signature=infer_signature(sample, model.predict(sample)),
                pyfunc_predict_fn="predict", pip_requirements=pip_requirements(),
                skops_trusted_types=trusted_types(model), registered_model_name=name)
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version, FOR_VERSION, str(for_version))
    for key, value in figures.items():
        client.set_model_version_tag(name, version, key, str(value))
    log.info("registered %s version %s for %s version %s", name, version,
             params["registry"]["model_name"], for_version)
    return {"model_name": name, "version": version, "run_id": run_id,
            FOR_VERSION: str(for_version)}


def find_uplift(params: dict, for_version: str):
    """The newest registered uplift model version fitted for this conversion model version,
    or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = uplift_model_name(params)
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    mine = [v for v in versions if (v.tags or {}).get(FOR_VERSION) == str(for_version)]
    return max(mine, key=lambda v: int(v.version)) if mine else None


def load_uplift(params: dict, for_version: str):
    """(the uplift model, its registry version, its bar on uplift) for this conversion model
    version; (None, None, None) when none is registered, and a None bar for a version
    registered before the bar existed."""
    from leadq.pipelines.tracking.store import load_sklearn_model

    mv = find_uplift(params, for_version)
    if mv is None:
        return None, None, None
    cutoff = (mv.tags or {}).get(UPLIFT_CUTOFF)
    return (load_sklearn_model(f"models:/{mv.name}/{mv.version}"), str(mv.version),
            None if cutoff in (None, "", "None") else float(cutoff))
