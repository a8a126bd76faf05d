"""`leadq review`: the regular marketing-and-sales meeting on one page.

For the review period (agreement.review_days up to --as-of) against the period before it: SLA
compliance (overall, by tier and by rep), acceptance and rejection reasons by campaign, the
campaigns to cut with their interval, realised conversion of MQLs against non-MQLs, progress
against the shared goal, the bar's history and why it moved, the drift verdict, and what
changed in plain sentences. HTML (escaped, reporting/templates/review.html.j2) and --json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import BadInputError
from leadq.features.agreement import describe_policy, period_figures
from leadq.models import review as rv
from leadq.pipelines.io.progress import log, step


def compute_review(window: dict, tables, params: dict, *, history: list[dict],
                   model_version: str) -> dict:
    """Every figure of the page from the loaded window (pipelines.recalibrate.load_window),
    the CRM tables and the threshold history of the model version. Pure apart from logging."""
    from leadq.pipelines.params.loader import agreement_of

    agreement = agreement_of(params)
    recent, before, matured = window["recent"], window["before"], window["matured"]
    as_of = window["as_of"]
    start = as_of - pd.Timedelta(days=agreement.review_days)
    fb = tables.feedback
    now = period_figures(recent, fb, as_of=as_of, agreement=agreement)
    prev = (period_figures(before, fb, as_of=start, agreement=agreement) if len(before)
            else None)
    tier = recent["tier"] if "tier" in recent else pd.Series(
        np.where(recent["is_mql"], "MQL", "below the bar"), index=recent.index)
    by_tier = rv.sla_by(recent, fb, by=tier, as_of=as_of, agreement=agreement)
    rep_of = None
    if fb is not None and "rep" in fb and fb["rep"].notna().any():
        rep_of = (fb.dropna(subset=["rep"]).sort_values("feedback_at")
                  .groupby(fb["lead_id"].astype(str))["rep"].first())
    by_rep = (rv.sla_by(recent, fb, by=recent["lead_id"].astype(str).map(rep_of),
                        as_of=as_of, agreement=agreement) if rep_of is not None else None)
    camp_col, src_col = agreement.campaign_column, agreement.source_column
    campaigns = campaigns_before = None
    if camp_col and camp_col in recent:
        from leadq.features.transform import display_like

        # Spelled as over the whole export, so both periods (and the report) agree.
        def shown(frame: pd.DataFrame, col: str) -> pd.Series:
            return display_like(frame[col], tables.leads[col])

        campaigns = rv.campaign_review(recent, fb, agreement=agreement,
                                       campaign=shown(recent, camp_col),
                                       source=shown(recent, src_col)
                                       if src_col and src_col in recent else None)
        if len(before):
            campaigns_before = rv.campaign_review(before, fb, agreement=agreement,
                                                  campaign=shown(before, camp_col))
    reasons = rv.rejection_reasons(recent, fb)
    realised = rv.realised_conversion(matured)
    from leadq.settings import setting

    call_gain = rv.call_gain_by_tier(
        matured, min_group=setting(params, "lift.min_group_leads", int),
        confidence=setting(params, "lift.confidence", float))
    wins = 0
    if tables.deals is not None and len(tables.deals):
        d = tables.deals
        in_period = d["won"].astype(bool) & (d["closed_at"] > start) & (d["closed_at"] <= as_of)
        wins = int(in_period.sum())
    mql_precision = float(recent.loc[recent["is_mql"], "score"].mean()) if now["mqls"] else None
    goal = rv.goal_progress(now, wins, agreement=agreement, mql_precision=mql_precision)
    bars = [{"version": int(e["threshold_version"]), "as_of": str(e.get("as_of") or "training"),
             "threshold": float(e["threshold"]),
             "policy": describe_policy(e.get("policy")),
             "reason": str(e.get("reason") or ""),
             "changed_by": (e.get("policy_change") or {}).get("by"),
             "change_reason": (e.get("policy_change") or {}).get("reason"),
             "mql_per_week": (e.get("decision") or {}).get("mql_per_week")} for e in history]
    moves = []
    for a, b in zip(history, history[1:], strict=False):
        when = pd.Timestamp(b.get("as_of")) if b.get("as_of") else None
        if when is not None and start < when <= as_of + pd.Timedelta(days=1):
            moves.append({"from": float(a["threshold"]), "to": float(b["threshold"]),
                          "when": str(when.date()),
                          "why": (b.get("policy_change") or {}).get("reason")
                          or (b.get("decision") or {}).get("binding")})
    drift = next((e["drift"] for e in reversed(history) if e.get("drift")), None)
    flagged = [] if campaigns is None else campaigns.loc[campaigns["flag"], "campaign"].tolist()
    flagged_before = ([] if campaigns_before is None else
                      campaigns_before.loc[campaigns_before["flag"], "campaign"].tolist())
    changed = rv.what_changed(now, prev, flagged_now=flagged, flagged_before=flagged_before,
                              bar_moves=moves)
    if drift:
        changed.append(f"Drift verdict of the latest recalibration: {drift['verdict']}.")
    return {
        "period": {"start": str(start.date()), "end": str(as_of.date()),
                   "days": agreement.review_days},
        "model_version": model_version,
        "agreement": agreement.words(label_rejected_negative=bool(
            params["label"]["rejected_is_negative"])),
        "now": now, "before": prev,
        "sla_by_tier": by_tier.to_dict("records"),
        "sla_by_rep": None if by_rep is None else by_rep.to_dict("records"),
        "campaigns": None if campaigns is None else campaigns.to_dict("records"),
        "campaign_column": camp_col,
        "flagged": flagged,
        "rejection_reasons": reasons.to_dict("records"),
        "realised": realised,
        "call_gain": call_gain,
        "goal": goal,
        "bars": bars,
        "drift": drift,
        "changed": changed,
    }


def render_review(review: dict) -> str:
    from leadq.pipelines.reporting.html import environment

    return environment().get_template("review.html.j2").render(r=review, nan=_finite)


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and bool(np.isfinite(v))


def main(params_path: str | None = None, *, out: str | None = None, as_of: str | None = None,
         scores: str | None = None, model_uri: str | None = None) -> dict:
    import mlflow

    from leadq.pipelines.agreement import in_force
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params, resolve_path
    from leadq.pipelines.recalibrate import load_window, scores_pattern
    from leadq.pipelines.report import write_text_atomic
    from leadq.pipelines.tracking.thresholds import history

    params = load_params(params_path)
    scores_pattern(params, scores)
    current = in_force(params, model_uri)
    if current is None:
        raise BadInputError(f"no champion model {params['registry']['model_name']!r} in "
                            f"{mlflow.get_tracking_uri()}: run `leadq train` (and `leadq "
                            "score`) first")
    version = current["model_version"]
    if as_of:
        params["label"]["as_of"] = str(pd.Timestamp(as_of).date())
    with step("load CRM tables"):
        tables = load_crm(params)
    with step("read the scorer's outputs for the review period"):
        window = load_window(params, scores=scores, version=version, as_of=as_of,
                             tables=tables)
    hist = history(mlflow.MlflowClient(), params["registry"]["model_name"], version)
    review = compute_review(window, tables, params, history=hist, model_version=version)
    html = render_review(review)
    path = Path(out) if out else resolve_path(params, params["review"]["out"])
    write_text_atomic(html, path)
    now = review["now"]
    log.info("review %s – %s: %d MQLs (%s of leads); %s reached within %g h; acceptance %s",
             review["period"]["start"], review["period"]["end"], now["mqls"],
             _pct(now["mql_share"]), _pct(now["within_sla_share"]), now["sla_hours"],
             _pct(now["acceptance_rate"]))
    for sentence in review["changed"]:
        log.info("  %s", sentence)
    if review["flagged"]:
        log.info("campaigns to cut: %s", ", ".join(map(str, review["flagged"])))
    log.info("wrote %s", path)
    return {"output": str(path), **review}


def _pct(v) -> str:
    return "not measured" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"
