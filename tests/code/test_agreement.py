"""The agreement between marketing and sales: one typed object, one SLA rule, one policy that
recalibration keeps, feedback read from any CRM's vocabulary (tiny frames, no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadq.errors import ConfigError
from leadq.features.agreement import Agreement, normalise_rating, period_figures, sla_compliance
from leadq.pipelines.params.loader import effective_params

AS_OF = pd.Timestamp("2026-06-30 12:00")


def agreement(**changes) -> Agreement:
    return Agreement.from_params(effective_params({"agreement": changes}))


def test_an_mql_never_called_counts_as_missed_once_its_sla_has_run_out():
    mqls = pd.DataFrame({"lead_id": ["a", "b", "c", "d"],
                         "created_at": pd.to_datetime(["2026-06-28 09:00", "2026-06-28 09:00",
                                                       "2026-06-28 09:00", "2026-06-30 11:00"])})
    first = pd.Series(pd.to_datetime(["2026-06-28 10:00", "2026-06-29 15:00"]), index=["a", "b"])
    sla = sla_compliance(mqls, first, as_of=AS_OF, sla_hours=24)
    # d is an hour old: it may still be called in time, so it is not judged yet.
    assert list(sla["lead_id"]) == ["a", "b", "c"]
    assert list(sla["within_sla"]) == [True, False, False]
    assert sla["hours_to_contact"].tolist()[:2] == [1.0, 30.0]


def test_period_figures_count_acceptance_of_decided_mqls_only():
    leads = pd.DataFrame({"lead_id": list("abcd"), "is_mql": [True, True, True, False],
                          "created_at": pd.to_datetime(["2026-06-01"] * 4)})
    fb = pd.DataFrame({"lead_id": ["a", "b", "d"], "accepted": [True, False, True],
                       "rejected": [False, True, False],
                       "first_contact_at": pd.to_datetime(["2026-06-01 05:00"] * 3)})
    f = period_figures(leads, fb, as_of=AS_OF, agreement=agreement(sla_hours=8))
    assert (f["mqls"], f["mql_share"], f["accepted"], f["rejected"]) == (3, 0.75, 1, 1)
    assert f["acceptance_rate"] == 0.5           # d is no MQL; c was never decided
    assert f["within_sla_share"] == pytest.approx(2 / 3)


def test_the_agreement_in_words_names_policy_sla_and_capacity():
    words = " ".join(agreement(capacity_per_week=40, sla_hours=1,
                               campaign_column="campaign").words(mql_per_week=37))
    assert "best 25% of leads" in words and "within 1 hour" in words
    assert "at most 40 MQLs a week" in words and "about 37 MQLs a week" in words
    assert "Campaigns (column campaign)" in words


def test_a_policy_the_agreement_does_not_know_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="agreement.mql.policy"):
        agreement(mql={"policy": "top_decile"})


# --- recalibration keeps the agreed policy ---------------------------------------------------

def _recent(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    raw = rng.beta(1.2, 8, n)
    return pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)],
                         "created_at": AS_OF - pd.to_timedelta(rng.uniform(0, 28, n), unit="D"),
                         "score": raw, "score_raw": raw, "is_mql": raw >= np.quantile(raw, 0.7)})


def _step(params: dict, previous: dict | None, **kw) -> dict:
    from leadq.pipelines.recalibrate import recalibrate_step

    return recalibrate_step(_recent(), None, None, params, as_of=AS_OF, train_prior=None,
                            weeks=4.0, previous=previous, **kw)


def test_recalibrating_twice_under_top_share_keeps_top_share():
    params = effective_params({"agreement": {"mql": {"top_share": 0.2}},
                               "recalibration": {"correction": "none"}})
    first = _step(params, {"policy": {"policy": "top_share", "top_share": 0.2}})
    second = _step(params, {"policy": first["policy"]})
    for entry in (first, second):
        assert entry["policy"] == {"policy": "top_share", "top_share": 0.2}
        assert entry["decision"]["binding"] == "top_share"
        assert entry["decision"]["mql_share"] == pytest.approx(0.2, abs=0.001)
        assert entry["policy_change"] is None


def test_a_changed_policy_needs_an_explicit_change_and_records_who_and_why():
    params = effective_params({"agreement": {"mql": {"policy": "min_precision",
                                                     "min_precision": 0.3}},
                               "recalibration": {"correction": "none"}})
    in_force = {"policy": {"policy": "top_share", "top_share": 0.25}}
    with pytest.raises(ConfigError, match="--change-policy"):
        _step(params, in_force)
    entry = _step(params, in_force, change_reason="sales wants fewer, better leads",
                  changed_by="ana")
    assert entry["policy_change"] == {"from": in_force["policy"], "to": entry["policy"],
                                      "reason": "sales wants fewer, better leads", "by": "ana"}
    assert entry["decision"]["binding"] == "min_precision"
    assert "changed by ana" in entry["reason"]


def test_a_model_trained_before_the_agreement_adopts_it_without_a_change():
    params = effective_params({"recalibration": {"correction": "none"}})
    assert _step(params, {"policy": None})["policy_change"] is None


# --- feedback from a real CRM ---------------------------------------------------------------

@pytest.mark.parametrize(("status", "meaning"), [
    ("Open - Not Contacted", "not_reached"), ("Working - Contacted", "accepted"),
    ("Closed - Converted", "accepted"), ("Closed - Not Converted", "rejected"),
    ("Unqualified", "rejected"), ("Attempted to Contact", "not_reached"),
    ("Connected", "accepted"), ("Bad Timing", "rejected"), ("Open Deal", "accepted"),
    ("New", "not_reached"), ("Qualified", "accepted"), ("Disqualified", "rejected"),
    ("No Longer Interested", "rejected"), ("something else", None)])
def test_vendor_status_vocabularies_are_read(status, meaning):
    from leadq.pipelines.profiling.feedback import status_meaning

    assert status_meaning(status) == meaning


def test_ratings_in_words_or_grades_read_on_one_scale():
    assert normalise_rating(pd.Series(["Hot", "warm", "Cold", "x", None]),
                            {"Hot": 5, "Warm": 3, "Cold": 1}).tolist()[:3] == [5.0, 3.0, 1.0]
    assert normalise_rating(pd.Series(["4", "2"]), {}).tolist() == [4.0, 2.0]
    assert np.isnan(normalise_rating(pd.Series(["x"]), {"Hot": 5})[0])


def test_feedback_profile_finds_status_first_contact_rating_reason_and_rep():
    from leadq.pipelines.profiling.feedback import profile_feedback

    n = 40
    frame = pd.DataFrame({
        "Lead ID": [f"00Q{i}" for i in range(n)],
        "Lead Status": ["Working - Contacted", "Unqualified", "Open - Not Contacted",
                        "Closed - Not Converted"] * 10,
        "Rating": ["Hot", "Warm", "Cold", "Hot"] * 10,
        "Disqualification Reason": ["", "Budget", "", "Competitor"] * 10,
        "First Call Date": [f"7/{1 + i % 20}/2024 9:{10 + i}:00 AM"[:-6] + " AM"
                            for i in range(n)],
        "Status Changed Date": [f"7/{2 + i % 20}/2024 1:09 PM" for i in range(n)],
        "Lead Owner": ["Rep 1", "Rep 2"] * 20,
    })
    g = profile_feedback(frame, "Lead ID", today=pd.Timestamp("2026-12-06"))
    assert (g.status, g.first_contact_at, g.feedback_at) == (
        "Lead Status", "First Call Date", "Status Changed Date")
    assert (g.rating, g.reason, g.rep) == ("Rating", "Disqualification Reason", "Lead Owner")
    assert g.rating_values == {"Cold": 1, "Hot": 5, "Warm": 3}
    assert g.meaning["rejected"] == ["Closed - Not Converted", "Unqualified"]
    assert g.date_format == "%m/%d/%Y %I:%M %p"


def test_salesforce_us_report_datetimes_are_dates():
    from leadq.pipelines.profiling.sniff import sniff_date_format

    cells = pd.Series(["7/1/2024 1:09 AM", "12/31/2024 11:59 PM", "3/15/2025 12:00 PM"] * 20)
    guess = sniff_date_format(cells, today=pd.Timestamp("2026-12-06"))
    assert guess is not None and guess.format == "%m/%d/%Y %I:%M %p" and guess.has_time


# --- personas and readable bins ---------------------------------------------------------------

def test_a_dominant_numeric_driver_joins_the_personas_in_readable_bands():
    from leadq.models.insights import persona_attributes
    from leadq.pipelines.report import with_persona_attributes

    params = effective_params({"features": {"categorical": ["gender"],
                                            "numeric": ["monthly_income"]}})
    importance = pd.DataFrame({"column": ["monthly_income", "gender"],
                               "importance": [0.237, 0.021]})
    chosen = with_persona_attributes(params, importance)["report"]["persona_attributes"]
    assert chosen[0] == "monthly_income" and "gender" in chosen
    leads = pd.DataFrame({"monthly_income": np.linspace(1000, 40_000_000, 200),
                          "gender": ["F", "M"] * 100})
    attrs = persona_attributes(leads, with_persona_attributes(params, importance))
    bands = set(attrs["monthly_income"])
    assert len(bands) == 5 and not any("(" in b or "]" in b for b in bands)
    assert any(b.endswith("40.0 M") for b in bands)


def test_a_campaign_reads_the_same_wherever_it_is_shown():
    from leadq.features.transform import display_category
    from leadq.models.insights import attribute_insights, campaign_quality

    names = pd.Series(["cmp_23_cfo_roundtable"] * 3 + ["CMP 23 CFO roundtable", "webinar",
                                                       None])
    shown = display_category(names)
    assert shown.tolist()[:5] == ["cmp_23_cfo_roundtable"] * 4 + ["webinar"]
    assert pd.isna(shown.iloc[5])
    y = pd.Series([1, 0, 1, 0, 1, 0])
    insight = attribute_insights(names, y, min_rows=1)
    params = effective_params({"data": {"leads": {"id": "id"}}})
    leads = pd.DataFrame({"id": [str(i) for i in range(6)], "campaign": names})
    quality = campaign_quality(leads, pd.DataFrame({"label": y.astype(float)}), None, None,
                               np.ones(6, bool), params, campaign_col="campaign")
    assert "cmp_23_cfo_roundtable" in set(insight["value"]) & set(quality["campaign"])


def test_kept_values_are_never_pooled_however_few_their_leads():
    from leadq.models.insights import attribute_insights

    names = pd.Series(["webinar"] * 40 + ["giveaway"] * 3 + ["fair"] * 2 + ["Giveaway"])
    y = pd.Series([1, 0] * 20 + [0, 0, 0, 1, 0, 0])
    pooled = attribute_insights(names, y, min_rows=30)
    assert set(pooled["value"]) == {"webinar", "(other)"} and not pooled["kept"].any()
    kept = attribute_insights(names, y, min_rows=30, keep=["giveaway"]).set_index("value")
    # Compared as displayed: "Giveaway" is the same campaign; only "fair" is pooled.
    assert set(kept.index) == {"webinar", "giveaway", "(other)"}
    assert kept.loc["giveaway", "leads"] == 4 and kept.loc["giveaway", "kept"]
    assert kept.loc["(other)", "leads"] == 2 and not kept.loc["(other)", "kept"]


def test_the_importance_sample_is_bounded_and_keeps_the_conversion_rate():
    from leadq.pipelines.report import stratified_sample

    y = np.r_[np.ones(30), np.zeros(9970)].astype(int)
    X = pd.DataFrame({"a": np.arange(len(y))})
    Xs, ys = stratified_sample(X, y, 1000)
    assert len(ys) == 1000 and ys.sum() == 3 and (Xs["a"].to_numpy()[ys == 1] < 30).all()
    same = stratified_sample(X.iloc[:500], y[:500], 1000)
    assert len(same[1]) == 500


def test_activity_features_read_as_words_in_the_report():
    from leadq.features.activities import readable_feature

    assert readable_feature("act_web_visit_90d") == "web visits, last 90 days"
    assert readable_feature("act_email_open_days_since") == "days since the last email open"
    assert readable_feature("Monthly_Income") == "Monthly_Income"


# --- review fixes: what a fresh-eyes review found ---------------------------------------------

def test_a_lead_worked_then_closed_as_not_converted_counts_as_rejected():
    leads = pd.DataFrame({"lead_id": ["a", "b"], "is_mql": [True, True],
                          "created_at": pd.to_datetime(["2026-06-01"] * 2)})
    fb = pd.DataFrame({"lead_id": ["a", "a", "b"],
                       "feedback_at": pd.to_datetime(["2026-06-03", "2026-06-02", "2026-06-02"]),
                       "accepted": [False, True, True], "rejected": [True, False, False],
                       "reason": ["no budget", None, None]})
    f = period_figures(leads, fb, as_of=AS_OF, agreement=agreement())
    assert (f["accepted"], f["rejected"], f["acceptance_rate"]) == (1, 1, 0.5)


def test_the_sla_clock_starts_at_the_mql_moment_and_an_early_contact_is_reached():
    mqls = pd.DataFrame({"lead_id": ["a", "b"],
                         "created_at": pd.to_datetime(["2026-06-01 13:00", "2026-06-01 13:00"])})
    first = pd.Series(pd.to_datetime(["2026-06-01 00:00", "2026-06-08 14:00"]),
                      index=["a", "b"])
    sla = sla_compliance(mqls, first, as_of=AS_OF, sla_hours=4, mql_moment_days=7)
    # a: a date-only contact before the lead's hour is 0 h, not -13 h; b: 1 h after the MQL
    # moment (day 7), not 169 h after created_at.
    assert sla["hours_to_contact"].tolist() == [0.0, 1.0]
    assert sla["within_sla"].all()


def test_a_campaign_spelled_over_the_whole_export_reads_the_same_in_every_period():
    from leadq.features.transform import display_like

    everything = pd.Series(["cmp_23_cfo"] * 5 + ["CMP 23 CFO"] * 2)
    for period in (everything.iloc[5:], everything.iloc[:2]):
        assert set(display_like(period, everything)) == {"cmp_23_cfo"}


@pytest.mark.parametrize(("status", "meaning"), [
    ("Marketing Qualified Lead", "not_reached"), ("MQL", "not_reached"),
    ("Meeting No Show", "not_reached"), ("Do not call", "rejected"),
    ("Not a fit", "rejected"), ("Unable to reach", "not_reached")])
def test_statuses_a_review_found_misread(status, meaning):
    from leadq.pipelines.profiling.feedback import status_meaning

    assert status_meaning(status) == meaning


def test_first_contact_keeps_its_own_date_format_and_a_0_100_score_is_no_rating():
    from leadq.pipelines.profiling.feedback import profile_feedback

    n = 40
    frame = pd.DataFrame({
        "Id": [f"L{i}" for i in range(n)],
        "Status": ["Connected", "Unqualified"] * 20,
        "HubSpot Score": [str(10 + 2 * i) for i in range(n)],
        "First Contact Date": [f"7/{1 + i % 20}/2024 9:15 AM" for i in range(n)],
        "Last Modified Date": [f"2024-07-{2 + i % 20:02d}T13:09:00" for i in range(n)],
    })
    g = profile_feedback(frame, "Id", today=pd.Timestamp("2026-12-06"))
    assert g.rating is None
    assert g.date_format == "ISO8601" and g.first_contact_format == "%m/%d/%Y %I:%M %p"


def test_a_model_trained_before_the_agreement_needs_a_change_for_another_policy():
    params = effective_params({"agreement": {"mql": {"policy": "min_precision"}},
                               "recalibration": {"correction": "none"}})
    with pytest.raises(ConfigError, match="--change-policy"):
        _step(params, {"policy": {"policy": "top_share"}})
    same = effective_params({"recalibration": {"correction": "none"}})
    assert _step(same, {"policy": {"policy": "top_share"}})["policy_change"] is None


def test_the_review_page_renders_before_any_lead_has_matured_or_been_decided():
    """The first review after go-live: no matured leads, no previous period, no goal, no
    campaign column, no feedback yet. Every section says what is missing."""
    from leadq.pipelines.review import render_review

    leads = pd.DataFrame({"lead_id": ["a", "b"], "is_mql": [True, False],
                          "created_at": pd.to_datetime(["2026-06-29"] * 2)})
    now = period_figures(leads, None, as_of=AS_OF, agreement=agreement())
    html = render_review({
        "period": {"start": "2026-06-02", "end": "2026-06-30", "days": 28},
        "model_version": "1", "agreement": agreement().words(), "now": now, "before": None,
        "sla_by_tier": [], "sla_by_rep": None, "campaigns": None, "campaign_column": None,
        "flagged": [], "rejection_reasons": [], "realised": {"n_matured": 0}, "goal": None,
        "bars": [{"version": 0, "as_of": "training", "threshold": 0.1, "policy": "x",
                  "reason": "", "changed_by": None, "change_reason": None,
                  "mql_per_week": None}],
        "drift": None, "changed": ["This is the first period with scored leads."]})
    assert "No matured MQLs yet" in html and "No shared goal set" in html
    assert "not measured" in html and ">nan<" not in html.lower()
