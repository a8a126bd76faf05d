"""`leadq report`: one self-contained HTML page for marketers (and a model-health part for data
scientists), from the champion model and the configured CRM tables; logged to the champion's
MLflow run.

compute_report is the step (tables + model + params in, plain data out); render_html
(leadq.pipelines.reporting.html, a Jinja2 template with matplotlib charts) turns that into the
page; main does the I/O and MLflow wiring.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import LeadqError
from leadq.features.columns import raw_input_columns
from leadq.features.split import split_leads, test_set_name
from leadq.features.tables import build_labels
from leadq.features.transform import email_is_corporate
from leadq.models import insights
from leadq.models.metrics import calibration_table, classification_metrics, gains_table
from leadq.pipelines.io.crm import CrmTables
from leadq.pipelines.io.progress import log, step
from leadq.pipelines.reporting.html import ReportData, render_html
from leadq.settings import setting

ARTIFACT_PATH = "report/report.html"


# --- the step -------------------------------------------------------------------------------
def permutation_importance(model, X: pd.DataFrame, y: np.ndarray, *, repeats: int = 5,  # noqa: N803
                           seed: int = 0) -> pd.DataFrame:
    """ROC AUC lost when one raw column is shuffled, mean and spread over `repeats` shuffles.
    Shuffling a raw column moves everything derived from it together (the email's corporate
    flag, the job title's seniority, the date's season); models/importance.py computes it on
    rows encoded once, so a large export's report stays a small fraction of its training."""
    from leadq.models.importance import permutation_importance as grouped

    return grouped(model, X, y, repeats=repeats, seed=seed)


def stratified_sample(X: pd.DataFrame, y: np.ndarray, rows: int,  # noqa: N803
                      seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """At most `rows` leads with the outcome rate kept (each class sampled in proportion, at
    least one of each), so a rare conversion is not lost from the importance sample."""
    y = np.asarray(y)
    if len(y) <= rows:
        return X, y
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        n = max(1, round(rows * len(idx) / len(y)))
        keep.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    take = np.sort(np.concatenate(keep))
    return X.iloc[take], y[take]


def _insight_values(leads: pd.DataFrame, col: str, params: dict) -> pd.Series:
    """The values a marketer reads for a column: the email's kind only, the lead's month."""
    feats, spec = params["features"], params["data"]["leads"]
    if col == feats.get("email_column"):
        flag = email_is_corporate(leads[col])
        kind = np.where(flag == 1.0, "corporate", np.where(flag == 0.0, "free-mail", None))
        return pd.Series(kind, index=leads.index, dtype=object)
    if col == spec.get("created_at"):
        return pd.to_datetime(leads[col]).dt.month_name().astype(object)
    if col in (spec.get("personal") or []):
        raise ValueError(f"{col} is personal and never shown")
    return leads[col]


def _shap_summary(model, X: pd.DataFrame, rows: int, seed: int = 0) -> dict:  # noqa: N803
    from leadq.models.explain import explain

    sample = X.sample(min(rows, len(X)), random_state=seed) if len(X) > rows else X
    exp = explain(model, sample)
    contrib = exp.contributions
    order = contrib.abs().mean().sort_values(ascending=False)
    colour = {}
    for col in contrib.columns:
        values = sample[col]
        if pd.api.types.is_numeric_dtype(values):
            colour[col] = values.rank(pct=True).to_numpy(dtype=float)
        else:
            colour[col] = np.full(len(values), np.nan)
    return {"method": exp.method, "base_value": exp.base_value, "rows": len(sample),
            "mean_abs": order, "values": contrib, "colour": pd.DataFrame(colour,
                                                                           index=contrib.index),
            "max_additivity_error": exp.additivity_error()}


def with_persona_attributes(params: dict, importance: pd.DataFrame | None = None) -> dict:
    """report.persona_attributes: null means the categorical inputs, plus the job level and the
    email kind when those columns are set (the generic default for any CRM), plus each numeric
    input that drives the model (among the three most important columns and at least half as
    important as the first): a persona built without the strongest driver misleads."""
    cfg = params.get("report") or {}
    if cfg.get("persona_attributes") is not None:
        return params
    feats = params["features"]
    numeric = set(feats.get("numeric") or [])
    drivers = []
    if importance is not None and len(importance):
        top = float(importance["importance"].iloc[0])
        drivers = [c for c, v in zip(importance["column"].head(3),
                                     importance["importance"].head(3), strict=True)
                   if c in numeric and top > 0 and v >= 0.5 * top]
    names = [*drivers, *(feats.get("categorical") or []),
             *(["job_level"] if feats.get("job_title_column") else []),
             *(["email_kind"] if feats.get("email_column") else [])]
    return {**params, "report": {**cfg, "persona_attributes": names}}


def baselines_from_tags(tags: dict) -> list[dict]:
    """The training run's test figures for leadq's model and each library-default baseline
    (registry version tags; the baselines are not re-fitted for the report)."""
    from leadq.models.baselines import BASELINES

    def num(key: str) -> float | None:
        try:
            return float(tags[key])
        except (KeyError, TypeError, ValueError):
            return None

    names = {"hgb": "HistGradientBoostingClassifier()", "logreg": "LogisticRegression()"}
    rows = [{"model": f"leadq ({tags.get('candidate', 'model')})",
             "roc_auc": num("test_roc_auc"), "pr_auc": num("test_pr_auc"),
             "log_loss": num("test_log_loss")}]
    rows += [{"model": f"{names[b]}, library defaults",
              "roc_auc": num(f"baseline_{b}_test_roc_auc"),
              "pr_auc": num(f"baseline_{b}_test_pr_auc"),
              "log_loss": num(f"baseline_{b}_test_log_loss")} for b in BASELINES]
    known = [r for r in rows if r["roc_auc"] is not None]
    return known if len(known) > 1 else []  # a model trained before baselines existed: none


def recorded_test_figures(tags: dict) -> dict:
    """The training run's test figures (registry version tags): what the report's headline
    quotes, so it equals the run's MLflow metrics instead of a re-derived test set."""
    out: dict = {}
    for key in ("test_roc_auc", "test_pr_auc", "test_ece", "test_log_loss", "test_brier"):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            out[key] = float(tags[key])
    for key in ("n_labelled", "n_test"):
        if str(tags.get(key, "")).isdigit():
            out[key] = int(tags[key])
    return out


def sla_table(leads: pd.DataFrame, feedback: pd.DataFrame | None, *, as_of: pd.Timestamp,
              sla_hours: float, mql_moment_days: float = 0.0) -> dict | None:
    """Contact share, median hours to first contact and within-SLA share for MQLs and the
    rest (features.agreement.sla_compliance: the SLA rule `recalibrate` and `review` use).
    `leads`: lead_id, created_at, is_mql."""
    from leadq.features.agreement import first_contacts, sla_compliance

    first = first_contacts(feedback)
    if first is None:
        return None
    out: dict = {"sla_hours": float(sla_hours)}
    for name, mask in (("mql", leads["is_mql"].to_numpy(bool)),
                       ("other", ~leads["is_mql"].to_numpy(bool))):
        due = sla_compliance(leads.loc[mask, ["lead_id", "created_at"]], first, as_of=as_of,
                             sla_hours=sla_hours, mql_moment_days=mql_moment_days)
        hours = due["hours_to_contact"]
        out[f"{name}_due"] = int(len(due))
        out[f"{name}_contacted"] = float(hours.notna().mean()) if len(due) else float("nan")
        out[f"{name}_median_hours"] = float(hours.median()) if hours.notna().any() \
            else float("nan")
        out[f"{name}_within_sla"] = float(due["within_sla"].mean()) if len(due) \
            else float("nan")
    return out


def compute_report(model, tables: CrmTables, params: dict, *, threshold: float,
                   cutoffs=None, model_info: dict | None = None,
                   period: dict | None = None, recorded: dict | None = None,
                   segment_bars=None, correction=None) -> ReportData:
    """All figures of the report from the CRM tables and the (calibrated) champion model.

    `segment_bars` (models.thresholds.SegmentBars): each lead's MQL flag and tier by its
    segment's bar, as the scorer decides them; `threshold` is then the pooled bar.
    `correction` (models.prior_shift.Correction, recalibrate's base-rate correction in force):
    MQL flags, the bar's share and tiers compare the corrected score with the bar, as
    `leadq score` does; the model's own metrics stay on its probabilities.

    `period`: the review period's shared figures (features.agreement.period_figures on the
    scorer's outputs), shown as they are; `recorded`: the training run's test figures
    (recorded_test_figures), which the headline quotes."""
    from leadq.models.evaluation import tier_table
    from leadq.models.thresholds import tier_cutoffs
    from leadq.pipelines.params.loader import agreement_of

    agreement = agreement_of(params)
    cfg = params.get("report") or {}
    spec = params["data"]["leads"]
    leads = tables.leads
    labels, as_of = build_labels(leads, tables.deals, tables.feedback, params)
    labelled = labels["label"].notna()
    y = labels.loc[labelled, "label"].astype(int)
    created = leads.loc[labelled, spec["created_at"]] if spec.get("created_at") else None
    scfg = params["split"]
    split = split_leads(created, y, train=setting(scfg, "train", float),
                        validation=setting(scfg, "validation", float),
                        seed=setting(scfg, "seed", int))
    cols = raw_input_columns(params)
    X_all = leads[cols]  # noqa: N806
    with step(f"score {len(leads):,} leads with the model"):
        score_all = model.predict_proba(X_all)[:, 1]
    row_bar: float | np.ndarray = threshold
    if segment_bars is not None:
        row_bar, row_cuts = segment_bars.for_rows(leads[segment_bars.column].to_numpy())
    # The bar in force was set on corrected scores (leadq recalibrate): route as the scorer.
    routed_all = correction.apply(score_all) if correction is not None else score_all
    is_mql = routed_all >= row_bar
    test_idx = split.index[split == "test"]
    X_test, y_test = X_all.loc[test_idx], y.loc[test_idx].to_numpy()  # noqa: N806
    s_test = pd.Series(score_all, index=leads.index).loc[test_idx].to_numpy()
    r_test = pd.Series(routed_all, index=leads.index).loc[test_idx].to_numpy()
    test_bar = row_bar
    if segment_bars is not None:
        at = leads.index.get_indexer(test_idx)
        test_bar, cutoffs = row_bar[at], row_cuts[at]

    test_set = test_set_name(created)
    X_imp, y_imp = stratified_sample(X_test, y_test, int(cfg["importance_rows"]))  # noqa: N806
    with step(f"permutation importance on {len(y_imp):,} of {len(y_test):,} {test_set} test "
              f"leads × {int(cfg['importance_repeats'])} shuffles"):
        importance = permutation_importance(model, X_imp, y_imp,
                                            repeats=int(cfg["importance_repeats"]))
    importance.attrs["rows"] = len(y_imp)
    with step("SHAP summary"):
        shap_summary = _shap_summary(model, X_test, setting(cfg, "shap_rows", int))

    camp_col = agreement.campaign_column
    campaigns = None
    # Campaign quality joins feedback and deals to the leads by id: none without one.
    if camp_col and camp_col in leads and spec.get("id"):
        campaigns = insights.campaign_quality(leads, labels, tables.feedback, tables.deals,
                                              is_mql, params, campaign_col=camp_col,
                                              source_col=agreement.source_column)
    # The campaigns to cut stay by name in the campaign column's insight, however few leads.
    cut = [] if campaigns is None else campaigns.loc[campaigns["flag"], "campaign"].tolist()

    min_rows = setting(cfg, "min_value_rows", int)
    top_cols = list(importance["column"].head(setting(cfg, "insight_columns", int)))
    lab_leads = leads.loc[labelled]
    attribute = {col: insights.attribute_insights(_insight_values(lab_leads, col, params), y,
                                                  min_rows=min_rows,
                                                  keep=cut if col == camp_col else ())
                 for col in top_cols}
    # A column none of whose values has min_value_rows leads (a count that is 0 for nearly
    # everyone) has nothing to show: no empty section.
    attribute = {col: frame for col, frame in attribute.items() if len(frame)}
    with step("persona search"):
        attrs = insights.persona_attributes(lab_leads, with_persona_attributes(params,
                                                                                importance))
        min_seg = max(min_rows, int(setting(cfg, "persona_min_share", float) * len(y)))
        best, worst = insights.persona_segments(attrs, y, min_rows=min_seg,
                                                top=setting(cfg, "persona_rows", int))

    metrics = classification_metrics(y_test, s_test, prefix="test_")
    if cutoffs is None:
        cutoffs = tier_cutoffs(r_test, threshold, **agreement.tiers)
    tradeoff = insights.threshold_tradeoff(y_test, s_test)
    passed = r_test >= test_bar
    health = {
        "metrics": metrics,
        "calibration": calibration_table(y_test, s_test),
        "gains": gains_table(y_test, s_test),
        "tiers": tier_table(y_test, r_test, cutoffs),
        "tradeoff": tradeoff,
        "bar": {"threshold": threshold, "leads_share": float(passed.mean()),
                "per_segment": None if segment_bars is None else segment_bars.column,
                "conversions_share": float(y_test[passed].sum() / max(y_test.sum(), 1))},
        "sla": sla_table(pd.DataFrame({"lead_id": leads[spec["id"]].astype(str).to_numpy(),
                                       "created_at": leads[spec["created_at"]].to_numpy(),
                                       "is_mql": is_mql}),
                         tables.feedback, as_of=_as_of(as_of, leads[spec["created_at"]]),
                         sla_hours=agreement.sla_hours,
                         mql_moment_days=agreement.mql_moment_days)
        if spec.get("created_at") and spec.get("id") else None,
        "period": period,
        "recorded": bool(recorded),
    }
    if recorded:
        # The headline quotes the training run; the charts below use the test leads as
        # rebuilt from today's tables (the same ones unless the export has grown since).
        metrics = {**metrics, **{k: v for k, v in recorded.items() if k.startswith("test_")}}
        health["metrics"] = metrics
    data = {"leads": len(leads),
            "labelled": (recorded or {}).get("n_labelled", int(labelled.sum())),
            "conversion_rate": float(y.mean()),
            "test_leads": (recorded or {}).get("n_test", len(test_idx)),
            "as_of": None if as_of is None else str(as_of.date()),
            "test_set": test_set,
            "mql_share": (period or {}).get("mql_share", float(is_mql.mean())),
            "mql_share_basis": (f"of the last {agreement.review_days:g} days' scored leads"
                                if period else "of all leads, scored now")}
    from leadq.pipelines.segmenting.report import (
        segment_personas,
        segment_reliability,
        segment_report,
    )

    segments = segment_report(model, X_test, y_test, s_test, shap_summary.get("values"))
    seg_personas = None
    if segments is not None:
        with step("personas per segment model"):
            seg_personas = segment_personas(
                model, lab_leads[model.column], attrs, pd.Series(y, index=attrs.index),
                min_share=float(setting(cfg, "persona_min_share", float)), min_rows=min_rows,
                top=3)
    info = dict(model_info or {}, threshold=threshold)
    if segments is not None:
        info["segment_column"] = model.column
    return ReportData(model=info, data=data,
                      importance=importance, shap_summary=shap_summary, insights=attribute,
                      personas_best=best, personas_worst=worst, campaigns=campaigns,
                      health=health, segments=segments,
                      segment_reliability=segment_reliability(model, X_test, y_test, s_test),
                      segment_personas=seg_personas)


def _as_of(as_of: pd.Timestamp | None, created: pd.Series) -> pd.Timestamp:
    return as_of if as_of is not None else pd.to_datetime(created).max()


# --- I/O ------------------------------------------------------------------------------------
def write_text_atomic(text: str, path: Path) -> Path:
    """Write beside the target, then rename: a reader never sees half a report."""
    from leadq.pipelines.io.files import atomic_target

    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _sklearn_model(scoring) -> object:
    try:
        return scoring.pyfunc.get_raw_model()
    except (NotImplementedError, AttributeError):
        from leadq.pipelines.tracking.store import load_sklearn_model

        return load_sklearn_model(scoring.uri)


def review_period(params: dict, scoring, tables) -> dict | None:
    """The review period's scored leads and shared figures, when the scorer's outputs are
    configured (recalibration.scores) and hold leads of this model version; else None (the
    report then says its MQL share is of all leads, scored now)."""
    from leadq.features.agreement import period_figures
    from leadq.pipelines.params.loader import agreement_of
    from leadq.pipelines.recalibrate import load_window

    if not params["recalibration"]["scores"] or not (params["data"]["leads"].get("id") and
                                                     params["data"]["leads"].get("created_at")):
        return None
    try:
        window = load_window(params, scores=None, version=scoring.version, as_of=None,
                             tables=tables)
    except LeadqError as exc:
        log.info("no review-period figures: %s", exc)
        return None
    agreement = agreement_of(params)
    window["figures"] = period_figures(window["recent"], tables.feedback,
                                       as_of=window["as_of"], agreement=agreement)
    from leadq.models.review import call_gain_by_tier

    # Who gains from a call (issue 29): the review's rows, shown under the period's figures.
    window["figures"]["call_gain"] = call_gain_by_tier(
        window["matured"], min_group=setting(params, "lift.min_group_leads", int),
        confidence=setting(params, "lift.confidence", float))
    return window


def main(params_path: str | None = None, out: str | None = None,
         model_uri: str | None = None) -> dict:
    """Build the report for the champion (or `model_uri`), write it and log it to its run."""
    import mlflow

    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params, resolve_path
    from leadq.pipelines.scoring.model import load_scoring_model, registry_version

    params = load_params(params_path)
    cfg = params.get("report") or {}
    with step("load model"):
        scoring = load_scoring_model(params, model_uri)
        model = _sklearn_model(scoring)
        mv = registry_version(scoring.uri)
    with step("load CRM tables"):
        tables = load_crm(params)
    info = {"name": params["registry"]["model_name"], "version": scoring.version,
            "candidate": scoring.tags.get("candidate", type(model).__name__), "uri": scoring.uri,
            "baselines": baselines_from_tags(scoring.tags)}
    period = review_period(params, scoring, tables)
    from threadpoolctl import threadpool_limits

    # Permutation importance predicts ~100 times: HistGradientBoosting's OpenMP threads
    # spin-wait on a busy machine (one thread: 2.0 s, default threads: 18.6 s for the same
    # importance on a loaded 2-core machine), so the report shares training's thread limit.
    n_threads = setting(params, "train.n_threads")
    with (threadpool_limits(limits=int(n_threads)) if n_threads is not None
          else contextlib.nullcontext()):
        rep = compute_report(model, tables, params, threshold=scoring.threshold,
                             cutoffs=scoring.cutoffs, model_info=info,
                             period=None if period is None else period["figures"],
                             recorded=recorded_test_figures(scoring.tags),
                             segment_bars=scoring.segment_bars,
                             correction=scoring.correction)
    html = render_html(rep)
    path = Path(out) if out else resolve_path(params, setting(cfg, "out"))
    write_text_atomic(html, path)
    run_id = getattr(mv, "run_id", None)
    if run_id:
        mlflow.MlflowClient().log_text(run_id, html, ARTIFACT_PATH)
    log.info("wrote %s (%d KB)%s", path, len(html) // 1024,
             f"; logged to run {run_id} as {ARTIFACT_PATH}" if run_id else "")
    flagged = rep.campaigns.loc[rep.campaigns["flag"], "campaign"].tolist() if (
        rep.campaigns is not None) else []
    return {"output": str(path), "run_id": run_id, "model_version": scoring.version,
            "top_persona": rep.personas_best["segment"].iloc[0] if len(rep.personas_best)
            else None,
            "flagged_campaigns": flagged}
