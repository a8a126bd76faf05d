"""Who reaches sales: the MQL bar, the A–D tier, and a small random exploration share.

Exploration fights feedback bias: if only MQLs are worked, leads below the bar never get an
outcome and every later model learns from a censored sample. A random `explore_rate` share of
below-bar leads is routed to sales as well; each lead's `sales_propensity` (1 for an MQL,
explore_rate below the bar) lets recalibration and training weight outcomes by 1/propensity.
The draw is a hash of the lead id, so a lead gets the same decision however the file is
chunked and however often it is rescored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadq.models.prior_shift import Correction
from leadq.models.tiers import assign_tiers

_HASH_KEY = "leadq-explore-01"  # 16 bytes; changing it reshuffles who is explored


def id_hashes(ids: Sequence | pd.Series) -> np.ndarray:
    """A keyed 64-bit hash per lead id (missing = ""): the explore draw, and the streaming
    scorer's memory of ids already seen, so each id is hashed once per run."""
    if not isinstance(ids, pd.Series):
        ids = pd.Series(ids if isinstance(ids, pd.api.extensions.ExtensionArray)
                        else np.asarray(ids, dtype=object))
    # Ids are (nearly) all distinct: pandas' categorize shortcut would only add a hash table.
    return pd.util.hash_pandas_object(ids.astype("string").fillna(""), index=False,
                                      hash_key=_HASH_KEY, categorize=False).to_numpy(np.uint64)


def explore_uniform(ids: Sequence | None = None, *,
                    hashes: np.ndarray | None = None) -> np.ndarray:
    """A uniform [0, 1) number per lead id, stable across runs, chunks and machines.
    Pass `hashes` (from id_hashes) when the ids were hashed already."""
    h = id_hashes(ids) if hashes is None else np.asarray(hashes, dtype=np.uint64)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def route(ids: Sequence, raw: np.ndarray, *, threshold: float,
          cutoffs: Sequence[float] | None, correction: Correction | None,
          explore_rate: float, hashes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Corrected score, MQL flag, tier, explore flag and propensity for raw model scores.
    `hashes`: id_hashes(ids), if the caller has them."""
    if not 0 <= explore_rate < 1:
        raise ValueError(f"scoring.explore_rate must be in [0, 1), got {explore_rate}")
    raw = np.asarray(raw, float)
    score = correction.apply(raw) if correction is not None else raw
    is_mql = score >= threshold
    explore = ~is_mql & (explore_uniform(ids, hashes=hashes) < explore_rate)
    cut = cutoffs if cutoffs is not None else (threshold, threshold, threshold)
    return {
        "score": score,
        "is_mql": is_mql,
        "tier": assign_tiers(score, cut),
        "explore": explore,
        "sales_propensity": np.where(is_mql, 1.0, explore_rate),
        "score_raw": raw,
    }


def ipw_weights(is_mql: np.ndarray, explore: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    """Inverse-propensity weights for outcomes: 1/propensity for leads that reached sales
    (MQL or explored), 0 for leads nobody worked (their 'no deal' says nothing about them).

    Weighted means over worked leads are unbiased for all leads: each explored lead stands in
    for 1/explore_rate below-bar leads. Use as sample_weight when fitting on scored history.
    """
    prop = np.asarray(propensity, float)
    worked = (np.asarray(is_mql, bool) | np.asarray(explore, bool)) & (prop > 0)
    return np.where(worked, 1.0 / np.where(prop > 0, prop, 1.0), 0.0)


def lead_weights(lead_ids: pd.Series, scored: pd.DataFrame) -> np.ndarray:
    """IPW training weight per lead from the scorer's outputs (lead_id, is_mql, explore,
    sales_propensity). Leads leadq never routed weigh 1 (their outcomes came from the old
    process); leads it routed weigh 1/propensity if sales worked them and 0 if nobody did.
    Drop the zero-weight rows and pass the rest as sample_weight."""
    w = pd.Series(ipw_weights(scored["is_mql"], scored["explore"], scored["sales_propensity"]),
                  index=scored["lead_id"].astype(str).to_numpy())
    w = w[~w.index.duplicated(keep="last")]
    return pd.Series(lead_ids).astype(str).map(w).fillna(1.0).to_numpy(float)
