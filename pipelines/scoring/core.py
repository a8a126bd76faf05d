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


def score_leads(
    leads: pd.DataFrame,
    model: ScoringModel,
    params: dict,
    *,
    scored_at: pd.Timestamp,
    explain: bool = False,
    id_hashes: np.ndarray | None = None,
) -> pd.DataFrame:
    """The pure scoring step: typed leads in, one output row per lead out.

    With `explain`, reasons_positive / reasons_negative say why (leadq.pipelines.scoring.reasons).
    `id_hashes` (leadq.models.routing.id_hashes of the ids) saves hashing them again.
    """
    from leadq.models.routing import route
    from leadq.pipelines.params.loader import agreement_of

    id_col = params["data"]["leads"]["id"]
    rows = leads[raw_input_columns(params)]
    # With reasons, the model's feature steps run once for both the scores and the reasons
    # (they are most of the cost of a small batch); the scores come out of the same sklearn
    # calls either way. None: this model is scored and explained each on its own.
    transformed = model.encode(rows) if explain and hasattr(model, "encode") else None
    raw = model.predict_proba(rows, transformed=transformed) if transformed is not None \
        else model.predict_proba(rows)
    warn_segment_fallbacks(model, rows)
    ids = leads[id_col].array
    r = route(ids, raw, threshold=model.threshold, cutoffs=model.cutoffs,
              correction=model.correction,
              explore_rate=float((params.get("scoring") or {}).get("explore_rate", 0.0) or 0.0),
              hashes=id_hashes, holdout_rate=agreement_of(params).holdout_rate)
    out = pd.DataFrame({
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
    })
    if explain:
        from leadq.pipelines.scoring.reasons import reason_columns

        reasons = reason_columns(model, rows, params, transformed=transformed)
        for col in reasons.columns:
            out[col] = reasons[col].to_numpy()
    return out


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
):
    """The step every scorer runs on a batch of raw rows: the row contract, typing, scoring.

    Returns the contract's verdict (leadq.features.contracts.RowCheck) and one output row per
    good row, in order. `duplicates` marks rows whose id an earlier batch had (the streamed
    file's IdTracker); `hashes` are the ids' 64-bit hashes when the caller has them already.
    `events` is the activity log as scoring_events reads it, when the caller holds it already
    (`leadq serve` loads it off the request path, so a request never waits for the file).
    """
    from leadq.features.contracts import evaluate, id_column
    from leadq.features.tables import coerce_leads
    from leadq.models.routing import id_hashes
    from leadq.pipelines.io.lookups import enrich

    raw = enrich(raw.reset_index(drop=True), params)
    if hashes is None:
        hashes = id_hashes(raw[id_column("leads", params)].astype("string").str.strip())
    check = evaluate(raw, "leads", params, reference, duplicates=duplicates)
    good = ~check.bad
    if not good.any():
        return check, None
    parsed = {kind: {col: _rows(values, good) for col, values in found.items()}
              for kind, found in check.parsed.items()}
    leads = coerce_leads(raw.loc[good], params, parsed)
    if (params["data"].get("activities") or {}).get("path"):
        from leadq.pipelines.io.activities import add_features
        from leadq.pipelines.io.crm import scoring_events

        # Events up to the lead's cut-off, or up to now for a lead scored before it.
        leads = add_features(leads, scoring_events(params) if events is None else events,
                             params, scored_at=scored_at)
    out = score_leads(leads, model, params, scored_at=scored_at, explain=explain,
                      id_hashes=hashes[good])
    return check, out
