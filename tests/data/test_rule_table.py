"""One rule table, two renderings: the vectorised evaluator and the GX suites flag the same rows.

A corpus of bad rows (at least one per GX-expressible rule) is run through both
`leadq.features.contracts.rule_masks` (what `evaluate` reports from) and GX
(`leadq.pipelines.gx.suites.run_gx`, result format COMPLETE); for every rule GX sees, the rows
each side flags must be the same. Every rule is either rendered for GX or marked evaluator-only.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from leadq.features.contracts import check_columns, check_totals, evaluate, rule_masks
from leadq.features.rules import CONTRACT, GX_EXPECTATIONS, Kind, rules_for, uncovered
from leadq.pipelines.gx.suites import run_gx, suites_for

LEAD_IDS = [f"L{i}" for i in range(12)]


@pytest.fixture(scope="module")
def params(base_params) -> dict:
    return copy.deepcopy(base_params)


@pytest.fixture(scope="module")
def reference() -> dict:
    return {"categories": {"source": ["email", "paid search", "web"]},
            "numeric_ranges": {"employees": [1.0, 500.0]}}


def _leads(n_good: int = 6) -> pd.DataFrame:
    good = {
        "lead_id": [f"G{i}" for i in range(n_good)],
        "created_at": ["2025-01-02"] * n_good,
        "source": ["Email"] * n_good, "campaign": ["c1"] * n_good,
        "landing_page": ["/a"] * n_good, "industry": ["retail"] * n_good,
        "country": ["DE"] * n_good, "job_title": ["Manager"] * n_good,
        "email": ["a@b.example"] * n_good, "first_name": ["A"] * n_good,
        "last_name": ["B"] * n_good, "phone": ["1"] * n_good,
        **{c: ["3"] * n_good for c in ("employees", "web_visits", "pages_viewed",
                                       "content_downloads", "email_opens", "demo_requested")},
    }
    return pd.DataFrame(good)


# (column, bad cell) per corpus row: one spoilt cell in an otherwise good lead
LEAD_CORPUS = [
    ("lead_id", None), ("lead_id", "   "), ("lead_id", "G1"), ("lead_id", " G2 "),
    ("lead_id", "x" * 1001),
    ("created_at", None), ("created_at", "31/02/2025"), ("created_at", "01/05/2025"),
    ("created_at", "2025-02-31"), ("created_at", "2025-13-01"), ("created_at", "soon"),
    ("created_at", "1850-03-01"), ("created_at", "2025-1-7 3:00"),
    ("created_at", "2999-01-01"),
    ("employees", "lots"), ("employees", "1,5"), ("employees", "inf"), ("employees", "-inf"),
    ("employees", "1e999"), ("employees", "-3"), ("employees", "2e9"), ("employees", "1e3"),
    ("employees", " 7 "), ("employees", "nan"),
    ("web_visits", "-0.5"), ("source", "x" * 1001), ("source", "Unknown"), ("source", " n/a "),
    ("source", "Paid-Search "), ("source", "tiktok"), ("source", "-"), ("job_title", "y" * 1200),
    ("campaign", "(not set)"),
]


def _lead_corpus() -> pd.DataFrame:
    frame = _leads()
    rows = []
    for k, (col, value) in enumerate(LEAD_CORPUS):
        row = frame.iloc[0].copy()
        row["lead_id"] = f"B{k}"
        row[col] = value
        rows.append(row)
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


def _deals() -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": ["G0", "G1", None, " ", "G2", "G3", "G4", "G5", "G0", "G1", "nobody"],
        "closed_at": ["2025-02-01", "2025-02-01", "2025-02-01", "2025-02-01", "bad",
                      None, "1800-01-01", "2025-02-01", "2025-02-01", "2024-01-01",
                      "2025-02-01"],
        "outcome": ["won", "LOST ", "won", "won", "won", "won", "won", "maybe", None, "won",
                    "won"],
        "amount": ["10", "", "5", "5", "5", "5", "5", "5", "-1", "abc", "inf"],
    })


def _feedback() -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": ["G0", "G1", None, "G2", "G3", "G4", "G5", "G0", "G1"],
        "feedback_at": ["2025-02-01", "2025-02-01", "2025-02-01", "2025/02/01", "2025-02-01",
                        "2025-02-01", "2025-02-01", "2025-02-01", "2025-02-31"],
        "status": ["accepted", "Rejected", "accepted", "accepted", "meh", "", "accepted",
                   "accepted", "accepted"],
        "rating": ["3", "", "4", "4", "4", "0", "six", "5.5", "-inf"],
        "reason": [""] * 9,
        "first_contact_at": ["2025-02-02", None, "", "yesterday", "0001-01-01", "2025-02-03",
                             "2025-02-03", "2025-02-03", "2025-02-03"],
    })


def _gx_unexpected(results: dict) -> dict[str, set]:
    """rule id → the frame indexes GX flags (union over the rule's expectations)."""
    out: dict[str, set] = {}
    for r in results.get("results", []):
        cfg = r["expectation_config"]
        rule = (cfg.get("meta") or {}).get("rule")
        rows = out.setdefault(rule, set())
        if cfg["type"] in {"expect_column_to_exist", "expect_table_row_count_to_be_between",
                           "expect_column_proportion_of_unique_values_to_be_between"}:
            continue  # table-level: a verdict, compared in the table-level test
        assert "exception_info" not in r or not r["exception_info"].get(
            "raised_exception"), r["exception_info"]
        rows.update(int(i) for i in r["result"].get("unexpected_index_list") or [])
    return out


@pytest.fixture(scope="module")
def corpus(params, reference) -> dict[str, pd.DataFrame]:
    return {"leads": _lead_corpus(), "deals": _deals(), "feedback": _feedback()}


@pytest.fixture(scope="module")
def gx_results(corpus, params, reference) -> dict[str, dict]:
    suites = suites_for(params, reference, list(corpus))
    return run_gx(corpus, suites, params, None, result_format="COMPLETE")


@pytest.mark.parametrize("table", ["leads", "deals", "feedback"])
def test_evaluator_and_gx_flag_the_same_rows(table, corpus, gx_results, params, reference):
    frame = corpus[table]
    ref = reference if table == "leads" else {
        "lead_created": pd.Series(pd.to_datetime(["2025-01-01"] * 6), index=LEAD_IDS[:0]
                                  + [f"G{i}" for i in range(6)])}
    gx = _gx_unexpected(gx_results[table])
    compared = 0
    kinds: dict[Kind, int] = {}
    for rule, mask in rule_masks(frame, table, params, ref):
        if rule.evaluator_only:
            continue
        flagged = set(np.flatnonzero(mask).tolist())
        seen = gx.get(rule.id, set())
        if rule.kind == Kind.UNIQUE:
            # GX flags every copy of a repeated id, the evaluator the copies after the first:
            # the same ids either way.
            ids = frame[rule.column].astype("string").str.strip()
            assert set(ids[list(flagged)]) == set(ids[list(seen)]), rule.id
        else:
            assert flagged == seen, (rule.id, sorted(flagged), sorted(seen))
        compared += 1
        kinds.setdefault(rule.kind, 0)
        kinds[rule.kind] += bool(flagged)
    # Every GX-expressible kind of rule is exercised by at least one bad row of the corpus.
    assert compared >= {"leads": 20, "deals": 7, "feedback": 10}[table]
    assert [k for k, hits in kinds.items() if not hits] == []


def test_the_reasons_are_the_rule_messages(corpus, params, reference):
    """evaluate() reports exactly what rule_masks flags, under each rule's message."""
    frame = corpus["leads"]
    check = evaluate(frame, "leads", params, reference)
    for rule, mask in rule_masks(frame, "leads", params, reference):
        if rule.level == "warning":
            assert check.warnings.get(rule.message, 0) == int(mask.sum())
            continue
        listed = check.reasons.str.split("; ").apply(lambda r, m=rule.message: m in r)
        assert list(listed) == list(mask), rule.id
    assert check.reasons[frame.index[frame["employees"] == "-inf"][0]] == "employees: not finite"


def test_table_level_rules_agree(params, reference):
    from leadq.errors import BadInputError

    dup = _leads(20)
    dup.loc[:5, "lead_id"] = "G19"  # 6 repeats in 20 rows: above max_duplicate_id_share
    missing = _leads().drop(columns=["employees"])
    frames = {"leads": dup}
    results = run_gx(frames, suites_for(params, reference, ["leads"]), params, None)
    verdict = {r["expectation_config"]["type"]: r["success"] for r in
               results["leads"]["results"]}
    assert verdict["expect_column_proportion_of_unique_values_to_be_between"] is False
    check = evaluate(dup, "leads", params, reference)
    with pytest.raises(BadInputError, match="unique ids"):
        check_totals("leads", params, path="x.csv", rows=len(dup),
                     rejected=check.rejected_counts(), duplicate_ids=check.duplicate_ids,
                     examples=check.examples)
    with pytest.raises(BadInputError, match="required column"):
        check_columns(list(missing.columns), "leads", params, path="x.csv", for_training=False)
    results = run_gx({"leads": missing}, suites_for(params, reference, ["leads"]), params, None)
    failed = [r["expectation_config"]["kwargs"].get("column") for r in
              results["leads"]["results"] if not r["success"]]
    assert failed == ["employees"]


def test_every_rule_is_rendered_for_gx_or_marked_evaluator_only(params, reference):
    ref = {**reference, "lead_created": pd.Series(dtype="datetime64[ns]")}
    for table in CONTRACT:
        rules = rules_for(table, params, ref)
        assert uncovered(rules) == []
        assert {r.kind for r in rules} >= {Kind.REQUIRED, Kind.NOT_BLANK, Kind.DATE}
    only = {r.kind for t in CONTRACT for r in rules_for(t, params, ref) if r.evaluator_only}
    assert only == {Kind.REJECTED_SHARE, Kind.NOT_FUTURE, Kind.MOSTLY_PRESENT, Kind.KNOWN_LEAD,
                    Kind.AFTER_LEAD}
    suite = suites_for(params, reference, ["leads"])["leads"]
    assert json.loads(json.dumps(suite, allow_nan=False)) == suite  # strict JSON
    assert all(e["meta"]["rule"] and e["meta"]["level"] for e in suite["expectations"])


def test_coverage_check_fails_when_a_gx_mapping_is_removed(params, reference):
    rules = rules_for("leads", params, reference)
    partial = {k: v for k, v in GX_EXPECTATIONS.items() if k != Kind.MAX_LENGTH}
    gaps = uncovered(rules, partial)
    assert gaps and {r.kind for r in gaps} == {Kind.MAX_LENGTH}
    # The agreement test itself fails when the two sides drift: a GX threshold one off.
    frame = _lead_corpus()
    bad = [r for r, m in rule_masks(frame, "leads", params, reference)
           if r.kind == Kind.MAX_LENGTH][0]
    (view, kind, kwargs), = GX_EXPECTATIONS[Kind.MAX_LENGTH](bad)
    kwargs = {**kwargs, "max_value": kwargs["max_value"] + 500}
    suite = {"name": "drift", "meta": {}, "expectations": [{
        "type": kind, "kwargs": {"column": bad.column, **kwargs},
        "meta": {"level": "row", "rule": bad.id, "column": bad.column, "view": view}}]}
    got = _gx_unexpected(run_gx({"leads": frame}, {"leads": suite}, params, None,
                                result_format="COMPLETE")["leads"])
    flagged = set(np.flatnonzero(dict((r.id, m) for r, m in rule_masks(
        frame, "leads", params, reference))[bad.id]).tolist())
    assert got[bad.id] != flagged
