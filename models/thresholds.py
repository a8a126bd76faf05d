"""The MQL threshold policy: where the bar sits between 'sales calls' and 'marketing nurtures'.

The first bar is chosen on validation leads when a model is trained:
- top_share: pass the best `top_share` of leads (what sales has capacity for);
- min_precision: the lowest bar at which at least `min_precision` of MQLs convert (most recall);
- expected_value: call a lead when its calibrated probability × won_value exceeds lead_cost.

`leadq recalibrate` moves the bar later with `resolve_threshold`, within the same policy
(`Policies.from_agreement`): the agreed policy becomes one constraint or the objective, and
sales capacity per week caps it. The policy is params `agreement.mql` (features/agreement.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from leadq.features.agreement import POLICIES, Agreement, MqlPolicy


@dataclass(frozen=True)
class ThresholdDecision:
    threshold: float
    policy: str
    mql_share: float
    precision: float
    recall: float
    reason: str
    # Mean calibrated validation score: the base rate the scores reflect (the prior-shift
    # reference), and the tier cut-offs on validation. Defaults keep old call sites working.
    base_rate: float = float("nan")
    cutoffs: tuple[float, float, float] | None = None
    # segments.per_segment_bar: SegmentBars.as_dict(); `threshold` is then the pooled bar.
    segment_bars: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def rates_at(
    score: np.ndarray, y: np.ndarray | None, threshold: float | np.ndarray
) -> tuple[float, float, float]:
    """MQL share, precision and recall when leads with score ≥ threshold become MQLs
    (`threshold`: one bar, or one per lead)."""
    score = np.asarray(score, float)
    passed = score >= threshold
    share = float(passed.mean()) if len(score) else float("nan")
    if y is None:
        return share, float("nan"), float("nan")
    y = np.asarray(y, float)
    precision = float(y[passed].mean()) if passed.any() else float("nan")
    recall = float(y[passed].sum() / y.sum()) if y.sum() else float("nan")
    return share, precision, recall


def choose_threshold(score: np.ndarray, y: np.ndarray, agreement: Agreement
                     ) -> ThresholdDecision:
    """Apply the agreed MQL policy to validation scores (calibrated probabilities)."""
    policy: MqlPolicy = agreement.mql
    name = policy.policy
    score = np.asarray(score, float)
    y = np.asarray(y, float)
    if name == "top_share":
        share = float(policy.top_share)
        threshold = float(np.quantile(score, 1 - share, method="higher"))
        reason = f"pass the top {share:.0%} of leads"
    elif name == "min_precision":
        from sklearn.metrics import precision_recall_curve

        target = float(policy.min_precision)
        # precision[i] is the precision of "score ≥ thresholds[i]", for every distinct score.
        precision, _, cuts = precision_recall_curve(y, score)
        ok = cuts[precision[:-1] >= target]
        if len(ok):
            threshold = float(ok.min())
            reason = f"lowest bar with precision ≥ {target:.0%}"
        else:
            threshold = float(score.max())
            best = rates_at(score, y, threshold)[1]
            reason = (f"no bar reaches precision {target:.0%} (best {best:.1%}); "
                      "fell back to the highest score")
    elif name == "expected_value":
        value, cost = float(policy.won_value), float(policy.lead_cost)
        threshold = cost / value
        reason = f"call when p × {value:,.0f} > {cost:,.0f} (break-even p = {threshold:.3f})"
    else:
        raise ValueError(f"agreement.mql.policy must be one of {POLICIES}, got {name!r}")
    share, precision, recall = rates_at(score, y, threshold)
    return ThresholdDecision(threshold, name, share, precision, recall, reason,
                             base_rate=float(score.mean()) if len(score) else float("nan"),
                             cutoffs=tier_cutoffs(score, threshold, **agreement.tiers))


# --- combinable policies, used by `leadq recalibrate` ---

CONSTRAINTS = ("capacity", "top_share", "min_precision", "min_recall")
OBJECTIVES = ("max_recall", "expected_value")


@dataclass(frozen=True)
class Policies:
    """What the bar must satisfy. None switches a constraint off.

    capacity: most MQLs per week sales can work within the SLA; min_precision: lowest expected
    share of MQLs that convert; min_recall: share of expected conversions that must reach
    sales; objective: max_recall (as many conversions as the constraints allow, i.e. fill the
    capacity) or expected_value (maximise Σ p·won_value − lead_cost over MQLs).
    """

    capacity: float | None = None
    top_share: float | None = None
    min_precision: float | None = None
    min_recall: float | None = None
    objective: str = "max_recall"
    won_value: float = 10000.0
    lead_cost: float = 300.0
    priority: tuple[str, ...] = CONSTRAINTS

    @classmethod
    def from_agreement(cls, agreement: Agreement, capacity: float | None = None) -> Policies:
        """The agreed MQL policy as the bar's one constraint (or objective), capped by sales
        capacity per week: `capacity` overrides the agreed one (e.g. a lower measured one).
        Capacity comes first: sales cannot work more leads than it has people for."""
        m = agreement.mql
        cap = capacity if capacity is not None else agreement.capacity_per_week
        return cls(
            capacity=None if cap is None else float(cap),
            top_share=float(m.top_share) if m.policy == "top_share" else None,
            min_precision=float(m.min_precision) if m.policy == "min_precision" else None,
            objective="expected_value" if m.policy == "expected_value" else "max_recall",
            won_value=float(m.won_value), lead_cost=float(m.lead_cost),
        )


@dataclass(frozen=True)
class PolicyDecision:
    threshold: float
    mql_per_week: float
    mql_share: float
    expected_precision: float
    expected_recall: float
    expected_profit_per_week: float
    binding: str  # the constraint or objective that set the bar
    conflicts: tuple[str, ...]  # one message per constraint that could not be met
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _curves(p: np.ndarray, weeks: float, won_value: float, lead_cost: float) -> dict:
    """Expected MQLs/week, precision, recall and profit for every distinct bar, best first.

    p are calibrated (corrected) probabilities, so expected conversions above a bar are Σ p.
    """
    order = np.sort(p)[::-1]
    n = np.arange(1, len(order) + 1, dtype=float)
    conv = np.cumsum(order)
    # One candidate per distinct score: the last position of each tie group.
    last = np.r_[order[1:] != order[:-1], True]
    t, n, conv = order[last], n[last], conv[last]
    total = conv[-1] if len(conv) else 0.0
    return {
        "threshold": t,
        "mql_per_week": n / weeks,
        "share": n / len(p),
        "precision": conv / n,
        "recall": conv / total if total > 0 else np.zeros_like(conv),
        "profit": (conv * won_value - n * lead_cost) / weeks,
    }


def _check(curves: dict, name: str, target: float) -> tuple[np.ndarray, np.ndarray, str]:
    """(ok mask, shortfall ≥ 0 per bar, unit text) for one constraint."""
    if name == "capacity":
        gap = np.maximum(curves["mql_per_week"] - target, 0.0)
        return gap <= 0, gap, "MQLs/week over"
    if name == "top_share":
        gap = np.maximum(curves["share"] - target, 0.0)
        return gap <= 1e-12, gap, "points over"
    key = "precision" if name == "min_precision" else "recall"
    gap = np.maximum(target - curves[key], 0.0)
    return gap <= 1e-12, gap, "points short"


def _fmt(name: str, value: float) -> str:
    return f"{value:,.0f}/week" if name == "capacity" else f"{value:.1%}"  # a share otherwise


def resolve_threshold(score: np.ndarray, policies: Policies, weeks: float) -> PolicyDecision:
    """The bar that best meets the objective within the constraints, on recent scores.

    Constraints are applied in `policies.priority` order. When one cannot be met together with
    the ones before it, the documented fallback keeps the bars that come closest to it (smallest
    shortfall) and carries on with the rest; the decision says which constraint failed and by
    how much. Capacity comes first by default because sales cannot work more leads than it has
    people for, whatever the precision or recall targets say.
    """
    p = np.clip(np.asarray(score, float), 0.0, 1.0)
    if not len(p):
        raise ValueError("no scores to choose a threshold from")
    if weeks <= 0:
        raise ValueError("weeks must be positive")
    active = {n: getattr(policies, n) for n in policies.priority
              if getattr(policies, n) is not None}
    if not active and policies.objective == "max_recall":
        raise ValueError(f"set at least one of {CONSTRAINTS} or objective expected_value")
    c = _curves(p, weeks, policies.won_value, policies.lead_cost)
    keep = np.ones(len(c["threshold"]), bool)
    conflicts: list[str] = []
    met: list[str] = []
    for name, target in active.items():
        ok, gap, unit = _check(c, name, target)
        if (keep & ok).any():
            keep &= ok
            met.append(name)
            continue
        best = gap[keep].min()
        keep &= gap <= best + 1e-12
        got = {"capacity": c["mql_per_week"], "top_share": c["share"],
               "min_precision": c["precision"], "min_recall": c["recall"]}[name][keep][0]
        with_ = f" together with {', '.join(met)}" if met else ""
        short = f"{best:,.1f} {unit}" if name == "capacity" else f"{100 * best:.1f} {unit}"
        conflicts.append(
            f"{name} {_fmt(name, target)} cannot be met{with_}: best achievable "
            f"{_fmt(name, got)} ({short}); fallback: {name} relaxed to the closest bar"
        )
    idx = np.flatnonzero(keep)
    # max_recall takes the lowest allowed bar: the most conversions reach sales.
    i = idx[np.argmax(c["profit"][idx])] if policies.objective == "expected_value" else idx[-1]
    binding = _binding(c, i, active, policies.objective)
    reason = f"{policies.objective} within {', '.join(active) or 'no constraints'}; " \
             f"bound by {binding}"
    if conflicts:
        reason += "; " + "; ".join(conflicts)
    return PolicyDecision(
        threshold=float(c["threshold"][i]),
        mql_per_week=float(c["mql_per_week"][i]),
        mql_share=float(c["share"][i]),
        expected_precision=float(c["precision"][i]),
        expected_recall=float(c["recall"][i]),
        expected_profit_per_week=float(c["profit"][i]),
        binding=binding,
        conflicts=tuple(conflicts),
        reason=reason,
    )


def _binding(c: dict, i: int, active: dict, objective: str) -> str:
    """The constraint that stops the bar from moving lower (or the objective itself)."""
    if i + 1 >= len(c["threshold"]):
        return objective
    for name, target in active.items():
        ok_next = _check({k: v[i + 1:i + 2] for k, v in c.items()}, name, target)[0][0]
        if not ok_next:
            return name
    return objective


# --- tiers: A/B are MQLs (A the best of them), C the next band below the bar, D the rest ---

def tier_cutoffs(score: np.ndarray, threshold: float, a_share: float = 1 / 3,
                 c_ratio: float = 1.0) -> tuple[float, float, float]:
    """(A, B, C) lower bounds, descending. B is the MQL bar, so A/B ⇔ MQL.

    A: the best `a_share` of MQLs (call first); C: the next `c_ratio` × as many leads below the
    bar (marketing's priority nurture); D: everything else.
    """
    s = np.sort(np.asarray(score, float))[::-1]
    n_mql = int((s >= threshold).sum())
    if n_mql == 0 or not len(s):
        return float(threshold), float(threshold), float(threshold)
    a = float(s[max(int(np.ceil(a_share * n_mql)) - 1, 0)])
    below = s[n_mql:]
    n_c = int(np.ceil(c_ratio * n_mql))
    c = float(below[min(n_c, len(below)) - 1]) if len(below) and n_c > 0 else float(threshold)
    return max(a, threshold), float(threshold), min(c, threshold)


# --- a bar per segment (params segments.per_segment_bar, issue 26) ---

@dataclass(frozen=True)
class SegmentBars:
    """An MQL bar and tier cut-offs per segment, with one pooled bar for every other lead.

    `bars`: segment key (leadq.models.segments.segment_key) → {"threshold", "cutoffs",
    "capacity_share", "leads", "mql_share", "reason"}; `pooled`: the same for leads of a
    segment without a share, and blank or new values. Stored as JSON in the threshold version
    (`as_dict`) and applied per row by `for_rows`, the one place rows meet their bar."""

    column: str
    bars: dict
    pooled: dict

    def as_dict(self) -> dict:
        return {"column": self.column, "bars": self.bars, "pooled": self.pooled}

    @classmethod
    def from_dict(cls, d: dict | None) -> SegmentBars | None:
        return None if not d else cls(str(d["column"]), dict(d["bars"]), dict(d["pooled"]))

    def for_rows(self, values) -> tuple[np.ndarray, np.ndarray]:
        """(bar per row, tier cut-offs per row as an n × 3 array) for the rows' segment
        values; a value without its own bar gets the pooled one."""
        import pandas as pd

        from leadq.models.segments import segment_keys

        keys = segment_keys(pd.Series(values))
        threshold = np.full(len(keys), float(self.pooled["threshold"]))
        cutoffs = np.tile(np.asarray(_cuts(self.pooled), float), (len(keys), 1))
        for key, bar in self.bars.items():
            rows = keys == key
            threshold[rows] = float(bar["threshold"])
            cutoffs[rows] = _cuts(bar)
        return threshold, cutoffs


def _cuts(bar: dict) -> tuple[float, float, float]:
    t = float(bar["threshold"])
    return tuple(float(c) for c in bar["cutoffs"]) if bar.get("cutoffs") else (t, t, t)


def share_groups(values, capacity_share: dict[str, float]
                 ) -> list[tuple[str | None, np.ndarray, float]]:
    """(segment key, row mask, capacity share) per segment with a share, then (None, the
    other rows, the rest of capacity). Two spellings of one segment are one key."""
    import pandas as pd

    from leadq.models.segments import segment_key, segment_keys

    keys = segment_keys(pd.Series(values))
    shares: dict[str, float] = {}
    for value, share in capacity_share.items():
        key = segment_key(value)
        if key is None or key in shares:
            raise ValueError(f"segments.capacity_share.{value}: "
                             + ("a blank value" if key is None else
                                "the same segment as another key (case, spaces, hyphens and "
                                "underscores are ignored)"))
        shares[key] = float(share)
    groups = [(k, keys == k, s) for k, s in shares.items()]
    named = np.zeros(len(keys), bool)
    for _, rows, _ in groups:
        named |= rows
    groups.append((None, ~named, max(1.0 - sum(shares.values()), 0.0)))
    return groups


def share_agreement(agreement: Agreement, share: float, leads: int, total: int) -> Agreement:
    """The agreement one segment's bar follows: the same policy, with top_share turned into
    this segment's part of the MQLs (share × top_share × all leads, as a share of its own
    leads) and capacity per week scaled by its share."""
    from dataclasses import replace

    m = agreement.mql
    if m.policy == "top_share":
        m = replace(m, top_share=float(min(1.0, m.top_share * share * total / max(leads, 1))))
    cap = agreement.capacity_per_week
    return replace(agreement, mql=m, capacity_per_week=None if cap is None else cap * share)


def _bar_row(threshold: float, cutoffs, share: float | None, leads: int, mql_share: float,
             reason: str) -> dict:
    return {"threshold": float(threshold), "cutoffs": [float(c) for c in cutoffs],
            "capacity_share": share, "leads": int(leads), "mql_share": float(mql_share),
            "reason": reason}


def choose_segment_bars(score: np.ndarray, y: np.ndarray, values, agreement: Agreement
                        ) -> tuple[SegmentBars, ThresholdDecision]:
    """The training bars: per segment with a capacity share, the agreed policy on its
    out-of-fold leads with its share; the pooled bar on the other leads with the rest of the
    capacity, or, when the shares take all of it or no other lead was seen, the single bar over
    every lead. Returns the bars and the pooled decision (the version's `threshold`).
    A share for a value no lead has is a ValueError: the split must name known segments."""
    score, y = np.asarray(score, float), np.asarray(y, float)
    if agreement.capacity_share is None:
        raise ValueError("choose_segment_bars needs segments.per_segment_bar: true")
    groups = share_groups(values, agreement.capacity_share)
    bars: dict[str, dict] = {}
    for (key, rows, share), value in zip(groups[:-1], agreement.capacity_share, strict=True):
        if not rows.any():
            raise ValueError(f"segments.capacity_share.{value}: no lead of the training span "
                             f"has this {agreement.segment_column} value")
        d = choose_threshold(score[rows], y[rows],
                             share_agreement(agreement, share, int(rows.sum()), len(score)))
        bars[key] = _bar_row(d.threshold, d.cutoffs, share, rows.sum(), d.mql_share, d.reason)
    _, rest, rest_share = groups[-1]
    if rest.any() and rest_share > 0:
        pooled = choose_threshold(score[rest], y[rest],
                                  share_agreement(agreement, rest_share, int(rest.sum()),
                                                  len(score)))
        why = f"the other leads with the rest of capacity ({rest_share:.0%}): "
    else:
        pooled = choose_threshold(score, y, agreement)
        why = "no capacity left for other leads: the single bar over every lead: "
    pooled = ThresholdDecision(**{**pooled.as_dict(), "reason": why + pooled.reason})
    row = _bar_row(pooled.threshold, pooled.cutoffs, rest_share, rest.sum(),
                   rates_at(score[rest], None, pooled.threshold)[0] if rest.any() else 0.0,
                   pooled.reason)
    return SegmentBars(str(agreement.segment_column), bars, row), pooled


def resolve_segment_bars(score: np.ndarray, values, agreement: Agreement, *,
                         capacity: float | None, weeks: float,
                         previous: SegmentBars | None = None
                         ) -> tuple[SegmentBars, PolicyDecision]:
    """The recalibrated bars: resolve_threshold per segment on its recent (corrected) scores,
    within the agreed policy and its share of `capacity` (MQLs/week for all leads); the pooled
    bar likewise on the other leads. A segment without recent leads keeps its bar from
    `previous`. Returns the bars and one decision for all leads together (its `threshold` is
    the pooled bar; volumes, precision and recall are over every lead at the new bars)."""
    from dataclasses import replace

    p = np.clip(np.asarray(score, float), 0.0, 1.0)
    if agreement.capacity_share is None:
        raise ValueError("resolve_segment_bars needs segments.per_segment_bar: true")
    groups = share_groups(values, agreement.capacity_share)
    total = len(p)

    def one(rows: np.ndarray, share: float, agreed: Agreement) -> tuple[PolicyDecision, tuple]:
        a = share_agreement(agreed, share, int(rows.sum()), total)
        cap = None if capacity is None else capacity * share
        d = resolve_threshold(p[rows], Policies.from_agreement(a, capacity=cap), weeks)
        return d, tier_cutoffs(p[rows], d.threshold, **agreement.tiers)

    bars: dict[str, dict] = {}
    reasons: list[str] = []
    conflicts: list[str] = []
    for key, rows, share in groups[:-1]:
        if not rows.any():
            kept = (previous.bars.get(key) if previous is not None else None)
            if kept is None:
                raise ValueError(f"segments.capacity_share: segment {key!r} has no recent lead "
                                 "and no bar in force")
            bars[key] = {**kept, "leads": 0, "reason": "no recent lead: bar kept"}
            continue
        d, cuts = one(rows, share, agreement)
        bars[key] = _bar_row(d.threshold, cuts, share, rows.sum(), d.mql_share, d.reason)
        reasons.append(f"{key}: {d.reason}")
        conflicts.extend(f"{key}: {c}" for c in d.conflicts)
    _, rest, rest_share = groups[-1]
    if rest.any() and rest_share > 0:
        d, cuts = one(rest, rest_share, agreement)
        why = f"other leads with the rest of capacity ({rest_share:.0%}): {d.reason}"
    else:
        d, cuts = one(np.ones(total, bool), 1.0, agreement)
        why = f"no capacity left for other leads: the single bar over every lead: {d.reason}"
    pooled = _bar_row(d.threshold, cuts, rest_share, rest.sum(),
                      rates_at(p[rest], None, d.threshold)[0] if rest.any() else 0.0, why)
    bars_out = SegmentBars(str(agreement.segment_column), bars, pooled)
    bar, _ = bars_out.for_rows(values)
    passed = p >= bar
    n = int(passed.sum())
    conv = float(p[passed].sum())
    m = agreement.mql
    overall = replace(
        d, mql_per_week=n / weeks, mql_share=n / total,
        expected_precision=conv / n if n else float("nan"),
        expected_recall=conv / p.sum() if p.sum() > 0 else 0.0,
        expected_profit_per_week=(conv * m.won_value - n * m.lead_cost) / weeks,
        binding=f"per segment (pooled bar: {d.binding})",
        conflicts=tuple([*conflicts, *d.conflicts]), reason="; ".join([*reasons, why]))
    return bars_out, overall
