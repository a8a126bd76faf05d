"""Layered params: packaged defaults, a user's file of differences merged over them, unknown
keys and wrong types refused with the key named, `leadq params` printing the merged result."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from leadq.errors import ConfigError
from leadq.pipelines.cli import main as cli
from leadq.pipelines.params.loader import (
    OPEN_MAPPINGS,
    default_params,
    load_params,
    public_params,
)
from tests.conftest import REPO


def _write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_a_file_of_differences_is_merged_over_the_defaults(tmp_path):
    path = _write(tmp_path, "data:\n  leads:\n    path: leads.csv\n    label: converted\n"
                            "train:\n  hgb:\n    max_iter: 50\n")
    params = load_params(path)
    assert params["train"]["hgb"]["max_iter"] == 50
    assert params["train"]["hgb"]["learning_rate"] == default_params()["train"]["hgb"][
        "learning_rate"]
    assert params["data"]["leads"]["delimiter"] == ","
    assert params["data"]["deals"] is None  # no file named: not configured
    assert params["contracts"]["numeric_min"] is None  # no "counts are >= 0" default


def test_defaults_name_no_particular_crm():
    d = default_params()
    assert d["data"]["leads"]["id"] is None and d["data"]["leads"]["created_at"] is None
    assert d["features"]["categorical"] == [] and d["features"]["numeric"] == []
    assert d["evaluation"]["segments"] == [] and d["agreement"]["campaign_column"] is None


def test_unknown_key_is_exit_2_naming_the_closest_key(tmp_path, capsys):
    path = _write(tmp_path, "data:\n  leads:\n    path: x.csv\n    label: y\n"
                            "train:\n  min_positive: 10\n")
    code = cli(["params", "--params", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.min_positive: unknown parameter" in err
    assert "did you mean train.min_positives?" in err


def test_unknown_section_names_the_closest_one(tmp_path):
    with pytest.raises(ConfigError, match=r"contract: unknown parameter; did you mean "
                                          r"contracts\?"):
        load_params(_write(tmp_path, "contract:\n  max_text_length: 5\n"))


@pytest.mark.parametrize("text, key, expected", [
    ("train:\n  min_positives: forty\n", "train.min_positives", "a number"),
    ("split:\n  train: [0.6]\n", "split.train", "a number"),
    ("calibration:\n  enabled: 'yes please'\n", "calibration.enabled", "true or false"),
    ("features:\n  categorical: source\n", "features.categorical", "a list"),
    ("agreement:\n  tiers: 3\n", "agreement.tiers", "a mapping"),
])
def test_wrong_type_names_the_key_and_what_was_expected(tmp_path, text, key, expected):
    with pytest.raises(ConfigError) as exc:
        load_params(_write(tmp_path, text))
    assert key in str(exc.value) and f"expected {expected}" in str(exc.value)


def test_free_form_mappings_stay_open_and_replace_the_default(tmp_path):
    path = _write(tmp_path, "data:\n  leads:\n    path: x.csv\n    label: y\n"
                            "contracts:\n  numeric_bounds: {balance: null, age: [18, null]}\n"
                            "registry:\n  criteria: {min_test_pr_auc: 0.2}\n")
    params = load_params(path)
    assert params["contracts"]["numeric_bounds"] == {"balance": None, "age": [18, None]}
    assert params["registry"]["criteria"] == {"min_test_pr_auc": 0.2}


def test_bad_numeric_bounds_name_the_column(tmp_path):
    with pytest.raises(ConfigError, match=r"contracts\.numeric_bounds\.age: expected \[min, "
                                          r"max\]"):
        load_params(_write(tmp_path, "contracts:\n  numeric_bounds: {age: 18}\n"))


def test_deals_without_an_id_are_refused_with_the_fix(tmp_path):
    path = _write(tmp_path, "data:\n  leads:\n    path: x.csv\n    created_at: d\n"
                            "  deals:\n    path: d.csv\n    lead_id: l\n    closed_at: c\n")
    with pytest.raises(ConfigError, match=r"data\.leads\.id: null.*data\.leads\.label"):
        load_params(path)


def test_a_dumped_effective_dict_validates_again(tmp_path, base_params, small_crm):
    """write_params (tests/conftest.py) writes the whole merged dict: it must load unchanged."""
    from tests.conftest import write_params

    path = write_params(tmp_path, base_params, small_crm)
    again = public_params(load_params(path))
    assert again["features"] == base_params["features"]
    assert again["data"]["deals"]["lead_id"] == "lead_id"


def test_leadq_params_prints_the_merged_config(capsys):
    path = REPO / "params.yaml"
    assert cli(["params", "--params", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == public_params(load_params(path))
    assert printed["data"]["leads"]["id"] == "lead_id"  # from params.yaml
    assert printed["train"]["search"]["folds"] == 3      # from the defaults
    assert cli(["--json", "params", "--params", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["min_positives"] == 40


def test_repository_params_hold_only_differences():
    """params.yaml and the Olist example repeat no default (they say what differs). Open
    mappings are replaced whole, so they may; Olist's `outcome: null` says its deals file
    lists won deals only, which is the point of the example."""
    defaults = default_params()
    deliberate = {"data.deals.outcome"}

    def same(user, default, where=""):
        for key, value in user.items():
            if f"{where}{key}" in OPEN_MAPPINGS or f"{where}{key}" in deliberate:
                continue
            if isinstance(value, dict) and isinstance(default.get(key), dict):
                yield from same(value, default[key], f"{where}{key}.")
            elif default.get(key, object()) == value:
                yield f"{where}{key}"

    for path in (REPO / "params.yaml", REPO / "examples/olist/params.yaml"):
        repeated = list(same(yaml.safe_load(path.read_text()), defaults))
        assert not repeated, f"{path.name} repeats defaults: {repeated}"


@pytest.mark.parametrize("written", ["'\\t'", "\\t", "tab", '"\\t"'])
def test_a_tab_delimiter_reads_as_a_tab_however_yaml_spells_it(tmp_path, written):
    """`delimiter: '\\t'` in single quotes is two characters in YAML: leadq reads it as the
    tab it means, in every table, instead of failing deep inside the CSV reader."""
    path = _write(tmp_path, f"data:\n  leads:\n    path: x.txt\n    label: y\n"
                            f"    delimiter: {written}\n")
    assert load_params(path)["data"]["leads"]["delimiter"] == "\t"


def test_a_delimiter_of_several_characters_is_refused_naming_the_setting(tmp_path):
    path = _write(tmp_path, "data:\n  leads:\n    path: x.csv\n    label: y\n"
                            "    delimiter: ';;'\n")
    with pytest.raises(ConfigError, match=r"data\.leads\.delimiter: ';;' is not one character"):
        load_params(path)


def test_old_sla_and_campaign_keys_move_into_the_agreement_with_a_warning(caplog):
    from leadq.pipelines.params.loader import effective_params

    params = effective_params({"report": {"sla_hours": 8, "campaign_column": "campaign"},
                               "threshold": {"policy": "min_precision", "min_precision": 0.4,
                                             "constraints": {"capacity": 120}}})
    a = params["agreement"]
    assert (a["sla_hours"], a["campaign_column"], a["capacity_per_week"]) == (8, "campaign", 120)
    assert (a["mql"]["policy"], a["mql"]["min_precision"]) == ("min_precision", 0.4)
    assert "report.sla_hours moved to agreement.sla_hours" in caplog.text


def test_two_old_slas_that_disagree_are_refused_naming_both():
    from leadq.pipelines.params.loader import effective_params

    with pytest.raises(ConfigError, match="report.sla_hours.*recalibration.sla_hours|"
                                          "recalibration.sla_hours.*report.sla_hours"):
        effective_params({"report": {"sla_hours": 48}, "recalibration": {"sla_hours": 24}})


def test_a_removed_recalibration_constraint_is_exit_2_naming_the_agreement():
    from leadq.pipelines.params.loader import effective_params

    with pytest.raises(ConfigError, match="threshold.constraints.min_precision.*agreement.mql"):
        effective_params({"threshold": {"constraints": {"min_precision": 0.3}}})


def dotted_keys(node: dict, prefix: str = ""):
    """Every key of a params tree, dotted (sections too)."""
    for k, v in node.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from dotted_keys(v, f"{prefix}{k}.")


def test_the_sla_hours_are_defined_in_exactly_one_place():
    """An architecture test: the SLA is one setting of the agreement, nowhere else."""
    from leadq.pipelines.params.loader import default_params

    sla = [k for k in dotted_keys(default_params()) if "sla" in k.rsplit(".", 1)[-1]]
    assert sla == ["agreement.sla_hours", "agreement.sla_target"]
    # No code reads an SLA from anywhere but the agreement.
    offenders = [p for p in [*REPO.glob("pipelines/**/*.py"), *REPO.glob("models/*.py"),
                             *REPO.glob("features/*.py")]
                 if re.search(r"""\[["'](report|recalibration)["']\].*sla_hours|"""
                              r"""get\(["']sla_hours""", p.read_text())]
    assert offenders == []


def test_every_value_rule_names_a_key_that_exists():
    """A renamed key must not leave its value rule behind (the rule would silently stop)."""
    from leadq.pipelines.params import loader

    known = set(dotted_keys(default_params()))
    for name in ("POSITIVE_INTS", "POSITIVE_INT_LISTS", "SHARES", "FRACTIONS", "TEXT_KEYS",
                 "POSITIVE_NUMBERS", "NON_NEGATIVE_NUMBERS"):
        rules = getattr(loader, name)
        if name == "TEXT_KEYS":  # the column keys are every table × every role, on purpose
            rules = {k for k in rules if not k.startswith("data.")}
        assert rules <= known, (name, rules - known)


def test_an_impossible_sla_is_exit_2_naming_the_key():
    from leadq.pipelines.params.loader import effective_params

    with pytest.raises(ConfigError, match="agreement.sla_hours: expected a number above 0"):
        effective_params({"agreement": {"sla_hours": 0}})


def test_setting_reads_merged_params_and_names_a_missing_key():
    from leadq.pipelines.params.loader import effective_params
    from leadq.settings import MissingSettingError, setting

    params = effective_params({})
    assert setting(params, "train.search.trials", int) == params["train"]["search"]["trials"]
    assert setting({"a": {"b": 2}}, "a.b", float) == 2.0 and isinstance(
        setting({"a": {"b": 2}}, "a.b", float), float)
    with pytest.raises(MissingSettingError, match="'train.search' .*train.search.trials"):
        setting({"train": {}}, "train.search.trials")
    with pytest.raises(TypeError, match="'a.b': expected a whole number"):
        setting({"a": {"b": 2.5}}, "a.b", int)
    with pytest.raises(TypeError, match="'a.b': expected int, got str"):
        setting({"a": {"b": "x"}}, "a.b", int)
