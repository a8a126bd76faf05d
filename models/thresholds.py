"""The MQL threshold policy: where the bar sits between 'sales calls' and 'marketing nurtures'.

The first bar is chosen on validation leads when a model is trained:
- top_share: pass the best `top_share` of leads (what sales has capacity for);
- min_precision: the lowest bar at which at least `min_precision` of MQLs convert (most recall);
- expected_value: call a lead when its calibrated probability × won_value exceeds lead_cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

POLICIES = ("top_share", "min_precision", "expected_value")


@dataclass(frozen=True)
class ThresholdDecision:
    threshold: float
    policy: str
    mql_share: float
    precision: float
    recall: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def rates_at(
    score: np.ndarray, y: np.ndarray | None, threshold: float
) -> tuple[float, float, float]:
    """MQL share, precision and recall when leads with score ≥ threshold become MQLs."""
    score = np.asarray(score, float)
    passed = score >= threshold
    share = float(passed.mean()) if len(score) else float("nan")
    if y is None:
        return share, float("nan"), float("nan")
    y = np.asarray(y, float)
    precision = float(y[passed].mean()) if passed.any() else float("nan")
    recall = float(y[passed].sum() / y.sum()) if y.sum() else float("nan")
    return share, precision, recall


def choose_threshold(score: np.ndarray, y: np.ndarray, policy: dict) -> ThresholdDecision:
    """Apply the configured policy to validation scores (calibrated probabilities)."""
    name = policy.get("policy", "top_share")
    score = np.asarray(score, float)
    y = np.asarray(y, float)
    if name == "top_share":
        share = float(policy.get("top_share", 0.25))
        if not 0 < share <= 1:
            raise ValueError("threshold.top_share must be in (0, 1]")
        threshold = float(np.quantile(score, 1 - share, method="higher"))
        reason = f"pass the top {share:.0%} of leads"
    elif name == "min_precision":
        target = float(policy.get("min_precision", 0.3))
        candidates = np.unique(score)
        ok = [t for t in candidates if (rates_at(score, y, t)[1] or 0) >= target]
        if ok:
            threshold = float(min(ok))
            reason = f"lowest bar with precision ≥ {target:.0%}"
        else:
            threshold = float(candidates.max())
            best = rates_at(score, y, threshold)[1]
            reason = (f"no bar reaches precision {target:.0%} (best {best:.1%}); "
                      "fell back to the highest score")
    elif name == "expected_value":
        value, cost = float(policy.get("won_value", 10000.0)), float(policy.get("lead_cost", 300.0))
        if value <= 0:
            raise ValueError("threshold.won_value must be positive")
        threshold = cost / value
        reason = f"call when p × {value:,.0f} > {cost:,.0f} (break-even p = {threshold:.3f})"
    else:
        raise ValueError(f"threshold.policy must be one of {POLICIES}, got {name!r}")
    share, precision, recall = rates_at(score, y, threshold)
    return ThresholdDecision(threshold, name, share, precision, recall, reason)
