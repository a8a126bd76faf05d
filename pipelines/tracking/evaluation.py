"""Log a training run's evaluation tables, search trials and calibration choice to MLflow.

Called inside the active training run by tracking.log_training; mlflow is imported lazily.
"""

from __future__ import annotations

import json


def log_evaluation(result) -> None:
    """Gains, calibration, tiers and segment tables as CSV + JSON artifacts under evaluation/."""
    import mlflow

    for name, table in (result.tables or {}).items():
        mlflow.log_text(table.to_csv(index=False), f"evaluation/{name}.csv")
        mlflow.log_table(data=table, artifact_file=f"evaluation/{name}.json")
    searches = {
        name: {"best_params": s.best_params, "best_score": s.best_score,
               "seconds": s.seconds, "trials": s.trials}
        for name, s in (result.search or {}).items()
    }
    if searches:
        mlflow.log_text(json.dumps(searches, indent=2, default=str), "search.json")
    if result.calibration:
        mlflow.log_dict(result.calibration, "calibration_choice.json")
        mlflow.set_tag("leadq.calibration", result.calibration.get("method", ""))
