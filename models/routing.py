"""Who reaches sales: the MQL bar, the A–D tier, a small random exploration share and an
optional random holdout of MQLs.

Exploration fights feedback bias: if only MQLs are worked, leads below the bar never get an
outcome and every later model learns from a censored sample. A random `explore_rate` share of
below-bar leads is routed to sales as well; each lead's `sales_propensity` (1 for an MQL,
explore_rate below the bar) lets recalibration and training weight outcomes by 1/propensity.
The draw is a hash of the lead id, so a lead gets the same decision however the file is
chunked and however often it is rescored.

The holdout (agreement.holdout_rate, default 0) is the mirror image above the bar: a random
share of MQLs is *not* routed, so the effect of the call can be measured on both sides of the
bar (models/lift.py). It is drawn from a second keyed hash of the id, so it is independent of
exploration and equally reproducible. Every output row says what happened and how likely it was:
`treatment` (routed to sales, 1/0) and `propensity` (the probability of being routed: 1 −
holdout_rate for an MQL, explore_rate below the bar); `sales_propensity` carries the same number
under its older name.

Routing by the value of the call (agreement.route_by: call_value) changes one thing: who is an
MQL. With a per-lead `value` (the expected gain of a call) and its `value_cutoff` (fixed when
the uplift model was registered, so a lead's routing never depends on its batch), `is_mql` is
value ≥ value_cutoff instead of score ≥ threshold. Tiers stay on the score; exploration, the
holdout, treatment and propensity follow the MQL flag as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from leadq.models.prior_shift import Correction
from leadq.models.tiers import assign_tiers

_HASH_KEY = "leadq-explore-01"  # 16 bytes; changing it reshuffles who is explored
# A different key, so who is held out does not depend on who is explored (both 16 bytes).
_HOLDOUT_KEY = "leadq-holdout-01"


def id_hashes(ids: Sequence | pd.Series, *, key: str = _HASH_KEY) -> np.ndarray:
    """A keyed 64-bit hash per lead id (missing = ""): the explore draw, and the streaming
    scorer's memory of ids already seen, so each id is hashed once per run. `key`: another
    16-byte key gives an independent draw (the holdout's)."""
    if not isinstance(ids, pd.Series):
        ids = pd.Series(ids if isinstance(ids, pd.api.extensions.ExtensionArray)
                        else np.asarray(ids, dtype=object))
    # Ids are (nearly) all distinct: pandas' categorize shortcut would only add a hash table.
    return pd.util.hash_pandas_object(ids.astype("string").fillna(""), index=False,
                                      hash_key=key, categorize=False).to_numpy(np.uint64)


def _uniform(h: np.ndarray) -> np.ndarray:
    return (np.asarray(h, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def explore_uniform(ids: Sequence | None = None, *,
                    hashes: np.ndarray | None = None) -> np.ndarray:
    """A uniform [0, 1) number per lead id, stable across runs, chunks and machines.
    Pass `hashes` (from id_hashes) when the ids were hashed already."""
    return _uniform(id_hashes(ids) if hashes is None else hashes)


def holdout_uniform(ids: Sequence) -> np.ndarray:
    """The holdout's uniform [0, 1) number per lead id: the same id always gets the same one,
    independent of explore_uniform (another hash key)."""
    return _uniform(id_hashes(ids, key=_HOLDOUT_KEY))


def route(ids: Sequence, raw: np.ndarray, *, threshold: float | np.ndarray,
          cutoffs: Sequence[float] | None, correction: Correction | None,
          explore_rate: float, hashes: np.ndarray | None = None,
          holdout_rate: float = 0.0, value: np.ndarray | None = None,
          value_cutoff: float | None = None, segment_bars: Any = None,
          segment_values: Any = None) -> dict[str, np.ndarray]:
    """Corrected score, MQL flag, tier, explore and holdout flags, treatment and propensity
    for raw model scores. `hashes`: id_hashes(ids), if the caller has them.

    `segment_bars` (leadq.models.thresholds.SegmentBars, a bar per segment) with each row's
    `segment_values`: each row's bar and tier cut-offs are its segment's (the pooled ones for
    other, blank and new values), in place of `threshold` and `cutoffs`.

    `is_mql`: the score passes the agreed bar, or, given `value` and `value_cutoff`, the
    lead's value passes the value bar (a missing value never does). `treatment` is what sales
    must act on: MQLs not held out, plus explored leads. Held-out MQLs are never routed.
    """
    if not 0 <= explore_rate < 1:
        raise ValueError(f"scoring.explore_rate must be in [0, 1), got {explore_rate}")
    if not 0 <= holdout_rate < 1:
        raise ValueError(f"agreement.holdout_rate must be in [0, 1), got {holdout_rate}")
    if (value is None) != (value_cutoff is None):
        raise ValueError("route() needs both value and value_cutoff, or neither")
    raw = np.asarray(raw, float)
    score = correction.apply(raw) if correction is not None else raw
    if segment_bars is not None:
        if segment_values is None or len(segment_values) != len(raw):
            raise ValueError("route(): a bar per segment needs each row's segment value")
        threshold, cutoffs = segment_bars.for_rows(segment_values)
    if value is None:
        is_mql = score >= threshold
    else:
        value = np.asarray(value, float)
        if value.shape != raw.shape:
            raise ValueError(f"route(): {len(value)} values for {len(raw)} scores")
        is_mql = value >= float(value_cutoff)
    explore = ~is_mql & (explore_uniform(ids, hashes=hashes) < explore_rate)
    # Off by default: no second hash pass over the ids unless a holdout is agreed.
    holdout = (is_mql & (holdout_uniform(ids) < holdout_rate) if holdout_rate > 0
               else np.zeros(len(raw), bool))
    cut = cutoffs if cutoffs is not None else np.stack(np.broadcast_arrays(
        threshold, threshold, threshold), axis=-1)
    propensity = np.where(is_mql, 1.0 - holdout_rate, explore_rate)
    return {
        "score": score,
        "is_mql": is_mql,
        "tier": assign_tiers(score, cut),
        "explore": explore,
        "sales_propensity": propensity,
        "score_raw": raw,
        "holdout": holdout,
        "treatment": ((is_mql & ~holdout) | explore).astype(np.int8),
        "propensity": propensity,
    }


def ipw_weights(is_mql: np.ndarray, explore: np.ndarray, propensity: np.ndarray,
                holdout: np.ndarray | None = None) -> np.ndarray:
    """Inverse-propensity weights for outcomes: 1/propensity for leads that reached sales
    (MQL not held out, or explored), 0 for leads nobody worked (their 'no deal' says nothing
    about them).

    Weighted means over worked leads are unbiased for all leads: each explored lead stands in
    for 1/explore_rate below-bar leads, each routed MQL for 1/(1 − holdout_rate) MQLs. Use as
    sample_weight when fitting on scored history. `holdout`: None for files written before the
    holdout existed (no MQL was held out).
    """
    prop = np.asarray(propensity, float)
    mql = np.asarray(is_mql, bool)
    if holdout is not None:
        mql = mql & ~np.asarray(holdout, bool)
    worked = (mql | np.asarray(explore, bool)) & (prop > 0)
    return np.where(worked, 1.0 / np.where(prop > 0, prop, 1.0), 0.0)


def lead_weights(lead_ids: pd.Series, scored: pd.DataFrame) -> np.ndarray:
    """IPW training weight per lead from the scorer's outputs (lead_id, is_mql, explore,
    sales_propensity, optional holdout). Leads leadq never routed weigh 1 (their outcomes came
    from the old process); leads it routed weigh 1/propensity if sales worked them and 0 if
    nobody did (held-out MQLs included). Drop the zero-weight rows and pass the rest as
    sample_weight."""
    w = pd.Series(ipw_weights(scored["is_mql"], scored["explore"], scored["sales_propensity"],
                              scored.get("holdout")),
                  index=scored["lead_id"].astype(str).to_numpy())
    w = w[~w.index.duplicated(keep="last")]
    return pd.Series(lead_ids).astype(str).map(w).fillna(1.0).to_numpy(float)
