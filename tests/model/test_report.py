"""`leadq report` on a synthetic CRM: personas and campaign quality find what the generator hid."""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from leadq.features.tables import coerce_leads
from leadq.models.insights import persona_attributes, wilson
from tests.helpers import DOLLARS, IMG, SCRIPT, planted_report


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
    # (Values read as the export spells them most often: compared ignoring case.)
    described = " ".join(best["segment"].head(3)).lower()
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


def test_flagged_campaigns_are_in_the_campaign_insight_by_name(report_data, report_store):
    # The campaign column is among the insight columns here; the campaigns cut under Campaign
    # quality rank at the bottom by lift (beyond the rows shown) and are listed all the same.
    from leadq.pipelines.reporting.html import INSIGHT_ROWS

    cut = report_data.campaigns.loc[report_data.campaigns["flag"], "campaign"].tolist()
    assert "cmp_99_social_giveaway" in cut
    table = report_data.insights["campaign"].set_index("value")
    assert set(cut) <= set(table.index) and table.loc[cut, "kept"].all()
    assert len(table) > INSIGHT_ROWS and table.index.get_loc("cmp_99_social_giveaway") >= \
        INSIGHT_ROWS
    html = report_store["html"].read_text(encoding="utf-8")
    section = re.search(r'<figure class="chart" data-chart="insight-campaign">.*?</table>',
                        html, flags=re.S).group(0)
    for name in cut:
        assert f">{name}</text>" in section, name  # a label of the chart
        assert f'<td class="t">{name}</td>' in section, name  # and its row of the table


def test_importance_and_insights_match_the_generator(report_data):
    imp = report_data.importance.set_index("column")["importance"]
    # The oracle's strongest effects are the job title and the industry; country has none.
    assert imp.index[0] in ("job_title", "industry")
    assert imp["job_title"] > imp["country"] + 0.02
    jobs = report_data.insights["job_title"]
    jobs = jobs.set_index(jobs["value"].str.lower())  # shown as the export spells them
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
    # No script at all; the only URLs are the SVG namespaces (names, never fetched).
    assert "<script" not in html.lower()
    names = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")
    assert "http://" not in functools.reduce(lambda t, n: t.replace(n, ""), names, html)
    assert "https://" not in html
    # Every chart is one matplotlib SVG inlined in its figure (no XML prolog inside the page).
    figures = re.findall(r'<figure class="chart".*?</figure>', html, flags=re.S)
    assert len(figures) == len(re.findall("<svg", html)) >= 8
    assert all(f.count("<svg") == 1 for f in figures)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    leads = pd.read_csv(report_store["crm"]["leads"], dtype=str)
    assert "@" not in html
    for col in ("last_name", "phone"):
        assert not any(v in html for v in leads[col].dropna().unique()[:500] if len(v) > 5)
    configure(load_params(report_store["params_path"]))
    run_id = report_store["report"]["run_id"]
    assert run_id == report_store["train"]["run_id"]
    logged = mlflow.artifacts.load_text(f"runs:/{run_id}/report/report.html")
    assert logged == html


def test_data_science_detail_is_one_section_at_the_end(report_store):
    html = report_store["html"].read_text(encoding="utf-8")
    start = html.index('<section class="ds" data-section="data-scientists">')
    ds, rest = html[start:html.index("</section>", start)], html[:start]
    assert "for data scientists" in ds
    # Test metrics, calibration, gains, the threshold trade-off and tiers are in it, ...
    for part in ("test ROC AUC<b>", "calibration error (ECE)", 'data-chart="calibration"',
                 'data-chart="gains"', 'data-chart="threshold-tradeoff"', "<h3>Tiers</h3>"):
        assert part in ds and part not in rest, part
    # ... after everything a marketer reads.
    for section in ("What drives conversion", "Attribute insights", "Personas",
                    "Campaign quality", "Sales follow-up"):
        assert section in rest and section not in ds, section


# --- the page is a template; data is escaped; charts are matplotlib SVG ----------------------
def test_template_ships_as_package_data_and_autoescapes():
    from importlib.resources import files

    from jinja2 import PackageLoader

    from leadq.pipelines.reporting.html import TEMPLATE, environment

    resource = files("leadq.pipelines.reporting").joinpath("templates", TEMPLATE)
    assert resource.is_file()
    env = environment()
    assert isinstance(env.loader, PackageLoader)
    assert env.from_string("{{ v }}").render(v=SCRIPT) == (
        "&lt;script&gt;window.__pwned=1;document.title=&#39;pwned&#39;&lt;/script&gt;")
    assert "|safe" not in resource.read_text(encoding="utf-8")


def _svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # also proves the inlined SVG is well-formed XML
    bad = [el.tag for el in root.iter() if el.tag.rsplit("}", 1)[-1].lower() in
           ("script", "foreignobject", "img", "iframe")]
    handlers = [k for el in root.iter() for k in el.attrib if k.lower().startswith("on")]
    assert not bad and not handlers, (bad, handlers)
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("}text")]


def test_chart_labels_with_markup_stay_inert_text_in_the_svg():
    from leadq.pipelines.reporting.charts import hbar_chart, line_chart, strip_chart

    labels = [SCRIPT, IMG, DOLLARS]
    svgs = [hbar_chart("x", labels, [0.1, np.nan, 0.3], percent=True),
            strip_chart("y", labels, np.array([[0.1, -0.2, 0.3]] * 4),
                        np.array([[0.0, np.nan, 1.0]] * 4)),
            line_chart("z", [(SCRIPT, [0, 1], [0, 1])], marker=(0.5, 0.5, IMG))]
    for svg in svgs:
        assert svg.startswith("<svg") and "<script" not in svg and "<img" not in svg
        texts = _svg_texts(svg)
        assert SCRIPT in texts, texts
    assert IMG in _svg_texts(svgs[0]) and IMG in _svg_texts(svgs[2])
    assert DOLLARS in _svg_texts(svgs[0])
    assert "&lt;script&gt;window.__pwned=1" in svgs[0]


def test_long_labels_wrap_whole_and_are_never_cut():
    from leadq.pipelines.reporting.charts import WRAP_CHARS, hbar_chart, strip_chart

    spaced = "partner webinar for finance directors " * 4  # 152 characters, wraps at spaces
    solid = "x" * (2 * WRAP_CHARS + 7)  # no space: split, still whole
    for svg in (hbar_chart("w", [spaced, solid, "short"], [0.1, 0.2, 0.3]),
                strip_chart("s", [spaced, solid], np.zeros((3, 2)), np.zeros((3, 2)))):
        texts = _svg_texts(svg)
        assert not any("…" in t for t in texts)
        assert " ".join(t for t in texts if "partner" in t or "director" in t).split() == \
            spaced.split()
        assert "".join(t for t in texts if set(t) == {"x"}) == solid
        assert max(len(t) for t in texts) <= WRAP_CHARS


def test_planted_names_are_escaped_in_the_page(report_data):
    from leadq.pipelines.report import render_html

    html = render_html(planted_report(report_data))
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "</title><" not in html
    escaped = "&lt;script&gt;window.__pwned=1"  # chart labels are shortened after this
    # In the campaign table, the insight table, the headline, and both charts' labels.
    assert html.count(escaped) >= 5, html.count(escaped)
    assert "&lt;img src=x onerror=" in html
    assert DOLLARS.replace("&", "&amp;") in html


def test_training_figures_are_matplotlib_and_outside_pyplot():
    import io

    import matplotlib.pyplot as plt

    from leadq.pipelines.reporting.charts import training_figures

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    frame = pd.DataFrame({"label": y, "score": np.clip(0.3 * y + 0.7 * rng.random(600), 0, 1)})
    figs = training_figures(frame)
    assert set(figs) == {"calibration.png", "roc_pr.png", "gains.png"}
    assert plt.get_fignums() == []  # nothing left open in pyplot's registry
    for fig in figs.values():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG"


def test_who_gains_from_a_call_is_shown_under_the_period_and_escaped(report_data):
    """The review's per-tier verdicts (tests/code/test_review_call_gain.py) in the report, under
    the review period's figures; a group name holding markup stays text."""
    import dataclasses

    from leadq.pipelines.report import render_html

    period = {"mqls": 40, "sla_hours": 24.0, "within_sla_share": 0.9,
              "median_hours_to_contact": 3.0, "acceptance_rate": 0.5,
              "call_gain": [
                  {"group": "A", "verdict": "anyway", "n_randomised": 900,
                   "words": "converts about as often without a call (sure things)",
                   "rate_called": 0.41, "rate_not_called": 0.39, "effect": 0.02,
                   "low": -0.03, "high": 0.07, "n_called": 700, "n_not_called": 200},
                  {"group": SCRIPT, "verdict": "too_few", "n_randomised": 30,
                   "words": "not enough randomised leads yet", "more_leads": 1200}]}
    rep = dataclasses.replace(report_data, health={**report_data.health, "period": period})
    html = render_html(rep)
    assert "Who gains from a call" in html
    assert "converts about as often without a call (sure things)" in html
    assert "+2.0 points (-3.0 to +7.0)" in html and "1,200 more needed" in html
    assert "<script" not in html.lower()


def test_segment_sections_escape_segment_values_and_personas(report_data):
    """A segment value is CRM text (a web form can fill a business line): the By segment
    table, its reliability chart and the per-segment persona headings and tables escape it."""
    import dataclasses

    from leadq.pipelines.report import render_html

    band = pd.DataFrame({"band": [1, 2], "n": [40, 40], "score_min": [0.0, 0.3],
                         "score_max": [0.3, 0.9], "predicted": [0.1, 0.5],
                         "observed": [0.12, 0.45]})
    segments = pd.DataFrame([
        {"segment": SCRIPT, "model": "own", "leads": 80, "conversion_rate": 0.3,
         "mean_score": 0.3, "roc_auc": 0.8, "pr_auc": 0.5, "ece": 0.02, "drivers": IMG},
        {"segment": "all other leads", "model": "pooled", "leads": 10, "conversion_rate": 0.1,
         "mean_score": 0.1, "roc_auc": float("nan"), "pr_auc": float("nan"),
         "ece": float("nan"), "drivers": ""}])
    persona = pd.DataFrame({"segment": [f"industry = {IMG}"], "keys": [("industry",)],
                            "values": [(IMG,)], "leads": [40], "conversions": [20],
                            "rate": [0.5], "ci_low": [0.35], "ci_high": [0.65], "lift": [2.0],
                            "share": [0.5]})
    rep = dataclasses.replace(report_data, segments=segments,
                              model={**report_data.model, "segment_column": DOLLARS},
                              segment_reliability={SCRIPT: band, "all other leads": band},
                              segment_personas={SCRIPT: persona, "smb": persona.iloc[:0]})
    html = render_html(rep)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert 'data-segment-personas="1"' in html and "segment-calibration" in html
    assert html.count("&lt;script&gt;window.__pwned=1") >= 3  # table, heading, chart legend
    assert "Not enough leads per persona in this segment." in html


def test_mql_flags_compare_the_corrected_score_with_the_bar_as_the_scorer(report_store):
    """recalibrate's base-rate correction moves the scores the bar is compared with: the
    report's MQL share and tiers follow it, as `leadq score` and `serve` do (routing.route)."""
    import mlflow

    from leadq.features.columns import raw_input_columns
    from leadq.models.prior_shift import Correction
    from leadq.models.routing import route
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.report import compute_report
    from leadq.pipelines.scoring.model import load_scoring_model

    params = load_params(report_store["params_path"])
    params["report"]["importance_repeats"] = 1
    scoring = load_scoring_model(params)
    model = mlflow.sklearn.load_model(scoring.uri)
    tables = load_crm(params)
    shift = Correction(prior_ref=0.10, prior_now=0.30, method="em")
    rep = compute_report(model, tables, params, threshold=scoring.threshold,
                         cutoffs=scoring.cutoffs, correction=shift)
    raw = model.predict_proba(tables.leads[raw_input_columns(params)])[:, 1]
    routed = route(tables.leads["lead_id"].to_numpy(), raw, threshold=scoring.threshold,
                   cutoffs=scoring.cutoffs, correction=shift, explore_rate=0.0)
    assert rep.data["mql_share"] == pytest.approx(routed["is_mql"].mean())
    assert rep.data["mql_share"] > (raw >= scoring.threshold).mean() + 0.05
