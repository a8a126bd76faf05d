"""A date the contract accepts is the date training and scoring see: one parser serves both."""

import pandas as pd

from leadq.features.contracts import check_rows
from leadq.features.tables import parse_dates
from leadq.pipelines.params.loader import load_params


def test_padded_dates_in_an_explicit_format_parse_the_same_everywhere():
    cells = pd.Series([" 2018.02.01", "2018.02.03 ", "2018-02-04"])
    parsed = parse_dates(cells, "%Y.%m.%d")
    assert parsed.iloc[:2].tolist() == [pd.Timestamp("2018-02-01"), pd.Timestamp("2018-02-03")]
    assert pd.isna(parsed.iloc[2])


def test_contract_and_typing_agree_on_every_created_at_cell():
    params = load_params("params.yaml")
    params["data"]["leads"]["date_format"] = "%Y.%m.%d"
    leads = pd.DataFrame({c: ["x"] * 3 for c in ("source", "campaign", "landing_page", "industry",
                                                  "country", "job_title", "email")})
    for col in params["features"]["numeric"]:
        leads[col] = "1"
    leads["lead_id"] = ["a", "b", "c"]
    leads["created_at"] = [" 2018.02.01", "2018.02.03 ", "03/02/2018"]
    reasons = check_rows(leads, "leads", params, None)
    date_rejected = reasons.str.contains("created_at").to_numpy()
    typed_nat = parse_dates(leads["created_at"], "%Y.%m.%d").isna().to_numpy()
    assert (date_rejected == typed_nat).all()
    assert date_rejected.tolist() == [False, False, True]
