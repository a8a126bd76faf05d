"""Deterministic synthetic CRM: leads, deals, sales feedback, an activity log and the truth.

Leads are sampled from latent buyer personas, but the probability of a won deal within the
horizon is a known function of observable lead columns as of the MQL moment (the lead's
``created_at``; :func:`true_probability`), so a model can be benchmarked against the oracle.
Like a real CRM export, the leads table's engagement counters are export-day snapshots: they
count the activity log up to ``as_of``, including what happened after the MQL moment, and
converters keep engaging, so the counters leak the outcome unless rebuilt from the activities
dated before ``created_at``. Everything is generated in fixed-size blocks with
their own random streams: the output depends only on ``(n_leads, seed, start, end)``, never on
chunk sizes, and 10M-row lead tables can be streamed in constant memory.

What a sales call changes is known too (``truth.p_called`` / ``p_not_called``,
:func:`probability_without_call`): the recorded history is one in which sales works the leads,
so ``true_probability`` is the chance *with* a call; without one the lead loses what the call
adds for its company size, seniority and demo request (:func:`call_effect`): persuadables lose
most, sure things (many of the best-scored leads asked for a demo) almost nothing, lost causes
have little to lose, and do-not-disturbs do better without the call (:func:`call_response`).
The observed tables are unchanged by it: an experiment that withholds calls draws its
outcomes from these two columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACTIVITY_TYPES",
    "AS_OF",
    "CALL_RESPONSE",
    "CAMPAIGNS",
    "JUNK_CAMPAIGN",
    "PERSONAS",
    "SOURCES",
    "generate_crm",
    "iter_lead_chunks",
    "call_effect",
    "call_response",
    "probability_without_call",
    "seniority_level",
    "true_probability",
    "write_crm",
]

AS_OF: pd.Timestamp = pd.Timestamp("2026-06-30 23:59:59")
"""End of the data for the default ``end``; nothing is dated later. Never derived from "now"."""

PERSONAS: tuple[str, ...] = (
    "sme_finance_director",
    "enterprise_it",
    "marketing_manager",
    "small_business_owner",
    "student",
)
_STUDENT = PERSONAS.index("student")

# --- what a sales call changes (issue 29) -----------------------------------------------------
# What a call adds to the logit of P(won), from columns the lead shows at its MQL moment, so a
# model of randomised outcomes can learn it. Small and mid-sized companies buy when someone
# walks them through it; large ones buy through their own procurement, where an unasked-for
# call does nothing or puts them off a little (do-not-disturbs). Decision-makers respond to a
# call more than juniors. A lead who asked for a demo has already decided: the call adds much
# less, and these hand-raisers are among the best-scored leads, so the top of a score ranking
# holds many leads who would buy anyway (sure things).
_CALL_INTERCEPT = 2.6
_CALL_PER_LOG_EMPLOYEE = -0.35   # per unit of ln(employees); missing: as at _CALL_EMP_MISSING
_CALL_EMP_MISSING = 60.0
_CALL_PER_SENIORITY = 0.3        # per seniority level above 2 (manager); missing as level 2
_CALL_DEMO = -1.5
_CALL_FLOOR = -0.3               # the most a call can put a lead off
CALL_RESPONSE: tuple[str, ...] = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")
# A persuadable gains at least _PERSUADABLE_GAIN from a call, a do-not-disturb loses at least
# _DISTURBED_LOSS; between the two, a lead converting at least _SURE_THING_BASE of the time
# without a call is a sure thing, and the rest (low either way) are lost causes.
_PERSUADABLE_GAIN = 0.04
_DISTURBED_LOSS = 0.01
_SURE_THING_BASE = 0.1

SOURCES: tuple[str, ...] = (
    "Paid Search", "Organic Search", "Social", "Email", "Referral", "Events", "Direct",
)
_SOCIAL = SOURCES.index("Social")

INDUSTRIES: tuple[str, ...] = (
    "Finance", "Software", "Manufacturing", "Retail", "Healthcare", "Education",
    "Professional Services", "Other",
)
TITLES: tuple[str, ...] = (
    "CFO", "Finance Director", "Head of Finance", "VP Finance", "CEO", "Owner", "IT Manager",
    "CTO", "Marketing Manager", "Marketing Coordinator", "Analyst", "Intern", "Student",
)
COUNTRIES: tuple[str, ...] = (
    "United States", "United Kingdom", "Germany", "France", "Netherlands", "Canada",
    "Australia", "Spain",
)
FREE_MAIL: tuple[str, ...] = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
REASONS: tuple[str, ...] = (
    "student", "no budget", "wrong contact", "not interested", "spam", "competitor",
)

JUNK_CAMPAIGN = "cmp_99_social_giveaway"
# Share of the period after which the giveaway runs: a mid-period shift in the lead mix.
_JUNK_LAUNCH = 0.4

# (campaign id, source index, logit quality, base weight, affinity per persona)
_CAMPAIGN_SPEC: tuple[tuple[str, int, float, float, tuple[float, ...]], ...] = (
    ("cmp_01_brand_search", 0, 0.20, 3.0, (1, 1, 1, 1, 1)),
    ("cmp_02_generic_search", 0, -0.10, 3.0, (1, 1, 1, 1.5, 1.5)),
    ("cmp_03_cfo_webinar", 5, 0.35, 2.0, (5, 0.3, 0.5, 0.5, 0.5)),
    ("cmp_04_competitor_keywords", 0, 0.10, 1.5, (1, 1.5, 1, 0.5, 0.3)),
    ("cmp_05_cfo_keywords", 0, 0.30, 1.5, (4, 0.3, 0.3, 0.5, 0.2)),
    ("cmp_06_retargeting", 0, 0.05, 1.0, (1, 1, 1, 1, 1)),
    ("cmp_07_seo_blog", 1, -0.15, 3.0, (0.5, 1, 1.5, 1, 3)),
    ("cmp_08_seo_guides", 1, 0.05, 2.0, (1.5, 1, 1, 1, 1)),
    ("cmp_09_seo_templates", 1, -0.05, 1.5, (1, 0.5, 1, 2, 2)),
    ("cmp_10_seo_pricing_page", 1, 0.35, 1.0, (1.5, 1.5, 1, 1, 0.3)),
    ("cmp_11_linkedin_cfo", 2, 0.25, 1.5, (5, 0.3, 0.3, 0.3, 0.2)),
    ("cmp_12_linkedin_it", 2, 0.05, 1.5, (0.3, 5, 0.5, 0.3, 0.3)),
    ("cmp_13_facebook_smb", 2, -0.25, 2.0, (0.3, 0.2, 1, 4, 1)),
    ("cmp_14_instagram_brand", 2, -0.35, 1.5, (0.3, 0.3, 2, 1, 3)),
    ("cmp_15_newsletter", 3, -0.05, 3.0, (1, 1, 1.5, 1, 1)),
    ("cmp_16_nurture_finance", 3, 0.25, 1.5, (4, 0.3, 0.3, 0.5, 0.1)),
    ("cmp_17_nurture_it", 3, 0.10, 1.5, (0.3, 4, 0.3, 0.3, 0.1)),
    ("cmp_18_reactivation", 3, -0.20, 1.0, (1, 1, 1, 1, 1)),
    ("cmp_19_partner_accountants", 4, 0.45, 2.0, (4, 0.2, 0.3, 1.5, 0.1)),
    ("cmp_20_customer_referral", 4, 0.40, 2.0, (1.5, 1.5, 1, 1, 0.2)),
    ("cmp_21_reseller_network", 4, 0.15, 1.0, (0.5, 2, 1, 1, 0.2)),
    ("cmp_22_trade_show", 5, 0.05, 1.5, (1, 2, 1, 1, 0.5)),
    ("cmp_23_cfo_roundtable", 5, 0.40, 1.0, (5, 0.1, 0.1, 0.3, 0.1)),
    ("cmp_24_product_webinar", 5, 0.00, 1.5, (1, 1.5, 1.5, 1, 1.5)),
    ("cmp_25_careers_fair", 5, -0.60, 0.3, (0.1, 0.1, 0.1, 0.1, 10)),
    ("cmp_26_direct_traffic", 6, 0.05, 4.0, (1, 1, 1, 1, 1)),
    ("cmp_27_press_mention", 6, -0.05, 1.0, (1, 1, 1, 1, 1)),
    ("cmp_28_podcast", 6, 0.10, 1.0, (1.5, 1, 1, 1, 0.5)),
    ("cmp_29_review_sites", 6, 0.15, 1.5, (1, 1, 1, 1.5, 0.3)),
    # Weight 0: only assigned explicitly, so it never leaks into ordinary campaign sampling.
    (JUNK_CAMPAIGN, _SOCIAL, -2.50, 0.0, (0, 0, 0, 0, 0)),
)
CAMPAIGNS: dict[str, str] = {c[0]: SOURCES[c[1]] for c in _CAMPAIGN_SPEC}
_JUNK_IDX = len(_CAMPAIGN_SPEC) - 1

# --- observable effects on the logit of P(won within horizon) --------------------------------
_INTERCEPT = -3.3
# Seniority levels: -1 missing, 0 student/intern, 1 analyst/coordinator, 2 manager/unknown,
# 3 director/head/VP, 4 C-level/owner. Effects must stay non-decreasing in the level.
_SENIORITY_EFFECT = {-1: -0.4, 0: -3.0, 1: -0.8, 2: -0.3, 3: 0.5, 4: 0.7}
_INDUSTRY_EFFECT = {
    "finance": 0.6, "software": 0.2, "manufacturing": 0.1, "retail": -0.3, "healthcare": -0.1,
    "education": -0.9, "professional services": 0.45, "other": -0.4,
}
_INDUSTRY_MISSING = -0.5
_EMPLOYEES_MISSING = -0.3
_DEMO_EFFECT = 0.9
_DOWNLOADS_EFFECT = 0.25
_VISITS_EFFECT = 0.1
_CORPORATE_EMAIL, _FREE_EMAIL = 0.35, -0.35
_CAMPAIGN_QUALITY = {c[0]: c[2] for c in _CAMPAIGN_SPEC}
_SEASON_SIN, _SEASON_COS = 0.15, 0.08  # amplitude 0.17 logit

# --- persona-driven attribute distributions (persona order as PERSONAS) ---------------------
# Row 0: before the giveaway campaign launches, row 1: while it runs (more students).
_PERSONA_MIX = np.array([[0.13, 0.19, 0.26, 0.26, 0.16], [0.11, 0.17, 0.24, 0.24, 0.24]])
_SOURCE_P = np.array([
    [0.25, 0.10, 0.03, 0.10, 0.27, 0.18, 0.07],
    [0.20, 0.25, 0.05, 0.15, 0.10, 0.15, 0.10],
    [0.20, 0.20, 0.20, 0.20, 0.05, 0.10, 0.05],
    [0.25, 0.25, 0.15, 0.10, 0.10, 0.03, 0.12],
    [0.05, 0.15, 0.70, 0.03, 0.02, 0.02, 0.03],
])
_JUNK_RATE = np.array([0.002, 0.002, 0.01, 0.015, 0.6])
_INDUSTRY_P = np.array([
    [0.45, 0.05, 0.05, 0.05, 0.05, 0.00, 0.30, 0.05],
    [0.10, 0.40, 0.30, 0.05, 0.10, 0.00, 0.03, 0.02],
    [0.10, 0.15, 0.10, 0.20, 0.15, 0.05, 0.15, 0.10],
    [0.03, 0.05, 0.07, 0.40, 0.08, 0.02, 0.10, 0.25],
    [0.00, 0.05, 0.00, 0.05, 0.00, 0.75, 0.00, 0.15],
])
_INDUSTRY_NA = np.array([0.03, 0.03, 0.04, 0.05, 0.12])
_TITLE_P = np.array([
    # CFO  FD   HoF  VPF  CEO  Own  ITM  CTO  MM   MC   Ana  Int  Stu
    [0.30, 0.35, 0.20, 0.10, 0, 0, 0, 0, 0, 0, 0.05, 0, 0],
    [0, 0, 0, 0, 0, 0, 0.55, 0.25, 0, 0, 0.20, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0.55, 0.35, 0.10, 0, 0],
    [0, 0, 0, 0, 0.40, 0.55, 0, 0, 0.05, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.30, 0.70],
])
# Employees: lognormal median, sigma, clip range, missing rate.
_EMP_MEDIAN = np.array([60.0, 3500.0, 250.0, 5.0, 2.0])
_EMP_SIGMA = np.array([0.6, 1.0, 0.9, 0.8, 1.0])
_EMP_LO = np.array([20.0, 1000.0, 25.0, 1.0, 1.0])
_EMP_HI = np.array([200.0, 250_000.0, 5000.0, 20.0, 50.0])
_EMP_NA = np.array([0.02, 0.03, 0.03, 0.04, 0.30])
_FREE_MAIL_RATE = np.array([0.05, 0.03, 0.15, 0.45, 0.90])
_VISITS_MEAN = np.array([8.0, 5.0, 4.0, 3.0, 2.5])
_PAGES_PER_VISIT = np.array([2.5, 2.0, 1.8, 1.5, 1.2])
_DOWNLOADS_MEAN = np.array([2.5, 1.2, 1.5, 0.5, 1.2])
_OPENS_MEAN = np.array([6.0, 4.0, 5.0, 2.0, 1.0])
_DEMO_BASE = np.array([0.45, 0.20, 0.08, 0.10, 0.01])
_COUNTRY_P = np.array([[0.35, 0.20, 0.10, 0.07, 0.06, 0.08, 0.08, 0.06]])
_COUNTRY_TLD = np.array([".com", ".co.uk", ".de", ".fr", ".nl", ".ca", ".com.au", ".es"])
_COUNTRY_CC = np.array(["+1", "+44", "+49", "+33", "+31", "+1", "+61", "+34"])
_FREE_MAIL_P = np.array([[0.50, 0.15, 0.15, 0.20]])
# Rejection reasons by persona, plus a last row for non-students from the giveaway.
_REASON_P = np.array([
    [0.00, 0.35, 0.10, 0.30, 0.02, 0.23],
    [0.00, 0.25, 0.20, 0.30, 0.03, 0.22],
    [0.01, 0.25, 0.35, 0.30, 0.04, 0.05],
    [0.00, 0.50, 0.05, 0.35, 0.05, 0.05],
    [0.65, 0.03, 0.05, 0.07, 0.20, 0.00],
    [0.50, 0.00, 0.05, 0.10, 0.35, 0.00],
])

_FIRST_NAMES = (
    ("James", "james"), ("Mary", "mary"), ("Robert", "robert"), ("Patricia", "patricia"),
    ("John", "john"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
    ("David", "david"), ("Elizabeth", "elizabeth"), ("William", "william"), ("Sarah", "sarah"),
    ("Thomas", "thomas"), ("Emma", "emma"), ("Oliver", "oliver"), ("Sophie", "sophie"),
    ("Lukas", "lukas"), ("Anna", "anna"), ("Jan", "jan"), ("Lotte", "lotte"),
    ("José", "jose"), ("María", "maria"), ("Zoë", "zoe"), ("Chloé", "chloe"),
    ("Søren", "soren"), ("Aoife", "aoife"), ("Mohammed", "mohammed"), ("Priya", "priya"),
    ("Wei", "wei"), ("Olga", "olga"), ("Liam", "liam"), ("Noah", "noah"), ("Ava", "ava"),
    ("Mia", "mia"), ("Lucas", "lucas"), ("Hannah", "hannah"), ("Jack", "jack"),
    ("Isla", "isla"), ("Pierre", "pierre"), ("Camille", "camille"),
)
_LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Miller", "miller"), ("Davis", "davis"), ("Wilson", "wilson"),
    ("Taylor", "taylor"), ("Clark", "clark"), ("Walker", "walker"), ("Young", "young"),
    ("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"),
    ("García", "garcia"), ("Martínez", "martinez"), ("López", "lopez"), ("Dubois", "dubois"),
    ("Lefèvre", "lefevre"), ("van Dijk", "vandijk"), ("de Vries", "devries"),
    ("O'Brien", "obrien"), ("Murphy", "murphy"), ("Kelly", "kelly"), ("Nguyen", "nguyen"),
    ("Patel", "patel"), ("Singh", "singh"), ("Chen", "chen"), ("Wang", "wang"),
    ("Kowalski", "kowalski"), ("Novak", "novak"), ("Rossi", "rossi"), ("Jensen", "jensen"),
    ("Andersson", "andersson"), ("Thompson", "thompson"), ("White", "white"),
    ("Harris", "harris"), ("Martin", "martin"), ("Moore", "moore"),
)
_COMPANY_A = (
    "acme", "northwind", "globex", "initech", "umbrella", "contoso", "fabrikam", "tailspin",
    "wingtip", "litware", "adatum", "proseware", "lucerne", "alpine", "blueyonder", "coho",
    "fourthcoffee", "woodgrove", "trey", "humongous", "wideworld", "southridge", "graphic",
    "margies", "vanarsdel", "nod", "relecloud", "munson", "lamna", "fincorp", "brightline",
    "ledgerly", "northstar", "redwood", "bluepeak", "silverline", "oakridge", "harbor",
    "kestrel", "meridian",
)
_COMPANY_B = (
    "", "group", "partners", "holdings", "labs", "systems", "solutions", "consulting",
    "industries", "digital", "capital", "works", "analytics", "logistics", "foods",
)
_FIRST_DISPLAY = np.array([f[0] for f in _FIRST_NAMES])
_FIRST_ASCII = np.array([f[1] for f in _FIRST_NAMES])
_LAST_DISPLAY = np.array([n[0] for n in _LAST_NAMES])
_LAST_ASCII = np.array([n[1] for n in _LAST_NAMES])
_COMPANY_DOMAIN = np.array([a + b for a in _COMPANY_A for b in _COMPANY_B])

_N_LANDING = 150
_LP_NAMES = np.array([f"lp_{i + 1:03d}" for i in range(_N_LANDING)])
_LP_CDF = np.cumsum(1.0 / np.arange(1, _N_LANDING + 1) ** 1.2)
_LP_CDF /= _LP_CDF[-1]
# Campaigns share a skewed page distribution, each shifted to its own "main" page.
_LP_PRIMARY = (np.arange(len(_CAMPAIGN_SPEC)) * 37) % _N_LANDING

# Arrivals by hour of day (local office hours dominate).
_HOUR_W = np.array([
    0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.5, 2.0, 2.1, 2.0,
    1.7, 1.9, 2.0, 1.9, 1.6, 1.2, 0.9, 0.8, 0.7, 0.6, 0.45, 0.3,
])
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOUR_W) / _HOUR_W.sum()])
_HOUR_EDGES = np.arange(25) * 3600.0
_WEEKDAY_W = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.35, 0.3])  # Monday first

_BLOCK = 100_000
_ROW_GROUP = 250_000  # rows per Parquet row group / streamed chunk
_MAX_LEADS = 99_999_999  # "L" + 8 digits
_DAY = 86_400
_DATE_COLS = {
    "leads": ("created_at",),
    "deals": ("closed_at",),
    "feedback": ("feedback_at", "first_contact_at"),
    "truth": (),
    "activities": ("occurred_at",),
}

# --- activity log --------------------------------------------------------------------------
ACTIVITY_TYPES: tuple[str, ...] = (
    "web_visit", "content_download", "email_open", "webinar", "sales_call", "meeting",
)
_VISIT, _DOWNLOAD, _OPEN, _WEBINAR, _CALL, _MEETING = range(len(ACTIVITY_TYPES))
_MAX_ACTIVITIES = 999_999_999  # "A" + 9 digits
# Webinars are logged but are not an input of the oracle, i.e. pure noise for a model.
_WEBINAR_MEAN = np.array([0.6, 0.4, 0.3, 0.1, 0.2])
# Pre-MQL engagement happens in the weeks before the lead qualifies, within the 90-day window
# a marketing-automation tool scores over.
_PRE_MEAN_S = 15 * _DAY
_PRE_MIN_S, _PRE_MAX_S = 60, 89 * _DAY
# Post-MQL marketing engagement: expected events over the lead's whole post-MQL span
# (order: visits, downloads, opens). Buyers in a deal cycle and new customers (onboarding, for
# _POST_TAIL_S after the win) keep coming back; the rest mostly go quiet.
_POST_MEAN_CONVERT = np.array([6.0, 1.5, 4.0])
_POST_MEAN_OTHER = np.array([0.6, 0.1, 0.8])
_POST_TAIL_S = 30 * _DAY
_POST_OTHER_S = 90 * _DAY
_CALL_SPAN_S = 21 * _DAY  # follow-up calls after the first contact
_MEETING_SPAN_S = 45 * _DAY


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sample(rng: np.random.Generator, table: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Draw one category per row from ``table[group[i]]`` (rows need not be normalised)."""
    cdf = np.cumsum(table, axis=1)
    cdf = cdf / cdf[:, -1:]
    u = rng.random(len(group))
    out = (u[:, None] >= cdf[group]).sum(axis=1)
    return np.minimum(out, table.shape[1] - 1)


def _variants(names: tuple[str, ...], hyphen: bool = False) -> np.ndarray:
    """Clean spelling first, then the messy ones seen in hand-typed CRM fields."""
    rows = []
    for n in names:
        alt = n.lower().replace(" ", "-") if hyphen else n.replace(" ", "  ")
        rows.append([n, n.lower(), n.upper(), f" {n}  ", alt])
    return np.array(rows, dtype=object)


_SOURCE_VARIANTS = _variants(SOURCES, hyphen=True)
_INDUSTRY_VARIANTS = _variants(INDUSTRIES)
_TITLE_VARIANTS = _variants(TITLES)


def _messy(
    rng: np.random.Generator, codes: np.ndarray, variants: np.ndarray, rate: float,
    missing: np.ndarray | None = None,
) -> np.ndarray:
    m = len(codes)
    dirty = rng.random(m) < rate
    which = np.where(dirty, rng.integers(1, variants.shape[1], m), 0)
    out = variants[codes, which]
    if missing is not None:
        out[missing] = None
    return out


def _campaign_table() -> np.ndarray:
    """P(campaign | persona, source) as rows indexed by ``persona * n_sources + source``."""
    n_p, n_s = len(PERSONAS), len(SOURCES)
    tab = np.zeros((n_p * n_s, len(_CAMPAIGN_SPEC)))
    for c, (_, src, _, weight, aff) in enumerate(_CAMPAIGN_SPEC):
        for p in range(n_p):
            tab[p * n_s + src, c] = weight * aff[p]
    return tab


_CAMPAIGN_P = _campaign_table()
_CAMPAIGN_NAMES = np.array([c[0] for c in _CAMPAIGN_SPEC], dtype=object)
_SOURCE_OF_CAMPAIGN = np.array([c[1] for c in _CAMPAIGN_SPEC])


# --- the oracle ----------------------------------------------------------------------------
_C_LEVEL = {"ceo", "cfo", "cto", "coo", "cmo", "cio", "chief", "owner", "founder", "president"}


def _seniority_level(title: str) -> int:
    words = set("".join(ch if ch.isalnum() else " " for ch in title.lower()).split())
    if not words:
        return -1
    if words & {"student", "intern", "trainee"}:
        return 0
    # "Vice President" must not count as C-level, so VP/director is checked first.
    if words & {"vp", "vice", "director", "head", "svp", "evp"}:
        return 3
    if words & _C_LEVEL:
        return 4
    if "manager" in words:
        return 2
    if words & {"analyst", "coordinator", "assistant", "associate", "specialist"}:
        return 1
    return 2


def seniority_level(job_title: pd.Series) -> np.ndarray:
    """Seniority level per job title: -1 missing, 0 student/intern .. 4 C-level/owner."""
    return _lookup(job_title, _seniority_level, -1).astype(np.int64)


def _lookup(s: pd.Series, fn: Callable[[str], float], missing: float) -> np.ndarray:
    # Few distinct values even on 10M rows: map the uniques, then gather.
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    vals = np.array([fn(str(u)) for u in uniques] + [missing], dtype=float)
    return vals[codes]  # the NA sentinel -1 picks the trailing "missing" value


def _norm(x: str) -> str:
    return " ".join(x.lower().replace("-", " ").split())


def _campaign_quality(campaign: str) -> float:
    return _CAMPAIGN_QUALITY.get(_norm(campaign).replace(" ", "_"), 0.0)


def _employees_effect(emp: np.ndarray) -> np.ndarray:
    x = np.log(np.maximum(emp, 1.0))
    sme = 0.8 * np.exp(-0.5 * ((x - np.log(60.0)) / 0.8) ** 2)
    enterprise = 0.3 * _sigmoid(1.5 * (x - np.log(1000.0)))
    micro = -0.6 * _sigmoid(2.0 * (np.log(8.0) - x))
    return np.where(np.isnan(emp), _EMPLOYEES_MISSING, sme + enterprise + micro)


def true_probability(leads: pd.DataFrame) -> np.ndarray:
    """P(won deal within the horizon) from observable lead columns only (the oracle).

    Uses job_title, industry, employees, demo_requested, content_downloads, web_visits, email,
    campaign and created_at; tolerant of messy spellings and missing values. Non-decreasing in
    ``demo_requested`` and in job-title seniority with everything else fixed.

    The inputs are the lead as of the MQL moment: ``content_downloads`` and ``web_visits`` must
    count the activities dated before ``created_at``. The generated leads table holds export-day
    snapshots instead (they include post-MQL engagement), so for generated data rebuild the
    counts from ``activities`` with ``occurred_at < created_at`` or read ``truth``.
    """
    level = seniority_level(leads["job_title"])
    sen = np.array([_SENIORITY_EFFECT[k] for k in range(-1, 5)])[level + 1]
    ind = _lookup(
        leads["industry"], lambda v: _INDUSTRY_EFFECT.get(_norm(v), _INDUSTRY_EFFECT["other"]),
        _INDUSTRY_MISSING,
    )
    camp = _lookup(leads["campaign"], _campaign_quality, 0.0)

    def num(col: str) -> np.ndarray:
        return pd.to_numeric(leads[col], errors="coerce").to_numpy(dtype=float)

    emp = _employees_effect(num("employees"))
    demo = np.clip(np.nan_to_num(num("demo_requested")), 0.0, 1.0)
    downloads = np.maximum(np.nan_to_num(num("content_downloads")), 0.0)
    visits = np.maximum(np.nan_to_num(num("web_visits")), 0.0)

    email = leads["email"].astype("str").str.strip().str.lower()
    free = email.str.endswith(tuple("@" + d for d in FREE_MAIL)).to_numpy(dtype=bool)
    has_email = email.str.contains("@", regex=False).fillna(False).to_numpy(dtype=bool)
    mail = np.where(has_email, np.where(free, _FREE_EMAIL, _CORPORATE_EMAIL), 0.0)

    doy = pd.to_datetime(leads["created_at"]).dt.day_of_year.to_numpy(dtype=float)
    angle = 2.0 * np.pi * doy / 365.25
    season = _SEASON_SIN * np.sin(angle) + _SEASON_COS * np.cos(angle)

    logit = (
        _INTERCEPT + sen + ind + emp + camp + mail + season
        + _DEMO_EFFECT * demo
        + _DOWNLOADS_EFFECT * np.log1p(downloads)
        + _VISITS_EFFECT * np.log1p(visits)
    )
    return _sigmoid(logit)


def call_effect(employees: np.ndarray, seniority: np.ndarray,
                demo_requested: np.ndarray) -> np.ndarray:
    """What a sales call adds to the logit of P(won within the horizon), per lead, from its
    employees, seniority level (:func:`seniority_level`) and demo request at the MQL moment."""
    emp = np.asarray(employees, float)
    emp = np.where(np.isnan(emp), _CALL_EMP_MISSING, np.maximum(emp, 1.0))
    level = np.asarray(seniority)
    level = np.where(level < 0, 2, level)
    demo = np.nan_to_num(np.asarray(demo_requested, float)) > 0
    effect = (_CALL_INTERCEPT + _CALL_PER_LOG_EMPLOYEE * np.log(emp)
              + _CALL_PER_SENIORITY * (level - 2) + _CALL_DEMO * demo)
    return np.maximum(effect, _CALL_FLOOR)


def probability_without_call(p_called: np.ndarray, leads: pd.DataFrame) -> np.ndarray:
    """P(won within the horizon) if sales never calls the lead, from its probability with a
    call and its lead row as of the MQL moment: the call effect (:func:`call_effect`) off
    the logit."""
    p = np.clip(np.asarray(p_called, float), 1e-12, 1 - 1e-12)
    effect = call_effect(pd.to_numeric(leads["employees"], errors="coerce").to_numpy(float),
                         seniority_level(leads["job_title"]),
                         pd.to_numeric(leads["demo_requested"], errors="coerce").to_numpy())
    return _sigmoid(np.log(p) - np.log1p(-p) - effect)


def call_response(p_called: np.ndarray, p_not_called: np.ndarray) -> np.ndarray:
    """Each lead's kind (CALL_RESPONSE) from its two true chances: persuadable when the call
    adds at least 4 points; do-not-disturb when it takes at least 1 point off; otherwise a sure
    thing when the lead converts at least 10% of the time without a call, else a lost cause."""
    p1, p0 = np.asarray(p_called, float), np.asarray(p_not_called, float)
    gain = p1 - p0
    kind = np.select([gain >= _PERSUADABLE_GAIN, gain <= -_DISTURBED_LOSS,
                      p0 >= _SURE_THING_BASE], [0, 3, 1], 2)
    return np.array(CALL_RESPONSE, dtype=object)[kind]


# --- calendar ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Calendar:
    day0: int  # epoch seconds of the first day, 00:00
    as_of: int  # epoch seconds of the last second of the data
    counts: np.ndarray  # leads per day
    cum: np.ndarray  # cumulative leads per day
    frac: np.ndarray  # each day's position in the period, 0..1


def _calendar(n_leads: int, seed: int, start: str = "2024-07-01", end: str = "2026-06-30",
              horizon_days: int = 90) -> _Calendar:
    if not 0 <= n_leads <= _MAX_LEADS:
        raise ValueError(f"n_leads must be in [0, {_MAX_LEADS}], got {n_leads}")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if horizon_days < 3:
        raise ValueError("horizon_days must be >= 3")
    first = pd.Timestamp(start).normalize()
    last = pd.Timestamp(end).normalize()
    if last < first:
        raise ValueError("end must not be before start")
    days = pd.date_range(first, last, freq="D")
    nd = len(days)
    frac = np.arange(nd) / max(nd - 1, 1)
    w = (1.0 + 0.3 * frac) * _WEEKDAY_W[days.day_of_week.to_numpy()]
    month, dom = days.month.to_numpy(), days.day.to_numpy()
    w *= np.where(((month == 12) & (dom >= 24)) | ((month == 1) & (dom == 1)), 0.4, 1.0)
    w *= np.where(month == 8, 0.85, 1.0)  # summer holidays
    counts = np.random.default_rng([seed, 0]).multinomial(n_leads, w / w.sum())
    day0 = int(first.value // 1_000_000_000)
    return _Calendar(day0, day0 + nd * _DAY - 1, counts, np.cumsum(counts), frac)


def _blocks(n_leads: int) -> Iterator[tuple[int, int, int]]:
    for b, lo in enumerate(range(0, n_leads, _BLOCK)):
        yield b, lo, min(lo + _BLOCK, n_leads)


def _to_datetime(seconds: np.ndarray) -> np.ndarray:
    return seconds.astype("datetime64[s]").astype("datetime64[us]")


def _str_array(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return pd.array(values, dtype="str")


# --- leads ---------------------------------------------------------------------------------
def _lead_block(cal: _Calendar, seed: int, b: int, lo: int, hi: int,
                ) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads ``lo..hi-1`` (global, time-ordered) and their personas; RNG stream per block."""
    rng = np.random.default_rng([seed, 1, b])
    idx = np.arange(lo, hi, dtype=np.int64)
    m = len(idx)

    # Jittered ranks within each day keep created_at globally sorted across block boundaries.
    day = np.searchsorted(cal.cum, idx, side="right")
    counts = cal.counts[day]
    rank = idx - (cal.cum[day] - counts)
    u = (rank + rng.random(m)) / np.maximum(counts, 1)
    secs = np.clip(np.floor(np.interp(u, _HOUR_CDF, _HOUR_EDGES)), 1, _DAY - 1).astype(np.int64)
    created = cal.day0 + day * _DAY + secs
    junk_on = cal.frac[day] >= _JUNK_LAUNCH

    persona = _sample(rng, _PERSONA_MIX, junk_on.astype(np.int64))

    source = _sample(rng, _SOURCE_P, persona)
    campaign = _sample(rng, _CAMPAIGN_P, persona * len(SOURCES) + source)
    junk = junk_on & (rng.random(m) < _JUNK_RATE[persona])
    campaign[junk] = _JUNK_IDX
    source = _SOURCE_OF_CAMPAIGN[campaign]
    landing = (_LP_PRIMARY[campaign] + np.searchsorted(_LP_CDF, rng.random(m), side="right")
               ) % _N_LANDING

    industry = _sample(rng, _INDUSTRY_P, persona)
    industry_na = rng.random(m) < _INDUSTRY_NA[persona]

    z = rng.standard_normal(m)
    employees = np.clip(
        np.round(_EMP_MEDIAN[persona] * np.exp(_EMP_SIGMA[persona] * z)),
        _EMP_LO[persona], _EMP_HI[persona],
    )
    employees[rng.random(m) < _EMP_NA[persona]] = np.nan

    country = _sample(rng, _COUNTRY_P, np.zeros(m, dtype=np.int64))
    title = _sample(rng, _TITLE_P, persona)
    title_na = rng.random(m) < 0.03

    # Gamma-mixed Poisson: engagement is over-dispersed, a few leads are very active.
    visits = rng.poisson(_VISITS_MEAN[persona] * rng.gamma(2.0, 0.5, m))
    pages = visits + rng.poisson(visits * _PAGES_PER_VISIT[persona])
    downloads = rng.poisson(_DOWNLOADS_MEAN[persona] * rng.gamma(1.5, 1 / 1.5, m))
    opens = rng.poisson(_OPENS_MEAN[persona] * rng.gamma(2.0, 0.5, m))
    demo_p = np.clip(_DEMO_BASE[persona] * (0.7 + 0.1 * np.sqrt(visits)), 0.0, 0.95)
    demo = (rng.random(m) < demo_p).astype(np.int64)

    first = rng.integers(0, len(_FIRST_NAMES), m)
    last = rng.integers(0, len(_LAST_NAMES), m)
    free = rng.random(m) < _FREE_MAIL_RATE[persona]
    fmt = rng.integers(0, 4, m)
    company = rng.integers(0, len(_COMPANY_DOMAIN), m)
    free_dom = _sample(rng, _FREE_MAIL_P, np.zeros(m, dtype=np.int64))
    digits = rng.integers(1, 100, m)
    area = rng.integers(200, 1000, m)
    number = rng.integers(0, 10**7, m)
    phone_na = rng.random(m) < 0.08

    add = np.strings.add
    fa, la = _FIRST_ASCII[first], _LAST_ASCII[last]
    local = np.where(
        fmt == 0, add(add(fa, "."), la),
        np.where(fmt == 1, add(np.strings.slice(fa, 0, 1), la),
                 np.where(fmt == 2, fa, add(add(fa, "_"), la))),
    )
    # Free-mail handles are taken, so people append digits.
    local = np.where(free, add(local, digits.astype("U2")), local)
    domain = np.where(free, np.array(FREE_MAIL)[free_dom],
                      add(_COMPANY_DOMAIN[company], _COUNTRY_TLD[country]))
    email = add(add(local, "@"), domain)
    phone = add(add(add(add(_COUNTRY_CC[country], " "), area.astype("U3")), " "),
                np.strings.zfill(number.astype("U7"), 7)).astype(object)
    phone[phone_na] = None

    lead_id = add("L", np.strings.zfill((idx + 1).astype("U8"), 8))
    leads = pd.DataFrame({
        "lead_id": _str_array(lead_id),
        "created_at": _to_datetime(created),
        "source": _str_array(_messy(rng, source, _SOURCE_VARIANTS, 0.05)),
        "campaign": _str_array(_CAMPAIGN_NAMES[campaign]),
        "landing_page": _str_array(_LP_NAMES[landing]),
        "industry": _str_array(_messy(rng, industry, _INDUSTRY_VARIANTS, 0.03, industry_na)),
        "employees": employees,
        "country": _str_array(np.array(COUNTRIES, dtype=object)[country]),
        "job_title": _str_array(_messy(rng, title, _TITLE_VARIANTS, 0.05, title_na)),
        "web_visits": visits.astype(np.int64),
        "pages_viewed": pages.astype(np.int64),
        "content_downloads": downloads.astype(np.int64),
        "email_opens": opens.astype(np.int64),
        "demo_requested": demo,
        "first_name": _str_array(_FIRST_DISPLAY[first]),
        "last_name": _str_array(_LAST_DISPLAY[last]),
        "email": _str_array(email),
        "phone": _str_array(phone),
    })
    return leads, persona


# --- deals and feedback --------------------------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    """What the activity log needs to know about each lead's future (one entry per lead)."""

    converts: np.ndarray  # wins, within the horizon or late
    won_at: np.ndarray  # epoch seconds of that win (float, NaN for non-converters)
    contacted: np.ndarray  # worked and its feedback is logged by as_of
    first_contact: np.ndarray  # epoch seconds
    accepted: np.ndarray


def _trunc_gamma(rng: np.random.Generator, n: int, shape: float, scale: float, lo: float,
                 hi: float) -> np.ndarray:
    x = rng.gamma(shape, scale, n)
    for _ in range(50):  # rejection rounds, not rows; each round shrinks the bad set
        bad = (x < lo) | (x > hi)
        if not bad.any():
            break
        x[bad] = rng.gamma(shape, scale, int(bad.sum()))
    return np.clip(x, lo, hi)


def _outcome_block(
    cal: _Calendar, seed: int, b: int, leads: pd.DataFrame, p: np.ndarray, persona: np.ndarray,
    horizon_days: int,
) -> tuple[dict[str, np.ndarray], pd.DataFrame, _Outcome]:
    rng = np.random.default_rng([seed, 2, b])
    m = len(leads)
    created = leads["created_at"].to_numpy().astype("datetime64[s]").astype(np.int64)
    junk = (leads["campaign"] == JUNK_CAMPAIGN).to_numpy(dtype=bool)
    demo = leads["demo_requested"].to_numpy() == 1
    nan = np.full(m, np.nan)

    # Delays in days. Converters win inside the horizon (median ~30 days for 90 days).
    u = rng.random(m)
    conv = u < p
    won_d = nan.copy()
    med = min(30.0, horizon_days / 3.0)
    won_d[conv] = _trunc_gamma(rng, int(conv.sum()), 2.0, med / 1.678, 2.0, horizon_days - 1.0)

    # Sales work better leads more; only accepted leads become opportunities that can be lost.
    logit_p = np.log(p) - np.log1p(-p)
    worked = conv | (rng.random(m) < np.clip(0.35 + 1.5 * p, 0.0, 0.95))
    accept_p = np.where(junk, 0.05, _sigmoid(logit_p + 2.5))
    accepted = conv | (rng.random(m) < accept_p)

    # Non-converters: a late win (negative at the horizon), a lost deal, or nothing.
    u2 = rng.random(m)
    late = ~conv & (u2 < 0.01 + 0.3 * p)
    lost = ~conv & ~late & worked & accepted & (rng.random(m) < 0.75)
    late_d, lost_d = nan.copy(), nan.copy()
    late_d[late] = _trunc_gamma(rng, int(late.sum()), 2.0, 25.0, 0.0, 149.0) + horizon_days + 1
    lost_d[lost] = _trunc_gamma(rng, int(lost.sum()), 1.5, 30.0, 1.0, 200.0)

    # A few leads lose a first deal and win a later one.
    u3 = rng.random(m)
    frac = rng.uniform(0.2, 0.8, m)
    prior = (conv & (u3 < 0.07)) | (late & (u3 < 0.15))
    prior_d = np.where(prior, np.fmax(won_d, late_d) * frac, np.nan)
    # An earlier opportunity means sales worked and accepted the lead.
    worked |= prior
    accepted |= prior

    emp = leads["employees"].to_numpy(dtype=float)
    mu = np.log(9000.0) + 0.22 * np.log(np.where(np.isnan(emp), 30.0, emp) / 50.0)

    lead_ix, delay, won = [], [], []
    for d, is_won in ((won_d, True), (late_d, True), (lost_d, False), (prior_d, False)):
        has = ~np.isnan(d)
        lead_ix.append(np.flatnonzero(has))
        delay.append(d[has])
        won.append(np.full(int(has.sum()), is_won))
    lead_ix_a, delay_a, won_a = map(np.concatenate, (lead_ix, delay, won))
    closed = created[lead_ix_a] + np.round(delay_a * _DAY).astype(np.int64)
    amount = np.round(np.exp(mu[lead_ix_a] + 0.55 * rng.standard_normal(len(lead_ix_a))), 2)
    keep = closed <= cal.as_of  # right-censoring: later deals are not known yet
    deals = {
        "lead_ix": lead_ix_a[keep], "closed": closed[keep], "won": won_a[keep],
        "amount": amount[keep],
    }

    # Feedback of a lead with an opportunity predates its first close.
    first_deal = np.fmin(np.fmin(won_d, lost_d), prior_d)
    reason_group = np.where(junk & (persona != _STUDENT), len(PERSONAS), persona)
    reason = np.array(REASONS, dtype=object)[_sample(rng, _REASON_P, reason_group)]
    reason[accepted] = None
    rating = np.clip(np.round(
        3.0 + 0.8 * (logit_p + 2.4) + 0.8 * (2.0 * accepted - 1.0) + 0.7 * rng.standard_normal(m)
    ), 1, 5).astype(np.int64)
    # First response is fast for demo requests, slow tail otherwise (some > 48 h).
    fc_h = np.exp(np.log(np.where(demo, 8.0, 24.0)) + 0.9 * rng.standard_normal(m))
    fb_d = np.exp(np.log(3.0) + 0.8 * rng.standard_normal(m))
    fc = np.maximum(fc_h * 3600.0, 60.0)
    fb = np.maximum(fb_d * _DAY, 60.0)
    fd = first_deal * _DAY
    dealt = ~np.isnan(fd)
    fc = np.where(dealt, np.minimum(fc, 0.5 * fd), fc)
    fb = np.where(dealt, np.minimum(fb, 0.9 * (fd - fc)), fb)
    first_contact = created + np.round(fc).astype(np.int64)
    feedback_at = first_contact + np.maximum(np.round(fb).astype(np.int64), 1)
    rows = worked & (feedback_at <= cal.as_of)
    feedback = pd.DataFrame({
        "lead_id": leads["lead_id"].to_numpy()[rows],
        "feedback_at": _to_datetime(feedback_at[rows]),
        "status": _str_array(np.where(accepted, "accepted", "rejected")[rows]),
        "rating": rating[rows],
        "reason": _str_array(reason[rows]),
        "first_contact_at": _to_datetime(first_contact[rows]),
    })
    feedback["lead_id"] = feedback["lead_id"].astype("str")
    # Same rounding as the deal's closed_at, so post-win engagement lines up with the deal.
    won_at = created + np.round(np.fmax(won_d, late_d) * _DAY)
    outcome = _Outcome(conv | late, won_at, rows, first_contact, accepted)
    return deals, feedback, outcome


# --- activities ----------------------------------------------------------------------------
def _events(rng: np.random.Generator, counts: np.ndarray, start: np.ndarray, span: np.ndarray,
            ) -> tuple[np.ndarray, np.ndarray]:
    """``counts[i]`` events of lead i, uniform in ``(start[i], start[i] + span[i]]`` seconds."""
    ix = np.repeat(np.arange(len(counts)), counts)
    t = start[ix] + 1 + np.floor(rng.random(len(ix)) * span[ix]).astype(np.int64)
    return ix, t


def _activity_block(
    cal: _Calendar, seed: int, b: int, leads: pd.DataFrame, persona: np.ndarray, out: _Outcome,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Events of one block (lead positions local) and the export-day counters they imply.

    ``leads`` must still hold the MQL-moment counters of :func:`_lead_block`: they become the
    pre-MQL events one for one, so the oracle's inputs can be rebuilt from the log.
    """
    rng = np.random.default_rng([seed, 3, b])
    m = len(leads)
    created = leads["created_at"].to_numpy().astype("datetime64[s]").astype(np.int64)
    visits, pages, downloads, opens = (
        leads[c].to_numpy(dtype=np.int64)
        for c in ("web_visits", "pages_viewed", "content_downloads", "email_opens")
    )
    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray | None]] = []

    # Before the MQL moment. Truncated exponential by inverse CDF: no rejection rounds.
    webinars = rng.poisson(_WEBINAR_MEAN[persona])
    tail = -np.expm1(-(_PRE_MAX_S - _PRE_MIN_S) / _PRE_MEAN_S)
    for kind, counts in ((_VISIT, visits), (_DOWNLOAD, downloads), (_OPEN, opens),
                         (_WEBINAR, webinars)):
        ix = np.repeat(np.arange(m), counts)
        delay = _PRE_MIN_S - _PRE_MEAN_S * np.log1p(-rng.random(len(ix)) * tail)
        delay = np.clip(np.floor(delay), _PRE_MIN_S, _PRE_MAX_S).astype(np.int64)
        value = None
        if kind == _VISIT:
            # Each visit views one page; the lead's remaining pages land on its visits at
            # random, so the visits' values add up to the MQL-moment pages_viewed exactly.
            first = np.cumsum(counts) - counts
            extra = np.repeat(np.arange(m), pages - visits)
            slot = first[extra] + np.floor(rng.random(len(extra)) * visits[extra]).astype(np.int64)
            value = 1.0 + np.bincount(slot, minlength=len(ix))
        parts.append((ix, created[ix] - delay, kind, value))

    # After the MQL moment. A lead's post span runs past as_of for recent leads; drawing counts
    # for the visible share of the span (Poisson thinning) equals censoring a full-span process.
    span_end = np.where(out.converts, out.won_at + _POST_TAIL_S, created + _POST_OTHER_S)
    seen_end = np.minimum(span_end, cal.as_of)
    span = np.maximum(seen_end - created, 0.0)
    share = span / (span_end - created)
    activity = rng.gamma(2.0, 0.5, m)  # over-dispersed like pre-MQL engagement
    for j, kind in enumerate((_VISIT, _DOWNLOAD, _OPEN)):
        mean = np.where(out.converts, _POST_MEAN_CONVERT[j], _POST_MEAN_OTHER[j])
        ix, t = _events(rng, rng.poisson(mean * activity * share), created, span)
        value = None
        if kind == _VISIT:
            value = 1.0 + rng.poisson(_PAGES_PER_VISIT[persona[ix]])
        parts.append((ix, t, kind, value))

    # Sales: the first contact is the first call; follow-ups and meetings come later.
    n_calls = np.where(out.contacted, rng.integers(1, 4, m), 0)
    ix, t = _events(rng, n_calls, out.first_contact, np.full(m, float(_CALL_SPAN_S)))
    first_call = np.arange(len(ix)) == np.repeat(np.cumsum(n_calls) - n_calls, n_calls)
    t = np.where(first_call, out.first_contact[ix], t)
    parts.append((ix, t, _CALL, None))
    n_meetings = np.where(out.contacted & out.accepted, rng.integers(0, 3, m), 0)
    ix, t = _events(rng, n_meetings, out.first_contact, np.full(m, float(_MEETING_SPAN_S)))
    parts.append((ix, t, _MEETING, None))

    lead_ix = np.concatenate([q[0] for q in parts])
    t = np.concatenate([q[1] for q in parts])
    kind = np.concatenate([np.full(len(q[0]), q[2], dtype=np.int8) for q in parts])
    value = np.concatenate([q[3] if q[3] is not None else np.full(len(q[0]), np.nan)
                            for q in parts])
    keep = t <= cal.as_of  # only sales follow-ups can fall later: they are not logged yet
    events = {"lead_ix": lead_ix[keep], "t": t[keep], "kind": kind[keep], "value": value[keep]}

    def count(k: int) -> np.ndarray:
        return np.bincount(events["lead_ix"][events["kind"] == k], minlength=m).astype(np.int64)

    is_visit = events["kind"] == _VISIT
    counters = {
        "web_visits": count(_VISIT),
        "pages_viewed": np.round(np.bincount(
            events["lead_ix"][is_visit], weights=events["value"][is_visit], minlength=m,
        )).astype(np.int64),
        "content_downloads": count(_DOWNLOAD),
        "email_opens": count(_OPEN),
    }
    return events, counters


# --- public API ----------------------------------------------------------------------------
def _generate(n_leads: int, seed: int, start: str, end: str, horizon_days: int,
              progress: Callable[[int, int], None] | None = None) -> dict[str, pd.DataFrame]:
    cal = _calendar(n_leads, seed, start, end, horizon_days)
    leads_parts, truth_parts, deal_parts, fb_parts, act_parts = [], [], [], [], []
    blocks = list(_blocks(n_leads)) or [(0, 0, 0)]
    for b, lo, hi in blocks:
        leads, persona = _lead_block(cal, seed, b, lo, hi)
        p = true_probability(leads)  # the block still holds the MQL-moment counters here
        p0 = probability_without_call(p, leads)
        deals, feedback, outcome = _outcome_block(cal, seed, b, leads, p, persona, horizon_days)
        deals["lead_ix"] = deals["lead_ix"] + lo
        events, counters = _activity_block(cal, seed, b, leads, persona, outcome)
        events["lead_ix"] = events["lead_ix"] + lo
        act_parts.append(events)
        for col, values in counters.items():
            leads[col] = values
        leads_parts.append(leads)
        truth_parts.append(pd.DataFrame({
            "lead_id": leads["lead_id"],
            "true_probability": p,
            "persona": _str_array(np.array(PERSONAS, dtype=object)[persona]),
            # The history is the called world (above); without a call, per lead.
            "p_called": p,
            "p_not_called": p0,
            "call_response": _str_array(call_response(p, p0)),
        }))
        deal_parts.append(deals)
        fb_parts.append(feedback)
        if progress is not None:
            progress(hi, n_leads)

    leads = pd.concat(leads_parts, ignore_index=True)
    d = {k: np.concatenate([part[k] for part in deal_parts]) for k in deal_parts[0]}
    order = np.lexsort((d["lead_ix"], d["closed"]))  # by close time, ties by lead
    n_deals = len(order)
    deals = pd.DataFrame({
        "deal_id": _str_array(np.strings.add(
            "D", np.strings.zfill(np.arange(1, n_deals + 1).astype("U8"), 8))),
        "lead_id": leads["lead_id"].to_numpy()[d["lead_ix"][order]],
        "closed_at": _to_datetime(d["closed"][order]),
        "outcome": _str_array(np.where(d["won"][order], "won", "lost")),
        "amount": d["amount"][order].astype(float),
    })
    deals["lead_id"] = deals["lead_id"].astype("str")
    return {
        "leads": leads,
        "deals": deals,
        "feedback": pd.concat(fb_parts, ignore_index=True),
        "truth": pd.concat(truth_parts, ignore_index=True),
        "activities": _activity_frame(act_parts, leads["lead_id"]),
    }


def _activity_frame(parts: list[dict[str, np.ndarray]], lead_id: pd.Series) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc

    a = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    order = np.lexsort((a["lead_ix"], a["t"]))  # by time, ties by lead; stable
    n = len(order)
    if n > _MAX_ACTIVITIES:
        raise ValueError(f"{n} activities do not fit 9-digit activity ids; use fewer leads")
    # Arrow kernels: there are ~13 events per lead, and numpy string ops dominated the run time.
    number = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), 9, "0")
    kind = pa.DictionaryArray.from_arrays(pa.array(a["kind"][order]), pa.array(ACTIVITY_TYPES))
    return pd.DataFrame({
        "activity_id": pd.array(pc.binary_join_element_wise("A", number, ""), dtype="str"),
        "lead_id": lead_id.array.take(a["lead_ix"][order]),
        "occurred_at": _to_datetime(a["t"][order]),
        "activity_type": pd.array(kind.cast(pa.string()), dtype="str"),
        "value": a["value"][order].astype(float),
    })


def generate_crm(n_leads: int, seed: int = 0, *, start: str = "2024-07-01",
                 end: str = "2026-06-30", horizon_days: int = 90) -> dict[str, pd.DataFrame]:
    """Returns {"leads", "deals", "feedback", "truth", "activities"}.

    Data ends at the last second of ``end`` (``AS_OF`` by default): later deals, feedback and
    activities are censored. ``truth.true_probability`` is P(won deal within ``horizon_days``)
    from the lead as of its MQL moment (``created_at``); ``p_called`` is the same number (the
    history is one where sales works the leads), ``p_not_called`` the chance without a call
    and ``call_response`` the lead's kind (persuadable, sure_thing, lost_cause,
    do_not_disturb; :func:`call_response`).

    ``activities`` is the event log (activity_id, lead_id, occurred_at, activity_type, value),
    sorted by time: marketing events (web_visit with ``value`` = pages viewed, content_download,
    email_open, webinar) before and after ``created_at``, and sales_call / meeting from the
    first contact on. The leads' web_visits, pages_viewed, content_downloads and email_opens
    are export-day snapshots of that log (everything up to ``end``), so they include post-MQL
    engagement, which converters have far more of: a leak, as in real exports. The counts the
    oracle used are those of the events with ``occurred_at < created_at``.
    """
    return _generate(n_leads, seed, start, end, horizon_days)


def iter_lead_chunks(n_leads: int, seed: int = 0, chunk_size: int = 1_000_000,
                     **kw: Any) -> Iterator[pd.DataFrame]:
    """Leads table only, in chunks, constant memory, for scoring benchmarks of 10M rows.

    Lead ids are unique across chunks; for any ``chunk_size`` the concatenation equals
    ``generate_crm(...)["leads"]`` except for web_visits, pages_viewed, content_downloads and
    email_opens: no activity log is generated here, so they are the MQL-moment counts (the
    oracle's inputs, as a lead looks when it is scored) rather than export-day snapshots.
    ``kw``: start, end, horizon_days as in :func:`generate_crm`.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    cal = _calendar(n_leads, seed, **kw)
    parts: list[pd.DataFrame] = []
    have = 0
    for b, lo, hi in _blocks(n_leads):
        parts.append(_lead_block(cal, seed, b, lo, hi)[0])
        have += hi - lo
        if have < chunk_size:
            continue
        buf = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        pos = 0
        while have - pos >= chunk_size:
            yield buf.iloc[pos:pos + chunk_size].reset_index(drop=True)
            pos += chunk_size
        parts = [buf.iloc[pos:]] if pos < have else []
        have -= pos
    if have:
        yield pd.concat(parts, ignore_index=True)


def _write_table(frames: Iterator[pd.DataFrame], path: Path, fmt: str, dates: tuple[str, ...],
                 on_chunk: Callable[[int], None] | None = None) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    writer: Any = None
    schema = out_schema = None
    try:
        for df in frames:
            table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
            if schema is None:
                schema = table.schema
                if fmt == "csv":
                    # Second resolution so timestamps print as 'YYYY-MM-DD HH:MM:SS'.
                    out_schema = pa.schema([
                        f.with_type(pa.timestamp("s")) if f.name in dates else f for f in schema
                    ])
                    writer = pacsv.CSVWriter(path, out_schema)
                else:
                    writer = pq.ParquetWriter(path, schema)
            if fmt == "csv":
                writer.write_table(table.cast(out_schema))
            else:
                writer.write_table(table, row_group_size=_ROW_GROUP)
            if on_chunk is not None:
                on_chunk(len(df))
    finally:
        if writer is not None:
            writer.close()


def write_crm(out_dir: str | Path, n_leads: int, seed: int = 0, fmt: str = "csv",
              leads_only: bool = False, progress: Callable[[int, int], None] | None = None,
              ) -> dict[str, Path]:
    """Writes leads/deals/feedback/truth/activities as CSV or Parquet; returns paths.

    The tables are those of :func:`generate_crm` with default dates.
    CSV: ',' delimiter, UTF-8, header row, dates 'YYYY-MM-DD HH:MM:SS', missing values empty.
    With ``leads_only`` the leads are streamed chunk by chunk (Parquet: one row group per chunk
    of at most 250_000 rows), so 10M rows never sit in memory; they come from
    :func:`iter_lead_chunks`, so their engagement counters are the MQL-moment counts, not the
    export-day snapshots of the full write. ``progress(done, total)`` is called with the number
    of leads processed.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if leads_only:
        path = out / f"leads.{fmt}"
        done = 0

        def on_chunk(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(done, n_leads)

        frames = (iter_lead_chunks(n_leads, seed, chunk_size=_ROW_GROUP) if n_leads
                  else iter([generate_crm(0, seed)["leads"]]))  # still write a header/schema
        _write_table(frames, path, fmt, _DATE_COLS["leads"], on_chunk)
        return {"leads": path}
    tables = _generate(n_leads, seed, "2024-07-01", "2026-06-30", 90, progress)
    for name, df in tables.items():
        paths[name] = out / f"{name}.{fmt}"
        _write_table(iter([df]), paths[name], fmt, _DATE_COLS[name])
    return paths
