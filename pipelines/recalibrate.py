"""`leadq recalibrate`: move the MQL bar with the market instead of waiting for a retrain.

Reads the scorer's recent outputs and the outcomes that have matured since, then: measures the
current bar (volume, realised precision and recall, calibration by score band, all weighted by
inverse sales propensity so explored leads stand in for the unworked ones); corrects the scores
for a base-rate shift (EM of Saerens et al. 2002, or a re-fitted map once enough outcomes have
matured); measures the SLA (contact within sla_hours, acceptance) and the capacity sales really
has; recomputes the bar and the A–D cut-offs from the policies; reports drift against the
training data; and stores it all as a new threshold version of the champion.
"""

from __future__ import annotations

import glob
from dataclasses import asdict

import numpy as np
import pandas as pd

from leadq.errors import BadInputError, ConfigError, LeadqError
from leadq.features.agreement import Agreement, first_contacts, period_figures, sla_compliance
from leadq.models.drift import drift_verdict, psi_numeric, psi_table
from leadq.models.metrics import calibration_bands, weighted_ece
from leadq.models.prior_shift import Correction, apply_platt, em_prior, fit_platt, label_shift_fit
from leadq.models.routing import ipw_weights
from leadq.models.thresholds import (
    Policies,
    SegmentBars,
    resolve_segment_bars,
    resolve_threshold,
    tier_cutoffs,
)
from leadq.pipelines.io.progress import log, step
from leadq.settings import setting

CORRECTIONS = ("auto", "em", "refit", "none")


# --- pure steps ----------------------------------------------------------------------------
def worked_weights(frame: pd.DataFrame) -> tuple[np.ndarray, bool]:
    """(weight per row, ipw?) — 1/propensity for leads that reached sales, 0 for the rest.

    Older score files without propensity treat every lead with an outcome alike (biased:
    the report says `ipw: false`).
    """
    if "sales_propensity" not in frame:
        return np.ones(len(frame)), False
    explore = frame["explore"] if "explore" in frame else np.zeros(len(frame), bool)
    return ipw_weights(frame["is_mql"], explore, frame["sales_propensity"],
                       frame.get("holdout")), True


def measure_realised(matured: pd.DataFrame, n_bands: int = 10) -> dict:
    """Realised precision and recall of the bars that were in force, and calibration by band.

    `matured`: score, is_mql, label (0/1), optional explore and sales_propensity. Recall's
    denominator counts each explored conversion 1/explore_rate times: an unbiased estimate of
    all conversions, including those below the bar that nobody called.
    """
    out: dict = {"n_matured": int(len(matured))}
    if not len(matured):
        return out
    y = matured["label"].to_numpy(float)
    s = matured["score"].to_numpy(float)
    mql = matured["is_mql"].to_numpy(bool)
    w, ipw = worked_weights(matured)
    out["ipw"] = ipw
    out["n_worked"] = int((w > 0).sum())
    if "explore" in matured:
        # The basis of every below-bar estimate: few explored leads make recall noisy.
        explored = matured["explore"].to_numpy(bool) & ~mql
        out["n_explored"] = int(explored.sum())
        out["explored_conversions"] = int(y[explored].sum())
    out["precision"] = float(y[mql].mean()) if mql.any() else float("nan")
    total = float((w * y).sum())
    out["recall"] = float(y[mql].sum() / total) if total > 0 else float("nan")
    out["base_rate"] = float((w * y).sum() / w.sum()) if w.sum() > 0 else float("nan")
    keep = w > 0
    out["ece"] = weighted_ece(y[keep], s[keep], w[keep], n_bands)
    out["roc_auc"] = _weighted_auc(y[keep], s[keep], w[keep])
    out["calibration"] = calibration_bands(y[keep], s[keep], w[keep], n_bands)
    return out


def _weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s, sample_weight=w))


def sla_metrics(mqls: pd.DataFrame, feedback: pd.DataFrame | None, *, as_of: pd.Timestamp,
                sla_hours: float, weeks: float, mql_moment_days: float = 0.0) -> dict:
    """Share of MQLs first contacted within the SLA, acceptance rate, MQLs reached in time per
    week. `mqls`: lead_id, created_at of the window's MQLs; the SLA rule is
    features.agreement.sla_compliance (the one the report and `review` use)."""
    first = first_contacts(feedback)
    sla = sla_compliance(mqls, first, as_of=as_of, sla_hours=sla_hours,
                         mql_moment_days=mql_moment_days)
    out = {"sla_hours": float(sla_hours), "mqls_due": int(len(sla))}
    if feedback is None or not len(sla):
        return out
    if first is not None:
        within = sla["within_sla"].to_numpy(bool)
        out["contacted_within_sla"] = int(within.sum())
        out["within_sla_share"] = float(within.mean())
        out["worked_within_sla_per_week"] = float(within.sum() / weeks)
    return out


def choose_capacity(configured: float | None, sla: dict, sla_target: float, *,
                    offered_per_week: float, carried: float | None = None,
                    ) -> tuple[float | None, float | None, str]:
    """(capacity to plan with, measured capacity to remember, why).

    Sales is saturated when fewer than `sla_target` of MQLs were contacted within the SLA. The
    MQLs it did reach in time per week measure its capacity, but only when it was offered at
    least the configured capacity: below that, missed SLAs are a process problem, not a
    capacity one, and re-measuring at an already lowered bar would ratchet the capacity down
    every week. So a credible measurement is remembered (`carried`) and reused while sales
    still misses the SLA; once it meets the SLA again the configured capacity applies.
    """
    share = sla.get("within_sla_share")
    measured = sla.get("worked_within_sla_per_week")
    if share is None or measured is None or share >= sla_target:
        return configured, None, "agreed" if configured is not None else "not capped"
    loaded = configured is not None and offered_per_week >= 0.95 * configured
    if loaded and measured < configured:
        return measured, measured, (
            f"measured: offered {offered_per_week:,.0f} MQLs/week, sales reached only "
            f"{share:.0%} within {sla['sla_hours']:.0f} h, i.e. ~{measured:,.0f}/week")
    if carried is not None and (configured is None or carried < configured):
        return carried, carried, (
            f"carried: sales still reaches only {share:.0%} of MQLs within "
            f"{sla['sla_hours']:.0f} h, so the capacity measured earlier "
            f"(~{carried:,.0f}/week) stands")
    return configured, None, ("agreed" if configured is not None else "not capped") + (
        f" (SLA met for only {share:.0%} of MQLs, but sales was offered fewer than its "
        "capacity: a process issue, not a capacity one)")


def estimate_correction(recent_raw: np.ndarray, *, train_prior: float | None,
                        matured: pd.DataFrame | None, method: str, min_matured: int,
                        ref_scores: np.ndarray | None = None,
                        ) -> tuple[Correction | None, str]:
    """Choose and fit the score correction for the coming period.

    em: Saerens EM from the training base rate. refit: a Platt map re-fitted on matured worked
    leads (IPW), then EM from the map's base rate to the recent leads. auto: refit once
    `min_matured` worked leads have matured; otherwise EM, but only if a base-rate shift
    explains how the score distribution moved since training (`ref_scores`): re-weighting the
    training scores to the EM base rate must at least halve their PSI to the recent scores.
    EM assumes the shift is in the base rate alone; when the lead mix moves instead (new
    campaigns, seasons) calibrated scores already follow it and EM would over-correct.
    """
    if method not in CORRECTIONS:
        raise BadInputError(f"params.yaml recalibration.correction must be one of "
                            f"{CORRECTIONS}, got {method!r}")
    if method == "none":
        return None, "no correction (recalibration.correction: none)"
    n_pos = n_worked = 0
    if matured is not None and len(matured):
        w, _ = worked_weights(matured)
        worked = w > 0
        n_worked = int(worked.sum())
        n_pos = int(matured.loc[worked, "label"].sum())
    enough = n_worked >= min_matured and n_pos >= 30
    if method == "refit" or (method == "auto" and enough):
        if not enough:
            raise LeadqError(f"correction: refit needs ≥ {min_matured} matured worked leads "
                             f"with ≥ 30 conversions; have {n_worked} with {n_pos}")
        raw = matured["score_raw"].to_numpy(float)
        platt = fit_platt(raw[worked], matured.loc[worked, "label"].to_numpy(int), w[worked])
        prior_ref = float(apply_platt(raw, *platt).mean())
        p1 = apply_platt(recent_raw, *platt)
        prior_now, it = em_prior(p1, prior_ref)
        return (Correction(prior_ref, prior_now, "refit+em", platt),
                f"re-fitted calibration map on {n_worked} matured leads, then EM "
                f"prior shift {prior_ref:.4f} → {prior_now:.4f} ({it} iterations)")
    if train_prior is None or not 0 < train_prior < 1:
        return None, "no training base rate recorded for this model: scores left uncorrected"
    prior_now, it = em_prior(recent_raw, train_prior)
    correction = Correction(train_prior, prior_now, "em")
    note = (f"EM prior shift (Saerens et al. 2002): base rate {train_prior:.4f} at training → "
            f"{prior_now:.4f} now ({it} iterations)")
    if method == "auto" and ref_scores is not None and len(ref_scores):
        before, after = label_shift_fit(ref_scores, recent_raw, train_prior, prior_now)
        if not after <= 0.5 * before:
            return None, (f"EM would move the base rate {train_prior:.4f} → {prior_now:.4f}, "
                          f"but a base-rate shift does not explain the score distribution "
                          f"(PSI to training {before:.3f}, {after:.3f} after re-weighting): the "
                          "lead mix moved, not the base rate; calibrated scores left as they are")
        note += f"; base-rate shift explains the scores (PSI {before:.3f} → {after:.3f})"
    return correction, note


def policy_change(agreed: dict, in_force: dict | None, change_reason: str | None,
                  changed_by: str | None) -> dict | None:
    """None when the agreement's MQL policy is the one in force; the recorded change when the
    user asked for it; otherwise a ConfigError: moving what counts as an MQL is a decision
    both teams make, never a side effect of a weekly recalibration."""
    from leadq.features.agreement import describe_policy

    if in_force is not None and set(in_force) == {"policy"}:
        # A model trained before the agreement recorded only its policy's name: the same name
        # adopts the agreed value, another name is a change like any other.
        in_force = agreed if in_force["policy"] == agreed["policy"] else in_force
    if in_force is None or in_force == agreed:
        if change_reason:
            log.warning("--change-policy given, but agreement.mql is the policy already in "
                        "force (%s): nothing to change", describe_policy(agreed))
        return None
    if not change_reason:
        raise ConfigError(
            f"agreement.mql (with segments.per_segment_bar and capacity_share) in params says "
            f"an MQL is {describe_policy(agreed)}, but the bar in "
            f"force follows {describe_policy(in_force)}. Changing the MQL policy is an "
            "explicit act: rerun with --change-policy \"why\" (recorded in the threshold "
            "history with who and why), or restore agreement.mql")
    return {"from": in_force, "to": agreed, "reason": change_reason,
            "by": changed_by or "unknown"}


def recalibrate_step(recent: pd.DataFrame, matured: pd.DataFrame | None,
                     feedback: pd.DataFrame | None, params: dict, *, as_of: pd.Timestamp,
                     train_prior: float | None, weeks: float,
                     ref_scores: np.ndarray | None = None,
                     previous: dict | None = None, change_reason: str | None = None,
                     changed_by: str | None = None) -> dict:
    """The pure recalibration step. `recent`: lead_id, created_at, score, score_raw, is_mql
    (as scored); `matured`: the same plus label; `previous`: the threshold version in force
    (its `policy` is the MQL policy the bar follows). Returns the new threshold version entry:
    the bar moved within the agreed policy (agreement.mql), capped by sales capacity."""
    rc = params.get("recalibration") or {}
    agreement = Agreement.from_params(params)
    agreed = agreement.policy_key()
    change = policy_change(agreed, (previous or {}).get("policy"), change_reason, changed_by)
    volume = len(recent) / weeks
    current = {"mql_per_week": float(recent["is_mql"].sum() / weeks),
               "volume_per_week": float(volume)}
    realised = measure_realised(matured) if matured is not None else {"n_matured": 0}
    sla = sla_metrics(recent.loc[recent["is_mql"].to_numpy(bool), ["lead_id", "created_at"]],
                      feedback, as_of=as_of, sla_hours=agreement.sla_hours, weeks=weeks,
                      mql_moment_days=agreement.mql_moment_days)
    capacity, measured_capacity, capacity_source = choose_capacity(
        agreement.capacity_per_week, sla, agreement.sla_target,
        offered_per_week=current["mql_per_week"],
        carried=(previous or {}).get("capacity_measured"))
    policies = Policies.from_agreement(agreement, capacity=capacity)
    correction, correction_note = estimate_correction(
        recent["score_raw"].to_numpy(float), train_prior=train_prior, matured=matured,
        method=setting(rc, "correction", str),
        min_matured=setting(rc, "min_matured_outcomes", int), ref_scores=ref_scores)
    raw = recent["score_raw"].to_numpy(float)
    corrected = correction.apply(raw) if correction is not None else raw
    bars = None
    if agreement.per_segment:
        # Each segment's bar on its own recent leads with its share of the capacity in force;
        # the choice of a bar per segment is part of the policy key, so it never silently
        # becomes one bar here (policy_change above refuses that without --change-policy).
        column = agreement.segment_column
        if column not in recent:
            raise ConfigError(f"segments.per_segment_bar: the recent scored leads have no "
                              f"{column} column to split the bars by")
        try:
            bars, decision = resolve_segment_bars(
                corrected, recent[column].to_numpy(), agreement, capacity=capacity,
                weeks=weeks, previous=SegmentBars.from_dict((previous or {}).get(
                    "segment_bars")))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        cutoffs = tuple(bars.pooled["cutoffs"])
    else:
        decision = resolve_threshold(corrected, policies, weeks)
        cutoffs = tier_cutoffs(corrected, decision.threshold, **agreement.tiers)
    explore_rate = float(params["scoring"]["explore_rate"] or 0.0)
    reason = decision.reason + f"; capacity {capacity_source}; {correction_note}"
    if change:
        reason = (f"MQL policy changed by {change['by']}: {change['reason']}; " + reason)
    return {
        "as_of": str(as_of),
        "window_days": float(weeks * 7),
        "n_recent": int(len(recent)),
        "volume_per_week": float(volume),
        "threshold": decision.threshold,
        "cutoffs": list(cutoffs),
        "segment_bars": None if bars is None else bars.as_dict(),
        "correction": correction.as_dict() if correction is not None else None,
        "policy": agreed,
        "policy_change": change,
        "policies": asdict(policies),
        "capacity_configured": agreement.capacity_per_week,
        "capacity_used": capacity,
        "capacity_measured": measured_capacity,
        "capacity_source": capacity_source,
        "current": current,
        "measured": {k: v for k, v in realised.items() if k != "calibration"},
        "calibration": realised.get("calibration", []),
        "sla": sla,
        "decision": {k: v for k, v in decision.as_dict().items() if k != "reason"},
        "explore_per_week": float(explore_rate * (volume - decision.mql_per_week)),
        "period": period_figures(recent, feedback, as_of=as_of, agreement=agreement),
        "conflicts": list(decision.conflicts),
        "reason": reason,
    }


def drift_report(reference: pd.DataFrame, recent: pd.DataFrame, ref_score: np.ndarray,
                 recent_score: np.ndarray, params: dict, realised_auc: float | None) -> dict:
    """PSI per feature and on the score, and whether to recalibrate or retrain."""
    rc = params.get("recalibration") or {}
    feats = params["features"]
    per_feature = psi_table(reference, recent, list(feats.get("numeric") or []),
                            list(feats.get("categorical") or []))
    score_psi = psi_numeric(ref_score, recent_score)
    verdict, why = drift_verdict(per_feature, score_psi, warn=setting(rc, "psi_warn", float),
                                 retrain=setting(rc, "psi_retrain", float))
    floor = setting(params, "registry.criteria").get("min_test_roc_auc")
    if realised_auc is not None and floor is not None and np.isfinite(realised_auc) \
            and realised_auc < float(floor):
        verdict = "retrain"
        why += (f"; realised ROC AUC on matured leads {realised_auc:.3f} < "
                f"{float(floor):.2f}: the ranking itself has decayed, retraining advised")
    return {"feature_psi": {k: round(v, 4) for k, v in per_feature.items()},
            "score_psi": float(score_psi), "verdict": verdict, "advice": why}


# --- I/O -----------------------------------------------------------------------------------
def score_tables(params: dict, pattern: str | None) -> list[tuple[str, pd.DataFrame]]:
    """The scorer's outputs named by --scores / recalibration.scores, as (label, frame): every
    score file matching the glob, or, when it is a database URL, the scores table `leadq score
    --output <URL>` upserts (database.scores_table). The one reader of past scores for
    recalibrate, plan, review and lift."""
    from leadq.pipelines.io.files import read_table
    from leadq.pipelines.io.urls import is_database_url, safe_url
    from leadq.pipelines.params.loader import resolve_path

    given = scores_pattern(params, pattern)
    if is_database_url(given):
        from leadq.pipelines.io import database as db

        table = setting(params, "database.scores_table", str)
        label = f"{safe_url(given)} (table {table})"
        frame = db.read_scores_table(given, table)
        if frame.empty:
            raise BadInputError(f"{label}: no scores yet (run `leadq score --output "
                                f"{safe_url(given)}` first)")
        return [(label, frame)]
    full = str(resolve_path(params, given))
    # A scoring run's quarantine sits beside its output: it is not a score file.
    files = sorted(f for f in glob.glob(full, recursive=True)
                   if not f.endswith((".rejected.csv", ".rejected.parquet")))
    if not files:
        raise BadInputError(f"no score files match {full} (run `leadq score` first, or set "
                            "recalibration.scores / --scores)")
    return [(f, read_table(f, name="scores")) for f in files]


def read_scored(params: dict, pattern: str | None) -> pd.DataFrame:
    """All past scores (score_tables), typed, latest score per lead kept."""
    tables = score_tables(params, pattern)
    files = [label for label, _ in tables]
    id_col = params["data"]["leads"]["id"]
    parts = []
    for f, frame in tables:
        missing = [c for c in (id_col, "score", "is_mql", "model_version") if c not in frame]
        if missing:
            raise BadInputError(f"{f}: scores file is missing column(s) {', '.join(missing)}")
        parts.append(frame)
    scored = pd.concat(parts, ignore_index=True)
    out = pd.DataFrame({"lead_id": scored[id_col].astype("string").str.strip().astype(object),
                        "score": pd.to_numeric(scored["score"], errors="coerce"),
                        "is_mql": _bool(scored["is_mql"]),
                        "model_version": scored["model_version"].astype(str)})
    out["score_raw"] = (pd.to_numeric(scored["score_raw"], errors="coerce")
                        if "score_raw" in scored else out["score"])
    if "sales_propensity" in scored:
        out["sales_propensity"] = pd.to_numeric(scored["sales_propensity"], errors="coerce")
        out["explore"] = _bool(scored["explore"]) if "explore" in scored else False
    if "holdout" in scored:  # held-out MQLs were never worked (agreement.holdout_rate)
        out["holdout"] = _bool(scored["holdout"])
    if "tier" in scored:
        out["tier"] = scored["tier"].astype("string").str.strip().astype(object)
    out["scored_at"] = pd.to_datetime(scored.get("scored_at"), errors="coerce", utc=True)
    bad = out["score"].isna() | out["score_raw"].isna()
    if bad.any():
        raise BadInputError(f"{', '.join(files[:3])}: {int(bad.sum())} rows without a numeric "
                            f"score, e.g. lead ids {list(out.loc[bad, 'lead_id'][:5])}")
    out = out.sort_values("scored_at", kind="stable").drop_duplicates("lead_id", keep="last")
    out.attrs["files"] = files
    return out


def scores_pattern(params: dict, pattern: str | None) -> str:
    """The scorer's outputs to read: --scores, else recalibration.scores. Checked before any
    model is loaded, so a missing setting fails at once."""
    pattern = pattern or params["recalibration"]["scores"]
    if not pattern:
        raise BadInputError(
            f"{params.get('_path', 'params.yaml')}: recalibration.scores is not set: point it "
            "at the files `leadq score --output` writes (e.g. scores/*.csv), or pass --scores")
    return str(pattern)


def _bool(values: pd.Series) -> pd.Series:
    if values.dtype == bool:
        return values
    return values.astype("string").str.strip().str.lower().isin({"true", "1", "yes"})


def load_window(params: dict, *, scores: str | None, version: str,
                as_of: str | None, tables=None) -> dict:
    """Scored leads of one model version joined to leads, labels and feedback: the review
    period (agreement.review_days up to as_of), the period before it, and matured leads.
    `tables`: the CRM tables when the caller has loaded them already."""
    from leadq.features.tables import build_labels
    from leadq.pipelines.io.crm import load_crm

    spec = params["data"]["leads"]
    missing = [f"data.leads.{key}" for key in ("id", "created_at") if not spec.get(key)]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} not set: recalibration joins scored leads to their "
            "outcomes by lead id and measures recent weeks by the lead's date, so it needs "
            "both (an export without them can be trained and scored, not recalibrated)")
    scored = read_scored(params, scores)
    scored = scored[scored["model_version"] == str(version)]
    if scored.empty:
        raise LeadqError(f"no scored leads from model version {version} "
                         "(score leads with it first)")
    if as_of:
        params["label"]["as_of"] = str(pd.Timestamp(as_of).date())
    tables = load_crm(params) if tables is None else tables
    spec = params["data"]["leads"]
    leads = tables.leads.rename(columns={spec["id"]: "lead_id"})
    labels, label_as_of = build_labels(tables.leads, tables.deals, tables.feedback, params)
    leads = leads.assign(label=labels["label"].to_numpy())
    if spec.get("created_at") and spec["created_at"] != "created_at":
        leads = leads.rename(columns={spec["created_at"]: "created_at"})
    joined = scored.merge(leads, on="lead_id", how="inner", suffixes=("", "_lead"))
    if joined.empty:
        raise BadInputError("no scored lead id is in the leads table "
                            f"{tables.paths.get('leads')}")
    end = (pd.Timestamp(as_of) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1) if as_of
           else joined["created_at"].max())
    rc = params.get("recalibration") or {}
    window = pd.Timedelta(days=float(params["agreement"]["review_days"]))
    recent = joined[(joined["created_at"] > end - window) & (joined["created_at"] <= end)]
    if recent.empty:
        raise LeadqError(f"no scored leads created in the {window.days} days up to {end}")
    span_days = min(window / pd.Timedelta(days=1),
                    (end - recent["created_at"].min()) / pd.Timedelta(days=1) + 1)
    horizon = pd.Timedelta(days=setting(params["label"], "horizon_days", int))
    back = pd.Timedelta(days=setting(rc, "outcome_window_days", float))
    matured = joined[(joined["created_at"] <= end - horizon)
                     & (joined["created_at"] > end - horizon - back) & joined["label"].notna()]
    before = joined[(joined["created_at"] > end - 2 * window)
                    & (joined["created_at"] <= end - window)]
    return {"recent": recent.reset_index(drop=True), "matured": matured.reset_index(drop=True),
            "before": before.reset_index(drop=True),
            "weeks": max(span_days, 1.0) / 7.0, "as_of": end, "tables": tables,
            "label_as_of": label_as_of, "files": scored.attrs.get("files", [])}


def training_reference(params: dict, tables, client, run_id: str | None,
                       n: int = 20000) -> pd.DataFrame:
    """The model's training leads (dates from its data fingerprint), sampled."""
    from leadq.pipelines.tracking.thresholds import load_json_artifact

    leads = tables.leads
    created = params["data"]["leads"].get("created_at")
    if run_id and created:
        try:
            fp = load_json_artifact(f"runs:/{run_id}/data_fingerprint.json")
            lo, hi = (pd.Timestamp(x) for x in fp["train_dates"])
            leads = leads[(leads[created] >= lo) & (leads[created] <= hi)]
        except Exception as exc:  # noqa: BLE001 - fall back to every lead, and say so
            log.warning("training dates unavailable (%s); drift uses all leads as reference",
                        exc)
    return leads.sample(min(n, len(leads)), random_state=0) if len(leads) > n else leads


def main(params_path: str | None = None, *, as_of: str | None = None,
         scores: str | None = None, model_uri: str | None = None,
         dry_run: bool = False, change_policy: str | None = None,
         changed_by: str | None = None) -> dict:
    import mlflow

    from leadq.features.columns import raw_input_columns
    from leadq.pipelines.params.loader import agreement_of, load_params
    from leadq.pipelines.scoring.model import load_scoring_model
    from leadq.pipelines.tracking.thresholds import current_entry, save, training_entry

    params = load_params(params_path)
    scores_pattern(params, scores)
    with step("load champion"):
        model = load_scoring_model(params, model_uri)
    if not model.tags:
        raise LeadqError(f"{model.uri} is not a registry model version; recalibration "
                         "stores its result on one (use models:/NAME@alias or models:/NAME/N)")
    client = mlflow.MlflowClient()
    name = model.uri[len("models:/"):].split("@")[0].split("/")[0]
    previous = current_entry(client, name, model.version, model.tags)
    # Before minutes of reading: a policy change without --change-policy stops here.
    policy_change(agreement_of(params).policy_key(), previous.get("policy"), change_policy,
                  changed_by)
    with step("read scored leads, outcomes and feedback"):
        data = load_window(params, scores=scores, version=model.version, as_of=as_of)
    base = training_entry(client, name, model.version, model.tags)
    train_prior = (base.get("correction") or {}).get("prior_ref")
    with step("score the training reference"):
        ref = training_reference(params, data["tables"], client, model.tags.get("train_run_id"))
        ref_score = model.predict_proba(ref[raw_input_columns(params)])
    with step(f"recalibrate on {len(data['recent']):,} recent and {len(data['matured']):,} "
              "matured leads"):
        entry = recalibrate_step(data["recent"], data["matured"], data["tables"].feedback,
                                 params, as_of=data["as_of"], train_prior=train_prior,
                                 weeks=data["weeks"], ref_scores=ref_score,
                                 previous=previous,
                                 change_reason=change_policy,
                                 changed_by=changed_by or _user())
        entry["drift"] = drift_report(ref, data["recent"], ref_score,
                                      data["recent"]["score_raw"].to_numpy(float), params,
                                      entry["measured"].get("roc_auc"))
    entry["score_psi"] = entry["drift"]["score_psi"]
    entry["previous"] = {"threshold_version": model.threshold_version,
                         "threshold": model.threshold}
    entry["inputs"] = {"scores": [str(f) for f in data["files"]][:20],
                       "model_uri": model.uri}
    if not dry_run:
        with step("store threshold version"):
            entry = save(client, params, name, model.version, entry)
    else:
        log.info("dry run: nothing stored; the bar in force stays %.4f", model.threshold)
    _log_summary(entry)
    return entry


def _log_summary(e: dict) -> None:
    m, s, d, p = e["measured"], e["sla"], e["decision"], e.get("period") or {}
    log.info("current bar: %.1f MQLs/week of %.0f leads/week (MQL share %s of the period's "
             "leads)", e["current"]["mql_per_week"], e["volume_per_week"],
             _pct(p.get("mql_share")))
    if m.get("n_matured"):
        basis = ("weighted by sales propensity" if m.get("ipw") else
                 "unweighted: the score files carry no sales_propensity")
        explored = (f"; below the bar {m['n_explored']} explored, "
                    f"{m['explored_conversions']} converted" if "n_explored" in m else "")
        log.info("realised precision %s, recall %s on %d matured leads (%s%s)",
                 _pct(m.get("precision")), _pct(m.get("recall")), m["n_matured"], basis,
                 explored)
    else:
        log.info("no matured leads yet (older than label.horizon_days): realised precision "
                 "and recall are not measured")
    if "within_sla_share" in s:
        log.info("SLA: %s of %d MQLs due were contacted within %g h",
                 _pct(s["within_sla_share"]), s["mqls_due"], s["sla_hours"])
    else:
        log.info("SLA: not measured (no first-contact times in data.feedback)")
    if p.get("accepted", 0) + p.get("rejected", 0):
        log.info("sales accepted %s of the %d MQLs it decided on (%d rejected)",
                 _pct(p.get("acceptance_rate")), p["accepted"] + p["rejected"], p["rejected"])
    cap = ("no capacity cap (agreement.capacity_per_week is not set)"
           if e["capacity_used"] is None else
           f"capacity {e['capacity_used']:,.1f} MQLs/week ({e['capacity_source']})")
    log.info("%s", cap)
    if e.get("policy_change"):
        c = e["policy_change"]
        log.warning("MQL policy changed by %s: %s", c["by"], c["reason"])
    log.info("new bar %.4f (threshold version %s): %.1f MQLs/week, expected precision %s, "
             "recall %s; bound by %s", e["threshold"], e.get("threshold_version", "not stored"),
             d["mql_per_week"], _pct(d["expected_precision"]), _pct(d["expected_recall"]),
             d["binding"])
    bars = e.get("segment_bars")
    for key, bar in ((bars or {}).get("bars") or {}).items():
        log.info("  bar for %s = %s: %.4f (%.0f%% of capacity, %s of its %d recent leads)",
                 bars["column"], key, bar["threshold"], 100 * bar["capacity_share"],
                 _pct(bar["mql_share"]), bar["leads"])
    if bars:
        log.info("  bar for every other %s: %.4f", bars["column"], bars["pooled"]["threshold"])
    for c in e["conflicts"]:
        log.warning("conflict: %s", c)
    if "drift" in e:
        log.info("drift: %s — %s", e["drift"]["verdict"], e["drift"]["advice"])


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in a container: say so
        return "unknown"


def _pct(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.1%}"
