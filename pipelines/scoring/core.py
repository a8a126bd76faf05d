"""The one scoring core: typed leads and a loaded model in, output rows out.

`leadq score` (pandas, streamed), the Spark engine, the serve API and any other caller build
their output columns here, so the MQL flag, tiers, exploration, the holdout (treatment,
propensity) and prior-shift correction cannot differ between engines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.features.columns import raw_input_columns
from leadq.pipelines.scoring.model import ScoringModel
from leadq.settings import setting


def score_leads(
    leads: pd.DataFrame,
    model: ScoringModel,
    params: dict,
    *,
    scored_at: pd.Timestamp,
    explain: bool = False,
    id_hashes: np.ndarray | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The pure scoring step: typed leads in, one output row per lead out.

    With `explain`, reasons_positive / reasons_negative say why (leadq.pipelines.scoring.reasons).
    `id_hashes` (leadq.models.routing.id_hashes of the ids) saves hashing them again.
    `columns`: `raw_input_columns(params)`, when the caller worked them out once.
    """
    from leadq.models.routing import route
    from leadq.pipelines.params.loader import agreement_of

    agreement = agreement_of(params)
    by_value = agreement.route_by == "call_value"
    if by_value:
        _check_value_bar(model)
    id_col = params["data"]["leads"]["id"]
    rows = _select(leads, raw_input_columns(params) if columns is None else columns)
    # With reasons, the model's feature steps run once for both the scores and the reasons
    # (they are most of the cost of a small batch); the scores come out of the same sklearn
    # calls either way. A few rows are encoded through the model's compiled steps even without
    # reasons (leadq.models.compiled: `leadq serve`'s single leads). None: this model is scored
    # and explained each on its own.
    from leadq.models.explain import COMPILED_MAX_ROWS

    encode = explain or len(rows) <= COMPILED_MAX_ROWS
    transformed = model.encode(rows) if encode and hasattr(model, "encode") else None
    # With reasons, the explanation computes the model's margin anyway: the scores come from
    # it by the calibration's own arithmetic (bit for bit predict_proba's), not a second run.
    scored = None
    if explain:
        from leadq.pipelines.scoring.reasons import explained_scores

        scored = explained_scores(model, rows, transformed)
    if scored is not None:
        raw = scored.probability
    elif transformed is not None:
        raw = model.predict_proba(rows, transformed=transformed)
    else:
        raw = model.predict_proba(rows)
    warn_segment_fallbacks(model, rows)
    ids = leads[id_col].array
    uplift = model.uplift.predict(rows) if getattr(model, "uplift", None) is not None else None
    value = value_cutoff = None
    if by_value:
        from leadq.models.uplift import call_gain

        # The gain is increasing in the uplift, so the registered bar on uplift turned into the
        # agreement's units keeps the capacity it was set for whatever deal value is agreed.
        value = call_gain(uplift, agreement.deal_value, agreement.call_cost)
        value_cutoff = float(call_gain(model.uplift_cutoff, agreement.deal_value,
                                       agreement.call_cost))
    bars = getattr(model, "segment_bars", None)
    r = route(ids, raw, threshold=model.threshold, cutoffs=model.cutoffs,
              correction=model.correction,
              explore_rate=setting(params, "scoring.explore_rate", float),
              hashes=id_hashes, holdout_rate=agreement.holdout_rate, value=value,
              value_cutoff=value_cutoff, segment_bars=bars,
              segment_values=segment_values(bars, rows))
    columns_out = {
        id_col: ids,
        "score": r["score"],
        "is_mql": r["is_mql"],
        "model_version": model.version,
        "scored_at": scored_at,
        "tier": r["tier"],
        "threshold_version": model.threshold_version,
        "explore": r["explore"],
        "sales_propensity": r["sales_propensity"],
        "score_raw": r["score_raw"],
        # What sales acts on, and what `leadq lift` compares: routed (1/0), how likely that was,
        # and which MQLs the agreed holdout kept from sales.
        "treatment": r["treatment"],
        "propensity": r["propensity"],
        "holdout": r["holdout"],
    }
    if uplift is not None:
        # What a call adds to this lead's chance (the registered uplift model, issue 29).
        columns_out["uplift"] = uplift
    if by_value:
        # What is_mql was decided on: uplift × deal value − call cost (or the uplift alone).
        columns_out["call_value"] = value
    if explain:
        from leadq.pipelines.scoring.reasons import reason_columns

        reasons = reason_columns(model, rows, params, transformed=transformed,
                                 explanation=None if scored is None else scored.explanation)
        for col in reasons.columns:
            columns_out[col] = reasons[col].to_numpy()
    # One frame built once: adding columns one by one costs a copy each on a few rows.
    return pd.DataFrame(columns_out)


def _select(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """frame[columns], taken by position: a third of the cost on a one-row frame (a lead
    `leadq serve` scores), the same frame on any."""
    positions = frame.columns.get_indexer(columns) if frame.columns.is_unique else None
    if positions is None or (positions < 0).any():
        return frame[columns]  # its KeyError names the missing columns
    return frame.take(positions, axis=1)


def segment_values(bars, rows: pd.DataFrame):
    """Each row's value of the column the model version's bars are per (None without them).
    The column is a model input (segments.column is in features.categorical), so every
    engine hands it over; a model trained with it scored with params that drop it stops."""
    if bars is None:
        return None
    if bars.column not in rows:
        from leadq.errors import ConfigError

        raise ConfigError(f"this model version has an MQL bar per {bars.column} "
                          f"(segments.per_segment_bar), but {bars.column} is not an input "
                          "column of these params; score with the params it was trained with")
    return rows[bars.column].to_numpy()


def _check_value_bar(model: ScoringModel) -> None:
    """Refuse (exit 2) to route by the call's value without the uplift model and its bar for
    this model version, rather than quietly routing by score."""
    from leadq.errors import ConfigError

    if getattr(model, "uplift", None) is None:
        missing = "no uplift model is registered"
    elif getattr(model, "uplift_cutoff", None) is None:
        missing = (f"its uplift model (version {model.uplift_version}) was registered without "
                   "a bar on the call's value")
    else:
        return
    raise ConfigError(f"agreement.route_by: call_value: {missing} for model version "
                      f"{model.version}; run `leadq lift --fit-uplift` to fit and register "
                      "one with its bar, or set agreement.route_by: probability")


def warn_segment_fallbacks(model, rows: pd.DataFrame) -> dict[str, int]:
    """A segmented model (leadq.models.segments) scores a lead whose segment value is blank or
    new with its pooled model: said with the counts (never the values: a form can fill them)."""
    sk = model.sklearn() if hasattr(model, "sklearn") else model
    if not hasattr(sk, "fallback_counts"):
        return {}
    counts = sk.fallback_counts(rows)
    if counts["blank"] or counts["unseen"]:
        from leadq.pipelines.io.progress import log

        log.warning("segments: %d of %d leads have a blank %s and %d a value unseen in "
                    "training; the pooled model scored them (segments.column)",
                    counts["blank"], len(rows), sk.column, counts["unseen"])
    return counts


def _rows(values, keep: np.ndarray) -> np.ndarray:
    """The kept rows of a per-row array or Series (positions, as the frame was checked)."""
    return np.asarray(values)[keep]


def check_and_score(
    raw: pd.DataFrame,
    model: ScoringModel,
    params: dict,
    *,
    reference: dict | None,
    scored_at: pd.Timestamp,
    explain: bool,
    duplicates: np.ndarray | None = None,
    hashes: np.ndarray | None = None,
    events: pd.DataFrame | None = None,
    rules: list | None = None,
    prepared=None,
):
    """The step every scorer runs on a batch of raw rows: the row contract, typing, scoring.

    Returns the contract's verdict (leadq.features.contracts.RowCheck) and one output row per
    good row, in order. `duplicates` marks rows whose id an earlier batch had (the streamed
    file's IdTracker); `hashes` are the ids' 64-bit hashes when the caller has them already.
    `events` is the activity log as scoring_events reads it, when the caller holds it already
    (`leadq serve` loads it off the request path, so a request never waits for the file).
    `rules` are `rules_for("leads", params, reference)`, when the caller resolved them once.
    `prepared` (leadq.pipelines.service.state.Prepared: rules, roles, columns, activity) is
    what follows from the params and the version alone, when the caller worked it out once.
    """
    from leadq.features.contracts import evaluate, id_column
    from leadq.features.tables import coerce_leads
    from leadq.features.text import stripped_string
    from leadq.models.routing import id_hashes
    from leadq.pipelines.io.lookups import enrich

    raw = enrich(raw.reset_index(drop=True), params)
    if hashes is None:
        hashes = id_hashes(stripped_string(raw[id_column("leads", params)]))
    if prepared is not None and rules is None:
        rules = prepared.rules
    check = evaluate(raw, "leads", params, reference, duplicates=duplicates, rules=rules)
    good = ~check.bad
    if not good.any():
        return check, None
    parsed = {kind: {col: _rows(values, good) for col, values in found.items()}
              for kind, found in check.parsed.items()}
    leads = coerce_leads(raw.loc[good], params, parsed,
                         roles=None if prepared is None else prepared.roles)
    if (params["data"].get("activities") or {}).get("path"):
        from leadq.pipelines.io.activities import add_features
        from leadq.pipelines.io.crm import scoring_events

        # Events up to the lead's cut-off, or up to now for a lead scored before it.
        leads = add_features(leads, scoring_events(params) if events is None else events,
                             params, scored_at=scored_at,
                             spec=None if prepared is None else prepared.activity)
    out = score_leads(leads, model, params, scored_at=scored_at, explain=explain,
                      id_hashes=hashes[good],
                      columns=None if prepared is None else prepared.columns)
    return check, out
