"""Load the configured CRM tables from disk into typed frames (the I/O half of every step)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.columns import raw_input_columns
from features.tables import canonical_deals, canonical_feedback, coerce_leads
from pipelines.config import resolve_path
from pipelines.errors import BadInputError, ConfigError
from pipelines.io import read_table, require_columns


@dataclass
class CrmTables:
    leads: pd.DataFrame
    deals: pd.DataFrame | None = None
    feedback: pd.DataFrame | None = None
    paths: dict[str, Path] = field(default_factory=dict)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def leads_required_columns(params: dict, *, for_training: bool) -> list[str]:
    spec = params["data"]["leads"]
    cols = [spec["id"], *raw_input_columns(params)]
    if spec.get("created_at"):
        cols.append(spec["created_at"])
    if for_training and spec.get("label"):
        cols.append(spec["label"])
    return list(dict.fromkeys(cols))


def _section_path(params: dict, name: str) -> Path | None:
    spec = params["data"].get(name)
    if not spec or not spec.get("path"):
        return None
    return resolve_path(params, spec["path"])


def load_leads(params: dict, path: str | Path | None = None, *, for_training: bool) -> pd.DataFrame:
    """Read and type a leads file, stopping with a clear message when a column is missing."""
    spec = params["data"]["leads"]
    path = Path(path) if path else _section_path(params, "leads")
    if path is None:
        raise ConfigError("params.yaml data.leads.path is not set")
    raw = read_table(path, spec, name="leads")
    if raw.empty:
        raise BadInputError(f"{path}: leads file has a header but no rows")
    require_columns(raw, leads_required_columns(params, for_training=for_training),
                    path=path, name="leads")
    leads = coerce_leads(raw, params)
    leads.attrs["path"] = str(path)
    return leads


def load_crm(params: dict) -> CrmTables:
    """Leads plus, when configured, the deals and sales-feedback tables in canonical form."""
    leads = load_leads(params, for_training=True)
    paths = {"leads": Path(leads.attrs["path"])}
    tables = CrmTables(leads=leads, paths=paths)
    if params["data"]["leads"].get("label"):
        return tables
    for name, canon, keys in (
        ("deals", canonical_deals, ("lead_id", "closed_at", "outcome")),
        ("feedback", canonical_feedback, ("lead_id", "feedback_at", "status")),
    ):
        path = _section_path(params, name)
        if path is None:
            if name == "deals":
                raise ConfigError("params.yaml: set data.deals.path, or data.leads.label when "
                                  "the leads carry their own outcome")
            continue
        spec = params["data"][name]
        raw = read_table(path, spec, name=name)
        require_columns(raw, [spec.get(k) for k in keys if spec.get(k)], path=path, name=name)
        setattr(tables, name, canon(raw, spec))
        paths[name] = path
    return tables
