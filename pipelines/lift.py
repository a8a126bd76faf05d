"""`leadq lift`: what routing a lead to sales changes, measured on the randomised groups only.

Two ways in:
- the scorer's outputs (--scores, else recalibration.scores) joined by lead id to the matured
  outcomes of the CRM tables: the effect of routing above the bar (routed vs held-out MQLs,
  agreement.holdout_rate) and below it (explored vs not, scoring.explore_rate);
- any randomised test in one table (--data FILE --treatment-column C --outcome-column C
  [--propensity-column C]): a promotion test, a call campaign, an e-mail experiment.

The estimates (models/lift.py) refuse with exit 2 when the randomised groups are too small,
saying how many more leads they need; each estimate states its power to detect
lift.detect and the leads that power needs. Where the feedback has first-contact times, the
conversion of routed MQLs reached within the SLA is compared with those reached later: marked
observational (sales chose whom to call first), never mixed with the randomised estimates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import BadInputError, ConfigError
from leadq.pipelines.io.progress import log

_YES = {"1", "1.0", "true", "yes", "y", "t"}
_NO = {"0", "0.0", "false", "no", "n", "f"}


# --- pure steps ----------------------------------------------------------------------------
def binary(values: pd.Series, *, where: str) -> np.ndarray:
    """A 1/0 column from 1/0, true/false or yes/no (any case); anything else is refused with
    the values found, so a typo never silently becomes a 0."""
    text = values.astype("string").str.strip().str.lower()
    bad = text.isna() | ~text.isin(_YES | _NO)
    if bad.any():
        found = sorted(set(text[bad].fillna("<empty>").tolist()))[:5]
        raise BadInputError(f"{where}: {int(bad.sum())} value(s) are not 1/0, true/false or "
                            f"yes/no, e.g. {found}")
    return text.isin(_YES).to_numpy(float)


def routing_decisions(scored: pd.DataFrame, *, where: str) -> pd.DataFrame:
    """lead_id, is_mql, treatment, propensity per lead from the scorer's outputs, the first
    decision per lead (a lead is called when it is first scored; a rescore does not undo that).

    Files from before the holdout existed carry explore and sales_propensity: their routing
    was is_mql or explore, with that propensity (no MQL was held out)."""
    frame = pd.DataFrame({"lead_id": scored["lead_id"].astype("string").str.strip(),
                          "is_mql": binary(scored["is_mql"], where=f"{where}: is_mql")})
    if "treatment" in scored and "propensity" in scored:
        frame["treatment"] = binary(scored["treatment"], where=f"{where}: treatment")
        frame["propensity"] = pd.to_numeric(scored["propensity"], errors="coerce")
    elif "explore" in scored and "sales_propensity" in scored:
        explore = binary(scored["explore"], where=f"{where}: explore")
        frame["treatment"] = np.maximum(frame["is_mql"].to_numpy(float), explore)
        frame["propensity"] = pd.to_numeric(scored["sales_propensity"], errors="coerce")
    else:
        raise BadInputError(f"{where}: no treatment/propensity (or explore/sales_propensity) "
                            "columns: these scores carry no randomised routing; rescore with "
                            "a leadq that writes them")
    if frame["propensity"].isna().any():
        raise BadInputError(f"{where}: {int(frame['propensity'].isna().sum())} rows without a "
                            "numeric propensity")
    if "scored_at" in scored:
        at = pd.to_datetime(scored["scored_at"], errors="coerce", utc=True)
        frame = frame.iloc[np.argsort(at.to_numpy(), kind="stable")]
    return frame.drop_duplicates("lead_id", keep="first").reset_index(drop=True)


# --- I/O -----------------------------------------------------------------------------------
def read_decisions(params: dict, pattern: str | None) -> pd.DataFrame:
    """The routing decisions of every score file matching --scores / recalibration.scores."""
    from leadq.pipelines.recalibrate import score_tables

    tables = score_tables(params, pattern)
    id_col = params["data"]["leads"]["id"]
    if not id_col:
        raise ConfigError("data.leads.id is null: lift joins scored leads to their outcomes "
                          "by lead id; set it")
    parts = []
    for f, frame in tables:
        if id_col not in frame or "is_mql" not in frame:
            raise BadInputError(f"{f}: scores file is missing column(s) {id_col} / is_mql")
        parts.append(routing_decisions(frame.rename(columns={id_col: "lead_id"}), where=f))
    both = pd.concat(parts, ignore_index=True)
    return both.drop_duplicates("lead_id", keep="first").reset_index(drop=True)


def matured_outcomes(params: dict, tables=None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """lead_id, label (and created_at when configured) for the leads whose outcome has
    matured (labelling rules as training), and the canonical feedback table (or None).
    `tables`: the CRM tables when the caller has loaded them already."""
    from leadq.features.tables import build_labels
    from leadq.pipelines.io.crm import load_crm

    tables = load_crm(params, quarantine=False) if tables is None else tables
    labels, _ = build_labels(tables.leads, tables.deals, tables.feedback, params)
    spec = params["data"]["leads"]
    ids = tables.leads[spec["id"]].astype("string").str.strip()
    out = pd.DataFrame({"lead_id": ids.to_numpy(), "label": labels["label"].to_numpy()})
    if spec.get("created_at"):
        out["created_at"] = pd.to_datetime(tables.leads[spec["created_at"]]).to_numpy()
    return out[out["label"].notna()].drop_duplicates("lead_id"), tables.feedback


def sla_effect(joined: pd.DataFrame, feedback: pd.DataFrame | None, *, sla_hours: float,
               confidence: float, min_group: int) -> dict | None:
    """Conversion of routed MQLs first reached within the SLA against those reached later (or
    never), when the feedback has first-contact times. Observational: sales chose whom to
    call first, so this difference is an association, not the effect of speed."""
    from leadq.features.agreement import first_contacts, sla_compliance
    from leadq.models.lift import TooFewLeads, average_effect

    first = first_contacts(feedback)
    if first is None or "created_at" not in joined:
        return None
    routed = joined[(joined["treatment"] == 1) & (joined["is_mql"] == 1)]
    if routed.empty:
        return None
    # Matured leads are far older than the SLA: every one of them is due.
    as_of = pd.Timestamp(routed["created_at"].max()) + pd.Timedelta(hours=float(sla_hours))
    sla = sla_compliance(routed[["lead_id", "created_at"]], first, as_of=as_of,
                         sla_hours=sla_hours)
    out: dict = {"what": f"routed MQLs reached within {sla_hours:g} h vs later or never",
                 "observational": True,
                 "caution": "not randomised: sales decides whom it calls first, so this is an "
                            "association, not the effect of calling fast"}
    try:
        est = average_effect(routed.loc[sla.index, "label"].to_numpy(float),
                             sla["within_sla"].to_numpy(int), confidence=confidence,
                             min_group=min_group)
    except TooFewLeads as exc:
        return {**out, "refused": str(exc), "more_leads": exc.needed}
    return {**out, **est.as_dict()}


def _settings(params: dict) -> dict:
    s = params["lift"]
    out = {"confidence": float(s["confidence"]), "min_group": int(s["min_group_leads"]),
           "detect": float(s["detect"]), "power": float(s["power"])}
    if not 0 < out["confidence"] < 1 or not 0 < out["power"] < 1:
        raise ConfigError("lift.confidence and lift.power must be in (0, 1)")
    if out["detect"] == 0 or out["min_group"] < 2:
        raise ConfigError("lift.detect must not be 0 and lift.min_group_leads must be ≥ 2")
    return out


def _routing(params: dict) -> dict:
    """Capacity, deal value and call cost of the routing comparison: lift.capacity_share
    (else the agreed top share of leads) and agreement.call_value."""
    from leadq.pipelines.params.loader import agreement_of

    agreement = agreement_of(params)
    from leadq.settings import setting

    share = setting(params, "lift.capacity_share")
    capacity = float(share) if share is not None else float(agreement.mql.top_share)
    if not 0 < capacity <= 1:
        raise ConfigError(f"lift.capacity_share must be in (0, 1], got {capacity}")
    return {"capacity": capacity, "deal_value": agreement.deal_value,
            "call_cost": agreement.call_cost}


def _params(params_path: str | None, *, need_file: bool) -> dict:
    from leadq.pipelines.params.loader import effective_params, load_params

    if params_path is None and not need_file and not Path("params.yaml").is_file():
        return effective_params({}, source="defaults")  # a table alone needs no CRM config
    return load_params(params_path)


def main(params_path: str | None = None, *, scores: str | None = None,
         data: str | None = None, treatment_column: str | None = None,
         outcome_column: str | None = None, propensity_column: str | None = None,
         uplift_features: list[str] | None = None, score_column: str | None = None,
         fit_uplift: bool = False) -> dict:
    from leadq.models.lift import TooFewLeads, effect_with_power, effects_by_side
    from leadq.pipelines.params.loader import agreement_of

    generic = data is not None
    if generic and not (treatment_column and outcome_column):
        raise BadInputError("--data needs --treatment-column and --outcome-column")
    if not generic and (treatment_column or outcome_column or propensity_column
                        or uplift_features or score_column):
        raise BadInputError("--treatment-column/--outcome-column/--propensity-column/"
                            "--uplift-features/--score-column go with --data FILE")
    if generic and fit_uplift:
        raise BadInputError("--fit-uplift fits the uplift model on the scorer's outputs, not "
                            "on --data (use --uplift-features there)")
    if score_column and not uplift_features:
        raise BadInputError("--score-column ranks the routing comparison, which needs "
                            "--uplift-features")
    params = _params(params_path, need_file=not generic)
    cfg = _settings(params)
    if generic:
        from leadq.pipelines.io.files import read_table

        frame = read_table(data, name="lift data")
        for col in (treatment_column, outcome_column, propensity_column, score_column,
                    *(uplift_features or [])):
            if col is not None and col not in frame:
                raise BadInputError(f"{data}: no column {col!r} (columns: "
                                    f"{', '.join(map(str, frame.columns[:20]))})")
        t = binary(frame[treatment_column], where=f"{data}: {treatment_column}")
        y = binary(frame[outcome_column], where=f"{data}: {outcome_column}")
        p = None
        if propensity_column:
            p = pd.to_numeric(frame[propensity_column], errors="coerce").to_numpy(float)
            if np.isnan(p).any() or ((p <= 0) | (p >= 1)).any():
                raise BadInputError(f"{data}: {propensity_column}: every propensity must be a "
                                    "number strictly between 0 and 1")
        try:
            result = effect_with_power(y, t, p, **cfg)
        except TooFewLeads as exc:
            raise TooFewLeads(f"{data}: {exc} (lift.min_group_leads = {cfg['min_group']})",
                              exc.needed) from None
        result = {"source": str(data), "treatment": treatment_column,
                  "outcome": outcome_column, **result}
        # Fitted before anything is printed: a refusal leaves no half answer behind.
        if uplift_features:
            score_values = None
            if score_column:
                score_values = pd.to_numeric(frame[score_column], errors="coerce").to_numpy(
                    float)
                if np.isnan(score_values).any():
                    raise BadInputError(f"{data}: {score_column}: "
                                        f"{int(np.isnan(score_values).sum())} row(s) without "
                                        "a numeric score")
            result["uplift"] = uplift_report(frame, uplift_features, t, y, where=str(data),
                                             min_group=cfg["min_group"],
                                             routing=_routing(params), score_values=score_values,
                                             propensity=p)
        _print_effect(f"{treatment_column} on {outcome_column}", result, verb="changes")
        if uplift_features:
            _print_uplift(result["uplift"])
            _print_routing(result["uplift"]["routing"])
        return result

    decisions = read_decisions(params, scores)
    tables = None
    if fit_uplift:
        from leadq.pipelines.io.crm import load_crm

        tables = load_crm(params, quarantine=False)  # its lead rows are the model's inputs
    outcomes, feedback = matured_outcomes(params, tables)
    joined = decisions.merge(outcomes, on="lead_id", how="inner")
    log.info("lift: %d scored leads, %d with a matured outcome", len(decisions), len(joined))
    sides = effects_by_side(joined["is_mql"], joined["treatment"], joined["propensity"],
                            joined["label"], **cfg)
    if all("refused" in s for s in sides.values()):
        more = [f"{name.replace('_', ' ')}: {s['refused']}" for name, s in sides.items()]
        needed = [s["more_leads"] for s in sides.values() if s.get("more_leads") is not None]
        raise TooFewLeads(f"no side has randomised groups large enough for an estimate from "
                          f"{len(joined):,} matured scored leads (the leads needed are "
                          "leads of that side: MQLs above the bar, the rest below); "
                          + "; ".join(more)
                          + ". Raise agreement.holdout_rate / scoring.explore_rate, or wait "
                          "for more outcomes to mature (lift.min_group_leads = "
                          f"{cfg['min_group']})", min(needed) if needed else 0)
    result = {"matured_scored_leads": int(len(joined)), **sides}
    if fit_uplift:
        # Fitted and registered before anything is printed: a refusal leaves no half answer.
        result["uplift_model"] = fit_uplift_model(params, joined, tables,
                                                  min_group=cfg["min_group"])
    for name, s in sides.items():
        _print_effect(name.replace("_", " "), s, verb="routing to sales changes conversion")
    if fit_uplift:
        u = result["uplift_model"]
        print(f"uplift model: {u['model_name']} version {u['version']} registered for "
              f"{params['registry']['model_name']} version {u['for_version']}; fitted on "
              f"{u['n_fit']:,} randomised leads, Qini {u['qini']:.5f} on {u['n_held_out']:,} "
              "held out (0 = no better than random). `leadq score` with that version now "
              "writes a per-lead uplift column.")
        bar = f"uplift ≥ {u['uplift_cutoff']:+.4f}"
        if agreement_of(params).deal_value is not None:
            bar = f"uplift × deal value − call cost ≥ {u['value_cutoff']:,.2f} ({bar})"
        print(f"bar on the call's value: {bar}, the capacity of the probability bar, which "
              f"makes {u['mql_share']:.1%} of the {u['bar_leads']:,} matured scored leads "
              "MQLs. Set agreement.route_by: call_value to route by it.")
    sla = sla_effect(joined, feedback, sla_hours=agreement_of(params).sla_hours,
                     confidence=cfg["confidence"], min_group=cfg["min_group"])
    if sla is not None:
        result["within_sla"] = sla
        if "refused" in sla:
            print(f"within the SLA (observational): not estimated: {sla['refused']}")
        else:
            print(f"within the SLA (OBSERVATIONAL, not randomised): {sla['what']}: "
                  f"{sla['effect'] * 100:+.2f} points ({sla['confidence']:.0%} CI "
                  f"{sla['low'] * 100:+.2f} to {sla['high'] * 100:+.2f}); {sla['caution']}.")
    return result


def fit_uplift_model(params: dict, joined: pd.DataFrame, tables, *, min_group: int,
                     held_out: float = 0.3, seed: int = 0) -> dict:
    """A T-learner over leadq's logistic pipeline fitted on the randomised matured scored
    leads (both sides of the bar: propensity strictly between 0 and 1), judged on a held-out
    30% (Qini, IPW by propensity), registered beside the champion it was fitted for
    (pipelines/tracking/uplift.py). Refuses (exit 2) when either split has fewer than
    `min_group` treated or control leads, saying how many more it needs."""
    import mlflow

    from leadq.features.columns import raw_input_columns
    from leadq.models.factories import make_candidate
    from leadq.models.lift import TooFewLeads, sizes_needed
    from leadq.models.uplift import TLearner, qini_coefficient
    from leadq.pipelines.tracking.registry import alias_version
    from leadq.pipelines.tracking.store import CHAMPION, configure
    from leadq.pipelines.tracking.uplift import register_uplift

    configure(params)
    name = params["registry"]["model_name"]
    version = alias_version(mlflow.MlflowClient(), name, CHAMPION)
    if version is None:
        raise BadInputError(f"no champion model {name!r} to fit an uplift model for: run "
                            "`leadq train` first")
    rand = joined[(joined["propensity"] > 0) & (joined["propensity"] < 1)].reset_index(
        drop=True)
    t = rand["treatment"].to_numpy(int)
    y = rand["label"].to_numpy(int)
    p = rand["propensity"].to_numpy(float)
    held = np.random.default_rng(seed).random(len(rand)) < held_out
    for part_name, part, share in (("held-out", held, held_out),
                                   ("fitting", ~held, 1 - held_out)):
        n1, n0 = int(t[part].sum()), int((1 - t[part]).sum())
        if min(n1, n0) < min_group:
            more = int(np.ceil(sizes_needed(n1, n0, float(t.mean()) if len(t) else 0.5,
                                            min_group) / share))
            raise TooFewLeads(f"the uplift model's {part_name} split has {n1:,} routed and "
                              f"{n0:,} not-routed randomised matured leads; it needs at least "
                              f"{min_group:,} each (lift.min_group_leads): about {more:,} more "
                              "randomised leads. Raise agreement.holdout_rate / "
                              "scoring.explore_rate, or wait for more outcomes to mature",
                              more)
    id_col = params["data"]["leads"]["id"]
    leads = tables.leads.assign(
        _id=tables.leads[id_col].astype("string").str.strip().to_numpy())
    rows = leads.drop_duplicates("_id").set_index("_id")
    x = rows.loc[rand["lead_id"].to_numpy(), raw_input_columns(params)].reset_index(drop=True)
    learner = TLearner(lambda: make_candidate("logreg", params))
    fit_rows = x.iloc[np.flatnonzero(~held)]
    learner.fit(fit_rows, t[~held], y[~held])
    pred = learner.predict(x.iloc[np.flatnonzero(held)])
    figures = {"qini": qini_coefficient(pred, t[held], y[held], p[held]),
               "n_fit": int((~held).sum()), "n_held_out": int(held.sum()),
               **value_bar_for(params, learner.fitted(), version,
                               rows.loc[joined["lead_id"].to_numpy(),
                                        raw_input_columns(params)].reset_index(drop=True),
                               joined["lead_id"].to_numpy())}
    registered = register_uplift(params, learner.fitted(), for_version=version,
                                 figures=figures, sample=fit_rows.head(50))
    return {**registered, **figures}


def value_bar_for(params: dict, uplift_model, version: str, x: pd.DataFrame, ids) -> dict:
    """The bar on the call's value for agreement.route_by: call_value, fixed here so that a
    lead's routing never depends on which leads share its batch: on these leads (every matured
    scored lead, so both sides of the bar count whatever was randomised), the share that model
    `version`'s probability bar in force makes MQLs, and the uplift (and gain, under the
    agreement's deal value and call cost) that the same share of them reach: the same
    capacity, given to other leads."""
    from leadq.models.routing import route
    from leadq.models.uplift import call_gain, value_bar
    from leadq.pipelines.params.loader import agreement_of
    from leadq.pipelines.scoring.core import segment_values
    from leadq.pipelines.scoring.model import load_scoring_model
    from leadq.pipelines.tracking.uplift import UPLIFT_CUTOFF, VALUE_CUTOFF

    champion = load_scoring_model(params, f"models:/{params['registry']['model_name']}/"
                                          f"{version}")
    r = route(ids, champion.predict_proba(x), threshold=champion.threshold,
              cutoffs=champion.cutoffs, correction=champion.correction, explore_rate=0.0,
              segment_bars=champion.segment_bars,
              segment_values=segment_values(champion.segment_bars, x))
    share = float(np.mean(r["is_mql"])) if len(x) else 0.0
    agreement = agreement_of(params)
    cutoff = value_bar(uplift_model.predict(x), share)
    return {"mql_share": share, UPLIFT_CUTOFF: cutoff,
            VALUE_CUTOFF: float(call_gain(cutoff, agreement.deal_value, agreement.call_cost)),
            "bar_leads": int(len(x))}


def uplift_report(frame: pd.DataFrame, features: list[str], t: np.ndarray, y: np.ndarray, *,
                  where: str, min_group: int, held_out: float = 0.3, seed: int = 0,
                  routing: dict | None = None, score_values=None, propensity=None) -> dict:
    """T- and X-learners on `features`, fitted on 70% of the rows and judged on the other 30%
    (a seeded random split): Qini coefficient (against the ranking by chance), the Qini
    curve by decile, and the incremental response rate of the top 20% against all. With
    `routing` (capacity, deal_value, call_cost), both routing policies compared on the held-out
    rows (models/uplift.compare_routing), ranking by `score_values` (else the T-learner's
    chance to convert when treated) or by the T-learner's call gain."""
    from leadq.models.lift import TooFewLeads, sizes_needed
    from leadq.models.uplift import held_out_learners, linear_factories

    test = np.random.default_rng(seed).random(len(frame)) < held_out
    treated_share = float(np.mean(t))
    for name, part, share in (("held-out", test, held_out), ("fitting", ~test, 1 - held_out)):
        n1, n0 = int(t[part].sum()), int((1 - t[part]).sum())
        if min(n1, n0) < min_group:
            more = int(np.ceil(sizes_needed(n1, n0, treated_share, min_group) / share))
            raise TooFewLeads(f"{where}: the {name} split has {n1:,} treated and {n0:,} control "
                              f"rows; the uplift models need at least {min_group:,} each "
                              f"(lift.min_group_leads): about {more:,} more rows", more)
    x = frame[features].reset_index(drop=True)
    classifier, regressor = linear_factories(x)
    predicted: dict = {}
    out = {"features": list(features), "n_fit": int((~test).sum()),
           "n_held_out": int(test.sum()),
           **held_out_learners(x, t, y, test, classifier, regressor, predictions=predicted)}
    if routing is not None:
        from leadq.models.uplift import compare_routing

        score = predicted["score"] if score_values is None else np.asarray(score_values)[test]
        out["routing"] = {
            "score": "the T-learner's chance to convert when treated" if score_values is None
            else "the data's score column", "uplift": "the T-learner's",
            **compare_routing(score, predicted["t_learner"], t[test], y[test],
                              None if propensity is None else np.asarray(propensity)[test],
                              min_group=min_group, **routing)}
    return out


def _print_routing(r: dict) -> None:
    gain = ("uplift × " + f"{r['deal_value']:,.0f} − {r['call_cost']:,.0f}"
            if r["deal_value"] is not None else "uplift")
    print(f"routing {r['capacity']:.0%} of the {r['n_leads']:,} held-out rows (the same "
          f"capacity; {r['overlap']:.0%} of the calls go to the same rows either way):")
    for name, label in (("probability", f"by probability ({r['score']})"),
                        ("call_value", f"by call value ({gain}; {r['uplift']} uplift)")):
        s = r[name]
        if "refused" in s:
            print(f"  {label}: not estimated: {s['refused']}")
            continue
        line = (f"  {label}: {s['wins_per_100_calls']:+.2f} incremental conversions per 100 "
                f"calls (CI {s['low']:+.2f} to {s['high']:+.2f})")
        if "value_per_100_calls" in s:
            line += (f", value {s['value_per_100_calls']:+,.0f} per 100 calls (CI "
                     f"{s['value_low']:+,.0f} to {s['value_high']:+,.0f})")
        print(line)


def _print_uplift(u: dict) -> None:
    print(f"uplift models on {', '.join(u['features'])} (fitted on {u['n_fit']:,} rows, judged "
          f"on {u['n_held_out']:,} held out):")
    for name in ("t_learner", "x_learner"):
        r = u[name]
        print(f"  {name.replace('_', '-')}: Qini {r['qini']:.5f}; the top 20% it would target "
              f"respond {r['top_20']['top'] * 100:+.2f} points to the treatment, all rows "
              f"{r['top_20']['random'] * 100:+.2f}")


def _print_effect(name: str, s: dict, *, verb: str) -> None:
    if "refused" in s:
        print(f"{name}: not estimated: {s['refused']}")
        return
    pts = 100
    print(f"{name}: {verb} by {s['effect'] * pts:+.2f} points "
          f"({s['confidence']:.0%} CI {s['low'] * pts:+.2f} to {s['high'] * pts:+.2f}); "
          f"{s['rate_treated']:.2%} of {s['n_treated']:,} treated vs {s['rate_control']:.2%} "
          f"of {s['n_control']:,} control{' (IPW)' if s['ipw'] else ''}. Power to detect "
          f"{s['detect'] * pts:+.1f} points: {s['power_now']:.0%} now; {s['power']:.0%} needs "
          f"{s['leads_for_power']:,} leads ({s['more_leads_for_power']:,} more).")
