"""`leadq report`: one self-contained HTML page for marketers (and a model-health part for data
scientists), from the champion model and the configured CRM tables; logged to the champion's
MLflow run.

compute_report is the step (tables + model + params in, plain data out); render_html turns that
into the page; main does the I/O and MLflow wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from leadq.features.columns import raw_input_columns
from leadq.features.split import split_leads
from leadq.features.tables import build_labels
from leadq.features.transform import email_is_corporate
from leadq.models import insights
from leadq.models.metrics import calibration_table, classification_metrics, gains_table
from leadq.pipelines.io.crm import CrmTables
from leadq.pipelines.io.progress import log, step

ARTIFACT_PATH = "report/report.html"
STRIP_DOTS = 500  # leads drawn per row of the SHAP summary


@dataclass
class ReportData:
    """Everything the page shows; tables are DataFrames, figures plain numbers."""

    model: dict
    data: dict
    importance: pd.DataFrame
    shap_summary: dict
    insights: dict[str, pd.DataFrame]
    personas_best: pd.DataFrame
    personas_worst: pd.DataFrame
    campaigns: pd.DataFrame | None
    health: dict = field(default_factory=dict)


# --- the step -------------------------------------------------------------------------------
def permutation_importance(model, X: pd.DataFrame, y: np.ndarray, *, repeats: int = 5,  # noqa: N803
                           seed: int = 0) -> pd.DataFrame:
    """ROC AUC lost when one raw column is shuffled, mean and spread over `repeats` shuffles.

    Shuffling a raw column moves everything derived from it together (the email's corporate
    flag, the job title's seniority, the date's season). LeadFeatures works row by row, so
    shuffling its outputs derived from one column with one permutation is the same as
    shuffling that column: the features are computed once, not once per shuffle.
    """
    from sklearn.metrics import roc_auc_score

    from leadq.models.explain import calibrated_probability, derived_source, unwrap

    pipeline, calibrators = unwrap(model)
    feats = pipeline.named_steps["features"]
    rest = pipeline[1:]
    derived = feats.transform(X)
    source = derived_source(feats)

    def auc(frame: pd.DataFrame) -> float:
        margin = np.asarray(rest.decision_function(frame), float)
        return roc_auc_score(y, calibrated_probability(calibrators, margin))

    rng = np.random.default_rng(seed)
    base = auc(derived)
    rows = []
    for col in dict.fromkeys(X.columns):
        affected = [c for c in derived.columns if source.get(c, c) == col]
        drops = []
        for _ in range(repeats):
            shuffled = derived.copy()
            order = rng.permutation(len(X))
            for c in affected:
                shuffled[c] = derived[c].to_numpy()[order]
            drops.append(base - auc(shuffled))
        rows.append({"column": col, "importance": float(np.mean(drops)),
                     "spread": float(np.std(drops))})
    return pd.DataFrame(rows).sort_values("importance", ascending=False).reset_index(drop=True)


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


def compute_report(model, tables: CrmTables, params: dict, *, threshold: float,
                   cutoffs=None, model_info: dict | None = None) -> ReportData:
    """All figures of the report from the CRM tables and the (calibrated) champion model."""
    from leadq.models.evaluation import tier_table
    from leadq.models.thresholds import tier_cutoffs

    cfg = params.get("report") or {}
    spec = params["data"]["leads"]
    leads = tables.leads
    labels, as_of = build_labels(leads, tables.deals, tables.feedback, params)
    labelled = labels["label"].notna()
    y = labels.loc[labelled, "label"].astype(int)
    created = leads.loc[labelled, spec["created_at"]] if spec.get("created_at") else None
    scfg = params["split"]
    split = split_leads(created, y, train=float(scfg.get("train", 0.6)),
                        validation=float(scfg.get("validation", 0.2)),
                        seed=int(scfg.get("seed", 42)))
    cols = raw_input_columns(params)
    X_all = leads[cols]  # noqa: N806
    with step(f"score {len(leads):,} leads with the model"):
        score_all = model.predict_proba(X_all)[:, 1]
    is_mql = score_all >= threshold
    test_idx = split.index[split == "test"]
    X_test, y_test = X_all.loc[test_idx], y.loc[test_idx].to_numpy()  # noqa: N806
    s_test = pd.Series(score_all, index=leads.index).loc[test_idx].to_numpy()

    with step("permutation importance on the out-of-time test"):
        importance = permutation_importance(model, X_test, y_test,
                                            repeats=int(cfg.get("importance_repeats", 5)))
    with step("SHAP summary"):
        shap_summary = _shap_summary(model, X_test, int(cfg.get("shap_rows", 2000)))

    min_rows = int(cfg.get("min_value_rows", 30))
    top_cols = list(importance["column"].head(int(cfg.get("insight_columns", 6))))
    lab_leads = leads.loc[labelled]
    attribute = {col: insights.attribute_insights(_insight_values(lab_leads, col, params), y,
                                                  min_rows=min_rows) for col in top_cols}
    with step("persona search"):
        attrs = insights.persona_attributes(lab_leads, params)
        min_seg = max(min_rows, int(float(cfg.get("persona_min_share", 0.005)) * len(y)))
        best, worst = insights.persona_segments(attrs, y, min_rows=min_seg,
                                                top=int(cfg.get("persona_rows", 8)))
    camp_col = cfg.get("campaign_column", "campaign")
    campaigns = None
    if camp_col in leads:
        campaigns = insights.campaign_quality(leads, labels, tables.feedback, tables.deals,
                                              is_mql, params, campaign_col=camp_col,
                                              source_col=cfg.get("source_column", "source"))

    metrics = classification_metrics(y_test, s_test, prefix="test_")
    if cutoffs is None:
        cutoffs = tier_cutoffs(s_test, threshold)
    tradeoff = insights.threshold_tradeoff(y_test, s_test)
    passed = s_test >= threshold
    health = {
        "metrics": metrics,
        "calibration": calibration_table(y_test, s_test),
        "gains": gains_table(y_test, s_test),
        "tiers": tier_table(y_test, s_test, cutoffs),
        "tradeoff": tradeoff,
        "bar": {"threshold": threshold, "leads_share": float(passed.mean()),
                "conversions_share": float(y_test[passed].sum() / max(y_test.sum(), 1))},
        "sla": insights.sla_figures(leads[spec["created_at"]], leads[spec["id"]],
                                    tables.feedback, is_mql, float(cfg.get("sla_hours", 48)))
        if spec.get("created_at") else None,
    }
    data = {"leads": len(leads), "labelled": int(labelled.sum()),
            "conversion_rate": float(y.mean()), "test_leads": len(test_idx),
            "as_of": None if as_of is None else str(as_of.date()),
            "mql_share": float(is_mql.mean())}
    return ReportData(model=dict(model_info or {}, threshold=threshold), data=data,
                      importance=importance, shap_summary=shap_summary, insights=attribute,
                      personas_best=best, personas_worst=worst, campaigns=campaigns,
                      health=health)


# --- the page -------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:#111;background:#f8fafc}
main{max-width:1100px;margin:auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:36px;border-bottom:2px solid #e2e8f0;padding-bottom:4px}
h4{margin:0 0 6px;font-size:14px}
.lede{color:#475569}.grid{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:10px;margin:0}
figcaption{color:#64748b;font-size:12px;max-width:620px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0 16px}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:right}
th{background:#f1f5f9}td.t,th.t{text-align:left}
tr.flag td{background:#fee2e2}.pill{background:#dc2626;color:#fff;border-radius:8px;
padding:1px 6px;font-size:11px;white-space:nowrap}
.kpi{display:inline-block;background:#fff;border:1px solid #e2e8f0;border-radius:6px;
padding:8px 14px;margin:4px 8px 4px 0}.kpi b{display:block;font-size:20px}
"""


def _pct(v: float, digits: int = 1) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}%"


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, object]],
           row_class=None) -> str:
    """columns: key → (header, formatter or 't' for left-aligned text)."""
    head = "".join(f'<th class="{"t" if f == "t" else ""}">{escape(h)}</th>'
                   for h, f in columns.values())
    rows = []
    for _, rec in frame.iterrows():
        cells = []
        for key, (_, fmt) in columns.items():
            v = rec.get(key)
            if fmt == "t":
                cells.append(f'<td class="t">{escape("" if v is None else str(v))}</td>')
            elif fmt == "raw":
                cells.append(f'<td class="t">{v}</td>')
            else:
                cells.append(f"<td>{escape(fmt(v))}</td>")
        cls = f' class="{row_class(rec)}"' if row_class and row_class(rec) else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _rate_columns() -> dict:
    return {"leads": ("leads", lambda v: f"{int(v):,}"),
            "conversions": ("conversions", lambda v: f"{int(v):,}"),
            "rate": ("conversion", _pct),
            "ci": ("95% interval", "t"),
            "lift": ("lift", lambda v: f"{v:.2f}×")}


def _with_ci(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["ci"] = [f"{_pct(a)} – {_pct(b)}" for a, b in zip(out["ci_low"], out["ci_high"],
                                                          strict=True)]
    return out


def render_html(rep: ReportData) -> str:
    """The report as one HTML string: inline CSS and SVG, nothing fetched from the network."""
    from leadq.pipelines.reporting.charts import hbar_chart, line_chart, strip_chart

    m, d, h = rep.model, rep.data, rep.health
    met = h["metrics"]
    parts = [f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>leadq report — model {escape(str(m.get('version', '?')))}</title><style>{CSS}</style>
</head><body><main>
<h1>Lead quality report</h1>
<p class="lede">Model <b>{escape(str(m.get('name', '')))} version {escape(str(m.get('version',
'?')))}</b> ({escape(str(m.get('candidate', '')))}) · data as of {escape(str(d['as_of']))} ·
{d['leads']:,} leads, {d['labelled']:,} with a known outcome, conversion
{_pct(d['conversion_rate'])} · MQL bar {m['threshold']:.3f} ({_pct(d['mql_share'])} of leads)</p>
<div><span class="kpi">test ROC AUC<b>{met['test_roc_auc']:.3f}</b></span>
<span class="kpi">test PR AUC<b>{met['test_pr_auc']:.3f}</b></span>
<span class="kpi">calibration error (ECE)<b>{met['test_ece']:.3f}</b></span>
<span class="kpi">out-of-time test leads<b>{d['test_leads']:,}</b></span></div>
"""]
    # What the model learned
    imp = rep.importance
    parts.append("<h2>What drives conversion</h2><div class='grid'>")
    parts.append(hbar_chart(
        "importance", "Importance per CRM column (permutation, out-of-time test)",
        imp["column"], imp["importance"], imp["spread"], xlabel="ROC AUC lost when shuffled",
        caption="Each column is shuffled in the test leads and the drop in ROC AUC measured; "
                "the whisker is ± one standard deviation over the repeats."))
    sh = rep.shap_summary
    cols = list(sh["mean_abs"].index[:12])
    dots = min(len(sh["values"]), STRIP_DOTS)  # the page stays light; the order is random
    parts.append(strip_chart(
        "shap-summary", f"SHAP summary ({sh['rows']:,} test leads)", cols,
        sh["values"][cols].to_numpy()[:dots], sh["colour"][cols].to_numpy()[:dots],
        xlabel="contribution to the log-odds of converting",
        caption=f"Method: {sh['method']}; contributions plus the base value give the model's "
                f"log-odds exactly (largest error {sh['max_additivity_error']:.1e}). Colour: "
                "the lead's value of a numeric column, blue low → red high; grey for "
                "categories."))
    parts.append("</div>")
    # Attribute insights
    parts.append("<h2>Attribute insights</h2><p class='lede'>Conversion per value of the most "
                 "important columns against the overall rate "
                 f"({_pct(d['conversion_rate'])}), sorted by lift. Rare values are pooled as "
                 "(other).</p><div class='grid'>")
    for col, table in rep.insights.items():
        shown = _with_ci(table.head(15))
        parts.append(hbar_chart(
            f"insight-{col}", f"{col}: conversion by value", shown["value"], shown["rate"],
            reference=d["conversion_rate"], xlabel="conversion rate (dashed: overall)"))
        parts.append(_table(shown, {"value": ("value", "t"), **_rate_columns()}))
    parts.append("</div>")
    # Personas
    parts.append("<h2>Personas</h2><p class='lede'>Segments of 2–3 attributes with the highest "
                 "and the lowest conversion. Use the first list to write the ideal customer "
                 "profile, the second for the anti-persona. Ranked by the cautious end of the "
                 "95% interval, so small lucky segments do not top the list.</p>")
    for title, frame, name in (("Ideal customer profile", rep.personas_best, "personas-best"),
                               ("Anti-persona", rep.personas_worst, "personas-worst")):
        if frame.empty:
            parts.append(f"<h3>{title}</h3><p>Not enough leads per segment.</p>")
            continue
        shown = _with_ci(frame)
        shown["share_txt"] = shown["share"].map(_pct)
        parts.append(f"<h3>{title}</h3>")
        parts.append(f'<div data-personas="{name}">' + _table(shown, {
            "segment": ("segment", "t"), "share_txt": ("share of leads", "t"),
            **_rate_columns()}) + "</div>")
        labels = [" · ".join(map(str, v)) for v in frame["values"]]
        parts.append(hbar_chart(name, f"{title}: conversion", labels, shown["rate"],
                                reference=d["conversion_rate"], label_chars=70,
                                xlabel="conversion rate (dashed: overall)"))
    # Campaigns
    if rep.campaigns is not None:
        c = rep.campaigns.copy()
        c["status"] = np.where(c["flag"], '<span class="pill">cut</span>', "")
        parts.append("<h2>Campaign quality</h2><p class='lede'>Per campaign: leads, share above "
                     "the MQL bar, what sales did with them (acceptance and rejection reasons "
                     "from feedback), win rate and revenue. Rows marked <b>cut</b> are campaigns "
                     "whose leads sales mostly rejects.</p>")
        table = _table(c, {
            "campaign": ("campaign", "t"), "source": ("source", "t"),
            "leads": ("leads", lambda v: f"{int(v):,}"), "mql_share": ("above MQL bar", _pct),
            "feedback": ("feedback", lambda v: f"{int(v):,}"),
            "accepted_share": ("accepted", _pct), "rejected_share": ("rejected", _pct),
            "rejection_reasons": ("rejection reasons", "t"),
            "win_rate": ("win rate", _pct), "revenue": ("revenue", lambda v: f"{v:,.0f}"),
            "status": ("", "raw")}, row_class=lambda r: "flag" if r["flag"] else "")
        parts.append(f'<div data-campaigns="1">{table}</div>')
        top = c.sort_values("rejected_share", ascending=False).head(15)
        parts.append(hbar_chart(
            "campaign-rejection", "Share of worked leads sales rejected, by campaign",
            top["campaign"], top["rejected_share"].fillna(0),
            colors=["#dc2626" if f else "#2563eb" for f in top["flag"]],
            xlabel="rejected share of sales feedback"))
    # Model health
    parts.append("<h2>Model health (for data scientists)</h2><div class='grid'>")
    cal = h["calibration"]
    parts.append(line_chart("calibration", "Calibration (out-of-time test)",
                            [("model", cal["predicted"], cal["observed"])], diagonal=True,
                            xlabel="predicted conversion", ylabel="observed conversion"))
    g = h["gains"]
    parts.append(line_chart("gains", "Cumulative gains",
                            [("model", [0, *g["leads_share"]], [0, *g["conversions_share"]])],
                            diagonal=True, xlabel="share of leads (best first)",
                            ylabel="share of conversions", xmax=1, ymax=1))
    t, bar = h["tradeoff"], h["bar"]
    parts.append(line_chart(
        "threshold-tradeoff", "Threshold trade-off",
        [("conversions captured", t["leads_share"], t["conversions_share"])],
        xlabel="share of leads passed to sales", ylabel="share of conversions captured",
        marker=(bar["leads_share"], bar["conversions_share"], "MQL bar"), xmax=1, ymax=1,
        caption=f"The current MQL bar ({bar['threshold']:.3f}, circled) passes "
                f"{_pct(bar['leads_share'])} of test leads to sales and captures "
                f"{_pct(bar['conversions_share'])} of their conversions."))
    parts.append("</div><h3>Tiers</h3>")
    parts.append(_table(h["tiers"], {
        "tier": ("tier", "t"), "min_score": ("min score", lambda v: f"{v:.3f}"),
        "leads": ("leads", lambda v: f"{int(v):,}"), "leads_share": ("share of leads", _pct),
        "conversion_rate": ("conversion", _pct),
        "conversions_share": ("share of conversions", _pct)}))
    sla = h.get("sla")
    if sla:
        parts.append(f"""<h3>Sales follow-up (SLA {sla['sla_hours']:.0f} h)</h3><table>
<thead><tr><th class="t"></th><th>contacted</th><th>median hours to first contact</th>
<th>within SLA</th></tr></thead><tbody>
<tr><td class="t">MQLs</td><td>{_pct(sla['mql_contacted'])}</td>
<td>{sla['mql_median_hours']:.1f}</td><td>{_pct(sla['mql_within_sla'])}</td></tr>
<tr><td class="t">other leads</td><td>{_pct(sla['other_contacted'])}</td>
<td>{sla['other_median_hours']:.1f}</td><td>{_pct(sla['other_within_sla'])}</td></tr>
</tbody></table>""")
    parts.append("<p class='lede'>Generated by leadq. Scores are the registered model's "
                 "calibrated probabilities; personal fields (names, emails, phones) are never "
                 "shown — an email appears only as its kind (corporate or free-mail).</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


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
            "candidate": scoring.tags.get("candidate", type(model).__name__), "uri": scoring.uri}
    rep = compute_report(model, tables, params, threshold=scoring.threshold,
                         cutoffs=scoring.cutoffs, model_info=info)
    html = render_html(rep)
    path = Path(out) if out else resolve_path(params, cfg.get("out", "report.html"))
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
