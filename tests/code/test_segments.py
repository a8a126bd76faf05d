"""The segmented model (leadq.models.segments) on small frames: routing, the pooled fallback and
its count, trusted-types saving, per-segment explanations, the out-of-fold keep rule, the gate's
per-segment verdict, the params checks and the segmented synth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.errors import ConfigError
from leadq.models.segments import (
    SegmentedModel,
    keep_own_model,
    segment_gaps,
    segment_key,
    segment_keys,
)
from leadq.pipelines.params.loader import load_params
from leadq.pipelines.synthetic.segments import generate_segmented, segmented_params


@pytest.fixture(scope="module")
def fitted():
    """A pooled logistic regression and one per business line, on 1,500 synthetic leads."""
    from leadq.models.search import fit_candidate
    from leadq.pipelines.params.loader import effective_params

    params = effective_params(segmented_params())
    params["features"]["categorical"] = ["business_line", "industry"]
    leads = generate_segmented(1500, seed=1, segments=2)["leads"]
    X = leads[["business_line", "industry", "employees", "pages_viewed", "pricing_visits",  # noqa: N806
               "demo_requested", "created_at"]]
    y = leads["converted"]
    pooled = fit_candidate("logreg", params, X, y)
    members = {line: fit_candidate("logreg", params, X[X.business_line == line],
                                   y[X.business_line == line]) for line in ("enterprise", "smb")}
    model = SegmentedModel.from_fitted("business_line", pooled, members,
                                       known=["enterprise", "smb"])
    return {"model": model, "X": X, "y": y, "pooled": pooled, "members": members}


def test_each_lead_is_scored_by_its_segment_model(fitted):
    model, X = fitted["model"], fitted["X"]
    got = model.predict_proba(X)[:, 1]
    for line, member in fitted["members"].items():
        mask = (X.business_line == line).to_numpy()
        np.testing.assert_array_equal(got[mask], member.predict_proba(X[mask])[:, 1])
    assert np.array_equal(model.classes_, [0, 1])
    assert set(np.unique(model.predict(X))) <= {0, 1}


def test_blank_and_new_values_fall_back_to_the_pooled_model_and_are_counted(fitted):
    model, X, pooled = fitted["model"], fitted["X"].head(20).copy(), fitted["pooled"]
    X["business_line"] = X["business_line"].astype(object)
    X.iloc[:3, X.columns.get_loc("business_line")] = "reseller"
    X.iloc[3:5, X.columns.get_loc("business_line")] = None
    X.iloc[5, X.columns.get_loc("business_line")] = "  "
    X.iloc[6, X.columns.get_loc("business_line")] = " SMB "  # case and spaces: still smb
    assert model.fallback_counts(X) == {"blank": 3, "unseen": 3}
    got = model.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(got[:6], pooled.predict_proba(X.iloc[:6])[:, 1])
    smb = fitted["members"]["smb"]
    assert got[6] == smb.predict_proba(X.iloc[[6]])[0, 1]
    assert len(got) == len(X)  # never dropped


def test_the_scorer_warns_with_the_fallback_counts_not_the_values(fitted, caplog):
    from leadq.pipelines.scoring.core import warn_segment_fallbacks

    X = fitted["X"].head(10).copy()
    X["business_line"] = X["business_line"].astype(object)
    X.iloc[:2, X.columns.get_loc("business_line")] = "secret-partner-name"
    with caplog.at_level("WARNING", logger="leadq"):
        counts = warn_segment_fallbacks(fitted["model"], X)
    assert counts == {"blank": 0, "unseen": 2}
    assert "2 a value unseen" in caplog.text and "secret-partner-name" not in caplog.text
    assert warn_segment_fallbacks(fitted["pooled"], X) == {}


def test_it_saves_and_loads_through_the_trusted_types_list(fitted):
    from skops.io import dumps, loads

    from leadq.pipelines.tracking.store import TRUSTED_TYPES, trusted_types

    model, X = fitted["model"], fitted["X"]
    types = trusted_types(model)  # raises on a type outside leadq's list
    assert "leadq.models.segments.SegmentedModel" in types
    assert set(types) <= TRUSTED_TYPES
    back = loads(dumps(model), trusted=types)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    assert back.fallback_counts(X) == model.fallback_counts(X)


def test_explanations_come_from_each_leads_own_model(fitted):
    from leadq.models.calibration_choice import base_pipeline
    from leadq.models.explain import explain, explain_leads

    model, X = fitted["model"], fitted["X"].head(200)
    exp = explain(model, X)
    assert exp.additivity_error() < 1e-8
    np.testing.assert_allclose(exp.margin, np.log(model.predict_proba(X)[:, 1]
                                                  / model.predict_proba(X)[:, 0]), atol=1e-8)
    smb = (X.business_line == "smb").to_numpy()
    alone = explain(fitted["members"]["smb"], X[smb])
    np.testing.assert_allclose(exp.contributions[smb].to_numpy(),
                               alone.contributions.reindex(columns=exp.contributions.columns)
                               .to_numpy())
    reasons = explain_leads(model, X)
    assert list(reasons.index) == list(X.index)
    assert reasons["reasons_positive"].str.len().gt(0).mean() > 0.5
    assert "business_line" in base_pipeline(model).named_steps["features"].source_columns()


def test_keep_own_model_needs_a_gain_beyond_noise_widened_for_the_segments_tried():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    strong = y + rng.normal(0, 0.6, 2000)
    weak = y + rng.normal(0, 1.5, 2000)
    keep, lo, _, why = keep_own_model(y, strong, weak, compared=2)
    assert keep and lo > 0 and "beyond noise" in why
    same = strong + rng.normal(0, 0.01, 2000)
    assert not keep_own_model(y, same, strong, compared=2)[0]
    # A small gain can pass for one segment and fail once the interval is widened for many.
    mid = y + rng.normal(0, 0.66, 2000)
    one = keep_own_model(y, strong, mid, compared=1, confidence=0.5)
    many = keep_own_model(y, strong, mid, compared=50, confidence=0.5)
    assert many[1] < one[1]


def test_segment_gaps_flags_a_segment_worse_beyond_noise():
    rng = np.random.default_rng(1)
    n = 1200
    seg = pd.Series(np.where(np.arange(n) % 2, "a", "b"))
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.5, n)
    bad = np.where(seg == "a", rng.normal(0, 1, n), good)  # noise on segment a only
    rows = {r["segment"]: r for r in segment_gaps(y, bad, good, seg, ["a", "b", "c"])}
    assert rows["a"]["worse"] and rows["a"]["gap_high"] < 0
    assert not rows["b"]["worse"]
    assert rows["c"]["test_leads"] == 0 and "too few" in rows["c"]["note"]


def test_segment_keys_ignore_case_spaces_and_hyphens_as_the_model_does():
    assert segment_key(" SMB ") == segment_key("smb") == "smb"
    assert segment_key("paid-search") == segment_key("Paid  Search") == segment_key("paid_search")
    assert segment_key("") is None and segment_key(float("nan")) is None
    keys = segment_keys(pd.Series(["A", None, " a", "b"], dtype="string"))
    assert list(keys) == ["a", None, "a", "b"]


@pytest.mark.parametrize("section, key", [
    ({"column": "region"}, "segments.column"),
    ({"column": ["business_line"]}, "segments.column"),
    ({"min_leads": 0}, "segments.min_leads"),
    ({"min_conversions": 2.5}, "segments.min_conversions"),
    ({"confidence": 1.5}, "segments.confidence"),
    ({"allow_worse_segments": "yes"}, "segments.allow_worse_segments"),
    ({"date_parts": "no"}, "segments.date_parts"),
    ({"per_segment_bar": True}, "segments.per_segment_bar"),
    ({"column": "business_line", "per_segment_bar": True,
      "capacity_share": {"enterprise": 0.7, "smb": 0.5}}, "segments.capacity_share"),
    ({"column": "business_line", "per_segment_bar": True,
      "capacity_share": {"enterprise": 0}}, "segments.capacity_share.enterprise"),
    ({"column": "business_line", "per_segment_bar": True,
      "capacity_share": {"enterprise": "half"}}, "segments.capacity_share.enterprise"),
    ({"column": None, "per_segment_bar": True,
      "capacity_share": {"enterprise": 0.5}}, "segments.column"),
    ({"column": "business_line", "capacity_share": ["enterprise"]}, "segments.capacity_share"),
    ({"colum": "x"}, "segments.colum"),
])
def test_bad_segments_settings_are_config_errors_naming_the_key(tmp_path, section, key):
    params = segmented_params()
    params["segments"] = section
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(path)


def test_the_segmented_synth_has_segments_whose_drivers_differ(tmp_path):
    from leadq.pipelines.synth import main

    written = main(tmp_path, leads=4000, seed=2, segments=3)["written"]
    leads = pd.read_csv(written["leads"])
    truth = pd.read_csv(written["truth"])
    assert list(truth["lead_id"]) == list(leads["lead_id"])
    assert set(leads["business_line"]) == {"enterprise", "smb", "partner"}
    p = truth["true_probability"]
    assert p.between(0, 1).all() and abs(leads["converted"].mean() - p.mean()) < 0.03
    # A demo request raises enterprise leads' probability and lowers SMB leads'.
    frame = leads.assign(p=p)
    lift = frame.groupby(["business_line", "demo_requested"])["p"].mean().unstack()
    assert lift.loc["enterprise", 1] > lift.loc["enterprise", 0]
    assert lift.loc["smb", 1] < lift.loc["smb", 0]
    params = load_params(written["params"])
    assert params["segments"]["column"] == "business_line"


def test_init_proposes_a_low_cardinality_column_whose_conversion_rates_differ():
    from leadq.pipelines.profiling.segments import segment_candidate

    leads = generate_segmented(10000, seed=3, segments=3)["leads"]
    y = leads["converted"].astype(float)
    found = segment_candidate(leads, ["business_line", "industry", "source"], y,
                              min_leads=1000, min_conversions=120)
    assert found is not None and found[0] == "business_line"
    assert "conversion rates differ" in found[1]
    # Too few leads per value under the minimums, or rates that do not differ: no proposal.
    assert segment_candidate(leads, ["business_line"], y, min_leads=6000,
                             min_conversions=120) is None
    rng = np.random.default_rng(0)
    flat = pd.Series(rng.integers(0, 2, len(leads)), dtype=float)
    assert segment_candidate(leads, ["business_line", "source"], flat, min_leads=1000,
                             min_conversions=120) is None
    many = leads.assign(city=[f"c{i % 40}" for i in range(len(leads))])
    assert segment_candidate(many, ["city"], y, min_leads=10, min_conversions=1) is None


def test_init_writes_the_candidate_as_a_note_and_leaves_segments_off(tmp_path):
    from leadq.pipelines.init import main as init_main
    from leadq.pipelines.synthetic.segments import write_segmented

    written = write_segmented(tmp_path, 10000, seed=3, segments=3)
    out = tmp_path / "proposed.yaml"
    summary = init_main(str(written["leads"]), out=str(out))
    assert summary["segment_candidate"] == "business_line"
    text = out.read_text()
    assert "# Note: segment column candidate: business_line" in text
    assert load_params(out)["segments"]["column"] is None  # off until chosen


def test_the_report_shows_each_segment_models_figures_and_drivers(fitted):
    from leadq.models.explain import explain
    from leadq.pipelines.segmenting.report import segment_report

    model, X, y = fitted["model"], fitted["X"].head(600), fitted["y"].head(600).to_numpy()
    X = X.copy()  # noqa: N806
    X["business_line"] = X["business_line"].astype(object)
    X.iloc[:5, X.columns.get_loc("business_line")] = "reseller"  # scored by the pooled model
    score = model.predict_proba(X)[:, 1]
    table = segment_report(model, X, y, score, explain(model, X).contributions)
    rows = table.set_index("segment")
    assert list(rows["model"]) == ["own", "own", "pooled"]
    assert rows.loc["all other leads", "leads"] == 5
    assert rows["leads"].sum() == len(X)
    # The drivers are each segment's own: a demo request matters for enterprise leads.
    assert "demo_requested" in rows.loc["enterprise", "drivers"]
    assert segment_report(fitted["pooled"], X, y, score, None) is None


def test_each_segments_top_driver_is_the_one_its_truth_puts_first(fitted):
    """The synth's truth: enterprise leads convert on demo requests, SMB leads on pricing-page
    visits (pipelines/synthetic/segments.py). Each segment model learns its own, so the
    report's per-segment drivers differ, and differ as the truth says."""
    from leadq.models.explain import explain
    from leadq.pipelines.segmenting.report import segment_report

    model, X, y = fitted["model"], fitted["X"], fitted["y"].to_numpy()  # noqa: N806
    score = model.predict_proba(X)[:, 1]
    rows = segment_report(model, X, y, score, explain(model, X).contributions).set_index(
        "segment")
    top = {seg: rows.loc[seg, "drivers"].split(", ")[0] for seg in ("enterprise", "smb")}
    assert top == {"enterprise": "demo_requested", "smb": "pricing_visits"}
    for seg in ("enterprise", "smb"):
        assert rows.loc[seg, "mean_score"] == pytest.approx(
            score[(X["business_line"] == seg).to_numpy()].mean())


def test_reliability_per_segment_model_reads_each_models_own_leads(fitted):
    from leadq.pipelines.segmenting.report import POOLED_GROUP, segment_reliability

    model, X, y = fitted["model"], fitted["X"].copy(), fitted["y"].to_numpy()  # noqa: N806
    X["business_line"] = X["business_line"].astype(object)
    X.iloc[:40, X.columns.get_loc("business_line")] = "reseller"  # 40 pooled: one band of 30
    score = model.predict_proba(X)[:, 1]
    got = segment_reliability(model, X, y, score)
    assert set(got) == {"enterprise", "smb"}  # 40 pooled leads: too few for two bands
    smb = (X["business_line"] == "smb").to_numpy()
    table = got["smb"]
    assert table["n"].sum() == smb.sum()
    # Each band's observed rate is the conversion of the smb leads in it, not of all leads.
    assert np.average(table["observed"], weights=table["n"]) == pytest.approx(y[smb].mean())
    X.iloc[:80, X.columns.get_loc("business_line")] = "reseller"
    assert POOLED_GROUP in segment_reliability(model, X, y, model.predict_proba(X)[:, 1])
    assert segment_reliability(fitted["pooled"], X, y, score) is None


def test_personas_per_segment_are_found_among_that_segments_leads_only(fitted):
    from leadq.models.insights import persona_attributes
    from leadq.pipelines.params.loader import effective_params
    from leadq.pipelines.segmenting.report import segment_personas

    model, X, y = fitted["model"], fitted["X"], fitted["y"]  # noqa: N806
    params = effective_params(segmented_params())
    params["report"]["persona_attributes"] = ["business_line", "industry", "demo_requested",
                                              "pricing_visits"]
    attrs = persona_attributes(X, params)
    got = segment_personas(model, X["business_line"], attrs, y, min_share=0.05, min_rows=20)
    assert set(got) == {"enterprise", "smb"}
    for seg, best in got.items():
        assert len(best) and not best["segment"].str.contains("business_line").any()
        mine = (X["business_line"] == seg).to_numpy()
        # Shares and rates are of the segment's own leads.
        assert (best["leads"] <= mine.sum()).all()
        assert best["share"].iloc[0] == pytest.approx(best["leads"].iloc[0] / mine.sum())
    # The truth: pricing-page visits pull enterprise leads down and SMB leads up, so the best
    # enterprise persona has few of them and the best SMB persona many.
    assert "pricing_visits = 0 – 1" in got["enterprise"]["segment"].iloc[0]
    assert "pricing_visits = 2 – 5" in got["smb"]["segment"].iloc[0]
    assert segment_personas(fitted["pooled"], X["business_line"], attrs, y, min_share=0.05,
                            min_rows=20) is None


def test_the_keep_rule_refuses_better_ranking_with_worse_probabilities():
    rng = np.random.default_rng(2)
    n = 3000
    truth = rng.random(n) * 0.6
    y = (rng.random(n) < truth).astype(int)
    pooled = np.clip(truth + rng.normal(0, 0.15, n), 0.01, 0.99)  # calibrated, noisier
    sharp = np.clip(truth + rng.normal(0, 0.02, n), 0.01, 0.99)   # ranks better
    keep, lo, _, why = keep_own_model(y, sharp, pooled, compared=2)
    assert keep and lo > 0 and "log loss gap" in why
    # The same ranking, probabilities pushed far from the truth: refused, and said why.
    skewed = sharp ** 0.25
    keep, lo, _, why = keep_own_model(y, skewed, pooled, compared=2)
    assert not keep and lo > 0 and "probabilities are worse beyond noise" in why
    # The check reads the cross-fitted probabilities when given, not the ranking scores.
    assert keep_own_model(y, skewed, pooled, compared=2, own_calibrated=sharp)[0]


def test_a_small_recent_span_borrows_the_older_leads_and_a_drifted_one_does_not():
    from leadq.models.calibration_choice import calibrate_oof_by_span, losses_by_span

    rng = np.random.default_rng(5)
    n, recent_n = 4000, 300
    d = rng.normal(0, 1.5, n)
    recent = np.zeros(n, bool)
    recent[-recent_n:] = True
    y_same = (rng.random(n) < 1 / (1 + np.exp(-(d - 1)))).astype(int)
    losses = losses_by_span(d, 1 / (1 + np.exp(-d)), y_same, recent, ("sigmoid", "isotonic"))
    # Stationary: the map on all 4,000 leads predicts the held-out recent ones best.
    assert min(losses, key=losses.get)[1] == "all"
    # The base rate moved in the recent span: the recent map is the one that follows it.
    shift = np.where(recent, 1.5, 0.0)
    y_drift = (rng.random(n) < 1 / (1 + np.exp(-(d - 1 + shift)))).astype(int)
    losses = losses_by_span(d, 1 / (1 + np.exp(-d)), y_drift, recent, ("sigmoid", "isotonic"))
    assert min(losses, key=losses.get)[1] == "recent"

    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"d": d})  # noqa: N806
    model = LogisticRegression().fit(X, y_same)
    calibrated, method, span, named, scores = calibrate_oof_by_span(
        model, X.head(500), pd.Series(y_same).head(500), d, 1 / (1 + np.exp(-d)), y_same,
        recent, method="sigmoid")
    assert (method, span) == ("sigmoid", "all") and "sigmoid/recent" in named
    assert len(scores) == recent_n and calibrated.predict_proba(X.head(3)).shape == (3, 2)


def test_segment_models_leave_season_to_the_pooled_model_unless_asked():
    from leadq.pipelines.params.loader import effective_params
    from leadq.pipelines.segmenting.training import member_params

    params = effective_params(segmented_params())
    assert params["features"]["date_parts"] is True
    member = member_params(params)
    assert member["features"]["date_parts"] is False
    assert params["features"]["date_parts"] is True  # the pooled model's params untouched
    params["segments"]["date_parts"] = True
    assert member_params(params)["features"]["date_parts"] is True
