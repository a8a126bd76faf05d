"""The synthetic CRM exported the way Salesforce and HubSpot reports export it.

Same leads, outcomes and feedback as pipelines/synthetic/crm.py (so the truth still holds), but
with each vendor's column names, ids, stage and status vocabularies, ratings and date formats:
what a user hands `leadq init` from a real CRM. Column names follow the vendors' standard report
fields (Salesforce: Lead ID, Created Date, Lead Source, Lead Status, Rating, Stage, Close Date;
HubSpot: Record ID, Create Date, Original Source, Lead Status, Deal Stage, Close Date); custom
fields carry the `__c` suffix Salesforce gives them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SHAPES = ("leadq", "salesforce", "hubspot")
_US = "%m/%d/%Y %I:%M %p"   # Salesforce's US report date-time ("7/1/2024 1:09 AM")


def _us(ts: pd.Series, fmt: str = _US) -> pd.Series:
    # Salesforce writes no leading zeros in month, day or hour.
    text = pd.to_datetime(ts).dt.strftime(fmt)
    return text.str.replace(r"(^|/| )0(\d)", r"\1\2", regex=True).where(ts.notna(), "")


def _pick(rng: np.random.Generator, options: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _reps(lead_ids: pd.Series, n_reps: int = 6) -> np.ndarray:
    codes = pd.util.hash_pandas_object(lead_ids.astype(str), index=False).to_numpy()
    return np.asarray([f"Rep {i + 1:02d}" for i in range(n_reps)], object)[codes % n_reps]


def _rating_word(rating: pd.Series) -> np.ndarray:
    r = pd.to_numeric(rating, errors="coerce").to_numpy(float)
    return np.where(r >= 4, "Hot", np.where(r >= 3, "Warm", np.where(r >= 1, "Cold", "")))


def _grade(rating: pd.Series) -> np.ndarray:
    r = pd.to_numeric(rating, errors="coerce").fillna(0).astype(int).to_numpy()
    return np.asarray(["", "D", "C", "C", "B", "A"], object)[np.clip(r, 0, 5)]


def salesforce(tables: dict[str, pd.DataFrame], seed: int = 0) -> dict[str, pd.DataFrame]:
    """Lead, opportunity and lead-status report exports in Salesforce's shape."""
    rng = np.random.default_rng(seed)
    leads, deals, fb = tables["leads"], tables["deals"], tables["feedback"]
    sf_id = {lid: f"00Q5e{int(lid[1:]):010d}" for lid in leads["lead_id"]}
    out_leads = pd.DataFrame({
        "Lead ID": leads["lead_id"].map(sf_id),
        "First Name": leads["first_name"], "Last Name": leads["last_name"],
        "Title": leads["job_title"], "Email": leads["email"], "Phone": leads["phone"],
        "Industry": leads["industry"], "No. of Employees": leads["employees"],
        "Country": leads["country"], "Lead Source": leads["source"],
        "Primary Campaign Source": leads["campaign"].str.replace("_", " "),
        "Landing Page__c": leads["landing_page"],
        "Demo Requested__c": np.where(leads["demo_requested"].astype(int) == 1, "Yes", "No"),
        "Created Date": _us(leads["created_at"]),
    })
    won = deals["outcome"].eq("won")
    out_deals = pd.DataFrame({
        "Opportunity ID": [f"0065e{i:010d}" for i in range(len(deals))],
        "Converted Lead ID": deals["lead_id"].map(sf_id),
        "Stage": np.where(won, "Closed Won", "Closed Lost"),
        "Close Date": _us(deals["closed_at"], "%m/%d/%Y"),
        "Amount": deals["amount"].round(2),
    })
    accepted = fb["status"].eq("accepted").to_numpy()
    status = np.where(accepted, _pick(rng, ("Working - Contacted", "Qualified"), len(fb)),
                      _pick(rng, ("Closed - Not Converted", "Unqualified"), len(fb)))
    out_fb = pd.DataFrame({
        "Lead ID": fb["lead_id"].map(sf_id),
        "Lead Status": status,
        "Rating": _rating_word(fb["rating"]),
        "Disqualification Reason__c": fb["reason"].fillna("").str.replace("_", " ")
        .str.capitalize(),
        "First Call Date__c": _us(fb["first_contact_at"]),
        "Status Changed Date": _us(fb["feedback_at"]),
        "Lead Owner": _reps(fb["lead_id"]),
    })
    # Leads sales tried and could not reach yet: neither accepted nor rejected.
    tried = out_fb.sample(frac=0.05, random_state=seed).assign(**{
        "Lead Status": "Open - Not Contacted", "Rating": "",
        "Disqualification Reason__c": ""})
    return {"leads": out_leads, "deals": out_deals,
            "feedback": pd.concat([out_fb, tried], ignore_index=True)}


def hubspot(tables: dict[str, pd.DataFrame], seed: int = 0) -> dict[str, pd.DataFrame]:
    """Contact, deal and lead-status exports in HubSpot's shape."""
    rng = np.random.default_rng(seed)
    leads, deals, fb = tables["leads"], tables["deals"], tables["feedback"]
    hs_id = {lid: str(51000000 + int(lid[1:])) for lid in leads["lead_id"]}
    source = {"Paid Search": "Paid Search", "Organic Search": "Organic Search",
              "Social": "Paid Social", "Email": "Email Marketing", "Referral": "Referrals",
              "Direct": "Direct Traffic", "Events": "Offline Sources"}
    out_leads = pd.DataFrame({
        "Record ID": leads["lead_id"].map(hs_id),
        "First Name": leads["first_name"], "Last Name": leads["last_name"],
        "Email": leads["email"], "Phone Number": leads["phone"],
        "Job Title": leads["job_title"], "Industry": leads["industry"],
        "Number of Employees": leads["employees"], "Country/Region": leads["country"],
        "Original Source": leads["source"].map(source).fillna(leads["source"]),
        "UTM Campaign": leads["campaign"], "Landing Page": leads["landing_page"],
        "Requested a Demo": np.where(leads["demo_requested"].astype(int) == 1, "true", "false"),
        "Create Date": pd.to_datetime(leads["created_at"]).dt.strftime("%Y-%m-%d %H:%M"),
    })
    won = deals["outcome"].eq("won")
    out_deals = pd.DataFrame({
        "Record ID": [str(9100000 + i) for i in range(len(deals))],
        "Associated Contact ID": deals["lead_id"].map(hs_id),
        "Deal Stage": np.where(won, "Closed Won", "Closed Lost"),
        "Close Date": pd.to_datetime(deals["closed_at"]).dt.strftime("%Y-%m-%d %H:%M"),
        "Amount": deals["amount"].round(2),
    })
    accepted = fb["status"].eq("accepted").to_numpy()
    status = np.where(accepted, _pick(rng, ("Connected", "Open Deal", "In Progress"), len(fb)),
                      _pick(rng, ("Unqualified", "Bad Timing"), len(fb)))
    out_fb = pd.DataFrame({
        "Record ID": fb["lead_id"].map(hs_id),
        "Lead Status": status,
        "Lead Grade": _grade(fb["rating"]),
        "Disqualification Reason": fb["reason"].fillna(""),
        "First Engagement Date": pd.to_datetime(fb["first_contact_at"]).dt.strftime(
            "%Y-%m-%d %H:%M"),
        "Lead Status Last Updated": pd.to_datetime(fb["feedback_at"]).dt.strftime(
            "%Y-%m-%d %H:%M"),
        "Contact Owner": _reps(fb["lead_id"]),
    })
    tried = out_fb.sample(frac=0.05, random_state=seed).assign(**{
        "Lead Status": "Attempted to Contact", "Lead Grade": "",
        "Disqualification Reason": ""})
    return {"leads": out_leads, "deals": out_deals,
            "feedback": pd.concat([out_fb, tried], ignore_index=True)}


def write_shaped(out_dir: str | Path, shape: str, n_leads: int, seed: int = 0
                 ) -> dict[str, Path]:
    """Write the synthetic CRM in a vendor's shape (leads, deals, feedback, truth as CSV)."""
    from leadq.pipelines.synthetic.crm import generate_crm

    if shape not in SHAPES[1:]:
        raise ValueError(f"shape must be one of {SHAPES[1:]}, got {shape!r}")
    tables = generate_crm(n_leads, seed=seed)
    shaped = (salesforce if shape == "salesforce" else hubspot)(tables, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {"salesforce": {"leads": "Leads Report.csv", "deals": "Opportunities Report.csv",
                            "feedback": "Lead Status Report.csv"},
             "hubspot": {"leads": "hubspot-crm-exports-contacts.csv",
                         "deals": "hubspot-crm-exports-deals.csv",
                         "feedback": "hubspot-crm-exports-lead-status.csv"}}[shape]
    paths: dict[str, Path] = {}
    for name, frame in shaped.items():
        paths[name] = out / names[name]
        frame.to_csv(paths[name], index=False)
    truth = tables["truth"].assign(lead_id=shaped["leads"].iloc[:, 0].to_numpy())
    paths["truth"] = out / "truth.csv"
    truth.to_csv(paths["truth"], index=False)
    return paths
