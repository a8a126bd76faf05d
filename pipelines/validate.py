"""`leadq validate`: the data contracts on the configured inputs, with Data Docs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from leadq.features.contracts import profile
from leadq.pipelines.gx.suites import gx_summary, run_gx, suites_for
from leadq.pipelines.io.progress import step
from leadq.pipelines.params.loader import resolve_path


def main(params_path: str | None = None, docs: str | None = None) -> dict:
    """`leadq validate`: the contracts on the configured inputs alone, with Data Docs.

    Reads only; no quarantine is written (train and score write it). Exit 2 on a table-level
    failure, 0 otherwise with every rejected row counted by reason.
    """
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params

    params = load_params(params_path)
    with step("check CRM tables against their contracts"):
        tables = load_crm(params, quarantine=False)
    reference = profile(tables.leads, params)
    suites = suites_for(params, reference, list(tables.raw))
    docs_dir = Path(docs) if docs else resolve_path(params, "gx_docs")
    with step(f"Great Expectations → Data Docs in {docs_dir}"):
        results = run_gx(tables.raw, suites, params, docs_dir)
    summary = {
        "accounting": {t: a.as_dict() for t, a in tables.accounting.items()},
        "gx": gx_summary(results),
        "data_docs": str(Path(docs_dir).resolve() / "index.html"),
    }
    for acct in tables.accounting.values():
        print(acct.summary(), file=sys.stderr)
    print(f"Data Docs: {summary['data_docs']}", file=sys.stderr)
    return summary
