"""The figures of the regular marketing-and-sales review (`leadq review`), as pure functions of
one period's scored leads, the feedback and the agreement. The shared figures (MQL share,
within-SLA share, acceptance) come from features.agreement.period_figures, the one function the
report and `recalibrate` quote too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.features.agreement import (
    Agreement,
    first_contacts,
    lead_decisions,
    sla_compliance,
)
from leadq.features.transform import display_category


def wilson_interval(successes: float, n: float, z: float = 1.64) -> tuple[float, float]:
    """A 90% Wilson score interval of a share (sound for small n and shares near 0 or 1)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def sla_by(leads: pd.DataFrame, feedback: pd.DataFrame | None, *, by: pd.Series,
           as_of: pd.Timestamp, agreement: Agreement) -> pd.DataFrame:
    """Within-SLA share and median hours to first contact of the period's MQLs, per value of
    `by` (tier, or the rep who made first contact)."""
    first = first_contacts(feedback)
    mql = leads["is_mql"].to_numpy(bool)
    due = sla_compliance(leads.loc[mql, ["lead_id", "created_at"]], first, as_of=as_of,
                         sla_hours=agreement.sla_hours,
                         mql_moment_days=agreement.mql_moment_days)
    if due.empty or first is None:
        return pd.DataFrame(columns=["group", "due", "within_sla_share",
                                     "median_hours_to_contact"])
    groups = by.reindex(due.index).fillna("(no feedback yet)").astype(str)
    rows = []
    for key, part in due.groupby(groups, sort=True):
        hours = part["hours_to_contact"].dropna()
        rows.append({"group": key, "due": int(len(part)),
                     "within_sla_share": float(part["within_sla"].mean()),
                     "median_hours_to_contact": float(hours.median()) if len(hours)
                     else float("nan")})
    return pd.DataFrame(rows)


def campaign_review(leads: pd.DataFrame, feedback: pd.DataFrame | None, *,
                    agreement: Agreement, campaign: pd.Series,
                    source: pd.Series | None = None) -> pd.DataFrame:
    """Per campaign, over the period's MQLs: MQLs, sales' decisions, acceptance, the rejected
    share with its 90% interval, the top rejection reasons, and whether it is flagged to cut
    (agreement.campaign_flag_rejection over at least agreement.campaign_min_feedback decided
    leads). Flagged campaigns first."""
    mql = leads["is_mql"].to_numpy(bool)
    base = pd.DataFrame({"lead_id": leads["lead_id"].astype(str).to_numpy(),
                         "campaign": display_category(campaign).fillna("(none)").to_numpy(),
                         "source": (display_category(source).fillna("(none)").to_numpy()
                                    if source is not None else "")})
    base = base[mql]
    cols = ["campaign", "source", "mqls", "decided", "accepted_share", "rejected_share",
            "rejected_low", "rejected_high", "reasons", "flag"]
    if base.empty:
        return pd.DataFrame(columns=cols)
    decided = lead_decisions(feedback)
    acc = base["lead_id"].map(decided["accepted"]).fillna(False).astype(bool)
    rej = base["lead_id"].map(decided["rejected"]).fillna(False).astype(bool)
    reason = decided["reason"].where(decided["rejected"])
    base = base.assign(accepted=acc.to_numpy(), rejected=rej.to_numpy(),
                       reason=base["lead_id"].map(reason).to_numpy())
    rows = []
    for name, g in base.groupby("campaign", sort=False):
        n_dec = int((g["accepted"] | g["rejected"]).sum())
        n_rej = int(g["rejected"].sum())
        lo, hi = wilson_interval(n_rej, n_dec)
        share = n_rej / n_dec if n_dec else float("nan")
        top = g.loc[g["rejected"], "reason"].dropna().value_counts(normalize=True).head(3)
        rows.append({
            "campaign": name,
            "source": g["source"].value_counts().index[0] if source is not None else "",
            "mqls": int(len(g)), "decided": n_dec,
            "accepted_share": float(g["accepted"].sum() / n_dec) if n_dec else float("nan"),
            "rejected_share": share, "rejected_low": lo, "rejected_high": hi,
            "reasons": ", ".join(f"{r} {s:.0%}" for r, s in top.items()),
            "flag": bool(n_dec >= agreement.campaign_min_feedback
                         and share >= agreement.campaign_flag_rejection),
        })
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["flag", "rejected_share", "mqls"],
                           ascending=[False, False, False]).reset_index(drop=True)


def rejection_reasons(leads: pd.DataFrame, feedback: pd.DataFrame | None) -> pd.DataFrame:
    """Why sales rejected the period's MQLs: reason, leads, share of the rejected."""
    decided = lead_decisions(feedback)
    ids = set(leads.loc[leads["is_mql"].to_numpy(bool), "lead_id"].astype(str))
    rejected = decided[decided["rejected"] & decided.index.isin(ids)]
    if rejected.empty:
        return pd.DataFrame(columns=["reason", "leads", "share"])
    counts = rejected["reason"].fillna("(no reason given)").value_counts()
    return pd.DataFrame({"reason": counts.index.astype(str), "leads": counts.to_numpy(int),
                         "share": (counts / max(counts.sum(), 1)).to_numpy(float)})


def realised_conversion(matured: pd.DataFrame) -> dict:
    """Conversion of matured MQLs against matured non-MQLs. Below the bar only explored leads
    were worked, at random, so their rate stands for every non-MQL (each weighs
    1/propensity); without exploration the non-MQL rate is not estimable and says so."""
    out: dict = {"n_matured": int(len(matured))}
    if matured.empty:
        return out
    y = matured["label"].to_numpy(float)
    mql = matured["is_mql"].to_numpy(bool)
    out["mql_n"] = int(mql.sum())
    out["mql_rate"] = float(y[mql].mean()) if mql.any() else float("nan")
    out["mql_interval"] = wilson_interval(float(y[mql].sum()), float(mql.sum()))
    if "explore" in matured:
        explored = matured["explore"].to_numpy(bool) & ~mql
        out["explored_n"] = int(explored.sum())
        out["non_mql_rate"] = float(y[explored].mean()) if explored.any() else float("nan")
        out["non_mql_interval"] = wilson_interval(float(y[explored].sum()),
                                                  float(explored.sum()))
    return out


def goal_progress(figures: dict, wins: int, *, agreement: Agreement,
                  mql_precision: float | None) -> dict | None:
    """Planned against realised MQLs and wins for the period, from the shared goal
    (agreement.goal) scaled to the review period; None without a goal."""
    from leadq.features.agreement import PERIOD_WEEKS

    if not agreement.goal_won_deals:
        return None
    weeks = agreement.review_days / 7.0
    planned_wins = agreement.goal_won_deals / PERIOD_WEEKS[agreement.goal_period] * weeks
    planned_mqls = (planned_wins / mql_precision if mql_precision and mql_precision > 0
                    else float("nan"))
    return {"planned_wins": float(planned_wins), "realised_wins": int(wins),
            "planned_mqls": float(planned_mqls), "realised_mqls": int(figures["mqls"]),
            "wins_share_of_plan": float(wins / planned_wins) if planned_wins else float("nan")}


def _pp(a: float, b: float) -> str:
    return f"{100 * (a - b):+.1f} points"


def what_changed(now: dict, before: dict | None, *, flagged_now: list[str],
                 flagged_before: list[str], bar_moves: list[dict]) -> list[str]:
    """Plain sentences comparing this period with the one before."""
    out: list[str] = []
    if not before or not before.get("leads"):
        out.append("This is the first period with scored leads: nothing to compare yet.")
    else:
        out.append(f"Leads: {now['leads']:,} this period against {before['leads']:,} in the "
                   f"one before; MQLs {now['mqls']:,} against {before['mqls']:,}.")
        for key, what in (("mql_share", "The MQL share"),
                          ("within_sla_share", "The share of MQLs reached within the SLA"),
                          ("acceptance_rate", "Sales' acceptance of MQLs")):
            a, b = now.get(key), before.get(key)
            if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
                continue
            if abs(a - b) < 0.005:
                out.append(f"{what} held at {100 * a:.1f}%.")
            else:
                verb = "rose" if a > b else "fell"
                out.append(f"{what} {verb} from {100 * b:.1f}% to {100 * a:.1f}% "
                           f"({_pp(a, b)}).")
    new_flags = [c for c in flagged_now if c not in flagged_before]
    cleared = [c for c in flagged_before if c not in flagged_now]
    if new_flags:
        out.append("Newly flagged to cut: " + ", ".join(new_flags) + ".")
    if cleared:
        out.append("No longer flagged: " + ", ".join(cleared) + ".")
    for move in bar_moves:
        why = f" ({move['why']})" if move.get("why") else ""
        out.append(f"The bar moved from {move['from']:.4f} to {move['to']:.4f} on "
                   f"{move['when']}{why}.")
    return out


__all__ = ["sla_by", "campaign_review", "rejection_reasons",
           "realised_conversion", "goal_progress", "what_changed", "wilson_interval"]


# "Converts anyway" is a claim of equivalence, so it needs the whole interval to say so: even
# the largest gain the data allow must be small beside the rate without a call (at most this
# share of it). "No measurable gain" likewise needs an interval this tight around zero.
SURE_THING_SHARE = 0.25
NO_GAIN_POINTS = 0.02
CALL_VERDICTS = {
    "gains": "gains from a call (persuadables)",
    "anyway": "converts about as often without a call (sure things)",
    "put_off": "converts less when called (do not disturb)",
    "none": "no measurable gain from a call",
    "unclear": "not conclusive yet (the interval holds both no gain and a real one)",
    "too_few": "not enough randomised leads yet",
}


def call_gain_by(matured: pd.DataFrame, by: pd.Series, *, min_group: int = 100,
                 confidence: float = 0.95) -> list[dict]:
    """Who gains from a call and who converts anyway, per group (tier) of matured scored
    leads, measured on the randomised leads only: routed against not routed (the holdout
    above the bar, exploration below it), IPW by each lead's propensity
    (models/lift.average_effect). A group whose interval lies above 0 gains from a call; one
    whose interval holds 0 while its leads convert at least half as often without a call
    converts anyway; one below 0 is put off; a group with fewer than `min_group` treated or
    control leads is not judged and says how many more leads it needs. Scores written before
    the holdout existed route as is_mql or explore, with sales_propensity."""
    from leadq.models.lift import TooFewLeads, average_effect

    if matured.empty:
        return []
    if "treatment" in matured and "propensity" in matured:
        t = matured["treatment"].astype(float).to_numpy()
        p = pd.to_numeric(matured["propensity"], errors="coerce").to_numpy(float)
    elif "explore" in matured and "sales_propensity" in matured:
        t = (matured["is_mql"].astype(bool) | matured["explore"].astype(bool)).to_numpy(float)
        p = pd.to_numeric(matured["sales_propensity"], errors="coerce").to_numpy(float)
    else:
        return []
    y = matured["label"].to_numpy(float)
    groups = by.to_numpy(object)
    rows = []
    for group in sorted(pd.unique(groups[pd.notna(groups)]), key=str):
        mask = (groups == group) & (p > 0) & (p < 1)
        row: dict = {"group": str(group), "n_randomised": int(mask.sum())}
        try:
            est = average_effect(y[mask], t[mask], p[mask], confidence=confidence,
                                 min_group=min_group)
        except TooFewLeads as exc:
            rows.append({**row, "verdict": "too_few", "words": CALL_VERDICTS["too_few"],
                         "more_leads": int(exc.needed)})
            continue
        if est.low > 0:
            verdict = "gains"
        elif est.high < 0:
            verdict = "put_off"
        elif est.rate_control > 0 and est.high <= SURE_THING_SHARE * est.rate_control:
            verdict = "anyway"
        elif max(abs(est.low), abs(est.high)) <= NO_GAIN_POINTS:
            verdict = "none"
        else:
            verdict = "unclear"
        rows.append({**row, "verdict": verdict, "words": CALL_VERDICTS[verdict],
                     "rate_called": est.rate_treated, "rate_not_called": est.rate_control,
                     "effect": est.effect, "low": est.low, "high": est.high,
                     "n_called": est.n_treated, "n_not_called": est.n_control})
    return rows


def call_gain_by_tier(matured: pd.DataFrame, *, min_group: int = 100,
                      confidence: float = 0.95) -> list[dict]:
    """:func:`call_gain_by` per tier of the matured scored leads (MQL / below the bar for
    scores without tiers): the rows the review and the report both show. Scores carrying the
    registered uplift model's `uplift` column add two rows: its top 20% (the leads it calls
    persuadables) and the rest, measured the same way, which checks the model on leads
    scored after it was fitted."""
    if matured.empty:
        return []
    tier = matured["tier"] if "tier" in matured else pd.Series(
        np.where(matured["is_mql"], "MQL", "below the bar"), index=matured.index)
    rows = call_gain_by(matured, tier, min_group=min_group, confidence=confidence)
    uplift = pd.to_numeric(matured["uplift"], errors="coerce") if "uplift" in matured else None
    if uplift is not None and uplift.notna().any():
        top = uplift >= uplift.quantile(0.8)
        band = pd.Series(np.where(top, "uplift model: top 20%", "uplift model: other 80%"),
                         index=matured.index).where(uplift.notna())
        rows += call_gain_by(matured, band, min_group=min_group, confidence=confidence)
    return rows
