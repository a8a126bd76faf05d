"""A wide export through Great Expectations (issue 30): 2,000 columns ran for more than ten
minutes at 6.3 GB, because GX copies the whole batch for each expectation's rows. Columns are
validated in groups, so no GX batch is wider than GX_COLUMNS_PER_BATCH columns; every
expectation still runs once, on every sampled row, and a failure in any group is reported.

Structural assertions (batch widths, expectations per batch), not timings: the figures are in
docs/benchmarks.md (benchmarks/bench_wide.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import leadq.pipelines.gx.suites as gx_suites
from leadq.pipelines.gx.suites import gx_summary, run_gx, suites_for

COLUMNS = 24
GROUP = 5


@pytest.fixture()
def wide(base_params):
    params = copy.deepcopy(base_params)
    extra = [f"x{i:03d}" for i in range(COLUMNS)]
    params["features"]["numeric"] = list(params["features"]["numeric"]) + extra
    rng = np.random.default_rng(0)
    rows = 12
    frame = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(rows)], "created_at": ["2025-01-02"] * rows,
        **{c: ["x"] * rows for c in ("source", "campaign", "landing_page", "industry",
                                     "country", "job_title", "email", "first_name",
                                     "last_name", "phone")},
        **{c: ["3"] * rows for c in params["features"]["numeric"] if not c.startswith("x")},
        **{c: rng.integers(0, 50, rows).astype(str) for c in extra}})
    frame.loc[5, extra[-3]] = "lots"  # not a number, in one of the last groups
    reference = {"categories": {}, "numeric_ranges": {c: [0.0, 49.0] for c in extra}}
    return params, frame, reference


# Renders Data Docs (20-30 s on a busy machine): slow, like the other Data Docs tests.
@pytest.mark.slow
def test_wide_tables_are_validated_in_narrow_batches_with_every_expectation(
        wide, monkeypatch, tmp_path):
    params, frame, reference = wide
    from great_expectations.core.validation_definition import ValidationDefinition

    widths: list[int] = []
    counts: list[int] = []
    real_run = ValidationDefinition.run

    def spy(self, **kwargs):
        widths.append(kwargs["batch_parameters"]["dataframe"].shape[1])
        counts.append(len(self.suite.expectations))
        return real_run(self, **kwargs)

    monkeypatch.setattr(ValidationDefinition, "run", spy)
    monkeypatch.setattr(gx_suites, "GX_COLUMNS_PER_BATCH", GROUP, raising=False)
    suites = suites_for(params, reference, ["leads"])
    total = len(suites["leads"]["expectations"])
    results = run_gx({"leads": frame}, suites, params, tmp_path / "docs")
    assert len(widths) >= COLUMNS // GROUP
    assert max(widths) <= GROUP
    # Each expectation once: the merged result holds them all, as one batch would.
    assert sum(counts) == total == len(results["leads"]["results"])
    assert results["leads"]["statistics"]["evaluated_expectations"] == total
    failed = gx_summary(results)["leads"]["failed"]["row"]
    assert any(f"x{COLUMNS - 3:03d}" in f for f in failed)
    assert results["leads"]["success"] is False
    assert (tmp_path / "docs" / "index.html").is_file()


def test_column_groups_keep_each_columns_expectations_together():
    from leadq.pipelines.gx.suites import column_groups

    exps = [{"type": "t", "kwargs": {}}] + [
        {"type": k, "kwargs": {"column": f"c{i}"}} for i in range(25) for k in ("a", "b", "c")]
    groups = column_groups(exps, size=10)
    assert [len({e["kwargs"].get("column") for e in g} - {None}) for g in groups] == [10, 10, 5]
    assert groups[0][0] == exps[0]  # table-level expectations run once, with the first group
    assert [e for g in groups for e in g] == exps  # nothing lost, nothing repeated, in order
