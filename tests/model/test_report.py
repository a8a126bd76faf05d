"""`leadq report` on a synthetic CRM: personas and campaign quality find what the generator hid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.features.tables import coerce_leads
from leadq.models.insights import persona_attributes, wilson


def _persona_mix(report_store, segment_keys, segment_values) -> pd.Series:
    """The generator's true personas of the leads inside one report segment."""
    import yaml

    params = yaml.safe_load(report_store["params_path"].read_text())
    leads = coerce_leads(pd.read_csv(report_store["crm"]["leads"], dtype=str), params)
    attrs = persona_attributes(leads, params)
    mask = np.ones(len(leads), bool)
    for key, value in zip(segment_keys, segment_values, strict=True):
        mask &= (attrs[key] == value).to_numpy()
    truth = pd.read_csv(report_store["crm"]["truth"], dtype=str).set_index("lead_id")
    return truth.loc[leads.loc[mask, "lead_id"], "persona"].value_counts(normalize=True)


@pytest.fixture(scope="module")
def report_data(report_store):
    """The report's figures, recomputed in process from the same champion and tables."""
    import mlflow

    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.report import compute_report
    from leadq.pipelines.scoring.model import load_scoring_model

    params = load_params(report_store["params_path"])
    params["report"]["importance_repeats"] = 1
    scoring = load_scoring_model(params)
    model = mlflow.sklearn.load_model(scoring.uri)
    return compute_report(model, load_crm(params), params, threshold=scoring.threshold)


def test_best_persona_is_the_sme_finance_director_and_worst_the_student(report_data,
                                                                        report_store):
    best, worst = report_data.personas_best, report_data.personas_worst
    top, bottom = best.iloc[0], worst.iloc[0]
    mix_top = _persona_mix(report_store, top["keys"], top["values"])
    mix_bottom = _persona_mix(report_store, bottom["keys"], bottom["values"])
    assert mix_top.idxmax() == "sme_finance_director" and mix_top.max() > 0.7, (
        top["segment"], mix_top.to_dict())
    assert mix_bottom.idxmax() == "student" and mix_bottom.max() > 0.7, (
        bottom["segment"], mix_bottom.to_dict())
    # Spelled in the generator's terms: finance / professional services, 20–199 staff.
    described = " ".join(best["segment"].head(3))
    assert "finance" in described or "professional services" in described
    assert (best["rate"] > worst["rate"].max()).all()
    assert best["leads"].min() >= 30 and worst["leads"].min() >= 30


def test_junk_campaign_is_flagged_and_good_ones_are_not(report_data, report_store):
    c = report_data.campaigns.set_index("campaign")
    assert c.loc["cmp_99_social_giveaway", "flag"]
    assert c.loc["cmp_99_social_giveaway", "rejected_share"] > 0.8
    assert "student" in c.loc["cmp_99_social_giveaway", "rejection_reasons"]
    for good in ("cmp_19_partner_accountants", "cmp_23_cfo_roundtable", "cmp_03_cfo_webinar"):
        assert not c.loc[good, "flag"], good
    assert c["leads"].sum() == len(pd.read_csv(report_store["crm"]["leads"], usecols=[0]))
    assert report_store["report"]["flagged_campaigns"][0] == "cmp_99_social_giveaway"


def test_importance_and_insights_match_the_generator(report_data):
    imp = report_data.importance.set_index("column")["importance"]
    # The oracle's strongest effects are the job title and the industry; country has none.
    assert imp.index[0] in ("job_title", "industry")
    assert imp["job_title"] > imp["country"] + 0.02
    jobs = report_data.insights["job_title"].set_index("value")
    assert jobs.loc["cfo", "lift"] > 2 > jobs.loc["student", "lift"]
    lo, hi = wilson(jobs.loc["cfo", "conversions"], jobs.loc["cfo", "leads"])
    assert lo < jobs.loc["cfo", "rate"] < hi
    assert report_data.shap_summary["max_additivity_error"] < 1e-9


def test_report_page_is_self_contained_logged_and_free_of_personal_data(report_store):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    html = report_store["html"].read_text(encoding="utf-8")
    for section in ("What drives conversion", "Attribute insights", "Ideal customer profile",
                    "Anti-persona", "Campaign quality", "Model health", "Threshold trade-off",
                    "Tiers", "Sales follow-up", "Tree SHAP"):
        assert section in html, section
    assert "<script src" not in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    leads = pd.read_csv(report_store["crm"]["leads"], dtype=str)
    assert "@" not in html
    for col in ("last_name", "phone"):
        assert not any(v in html for v in leads[col].dropna().unique()[:500] if len(v) > 5)
    configure(load_params(report_store["params_path"]))
    run_id = report_store["report"]["run_id"]
    assert run_id == report_store["train"]["run_id"]
    logged = mlflow.artifacts.load_text(f"runs:/{run_id}/report/report.html")
    assert logged == html
