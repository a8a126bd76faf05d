"""Lookup tables joined to the leads: the loose key (case, spaces, - and _ ignored), the
left join that keeps every lead in place, repeated keys, and `data.lookups` as every command
reads it (leadq.pipelines.io.lookups.enrich)."""

from __future__ import annotations

import pandas as pd
import pytest

from leadq.errors import BadInputError, ConfigError
from leadq.features.lookups import duplicate_keys, join_key, join_lookup
from leadq.pipelines.io.lookups import enrich
from leadq.pipelines.params.loader import effective_params

PRODUCTS = pd.DataFrame({"product": ["GTX Pro", "GTX Basic", "MG Special", "  "],
                         "sales_price": ["4821", "550", "55", "999"],
                         "series": ["GTX", "GTX", "MG", "blank"]})


# ------------------------------------------------------------------------------ join_key

@pytest.mark.parametrize("cell", ["GTX Pro", "GTXPro", "gtx pro", " GTX-PRO ", "gtx_pro"])
def test_join_key_ignores_case_spaces_hyphens_and_underscores(cell):
    assert join_key(pd.Series([cell])).tolist() == ["gtxpro"]


def test_join_key_folds_case_beyond_ascii_and_keeps_digits():
    assert join_key(pd.Series(["Straße 5", "STRASSE5", "Müller"])).tolist() == [
        "strasse5", "strasse5", "müller"]


def test_join_key_of_a_blank_is_missing():
    out = join_key(pd.Series(["", "   ", None, "--", "_"]))
    assert out.isna().all()


def test_join_key_keeps_the_index():
    assert join_key(pd.Series(["A", "b"], index=[7, 3])).index.tolist() == [7, 3]


# ------------------------------------------------------------------------------ join_lookup

def _leads():
    return pd.DataFrame({"lead": ["l1", "l2", "l3", "l4", "l5", "l6"],
                         "product": ["GTXPro", "mg special", "Unknown", "", None, "GTX Basic"]},
                        index=[50, 10, 40, 20, 30, 0])


def test_left_join_keeps_every_lead_in_order_with_its_index():
    leads = _leads()
    out, unmatched = join_lookup(leads, PRODUCTS, on="product", key="product",
                                 columns=["sales_price", "series"])
    assert out.index.tolist() == [50, 10, 40, 20, 30, 0]
    assert out["lead"].tolist() == leads["lead"].tolist()
    assert list(out.columns) == ["lead", "product", "sales_price", "series"]
    assert out["product"].tolist()[:3] == ["GTXPro", "mg special", "Unknown"]  # leads untouched
    prices = out["sales_price"].tolist()
    assert prices[0] == "4821" and prices[1] == "55" and prices[5] == "550"
    assert out["series"].tolist()[0] == "GTX"
    assert out.loc[[40, 20, 30], "sales_price"].isna().all()
    assert unmatched == 3  # "Unknown", a blank key and a missing key


def test_a_blank_lead_key_never_matches_a_blank_lookup_key():
    # The lookup's blank-key row ("  " → 999) must not be joined to leads with a blank key.
    out, _ = join_lookup(_leads(), PRODUCTS, on="product", key="product",
                         columns=["sales_price"])
    assert "999" not in out["sales_price"].dropna().tolist()


def test_join_with_other_column_names_and_no_match_at_all():
    leads = pd.DataFrame({"item": ["X", "Y"]}, index=[3, 4])
    out, unmatched = join_lookup(leads, PRODUCTS, on="item", key="product",
                                 columns=["sales_price"])
    assert unmatched == 2
    assert out.index.tolist() == [3, 4] and out["sales_price"].isna().all()
    assert "product" not in out.columns  # only the listed columns are joined


def test_a_repeated_lead_key_gets_the_same_row_each_time():
    leads = pd.DataFrame({"product": ["GTX Pro", "gtxpro", "GTX-Pro"]})
    out, unmatched = join_lookup(leads, PRODUCTS, on="product", key="product",
                                 columns=["sales_price"])
    assert unmatched == 0 and out["sales_price"].tolist() == ["4821"] * 3


def test_a_float_key_matches_its_integer_spelling():
    leads = pd.DataFrame({"account": [1.0, 10.0, None]})
    table = pd.DataFrame({"account": ["1", "10"], "sector": ["retail", "software"]})
    out, unmatched = join_lookup(leads, table, on="account", key="account", columns=["sector"])
    assert out["sector"].tolist()[:2] == ["retail", "software"] and unmatched == 1


# ------------------------------------------------------------------------------ duplicate_keys

def test_duplicate_keys_marks_every_row_of_a_loose_repeat():
    table = pd.DataFrame({"product": ["GTX Pro", "Other", "gtx pro", "", None, "  ", "GTX-PRO"],
                          "x": range(7)})
    assert duplicate_keys(table, "product").tolist() == [True, False, True, False, False,
                                                         False, True]


def test_no_duplicates_in_a_clean_lookup():
    assert not duplicate_keys(PRODUCTS, "product").any()


# ------------------------------------------------------------------------------ enrich

def _params(tmp_path, lookups: dict, **leads) -> dict:
    params = effective_params({"data": {"leads": {"path": "leads.csv", "label": "y", **leads},
                                        "lookups": lookups}})
    params["_base_dir"] = str(tmp_path)
    return params


@pytest.fixture
def products_csv(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame({"product": ["GTX Pro", "GTX Basic", "MG Special"],
                  "sales_price": ["4821", "550", "55"],
                  "series": ["GTX", "GTX", "MG"]}).to_csv(path, index=False)
    return path


def test_effective_params_fills_a_lookup_entry_from_its_defaults(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["sales_price"]}})
    spec = params["data"]["lookups"]["products"]
    assert spec["on"] is None and spec["delimiter"] == "," and spec["encoding"] == "auto"
    assert spec["columns"] == ["sales_price"]


def test_enrich_joins_the_configured_columns(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["sales_price", "series"]}})
    leads = pd.DataFrame({"lead": ["a", "b", "c"], "product": ["GTXPro", "nope", "MG special"]})
    out = enrich(leads, params)
    assert list(out.columns) == ["lead", "product", "sales_price", "series"]
    assert out["lead"].tolist() == ["a", "b", "c"]
    assert out["sales_price"].tolist()[0] == "4821" and out["sales_price"].tolist()[2] == "55"
    assert pd.isna(out["sales_price"].iloc[1])
    assert out["series"].tolist()[0] == "GTX"


def test_enrich_joins_on_a_leads_column_named_otherwise(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": str(products_csv), "key": "product",
                                             "on": "item", "columns": ["sales_price"]}})
    out = enrich(pd.DataFrame({"item": ["gtx basic"]}), params)
    assert out["sales_price"].tolist() == ["550"]


def test_enrich_without_lookups_returns_the_leads_unchanged(tmp_path):
    leads = pd.DataFrame({"product": ["GTXPro"]})
    assert enrich(leads, _params(tmp_path, {})) is leads


def test_a_lookup_column_the_leads_have_already_is_a_config_error(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["sales_price", "series"]}})
    leads = pd.DataFrame({"product": ["GTXPro"], "series": ["mine"]})
    with pytest.raises(ConfigError, match=r"data\.lookups\.products\.columns: 'series'"):
        enrich(leads, params)


def test_leads_without_the_join_column_are_bad_input(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["sales_price"]}})
    with pytest.raises(BadInputError, match=r"data\.lookups\.products\.on"):
        enrich(pd.DataFrame({"sku": ["GTXPro"]}), params)


def test_a_missing_lookup_file_is_a_config_error_naming_the_entry(tmp_path):
    params = _params(tmp_path, {"products": {"path": "nope.csv", "key": "product",
                                             "columns": ["sales_price"]}})
    with pytest.raises(ConfigError, match=r"data\.lookups\.products\.path: .*nope\.csv"):
        enrich(pd.DataFrame({"product": ["GTXPro"]}), params)


def test_a_lookup_without_a_listed_column_is_bad_input_naming_it(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["list_price"]}})
    with pytest.raises(BadInputError, match="list_price"):
        enrich(pd.DataFrame({"product": ["GTXPro"]}), params)


def test_a_repeated_key_in_the_lookup_file_stops_with_the_file_and_lines(tmp_path):
    path = tmp_path / "dup.csv"
    pd.DataFrame({"product": ["GTX Pro", "MG Special", "gtx pro"],
                  "sales_price": ["1", "2", "3"]}).to_csv(path, index=False)
    params = _params(tmp_path, {"products": {"path": "dup.csv", "key": "product",
                                             "columns": ["sales_price"]}})
    with pytest.raises(BadInputError) as exc:
        enrich(pd.DataFrame({"product": ["GTXPro"]}), params)
    message = str(exc.value)
    assert str(path) in message and "unique lookup key" in message
    assert "lines 2, 4" in message
    assert "GTX Pro" not in message  # line numbers, not key values


def test_the_lookup_is_read_again_when_its_file_changes(tmp_path, products_csv):
    params = _params(tmp_path, {"products": {"path": "products.csv", "key": "product",
                                             "columns": ["sales_price"]}})
    leads = pd.DataFrame({"product": ["GTXPro"]})
    assert enrich(leads, params)["sales_price"].tolist() == ["4821"]
    pd.DataFrame({"product": ["GTX Pro"], "sales_price": ["5000.50"]}).to_csv(
        products_csv, index=False)
    assert enrich(leads, params)["sales_price"].tolist() == ["5000.50"]


@pytest.mark.parametrize("entry, key", [
    ({"path": "products.csv", "key": "product"}, "columns"),
    ({"path": "products.csv", "key": "product", "columns": []}, "columns"),
    ({"key": "product", "columns": ["sales_price"]}, "path"),
    ({"path": "products.csv", "columns": ["sales_price"]}, "key"),
])
def test_a_lookup_entry_without_a_required_key_is_refused_when_params_load(entry, key):
    with pytest.raises(ConfigError, match=rf"data\.lookups\.products\.{key}: required"):
        effective_params({"data": {"leads": {"path": "leads.csv", "label": "y"},
                                   "lookups": {"products": entry}}})


def test_an_unknown_key_in_a_lookup_entry_names_the_closest_one():
    with pytest.raises(ConfigError, match=r"data\.lookups\.products\.colums: unknown parameter; "
                                          r"did you mean data\.lookups\.products\.columns\?"):
        effective_params({"data": {"leads": {"path": "leads.csv", "label": "y"},
                                   "lookups": {"products": {"path": "p.csv", "key": "product",
                                                            "colums": ["x"]}}}})
