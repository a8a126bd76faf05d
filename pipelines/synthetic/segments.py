"""A synthetic CRM whose business lines convert for different reasons (`leadq synth --segments`).

The standard synthetic CRM has one pattern for every lead. Here each segment (business line)
has its own drivers, some pulling in opposite directions, so one pooled model averages them:
enterprise leads convert on demo requests and company size, SMB leads on pricing-page visits
(and a demo request means little there), partner leads on pages viewed and their industry.
The truth (each lead's probability of converting) is written to truth.csv, as the standard
synth does, so a test can measure how far a model is from the best possible one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SEGMENTS = {2: ("enterprise", "smb"), 3: ("enterprise", "smb", "partner")}
# Share of leads per business line (the partner channel is small on purpose: it tests the
# minimums of segments.min_leads / min_conversions).
SHARES = {2: (0.5, 0.5), 3: (0.45, 0.4, 0.15)}
INDUSTRIES = ("software", "retail", "finance", "health", "manufacturing")
SOURCES = ("web", "event", "paid", "referral")
# Industry effect on the logit, per segment: enterprise and partner leads disagree.
_INDUSTRY = {"enterprise": (0.4, -0.3, 0.6, 0.0, -0.2),
             "smb": (0.0, 0.3, -0.1, 0.0, 0.1),
             "partner": (-0.5, 0.2, -0.6, 0.7, 0.3)}


def _logit(segment: str, t: dict[str, np.ndarray]) -> np.ndarray:
    size = np.log10(t["employees"])  # 1 (ten people) .. 4+ (ten thousand)
    industry = np.asarray(_INDUSTRY[segment])[t["industry_ix"]]
    if segment == "enterprise":
        return (-4.2 + 2.4 * t["demo_requested"] + 0.9 * size
                - 0.5 * t["pricing_visits"] + 0.15 * (t["pages_viewed"] - 4.0) + industry)
    if segment == "smb":
        return (-2.0 + 0.9 * t["pricing_visits"] - 1.6 * t["demo_requested"]
                - 0.8 * (size - 1.5) - 0.15 * (t["pages_viewed"] - 4.0) + industry)
    return -2.4 + 0.45 * (t["pages_viewed"] - 4.0) - 0.4 * t["pricing_visits"] + industry


def generate_segmented(n_leads: int, seed: int = 0, segments: int = 2,
                       start: str = "2024-07-01", end: str = "2026-06-30"
                       ) -> dict[str, pd.DataFrame]:
    """{"leads", "truth"}: leads with a 0/1 `converted` outcome and their true probability."""
    if segments not in SEGMENTS:
        raise ValueError(f"segments must be 2 or 3, got {segments!r}")
    rng = np.random.default_rng(seed)
    names = SEGMENTS[segments]
    seg_ix = rng.choice(len(names), size=n_leads, p=SHARES[segments])
    t0, t1 = pd.Timestamp(start).value // 10**9, pd.Timestamp(end).value // 10**9
    created = np.sort(rng.integers(t0, t1, size=n_leads))
    # Enterprise leads come from larger companies; inputs otherwise share one distribution so
    # only the way they relate to the outcome differs between segments.
    size_mu = np.asarray([6.0, 3.2, 4.2][: len(names)])[seg_ix]
    inputs = {
        "employees": np.maximum(1, np.round(np.exp(rng.normal(size_mu, 1.0)))),
        "pages_viewed": rng.poisson(4.0, n_leads).astype(float),
        "pricing_visits": rng.poisson(1.2, n_leads).astype(float),
        "demo_requested": (rng.random(n_leads) < 0.3).astype(float),
        "industry_ix": rng.integers(0, len(INDUSTRIES), n_leads),
    }
    logit = np.zeros(n_leads)
    for i, name in enumerate(names):
        mask = seg_ix == i
        logit[mask] = _logit(name, {k: v[mask] for k, v in inputs.items()})
    p = 1.0 / (1.0 + np.exp(-logit))
    converted = (rng.random(n_leads) < p).astype(int)
    lead_id = np.char.add("S", np.char.zfill(np.arange(1, n_leads + 1).astype(str), 7))
    leads = pd.DataFrame({
        "lead_id": lead_id,
        "created_at": pd.to_datetime(created, unit="s").strftime("%Y-%m-%dT%H:%M:%S"),
        "business_line": np.asarray(names, dtype=object)[seg_ix],
        "industry": np.asarray(INDUSTRIES, dtype=object)[inputs["industry_ix"]],
        "source": np.asarray(SOURCES, dtype=object)[rng.integers(0, len(SOURCES), n_leads)],
        "employees": inputs["employees"].astype(int),
        "pages_viewed": inputs["pages_viewed"].astype(int),
        "pricing_visits": inputs["pricing_visits"].astype(int),
        "demo_requested": inputs["demo_requested"].astype(int),
        "converted": converted,
    })
    truth = pd.DataFrame({"lead_id": lead_id, "true_probability": p,
                          "segment": leads["business_line"].to_numpy()})
    return {"leads": leads, "truth": truth}


def segmented_params(leads_file: str = "leads.csv") -> dict:
    """A params file for the segmented synth (only what differs from the defaults)."""
    return {
        "data": {"leads": {"path": leads_file, "id": "lead_id", "created_at": "created_at",
                           "label": "converted"},
                 "deals": None},
        "features": {"categorical": ["business_line", "industry", "source"],
                     "numeric": ["employees", "pages_viewed", "pricing_visits",
                                 "demo_requested"]},
        "segments": {"column": "business_line"},
    }


def write_segmented(out_dir: str | Path, n_leads: int, seed: int = 0,
                    segments: int = 2) -> dict[str, Path]:
    """leads.csv, truth.csv and a params.yaml that trains on them with segments on."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = generate_segmented(n_leads, seed=seed, segments=segments)
    paths = {"leads": out / "leads.csv", "truth": out / "truth.csv",
             "params": out / "params.yaml"}
    tables["leads"].to_csv(paths["leads"], index=False)
    tables["truth"].to_csv(paths["truth"], index=False)
    paths["params"].write_text(
        "# leadq params for the segmented synthetic CRM (`leadq synth --segments`)\n"
        + yaml.safe_dump(segmented_params(), sort_keys=False), encoding="utf-8")
    return paths
