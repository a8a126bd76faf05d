"""The agreement between marketing and sales, in one place: what counts as an MQL, the SLA,
sales capacity, what sales' feedback means, and the review period.

`Agreement.from_params` is the one typed view of params `agreement:` that every command reads.
The rules that turn it into figures both teams quote live here too, so the report,
`recalibrate` and `review` cannot disagree about them:
- `sla_compliance`: which MQLs were reached within the SLA;
- `period_figures`: MQL share, within-SLA share and acceptance of one review period;
- `normalise_rating`: a rating in any form (1–5, Hot/Warm/Cold, A–D) on one 1–5 scale.
The bar itself is set by models/thresholds.py from `Agreement.mql`. It lives in features/ (the
bottom layer) because the feedback meaning is needed where tables are typed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from leadq.features.labels import mql_cutoff_days

POLICIES = ("top_share", "min_precision", "expected_value")
# Which leads fill sales' capacity: the best scores, or the largest expected gain from the call
# (uplift × deal value − cost of a call; models/uplift.call_gain).
ROUTE_BY = ("probability", "call_value")
PERIOD_WEEKS = {"week": 1.0, "month": 52.0 / 12.0, "quarter": 13.0}


@dataclass(frozen=True)
class MqlPolicy:
    """What counts as an MQL. Only the parameter of the chosen policy matters."""

    policy: str = "top_share"
    top_share: float = 0.25
    min_precision: float = 0.3
    won_value: float = 10000.0
    lead_cost: float = 300.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"agreement.mql.policy must be one of {POLICIES}, "
                             f"got {self.policy!r}")
        if self.policy == "top_share" and not 0 < self.top_share <= 1:
            raise ValueError("agreement.mql.top_share must be in (0, 1]")
        if self.policy == "min_precision" and not 0 < self.min_precision < 1:
            raise ValueError("agreement.mql.min_precision must be in (0, 1)")
        if self.policy == "expected_value" and self.won_value <= 0:
            raise ValueError("agreement.mql.won_value must be positive")

    def key(self) -> dict:
        """The policy and the one value that defines it: what a change of policy compares."""
        if self.policy == "top_share":
            return {"policy": "top_share", "top_share": float(self.top_share)}
        if self.policy == "min_precision":
            return {"policy": "min_precision", "min_precision": float(self.min_precision)}
        return {"policy": "expected_value", "won_value": float(self.won_value),
                "lead_cost": float(self.lead_cost)}

    def as_dict(self) -> dict:
        return asdict(self)

    def words(self) -> str:
        if self.policy == "top_share":
            return f"the best {self.top_share:.0%} of leads by calibrated score"
        if self.policy == "min_precision":
            return (f"every lead down to the lowest bar at which at least "
                    f"{self.min_precision:.0%} of MQLs convert")
        return (f"every lead whose chance to convert × {self.won_value:,.0f} (a won deal) "
                f"exceeds {self.lead_cost:,.0f} (the cost of working it): p ≥ "
                f"{self.lead_cost / self.won_value:.3f}")


def segment_split(seg: dict) -> dict:
    """segment_column and capacity_share from params `segments:`, checked (ValueError names
    the key); both None unless segments.per_segment_bar is true."""
    if not seg.get("per_segment_bar"):
        return {"segment_column": None, "capacity_share": None}
    column = seg.get("column")
    if not column:
        raise ValueError("segments.per_segment_bar: true needs segments.column (the column "
                         "whose values get their own bar)")
    shares = seg.get("capacity_share") or {}
    if not shares:
        raise ValueError("segments.per_segment_bar: true needs segments.capacity_share, each "
                         "segment value's share of sales capacity, e.g. {enterprise: 0.6, "
                         "smb: 0.4}")
    out: dict[str, float] = {}
    for value, share in shares.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not share > 0:
            raise ValueError(f"segments.capacity_share.{value}: expected a share > 0, got "
                             f"{share!r}")
        out[str(value)] = float(share)
    if sum(out.values()) > 1 + 1e-9:
        raise ValueError(f"segments.capacity_share: the shares sum to {sum(out.values()):.3f};"
                         " they must sum to at most 1 (the rest goes to the other leads)")
    return {"segment_column": str(column), "capacity_share": out}


def describe_policy(key: dict | None) -> str:
    """A stored policy key (Agreement.policy_key()) in words; older models stored only a
    name."""
    if not key:
        return "unknown (trained before the agreement recorded its policy)"
    key = dict(key)
    split = key.pop("capacity_share", None)
    column = key.pop("segment_column", None)
    try:
        words = MqlPolicy(**key).words()
    except (TypeError, ValueError):
        return str(key)
    if split:
        words += (f", with a bar per {column} ("
                  + ", ".join(f"{v} {s:.0%} of capacity" for v, s in split.items())
                  + "; every other lead one pooled bar)")
    return words


@dataclass(frozen=True)
class FeedbackMeaning:
    """What each value of the feedback table's status column means (compared ignoring case)."""

    accepted: tuple[str, ...] = ("accepted",)
    rejected: tuple[str, ...] = ("rejected",)
    not_reached: tuple[str, ...] = ()
    rating_values: dict = field(default_factory=dict)

    def classify(self, status: pd.Series) -> pd.DataFrame:
        """accepted / rejected / not_reached flags per feedback row."""
        text = status.astype("string").str.strip().str.lower()

        def flag(values: tuple[str, ...]) -> np.ndarray:
            return text.isin({str(v).strip().lower() for v in values}).fillna(False).to_numpy(
                bool)

        return pd.DataFrame({"accepted": flag(self.accepted), "rejected": flag(self.rejected),
                             "not_reached": flag(self.not_reached)}, index=status.index)


@dataclass(frozen=True)
class Agreement:
    mql: MqlPolicy = MqlPolicy()
    capacity_per_week: float | None = None
    sla_hours: float = 24.0
    sla_target: float = 0.9
    a_share: float = 0.33
    c_ratio: float = 1.0
    feedback: FeedbackMeaning = FeedbackMeaning()
    campaign_column: str | None = None
    source_column: str | None = None
    campaign_min_feedback: int = 20
    campaign_flag_rejection: float = 0.7
    review_days: float = 28.0
    goal_won_deals: float | None = None
    goal_period: str = "month"
    # The SLA clock starts at the MQL moment (label.cutoff_days after created_at).
    mql_moment_days: float = 0.0
    holdout_rate: float = 0.0
    route_by: str = "probability"
    deal_value: float | None = None
    call_cost: float = 0.0
    # A bar per segment (params segments.per_segment_bar): the segment column and each named
    # segment's share of sales capacity; None = one bar for every lead (the default). Part of
    # the agreement because splitting capacity is something both teams sign, like the policy.
    segment_column: str | None = None
    capacity_share: dict[str, float] | None = None

    @classmethod
    def from_params(cls, params: dict) -> Agreement:
        """The typed agreement from merged params (the loader has filled every default)."""
        a = params["agreement"]
        fb = a["feedback"]
        sla = float(a["sla_hours"])
        if sla <= 0:
            raise ValueError("agreement.sla_hours must be positive")
        holdout = float(a["holdout_rate"])
        if not 0 <= holdout < 1:
            raise ValueError(f"agreement.holdout_rate must be in [0, 1), got {holdout}")
        route_by = str(a["route_by"])
        if route_by not in ROUTE_BY:
            raise ValueError(f"agreement.route_by must be one of {ROUTE_BY}, got {route_by!r}")
        value = a["call_value"]
        deal_value = None if value["deal_value"] is None else float(value["deal_value"])
        if deal_value is not None and deal_value <= 0:
            raise ValueError("agreement.call_value.deal_value must be positive (or null)")
        call_cost = float(value["call_cost"])
        if call_cost < 0:
            raise ValueError("agreement.call_value.call_cost must not be negative")
        if route_by == "call_value" and (params.get("segments") or {}).get("per_segment_bar"):
            raise ValueError("segments.per_segment_bar: true needs agreement.route_by: "
                             "probability (routing by the call's value has one bar on value)")
        if a["goal"]["period"] not in PERIOD_WEEKS:
            raise ValueError(f"agreement.goal.period must be one of {sorted(PERIOD_WEEKS)}")
        return cls(
            mql=MqlPolicy(**{k: (float(v) if k != "policy" else str(v))
                             for k, v in a["mql"].items()}),
            capacity_per_week=None if a["capacity_per_week"] is None
            else float(a["capacity_per_week"]),
            sla_hours=sla, sla_target=float(a["sla_target"]),
            a_share=float(a["tiers"]["a_share"]), c_ratio=float(a["tiers"]["c_ratio"]),
            feedback=FeedbackMeaning(tuple(map(str, fb["accepted"])),
                                     tuple(map(str, fb["rejected"])),
                                     tuple(map(str, fb["not_reached"])),
                                     dict(fb["rating_values"] or {})),
            campaign_column=a["campaign_column"], source_column=a["source_column"],
            campaign_min_feedback=int(a["campaign_min_feedback"]),
            campaign_flag_rejection=float(a["campaign_flag_rejection"]),
            review_days=float(a["review_days"]),
            goal_won_deals=None if a["goal"]["won_deals"] is None
            else float(a["goal"]["won_deals"]),
            goal_period=str(a["goal"]["period"]),
            mql_moment_days=mql_cutoff_days(params["label"]),
            holdout_rate=holdout,
            route_by=route_by, deal_value=deal_value, call_cost=call_cost,
            **segment_split(params.get("segments") or {}),
        )

    def policy_key(self) -> dict:
        """What a change of policy compares (recalibrate refuses one without --change-policy):
        the MQL policy and, with a bar per segment, the segment column and capacity split, so
        recalibration never swaps per-segment bars for one bar (or back) silently."""
        key = self.mql.key()
        if self.capacity_share is not None:
            key.update(segment_column=self.segment_column,
                       capacity_share=dict(sorted(self.capacity_share.items())))
        return key

    @property
    def per_segment(self) -> bool:
        """True when each segment with a capacity share gets its own MQL bar."""
        return self.capacity_share is not None

    @property
    def tiers(self) -> dict:
        return {"a_share": self.a_share, "c_ratio": self.c_ratio}

    def words(self, *, mql_per_week: float | None = None, policy_in_force: dict | None = None,
              label_rejected_negative: bool = True) -> list[str]:
        """The agreement as sentences both teams read."""
        lines = [f"An MQL is {self.mql.words()}."]
        if policy_in_force and policy_in_force != self.policy_key():
            lines.append(f"The bar in force still follows the previous policy: "
                         f"{describe_policy(policy_in_force)}. Run `leadq recalibrate "
                         "--change-policy \"why\"` to apply the new one.")
        if mql_per_week is not None:
            lines.append(f"At the current bar that is about {mql_per_week:,.0f} MQLs a week.")
        if self.capacity_per_week is not None:
            lines.append(f"Sales can work at most {self.capacity_per_week:,.0f} MQLs a week; "
                         "the bar rises when more would pass.")
        lines.append(f"Sales makes first contact with every MQL within {_hours(self.sla_hours)}"
                     f" (the promise holds when at least {self.sla_target:.0%} are reached in "
                     "time).")
        if self.holdout_rate > 0:
            lines.append(f"A random {self.holdout_rate:.0%} of MQLs is held out (not routed, "
                         "marked holdout in the scores) so `leadq lift` can measure what the "
                         "call changes.")
        if self.route_by == "call_value":
            gain = ("uplift × " + f"{self.deal_value:,.0f} (a won deal) − {self.call_cost:,.0f} "
                    "(a call)" if self.deal_value is not None else "uplift")
            lines.append(f"Sales' capacity goes to the leads whose call gains most ({gain}), "
                         "not to the best scores.")
        lines.append(f"The best {self.a_share:.0%} of MQLs are tier A (call first); the next "
                     f"{self.c_ratio:g}× as many leads below the bar are tier C, marketing's "
                     "priority nurture.")
        acc = ", ".join(self.feedback.accepted) or "(none set)"
        rej = ", ".join(self.feedback.rejected) or "(none set)"
        lines.append(f"Sales records each MQL's outcome: accepted = {acc}; rejected = {rej}"
                     + (f"; not reached yet = {', '.join(self.feedback.not_reached)}"
                        if self.feedback.not_reached else "") + ".")
        lines.append("A rejected lead goes back to marketing"
                     + (" and counts as a non-conversion when the model is retrained."
                        if label_rejected_negative else "."))
        if self.campaign_column:
            lines.append(f"Campaigns (column {self.campaign_column}) whose leads sales rejects "
                         f"at least {self.campaign_flag_rejection:.0%} of the time, over at "
                         f"least {self.campaign_min_feedback} leads it decided on, are flagged "
                         "to cut.")
        else:
            lines.append("No campaign column is set: campaign quality is not tracked "
                         "(agreement.campaign_column).")
        goal = (f"; the shared goal is {self.goal_won_deals:g} won deals a {self.goal_period}"
                if self.goal_won_deals else "")
        lines.append(f"Both teams review the figures every {self.review_days:g} days "
                     f"(`leadq review`){goal}.")
        return lines


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.0f} minutes"
    return "1 hour" if h == 1 else f"{h:g} hours"


def normalise_rating(values: pd.Series, mapping: dict) -> pd.Series:
    """A 1–5 rating from numbers, a configured mapping (Hot/Warm/Cold) or letter grades.

    Numbers pass through; mapped words use `mapping` (keys compared ignoring case); anything
    else is missing. Letter grades A–D need a mapping too, so a typo never becomes a rating.
    """
    numbers = pd.Series(pd.to_numeric(values, errors="coerce"), index=values.index)
    numbers = pd.Series(numbers.to_numpy(dtype=float, na_value=np.nan), index=values.index)
    if not mapping:
        return numbers
    lookup = {str(k).strip().lower(): float(v) for k, v in mapping.items()}
    words = values.astype("string").str.strip().str.lower().map(lookup)
    words = pd.Series(pd.to_numeric(words, errors="coerce").to_numpy(dtype=float,
                                                                    na_value=np.nan),
                      index=values.index)
    return numbers.fillna(words)


# --- the shared figures ---------------------------------------------------------------------
def sla_compliance(mqls: pd.DataFrame, first_contact: pd.Series | None, *,
                   as_of: pd.Timestamp, sla_hours: float,
                   mql_moment_days: float = 0.0) -> pd.DataFrame:
    """Per MQL whose SLA has run out by `as_of`: hours to first contact and within-SLA.

    `mqls`: lead_id, created_at; `first_contact`: the first contact time per lead id. The clock
    starts at the MQL moment (created_at + `mql_moment_days`). An MQL never contacted counts
    as missed once its SLA has passed; younger ones are left out (they may still be called in
    time). A contact before the MQL moment (a date-only cell, or two exports on different
    clocks) counts as 0 hours: sales reached the lead. This is the one definition the report,
    `recalibrate` and `review` quote.
    """
    sla = pd.Timedelta(hours=float(sla_hours))
    start = pd.to_datetime(mqls["created_at"]) + pd.Timedelta(days=float(mql_moment_days))
    due_mask = (start + sla <= as_of).to_numpy(bool)
    due, start = mqls.loc[due_mask], start.loc[due_mask]
    contact = (due["lead_id"].astype(str).map(first_contact) if first_contact is not None
               else pd.Series(pd.NaT, index=due.index))
    hours = ((pd.to_datetime(contact) - start).dt.total_seconds() / 3600.0).clip(lower=0.0)
    return pd.DataFrame({"lead_id": due["lead_id"].to_numpy(),
                         "hours_to_contact": hours.to_numpy(float),
                         "within_sla": (hours <= float(sla_hours)).fillna(False).to_numpy(
                             bool)}, index=due.index)


def lead_decisions(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """Sales' decision per lead id: its latest accepted-or-rejected feedback row (by
    feedback_at), so a lead worked and then closed as not converted counts as rejected. Leads
    whose rows are all "not reached" have no decision. Columns: accepted, rejected, reason."""
    cols = ["accepted", "rejected", "reason"]
    if feedback is None or not len(feedback):
        return pd.DataFrame(columns=cols, index=pd.Index([], dtype=object, name="lead_id"))
    fb = feedback[feedback["accepted"].astype(bool) | feedback["rejected"].astype(bool)]
    if "feedback_at" in fb:
        fb = fb.sort_values("feedback_at", kind="stable")
    # tail(1), not last(): last() takes each column's last non-missing value separately.
    last = (fb.assign(lead_id=fb["lead_id"].astype(str)).groupby("lead_id", sort=False)
            .tail(1).set_index("lead_id"))
    accepted = last["accepted"].astype(bool)
    return pd.DataFrame({"accepted": accepted,
                         "rejected": last["rejected"].astype(bool) & ~accepted,
                         "reason": last.get("reason", pd.Series(np.nan, index=last.index))})


def first_contacts(feedback: pd.DataFrame | None) -> pd.Series | None:
    """The first contact time per lead id (the earliest first_contact_at), None without any."""
    if feedback is None or "first_contact_at" not in feedback or \
            feedback["first_contact_at"].notna().sum() == 0:
        return None
    fb = feedback[feedback["first_contact_at"].notna()]
    return fb.groupby(fb["lead_id"].astype(str))["first_contact_at"].min()


def period_figures(leads: pd.DataFrame, feedback: pd.DataFrame | None, *,
                   as_of: pd.Timestamp, agreement: Agreement) -> dict:
    """The figures both teams quote for one period: `leads` holds that period's scored leads
    (lead_id, created_at, is_mql). MQL share, MQLs per week, within-SLA share and median hours
    to first contact of the MQLs due, and sales acceptance of the MQLs it decided on."""
    weeks = max(agreement.review_days, 1.0) / 7.0
    mql = leads["is_mql"].to_numpy(bool)
    out: dict = {"leads": int(len(leads)), "mqls": int(mql.sum()),
                 "mql_share": float(mql.mean()) if len(leads) else float("nan"),
                 "mqls_per_week": float(mql.sum() / weeks), "sla_hours": agreement.sla_hours}
    first = first_contacts(feedback)
    sla = sla_compliance(leads.loc[mql, ["lead_id", "created_at"]], first, as_of=as_of,
                         sla_hours=agreement.sla_hours,
                         mql_moment_days=agreement.mql_moment_days)
    out["mqls_due"] = int(len(sla))
    out["within_sla"] = int(sla["within_sla"].sum())
    out["within_sla_share"] = (float(sla["within_sla"].mean()) if len(sla) and first is not None
                               else float("nan"))
    hours = sla["hours_to_contact"].dropna()
    out["median_hours_to_contact"] = float(hours.median()) if len(hours) else float("nan")
    out["accepted"] = out["rejected"] = 0
    out["acceptance_rate"] = float("nan")
    decided = lead_decisions(feedback)
    decided = decided[decided.index.isin(set(leads.loc[mql, "lead_id"].astype(str)))]
    if len(decided):
        out["accepted"] = int(decided["accepted"].sum())
        out["rejected"] = int(decided["rejected"].sum())
        out["acceptance_rate"] = float(decided["accepted"].mean())
    return out
