"""Profiling a sales-feedback export for `leadq init --feedback`.

A CRM's lead-status or disposition report says, per lead, what sales did: the status (which
leadq reads as accepted, rejected or not reached yet), when, the first contact (what the SLA is
measured on), a rating, a rejection reason and the rep. This module guesses each of those
columns and the meaning of every status value, with a reason per guess for the params file.

Status vocabularies recognised (compared on lower-case words, most specific first):
- Salesforce lead statuses: Open - Not Contacted, Working - Contacted, Closed - Converted,
  Closed - Not Converted, Qualified, Unqualified, Nurturing;
- HubSpot lead statuses: New, Open, In Progress, Open Deal, Attempted to Contact, Connected,
  Bad Timing, Unqualified;
- Dynamics 365 lead status and status reasons: Open / New / Contacted, Qualified,
  Disqualified / Lost / Cannot Contact / No Longer Interested / Canceled.
A value none of these cover is read as not reached (neither accepted nor rejected: no label
changes), and init says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from leadq.pipelines.profiling.profile import ColumnFacts, column_facts
from leadq.pipelines.profiling.sniff import name_tokens

# Phrases, checked in this order: "not contacted" before "contacted", "not converted" before
# "converted", "unqualified" before "qualified"; bare "new" / "open" only as the whole value
# ("Open Deal" is accepted).
_NOT_REACHED = ("not contacted", "attempted", "attempting", "no response", "no answer",
                "unreachable", "left voicemail", "voicemail")
_REJECTED = ("not converted", "unqualified", "disqualified", "not qualified", "rejected",
             "bad timing", "bad fit", "not interested", "no longer interested", "junk",
             "spam", "duplicate", "lost", "canceled", "cancelled", "dead", "invalid",
             "do not contact", "cannot contact", "competitor", "no budget", "nurture",
             "nurturing", "recycled")
_BARE_NOT_REACHED = ("new", "open", "open not contacted", "pending", "assigned")
_ACCEPTED = ("converted", "qualified", "contacted", "connected", "working", "in progress",
             "open deal", "accepted", "sales accepted", "sql", "sal", "meeting", "opportunity",
             "won", "interested")

_RATING_WORDS = {"hot": 5, "warm": 3, "cold": 1}
_GRADES = {"a": 5, "b": 4, "c": 2, "d": 1}


def _words(value: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", str(value).lower())) + " "


def status_meaning(value: str) -> str | None:
    """accepted / rejected / not_reached for a status value; None when no phrase matches."""
    text = _words(value)
    if any(f" {p} " in text for p in _NOT_REACHED):
        return "not_reached"
    if any(f" {p} " in text for p in _REJECTED):
        return "rejected"
    if text.strip() in _BARE_NOT_REACHED:
        return "not_reached"
    if any(f" {p} " in text for p in _ACCEPTED):
        return "accepted"
    return None


@dataclass
class FeedbackGuess:
    lead_id: str
    feedback_at: str
    status: str
    first_contact_at: str | None = None
    rating: str | None = None
    reason: str | None = None
    rep: str | None = None
    date_format: str | None = None
    meaning: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    rating_values: dict[str, int] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)


def _named(facts: dict[str, ColumnFacts], words: set[str], *, exclude: set[str]) -> list[str]:
    return [c for c, f in facts.items() if c not in exclude and words & set(f.tokens)]


def profile_feedback(frame: pd.DataFrame, lead_col: str, *, today: pd.Timestamp
                     ) -> FeedbackGuess:
    """Guess the feedback table's columns (lead id already matched) and status meanings."""
    from leadq.pipelines.profiling.profile import ProfileError

    facts = {c: column_facts(frame[c], c, today=today) for c in frame.columns if c != lead_col}
    used = {lead_col}
    why: dict[str, str] = {"lead_id": "its values are the leads' ids"}

    # Status: the text column whose values the vocabularies read best, preferring the name.
    best, best_score = None, 0.0
    for col, f in facts.items():
        if f.date is not None or f.numeric_share > 0.5 or not 1 < f.distinct <= 40:
            continue
        values = frame[col].dropna().astype(str).str.strip()
        known = values.map(status_meaning).notna().mean() if len(values) else 0.0
        named = bool({"status", "disposition", "stage", "state", "outcome"} & set(f.tokens))
        score = known + (0.5 if named else 0.0)
        if score > best_score:
            best, best_score = col, score
    if best is None:
        raise ProfileError("--feedback: no column reads as a lead status (a few values such "
                           "as Working - Contacted / Unqualified / Connected)")
    used.add(best)
    values = sorted(frame[best].dropna().astype(str).str.strip().unique())
    meaning: dict[str, list[str]] = {"accepted": [], "rejected": [], "not_reached": []}
    unknown = []
    for v in values:
        m = status_meaning(v)
        if m is None:
            unknown.append(v)
            m = "not_reached"
        meaning[m].append(v)
    why["status"] = (f"{len(values)} status values; their meaning is in "
                     "agreement.feedback")

    dates = {c: f for c, f in facts.items() if f.date is not None and c not in used}
    if not dates:
        raise ProfileError("--feedback: no date column (when sales gave the feedback)")
    first = [c for c in dates if {"first"} & set(dates[c].tokens) and {
        "contact", "contacted", "call", "touch", "engagement", "response", "reply",
        "activity"} & set(dates[c].tokens)]
    first_contact = first[0] if first else None
    if first_contact:
        used.add(first_contact)
        why["first_contact_at"] = "a date named first contact: the SLA is measured on it"
    rest = [c for c in dates if c not in used]
    if not rest and first_contact:
        rest = [first_contact]  # one date only: it is both
    ranked = sorted(rest, key=lambda c: (not {"status", "changed", "modified", "updated",
                                              "feedback", "last", "date"} &
                                         set(dates[c].tokens), rest.index(c)))
    feedback_at = ranked[0]
    used.add(feedback_at)
    why["feedback_at"] = "the date the status was set"
    fmt = dates[feedback_at].date.format

    rating = next(iter(_named(facts, {"rating", "grade", "temperature", "rank", "score"},
                              exclude=used)), None)
    rating_values: dict[str, int] = {}
    if rating:
        used.add(rating)
        cells = frame[rating].dropna().astype(str).str.strip()
        cells = cells[cells != ""]
        lower = set(cells.str.lower())
        if facts[rating].numeric_share > 0.9:
            why["rating"] = "numbers (a 1–5 scale is expected: contracts.rating_range)"
        elif lower and lower <= set(_RATING_WORDS):
            rating_values = {v: _RATING_WORDS[v.lower()] for v in sorted(set(cells))}
            why["rating"] = "Hot / Warm / Cold: mapped to 5 / 3 / 1"
        elif lower and lower <= set(_GRADES):
            rating_values = {v: _GRADES[v.lower()] for v in sorted(set(cells))}
            why["rating"] = "grades A–D: mapped to 5 / 4 / 2 / 1"
        else:
            rating = None  # a rating leadq cannot read: better none than a wrong scale
    reason = next(iter(_named(facts, {"reason", "reasons", "disqualification", "rejection",
                                      "disposition", "why"}, exclude=used)), None)
    if reason:
        used.add(reason)
        why["reason"] = "the rejection reason (by campaign in leadq review)"
    rep = next(iter(_named(facts, {"owner", "rep", "agent", "assigned", "sdr", "bdr",
                                   "salesperson", "user"}, exclude=used)), None)
    if rep:
        why["rep"] = "the sales rep (SLA compliance by rep in leadq review)"
    return FeedbackGuess(lead_id=lead_col, feedback_at=feedback_at, status=best,
                         first_contact_at=first_contact, rating=rating, reason=reason,
                         rep=rep, date_format=fmt, meaning=meaning, unknown=unknown,
                         rating_values=rating_values, why=why)


def name_tokens_of(name: str) -> set[str]:
    return set(name_tokens(name))
