"""`leadq plan`: turn one shared SMART goal ("40 won deals next month") into what each side
must deliver at the current MQL bar and measured rates.

Sales: the MQLs it must work (and whether that fits its capacity). Marketing: the raw leads it
must bring, overall and per campaign at each campaign's current quality. Rates come from the
recent window's corrected (calibrated) scores at the bar in force: expected precision is the
mean probability of an MQL, so planned wins are expected wins, not a promise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.errors import BadInputError
from leadq.features.agreement import PERIOD_WEEKS
from leadq.features.transform import display_category, display_like
from leadq.pipelines.io.progress import log, step


def plan_goal(recent: pd.DataFrame, *, won_deals: float, period: str, weeks_observed: float,
              capacity_per_week: float | None, by: str = "campaign",
              reference: pd.DataFrame | None = None) -> dict:
    """The pure planning step. `recent`: score (calibrated), is_mql and the `by` column;
    `reference`: the whole leads table, whose spellings the groups are shown in."""
    if won_deals <= 0:
        raise BadInputError(f"--won-deals must be positive, got {won_deals}")
    if period not in PERIOD_WEEKS:
        raise BadInputError(f"--period must be one of {sorted(PERIOD_WEEKS)}, got {period!r}")
    weeks = PERIOD_WEEKS[period]
    s = recent["score"].to_numpy(float)
    mql = recent["is_mql"].to_numpy(bool)
    if not mql.any():
        raise BadInputError("no MQLs at the current bar in the recent window: nothing to plan on")
    precision = float(s[mql].mean())
    share = float(mql.mean())
    mqls = won_deals / precision
    leads = mqls / share
    volume_now = len(recent) / weeks_observed * weeks
    out: dict = {
        "goal": {"won_deals": float(won_deals), "period": period, "weeks": weeks},
        "rates": {"mql_share": share, "mql_precision": precision,
                  "won_per_lead": share * precision, "leads_per_won": 1 / (share * precision)},
        "sales": {"mqls": mqls, "mqls_per_week": mqls / weeks},
        "marketing": {"leads": leads, "leads_per_week": leads / weeks,
                      "leads_at_current_pace": volume_now,
                      "won_at_current_pace": volume_now * share * precision,
                      "extra_leads_needed": max(leads - volume_now, 0.0)},
    }
    if capacity_per_week is not None:
        cap = capacity_per_week * weeks
        fits = mqls <= cap
        out["sales"].update({
            "capacity": cap, "fits_capacity": bool(fits),
            "won_within_capacity": cap * precision,
            "precision_needed_within_capacity": won_deals / cap if cap > 0 else float("inf"),
        })
    if by in recent:
        names = (display_like(recent[by], reference[by]) if reference is not None
                 and by in reference else display_category(recent[by]))
        groups = recent.assign(_won=np.where(mql, s, 0.0)).groupby(
            names.fillna("(missing)"), sort=False)
        rows = []
        for key, g in groups:
            mix = len(g) / len(recent)
            g_share = float(g["is_mql"].mean())
            g_prec = float(g.loc[g["is_mql"], "score"].mean()) if g["is_mql"].any() else 0.0
            won_per_lead = float(g["_won"].mean())
            n = leads * mix
            rows.append({by: key, "mix": mix, "leads": n, "mqls": n * g_share,
                         "expected_won": n * won_per_lead, "mql_share": g_share,
                         "mql_precision": g_prec,
                         "leads_per_won": 1 / won_per_lead if won_per_lead > 0 else None,
                         "leads_if_alone": won_deals / won_per_lead if won_per_lead > 0
                         else None})
        out["by"] = by
        out["per_group"] = sorted(rows, key=lambda r: -r["expected_won"])
    return out


def main(params_path: str | None = None, *, won_deals: float | None = None,
         period: str | None = None,
         scores: str | None = None, as_of: str | None = None,
         model_uri: str | None = None) -> dict:
    import mlflow

    from leadq.models.routing import route
    from leadq.pipelines.params.loader import agreement_of, load_params
    from leadq.pipelines.recalibrate import load_window, scores_pattern
    from leadq.pipelines.scoring.core import segment_values
    from leadq.pipelines.scoring.model import load_scoring_model
    from leadq.pipelines.tracking.thresholds import current_entry

    params = load_params(params_path)
    agreement = agreement_of(params)
    won_deals = agreement.goal_won_deals if won_deals is None else won_deals
    period = period or agreement.goal_period
    if won_deals is None:
        raise BadInputError("no goal: pass --won-deals N, or set agreement.goal.won_deals in "
                            f"{params['_path']} (the shared goal `leadq review` tracks)")
    scores_pattern(params, scores)
    with step("load champion and its current threshold"):
        model = load_scoring_model(params, model_uri)
    with step("read recent scored leads"):
        data = load_window(params, scores=scores, version=model.version, as_of=as_of)
    recent = data["recent"]
    # Rows may predate the latest recalibration: re-apply the bar and correction now in force.
    r = route(recent["lead_id"].to_numpy(), recent["score_raw"].to_numpy(float),
              threshold=model.threshold, cutoffs=model.cutoffs, correction=model.correction,
              explore_rate=0.0, segment_bars=model.segment_bars,
              segment_values=segment_values(model.segment_bars, recent))
    recent = recent.assign(score=r["score"], is_mql=r["is_mql"])
    capacity = None
    if model.tags:
        name = model.uri[len("models:/"):].split("@")[0].split("/")[0]
        entry = current_entry(mlflow.MlflowClient(), name, model.version, model.tags)
        capacity = entry.get("capacity_used")
    if capacity is None:
        capacity = agreement.capacity_per_week
    by = params["recalibration"]["plan_by"] or agreement.campaign_column or "campaign"
    out = plan_goal(recent, won_deals=won_deals, period=period, weeks_observed=data["weeks"],
                    capacity_per_week=None if capacity is None else float(capacity), by=by,
                    reference=data["tables"].leads)
    out["threshold_version"] = model.threshold_version
    out["threshold"] = model.threshold
    out["model_version"] = model.version
    sales, mkt = out["sales"], out["marketing"]
    log.info("goal %g won deals per %s at bar %.4f (threshold version %s):", won_deals, period,
             model.threshold, model.threshold_version)
    fit = ("" if "fits_capacity" not in sales else
           " — fits capacity" if sales["fits_capacity"] else
           f" — OVER capacity {sales['capacity']:,.0f}; within it expect "
           f"{sales['won_within_capacity']:,.1f} won")
    log.info("  sales must work %.0f MQLs (%.0f/week)%s", sales["mqls"], sales["mqls_per_week"],
             fit)
    log.info("  marketing must bring %.0f leads (%.0f at the current pace)", mkt["leads"],
             mkt["leads_at_current_pace"])
    rows = out.get("per_group") or []
    if rows:
        log.info("  by %s (at each one's current mix and quality; top %d of %d):", by,
                 min(len(rows), 12), len(rows))
        for r in rows[:12]:
            per_won = ("no conversions expected" if r["leads_per_won"] is None
                       else f"{r['leads_per_won']:,.0f} leads per won deal")
            log.info("    %-32s %7.0f leads → %6.0f MQLs → %5.1f won (%s)",
                     str(r[by])[:32], r["leads"], r["mqls"], r["expected_won"], per_won)
    return out
