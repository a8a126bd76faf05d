"""What marketers read in the report: attribute insights, personas, campaign quality, SLA.

Pure functions of typed frames (no I/O). Rates come with 95% Wilson intervals so a value seen
on 30 leads is not read like one seen on 3,000.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import combinations

import numpy as np
import pandas as pd

from leadq.features.agreement import lead_decisions
from leadq.features.transform import (
    display_category,
    email_is_corporate,
    seniority_rank,
)

JOB_LEVELS = {5: "C-level / owner", 4: "VP / director / head", 3: "manager / lead",
              2: "specialist / analyst", 1: "intern / assistant", 0: "student"}
UNKNOWN = "(missing)"


def wilson(successes: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a rate (well-behaved at 0 and 1, unlike the normal one)."""
    successes, n = np.asarray(successes, float), np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, successes / n, np.nan)
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def size_band(employees: pd.Series, bins: list[float]) -> pd.Series:
    """Employees → '1–19', '20–199', … bands; missing stays visible as its own band."""
    edges = [0, *sorted(float(b) for b in bins), np.inf]
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        lo_txt = f"{max(int(lo), 1):,}"
        labels.append(f"{lo_txt}+" if np.isinf(hi) else f"{lo_txt}–{int(hi) - 1:,}")
    band = pd.cut(pd.to_numeric(employees, errors="coerce"), edges, right=False, labels=labels)
    return band.astype(object).where(band.notna(), UNKNOWN)


def readable_number(v: float) -> str:
    """4,500 · 38.4 k · 1.2 M: a bin edge as a marketer reads it."""
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:,.1f} bn"
    if a >= 1e6:
        return f"{v / 1e6:,.1f} M"
    if a >= 1e5:
        return f"{v / 1e3:,.0f} k"
    if a >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def numeric_band(values: pd.Series, bins: int = 5) -> pd.Series:
    """Numbers cut into quantile bands labelled as readable ranges ("4,500 – 38.4 M"); the
    same words in the attribute insights and the personas."""
    numbers = pd.to_numeric(values, errors="coerce")
    band = pd.qcut(numbers, bins, duplicates="drop")
    labels = {iv: f"{readable_number(iv.left)} – {readable_number(iv.right)}"
              for iv in band.cat.categories}
    if labels:  # the lowest band starts at the smallest value, not just below it
        first = band.cat.categories[0]
        labels[first] = (f"{readable_number(float(numbers.min()))} – "
                         f"{readable_number(first.right)}")
    return band.map(labels).astype(object).where(band.notna(), UNKNOWN)


def job_level(titles: pd.Series) -> pd.Series:
    rank = seniority_rank(titles)
    return rank.map(JOB_LEVELS).astype(object).where(rank.notna(), UNKNOWN)


def persona_attributes(leads: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The attributes personas are built from, one text column each, missing as '(missing)'.

    `company_size`, `job_level` and `email_kind` are derived (employees bands, seniority of the
    job title, corporate/free-mail); any other name is a raw lead column, normalised.
    """
    cfg = params.get("report") or {}
    feats = params["features"]
    out = {}
    for name in cfg.get("persona_attributes") or []:
        if name == "company_size" and "employees" in leads:
            out[name] = size_band(leads["employees"], cfg.get("size_bins") or [20, 200, 1000])
        elif name == "job_level" and feats.get("job_title_column") in leads:
            out[name] = job_level(leads[feats["job_title_column"]])
        elif name == "email_kind" and feats.get("email_column") in leads:
            flag = email_is_corporate(leads[feats["email_column"]])
            out[name] = np.where(flag == 1.0, "corporate", np.where(flag == 0.0, "free-mail",
                                                                    UNKNOWN))
        elif name in (feats.get("numeric") or []) and name in leads:
            out[name] = numeric_band(leads[name])
        elif name in leads and name not in (params["data"]["leads"].get("personal") or []):
            out[name] = display_category(leads[name]).fillna(UNKNOWN)
    return pd.DataFrame(out, index=leads.index)


def _rate_table(groups: pd.DataFrame, y: pd.Series, keys: list[str]) -> pd.DataFrame:
    frame = groups[keys].assign(_y=y.to_numpy())
    table = frame.groupby(keys, observed=True, dropna=False)["_y"].agg(["size", "sum"])
    table = table.rename(columns={"size": "leads", "sum": "conversions"}).reset_index()
    lo, hi = wilson(table["conversions"], table["leads"])
    overall = float(y.mean()) if len(y) else float("nan")
    table["rate"] = table["conversions"] / table["leads"]
    table["ci_low"], table["ci_high"] = lo, hi
    table["lift"] = table["rate"] / overall if overall else np.nan
    return table


def attribute_insights(values: pd.Series, y: pd.Series, min_rows: int = 30,
                       numeric_bins: int = 5, keep: Collection[str] = ()) -> pd.DataFrame:
    """Conversion per value of one attribute against the overall rate, sorted by lift.

    Numbers are cut into quantile bands. Values seen on fewer than `min_rows` leads are pooled
    as '(other)' so a table never shows a rate from a handful of leads, except those in `keep`
    (as displayed, e.g. the campaigns flagged for cutting): a reader looks for them by name, and
    their wide interval says how little they rest on. Column `kept` marks them.
    """
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > numeric_bins * 2:
        shown = numeric_band(values, numeric_bins)
    elif pd.api.types.is_numeric_dtype(values):
        shown = values.map(lambda v: f"{v:g}", na_action="ignore").fillna(UNKNOWN)
    else:
        shown = display_category(values).fillna(UNKNOWN)
    counts = shown.value_counts()
    rare = shown.isin(counts[counts < min_rows].index) & ~shown.isin(list(keep))
    shown = shown.where(~rare, "(other)")
    table = _rate_table(pd.DataFrame({"value": shown}), y, ["value"])
    table["kept"] = table["value"].isin(list(keep))
    return table.sort_values(["lift", "leads"], ascending=[False, False]).reset_index(drop=True)


def persona_segments(attrs: pd.DataFrame, y: pd.Series, *, min_rows: int = 30,
                     sizes: tuple[int, ...] = (2, 3), top: int = 8,
                     max_overlap: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best, worst) segments: combinations of 2–3 attributes with the highest / lowest rate.

    Every combination of `sizes` attributes is grouped; segments under `min_rows` leads are
    dropped. Best are ranked by the lower end of the 95% interval, worst by the upper end, so a
    small segment ranks high only when its rate is convincing. A segment whose leads are mostly
    (> max_overlap) in one already listed is skipped, so the list shows different people.
    """
    y = pd.Series(np.asarray(y, float), index=attrs.index)
    rows = []
    cols = list(attrs.columns)
    for size in sizes:
        for keys in combinations(cols, size):
            table = _rate_table(attrs, y, list(keys))
            table = table[table["leads"] >= min_rows]
            for rec in table.to_dict("records"):
                values = tuple(rec[k] for k in keys)
                if UNKNOWN in values:
                    continue  # "missing industry" is a data-quality fact, not a persona
                rows.append({
                    "segment": " · ".join(f"{k} = {v}" for k, v in zip(keys, values,
                                                                       strict=True)),
                    "keys": keys, "values": values, **{k: rec[k] for k in (
                        "leads", "conversions", "rate", "ci_low", "ci_high", "lift")},
                })
    if not rows:
        empty = pd.DataFrame(columns=["segment", "leads", "conversions", "rate", "ci_low",
                                      "ci_high", "lift", "share"])
        return empty, empty.copy()
    seg = pd.DataFrame(rows)
    seg["share"] = seg["leads"] / len(attrs)

    def members(rec) -> np.ndarray:
        mask = np.ones(len(attrs), bool)
        for k, v in zip(rec["keys"], rec["values"], strict=True):
            mask &= (attrs[k] == v).to_numpy()
        return mask

    def pick(order: pd.DataFrame) -> pd.DataFrame:
        chosen, masks = [], []
        for _, rec in order.iterrows():
            mask = members(rec)
            if any((mask & m).sum() > max_overlap * min(mask.sum(), m.sum()) for m in masks):
                continue
            chosen.append(rec)
            masks.append(mask)
            if len(chosen) == top:
                break
        return pd.DataFrame(chosen).reset_index(drop=True)

    best = pick(seg.sort_values(["ci_low", "leads"], ascending=[False, False]))
    worst = pick(seg.sort_values(["ci_high", "leads"], ascending=[True, False]))
    return best, worst


def campaign_quality(
    leads: pd.DataFrame,
    labels: pd.DataFrame,
    feedback: pd.DataFrame | None,
    deals: pd.DataFrame | None,
    is_mql: np.ndarray,
    params: dict,
    *,
    campaign_col: str = "campaign",
    source_col: str = "source",
) -> pd.DataFrame:
    """Per campaign: leads, MQL share, sales acceptance and rejection reasons, wins, revenue.

    `flag` marks campaigns whose leads sales mostly rejects (agreement.campaign_flag_rejection
    of at least agreement.campaign_min_feedback leads sales decided on): the campaigns to cut.
    """
    cfg = params["agreement"]
    id_col = params["data"]["leads"]["id"]
    ids = leads[id_col].astype(str)
    base = pd.DataFrame({
        "lead_id": ids.to_numpy(),
        "campaign": display_category(leads[campaign_col]).fillna(UNKNOWN).to_numpy(),
        "source": (display_category(leads[source_col]).fillna(UNKNOWN).to_numpy()
                   if source_col in leads else UNKNOWN),
        "mql": np.asarray(is_mql, bool),
        "label": labels["label"].to_numpy(),
    })
    grouped = base.groupby("campaign")
    out = pd.DataFrame({
        "source": grouped["source"].agg(lambda s: s.value_counts().index[0]),
        "leads": grouped.size(),
        "mql_share": grouped["mql"].mean(),
        "labelled": grouped["label"].count(),
        "conversions": grouped["label"].sum(),
    })
    out["win_rate"] = out["conversions"] / out["labelled"].where(out["labelled"] > 0)
    campaign_of = base.set_index("lead_id")["campaign"]
    out["feedback"] = 0
    out["accepted_share"] = np.nan
    out["rejected_share"] = np.nan
    out["rejection_reasons"] = ""
    if feedback is not None and len(feedback):
        # Per lead, sales' latest decision (features.agreement.lead_decisions): the rule
        # `leadq review` flags campaigns by, so the two pages cut the same campaigns.
        fb = lead_decisions(feedback).reset_index()
        fb = fb.assign(campaign=fb["lead_id"].map(campaign_of))
        fb = fb[fb["campaign"].notna()]
        per = fb.groupby("campaign")
        out["feedback"] = per.size().reindex(out.index).fillna(0).astype(int)
        decided = per["accepted"].sum() + per["rejected"].sum()
        out["accepted_share"] = (per["accepted"].sum() / decided.where(decided > 0)).reindex(
            out.index)
        out["rejected_share"] = (per["rejected"].sum() / decided.where(decided > 0)).reindex(
            out.index)
        rejected = fb[fb["rejected"] & fb["reason"].notna()]

        def top_reasons(reasons: pd.Series) -> str:
            share = reasons.value_counts(normalize=True).head(3)
            return ", ".join(f"{r} {s:.0%}" for r, s in share.items())

        reasons = rejected.groupby("campaign")["reason"].agg(top_reasons)
        out["rejection_reasons"] = reasons.reindex(out.index).fillna("")
    out["revenue"] = 0.0
    if deals is not None and len(deals) and "amount" in deals:
        won = deals[deals["won"].astype(bool)]
        won = won.assign(campaign=won["lead_id"].astype(str).map(campaign_of))
        out["revenue"] = won.groupby("campaign")["amount"].sum().reindex(out.index).fillna(0.0)
    min_fb = int(cfg["campaign_min_feedback"])
    limit = float(cfg["campaign_flag_rejection"])
    out["flag"] = (out["feedback"] >= min_fb) & (out["rejected_share"] >= limit)
    out = out.reset_index().rename(columns={"index": "campaign"})
    return out.sort_values(["flag", "rejected_share", "leads"],
                           ascending=[False, False, False]).reset_index(drop=True)


def threshold_tradeoff(y: np.ndarray, score: np.ndarray, points: int = 50) -> pd.DataFrame:
    """Share of leads passed vs share of conversions captured, for bars from high to low."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(y[order])
    total = max(cum[-1], 1e-12) if len(cum) else 1.0
    idx = np.unique(np.linspace(0, len(y) - 1, min(points, max(len(y), 1))).astype(int))
    return pd.DataFrame({
        "threshold": score[order][idx],
        "leads_share": (idx + 1) / len(y),
        "conversions_share": cum[idx] / total,
        "precision": cum[idx] / (idx + 1),
    })
