"""No personal data in what `leadq recalibrate` and `leadq report` log to MLflow.

Unique emails, phones and names are planted in the leads file (in a training lead, in one of
the newest leads that recalibration works on, and in a quarantined row); then train → score →
recalibrate → report, and every byte under the MLflow store (the sqlite file and the artifact
directory) is searched for them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import cli_json, copy_crm

AS_OF = "2026-06-30"
PLANTED = {
    "old": ("qz.old.lead71@piicorp-k4q.example", "+99 555 0101717", "Qzoldfirst", "Qzoldlast"),
    "new": ("qz.new.lead93@piicorp-k4q.example", "+99 555 0109393", "Qznewfirst", "Qznewlast"),
    "bad": ("qz.bad.row55@piicorp-k4q.example", "+99 555 0105555", "Qzbadfirst", "Qzbadlast"),
}


@pytest.mark.slow
def test_recalibrate_and_report_runs_hold_no_personal_data(tmp_path, small_crm, make_params,
                                                           capsys):
    crm = copy_crm(small_crm, tmp_path / "crm")
    leads = pd.read_csv(crm["leads"], dtype=str)
    cols = ["email", "phone", "first_name", "last_name"]
    newest = leads.index[-1]
    leads.loc[5, cols] = PLANTED["old"]
    leads.loc[newest, cols] = PLANTED["new"]
    leads.loc[newest - 1, cols] = PLANTED["bad"]
    leads.loc[newest - 1, "created_at"] = "not-a-date"
    leads.to_csv(crm["leads"], index=False)

    store = tmp_path / "store"
    store.mkdir()
    scored = tmp_path / "scored"  # outside the store: a score file carries the lead ids
    params = str(make_params(
        store, crm, train__candidates=["logreg"], train__search={"enabled": False},
        registry__criteria={},
        agreement__capacity_per_week=6.0,
        recalibration__scores=str(scored / "scores_*.parquet"), agreement__review_days=182,
        report__importance_repeats=1, report__shap_rows=300))
    train = cli_json(capsys, ["train", "--params", params])
    cli_json(capsys, ["score", "--input", str(crm["leads"]), "--output",
                  str(scored / "scores_1.parquet"), "--params", params])
    recal = cli_json(capsys, ["recalibrate", "--as-of", AS_OF, "--params", params])
    report = cli_json(capsys, ["report", "--out", str(tmp_path / "report.html"),
                               "--params", params])

    # The planted leads took part: the newest was scored and is in the recalibration window,
    # and the report page (its copy outside the store) was built from the planted CRM.
    scores = pd.read_parquet(scored / "scores_1.parquet")
    assert leads.loc[newest, "lead_id"] in set(scores["lead_id"].astype(str))
    assert recal["n_recent"] > 0 and recal["threshold_version"] == 1
    assert report["model_version"] == str(train["version"])

    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    configure(load_params(params))
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    steps = {r.data.tags.get("leadq.step") for r in runs}
    assert "recalibrate" in steps, steps
    recal_run = mlflow.MlflowClient().get_run(recal["run_id"])
    assert recal_run.data.tags["leadq.step"] == "recalibrate"

    # The quarantine files (leadq-out/, owner-only) hold refused rows as they were, personal
    # data included: that is their job. Everything else, run manifests included, must not.
    files = [p for p in store.rglob("*")
             if p.is_file() and not p.name.endswith(".rejected.csv")]
    assert any(p.name.endswith(".manifest.json") for p in files)
    logged_reports = [p for p in files if p.name == "report.html"]
    assert logged_reports, "the report was not logged to the store"
    assert any(p.name == "threshold.json" and recal["run_id"] in str(p) for p in files)
    assert any(p.name == "mlflow.db" for p in files)
    for values in PLANTED.values():
        for planted in (*values, "piicorp-k4q"):
            needle = planted.encode()
            hits = [str(p) for p in files if needle in p.read_bytes()]
            assert not hits, f"{planted} found in {hits}"
