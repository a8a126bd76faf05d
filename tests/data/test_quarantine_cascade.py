"""The quarantine cascade at training time, checked row by row and id by id.

A lead that fails its contract is quarantined; its deals and feedback then refer to a lead the
model never sees, so they go to their own quarantines with the reason "unknown lead" instead of
labelling a lead that is not there. Every input row of every table ends up in exactly one
place: the frame training uses or that table's quarantine file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import quarantine_file

UNKNOWN = "lead_id: unknown lead"

# The contract's messages name the setting that changes them.
BAD_DATE = "created_at: unparseable date (expected ISO8601, data.leads.date_format)"


@pytest.fixture
def spoilt_crm(small_crm, tmp_path) -> dict:
    """A copy of the small CRM in which three leads that have deals AND feedback are spoilt:
    an unparseable created_at, a missing id, and an id overwritten by an earlier lead's id."""
    crm = {t: tmp_path / f"{t}.csv" for t in ("leads", "deals", "feedback")}
    for table, path in crm.items():
        path.write_bytes(Path(small_crm[table]).read_bytes())
    leads = pd.read_csv(crm["leads"], dtype=str, keep_default_na=False)
    deals = pd.read_csv(crm["deals"], dtype=str, keep_default_na=False)
    feedback = pd.read_csv(crm["feedback"], dtype=str, keep_default_na=False)
    n_deals = deals["lead_id"].value_counts()
    both = leads.index[leads["lead_id"].isin(n_deals.index)
                       & leads["lead_id"].isin(feedback["lead_id"])]
    # One lead with two deals, so a lead's every deal must follow it, not just the first.
    two = [i for i in both if n_deals[leads.loc[i, "lead_id"]] >= 2]
    bad_date, no_id, dup = two[0], both[10], both[20]
    assert len({bad_date, no_id, dup}) == 3
    donor = 0  # an earlier lead: its row stays, `dup` becomes its duplicate
    assert donor < dup and leads.loc[donor, "lead_id"] not in set(
        leads.loc[[bad_date, no_id, dup], "lead_id"])
    lost = {leads.loc[i, "lead_id"] for i in (bad_date, no_id, dup)}  # ids no good row has
    leads.loc[bad_date, "created_at"] = "31/02/2025"
    leads.loc[no_id, "lead_id"] = ""
    leads.loc[dup, "lead_id"] = leads.loc[donor, "lead_id"]
    leads.to_csv(crm["leads"], index=False)
    return {"crm": crm, "dir": tmp_path, "leads": leads, "deals": deals, "feedback": feedback,
            "lost": lost, "rows": {"bad_date": bad_date, "no_id": no_id, "dup": dup},
            "donor": leads.loc[donor, "lead_id"]}


def _quarantine(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(quarantine_file(directory, table), dtype=str, keep_default_na=False)


def test_spoilt_leads_take_their_deals_and_feedback_into_quarantine(spoilt_crm, make_params):
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params

    s = spoilt_crm
    tables = load_crm(load_params(make_params(s["dir"], s["crm"])))
    lost = s["lost"]

    # Leads: the three spoilt rows are quarantined with their own reason, the rest used.
    leads_in, q_leads = s["leads"], _quarantine(s["dir"], "leads")
    used_ids = tables.leads["lead_id"].astype(str).tolist()
    assert Counter(leads_in["lead_id"]) == Counter(used_ids) + Counter(q_leads["lead_id"])
    assert len(set(used_ids)) == len(used_ids) == len(leads_in) - 3
    assert not lost & set(used_ids) and s["donor"] in used_ids
    rows = s["rows"]
    assert q_leads["reason"].tolist() == [
        reason for _, reason in sorted([
            (rows["bad_date"], BAD_DATE),
            (rows["no_id"], "lead_id: missing"),
            (rows["dup"], "lead_id: duplicate id")])]
    acct = tables.accounting["leads"]
    assert (acct.read, acct.used, acct.quarantine) == (
        len(leads_in), len(leads_in) - 3, str(quarantine_file(s["dir"], "leads")))

    # Feedback has a `reason` column of its own (why sales rejected the lead): it is kept as
    # it was, and the contract's reason is added beside it as `quarantine_reason`.
    for table, key, why in (("deals", "deal_id", "reason"),
                            ("feedback", "lead_id", "quarantine_reason")):
        raw_in = s[table]
        used = getattr(tables, table)
        # The used frame keeps the input's row positions: map them back to the input rows.
        assert used["lead_id"].tolist() == raw_in.loc[used.index, "lead_id"].str.strip().tolist()
        used_keys = raw_in.loc[used.index, key].tolist()
        q = _quarantine(s["dir"], table)
        # Every input row is used or quarantined, none lost, none in both or twice.
        assert Counter(raw_in[key]) == Counter(used_keys) + Counter(q[key]), table
        assert not set(used_keys) & set(q[key]), table
        # Exactly the spoilt leads' rows are quarantined, with the reason "unknown lead" ...
        theirs = raw_in[raw_in["lead_id"].isin(lost)]
        assert len(theirs) >= 3
        assert sorted(q[key]) == sorted(theirs[key]), table
        assert set(q[why]) == {UNKNOWN}, table
        # ... as they were in the input (original columns and values, plus the reason).
        pd.testing.assert_frame_equal(
            q.drop(columns=why).sort_values(key).reset_index(drop=True),
            theirs.sort_values(key).reset_index(drop=True))
        # ... and none of them reaches the frame training labels from.
        assert not set(used["lead_id"]) & lost, table
        acct = tables.accounting[table]
        assert acct.read == len(raw_in) and acct.used == len(used) == len(raw_in) - len(theirs)
        assert dict(acct.rejected) == {UNKNOWN: len(theirs)}, table
        assert acct.quarantine == str(quarantine_file(s["dir"], table))


def test_a_later_table_failing_leaves_no_quarantine_behind(spoilt_crm, make_params):
    """The leads pass (three rows quarantined), then the deals file is missing: a table-level
    failure writes nothing, so the leads' quarantine must not appear either."""
    from leadq.errors import BadInputError
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params

    s = spoilt_crm
    s["crm"]["deals"].unlink()
    params = load_params(make_params(s["dir"], s["crm"]))
    before = sorted(p.name for p in s["dir"].iterdir())
    with pytest.raises(BadInputError, match="deals.csv"):
        load_crm(params)
    after = sorted(p.name for p in s["dir"].iterdir())
    assert after == before and not list(s["dir"].glob("*.rejected.csv"))
