"""`leadq init` on exports it has never seen, then train → score → report on the file it wrote,
unedited: a `;`-separated telemarketing export without id or date, a CRM export with a stage
column, two-digit-year dates, personal fields, leaks and a lookup spelled differently, an
export whose label init cannot settle, a lookup with a repeated key, and leads carrying their
own conversion date. Every export is synthetic (seeded numpy) and small, so each train takes
seconds; MLflow lives in the test's tmp_path.

(An unknown key in a params file exiting 2 with the closest key named is covered by
tests/code/test_params.py::test_unknown_key_is_exit_2_naming_the_closest_key; the loader
checks every section the same way, so `data.leads.creatd_at` gets "did you mean
data.leads.created_at?" too.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadq.pipelines.cli import main as cli
from tests.helpers import cli_json, quarantine_file

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _mlflow_store(tmp_path, monkeypatch):
    # conftest drops the variable again after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _tree(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _train_score_report(capsys, params: Path, leads: Path, directory: Path) -> dict:
    """train → score → report on `params`, each required to exit 0; what each wrote."""
    code, train_out, err = _run(capsys, ["--json", "train", "--params", str(params)])
    assert code == 0, err
    summary = json.loads(train_out[train_out.index("\n{") + 1:])
    # Scoring needs a champion: the first model of an export must be promoted. Since the
    # baseline gate (registry.allow_below_baseline: false) a first model losing to a
    # library-default baseline by > 0.005 test ROC AUC is not, on about a third of seeds of
    # these small exports; the seeds below are ones where it wins.
    assert summary["champion"], summary["decision"]
    scores = directory / "scores.csv"
    code, _, err = _run(capsys, ["score", "--params", str(params), "--input", str(leads),
                                 "--output", str(scores)])
    assert code == 0, err
    report = directory / "report.html"
    code, _, err = _run(capsys, ["report", "--params", str(params), "--out", str(report)])
    assert code == 0, err
    return {"train": train_out, "scores": pd.read_csv(scores, dtype=str, keep_default_na=False),
            "html": report.read_text(encoding="utf-8")}


# ------------------------------------------------------------------------------ exports

def telemarketing(path: Path, n: int = 2000, seed: int = 7) -> pd.DataFrame:
    """A bank-marketing-like export: `;` between fields, no id, no date, negative numbers
    (balance, emp_var_rate, pdays = -1), the outcome in `y` as yes/no."""
    rng = np.random.default_rng(seed)
    balance = np.round(rng.normal(1200, 2500, n)).astype(int)
    emp = rng.choice([-3.4, -1.8, -0.1, 1.1, 1.4], n)
    campaign = rng.integers(1, 12, n)
    pdays = rng.choice([-1, -1, -1, 5, 30, 90], n)
    occupation = rng.choice(["admin.", "technician", "services", "management", "retired",
                             "student"], n)
    logit = (-2.0 + 0.0003 * balance - 0.5 * emp - 0.15 * campaign
             + 0.8 * (occupation == "student") + 0.9 * (pdays > 0))
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n), "occupation": occupation, "balance": balance,
        "contact": rng.choice(["cellular", "telephone"], n), "campaign": campaign,
        "pdays": pdays, "emp_var_rate": emp, "y": y,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep=";", index=False)
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)


PRICES = {"GTX Pro": 4821, "GTX Basic": 550, "MG Special": 55, "GTK 500": 26768}
LEAD_SPELLING = {"GTX Pro": "GTXPro", "GTX Basic": "gtx basic", "MG Special": "MG-Special",
                 "GTK 500": "GTK 500"}


def crm_export(directory: Path, n: int = 2500, seed: int = 12) -> dict[str, Path]:
    """A CRM export: a text id, created_at and a birth date as dd/mm/yy (birth years 60-99,
    which strptime puts in the 2060s), e-mail addresses, a Won/Lost/Open stage (open = the
    recent leads), `close_value` filled only once a deal closed, `signal_x` that is nearly the
    label, and a product spelled otherwise than in products.csv (which has its price)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-01")
    created = start + pd.to_timedelta(np.sort(rng.integers(0, 540, n)), unit="D")
    product = rng.choice(list(PRICES), n)
    sector = rng.choice(["retail", "software", "medical", "finance", "telecom"], n)
    visits = rng.poisson(4, n)
    employees = rng.integers(1, 5000, n)
    logit = (-1.5 + 1.6 * (sector == "software") + 0.9 * np.log1p(visits)
             - 1.2 * (product == "GTK 500") + 0.8 * (product == "GTX Pro"))
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    recent = (start + pd.Timedelta(days=540) - created).days < 60
    stage = np.where(recent & (rng.random(n) < 0.8), "Open", np.where(won, "Won", "Lost"))
    close_value = np.where(stage == "Open", "",
                           rng.normal(3000, 800, n).round().astype(int).astype(str))
    # One column nearly the label under an innocent name: out-of-fold ROC AUC about 0.92.
    signal = np.where(won, rng.normal(0.65, 0.15, n), rng.normal(0.35, 0.15, n)).round(3)
    dob = pd.Timestamp("1960-01-01") + pd.to_timedelta(rng.integers(0, 365 * 39, n), unit="D")
    domains = rng.choice(["gmail.com", "acme.com", "yahoo.com", "corp.io"], n)
    leads = pd.DataFrame({
        "opportunity_id": [f"OPP{100000 + i}" for i in rng.permutation(n)],
        "created_at": created.strftime("%d/%m/%y"),
        "dob": dob.strftime("%d/%m/%y"),
        "email": [f"user{i}@{d}" for i, d in enumerate(domains)],
        "sector": sector, "employees": employees, "web_visits": visits,
        "product": [LEAD_SPELLING[p] for p in product],
        "stage": stage, "close_value": close_value, "signal_x": signal,
    })
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"leads": directory / "leads.csv", "products": directory / "products.csv"}
    leads.to_csv(paths["leads"], index=False)
    pd.DataFrame({"product": list(PRICES), "sales_price": list(PRICES.values())}).to_csv(
        paths["products"], index=False)
    return paths


def conversion_export(path: Path, n: int = 2000, seed: int = 5) -> None:
    """Leads with ISO created_at (Z) and converted_at filled for those that converted."""
    rng = np.random.default_rng(seed)
    created = pd.Series(pd.Timestamp("2025-01-01", tz="UTC")
                        + pd.to_timedelta(np.sort(rng.integers(0, 600 * 24, n)), unit="h"))
    source = rng.choice(["ads", "organic", "referral", "event"], n)
    pages = rng.poisson(5, n)
    converts = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 1.2 * (source == "referral")
                                                 + 0.15 * pages)))
    converted = created + pd.to_timedelta(rng.integers(1, 120 * 24, n), unit="h")
    converted = converted.where(converts & (converted <= created.max()))
    iso = "%Y-%m-%dT%H:%M:%SZ"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"lead_id": [f"L{i:05d}" for i in range(n)],
                  "created_at": created.dt.strftime(iso), "source": source,
                  "pages_viewed": pages,
                  "converted_at": converted.dt.strftime(iso).fillna("")}).to_csv(path,
                                                                                index=False)


# ------------------------------------------------------------------------------ a: no id, no date

def test_telemarketing_export_without_id_or_date(tmp_path, capsys):
    export = tmp_path / "export" / "bank.csv"
    original = telemarketing(export)
    params = tmp_path / "params.yaml"
    summary = cli_json(capsys, ["init", "--leads", str(export), "--out", str(params)])
    assert summary["id"] is None and summary["created_at"] is None
    assert summary["label_form"] == "binary" and summary["label"] == "y"

    tree = _tree(params)
    leads = tree["data"]["leads"]
    assert "id" not in leads and "created_at" not in leads and "date_format" not in leads
    assert leads["label"] == "y" and leads["delimiter"] == ";"
    # yes / no are spellings the label reader knows: none is written, so an export that later
    # spells them Yes / NO (or 1 / 0.0) still reads.
    assert "label_won" not in leads and "label_lost" not in leads
    assert {"balance", "emp_var_rate", "pdays"} <= set(tree["features"]["numeric"])
    assert "y" not in tree["features"]["numeric"] + tree["features"].get("categorical", [])
    # Only differences from the defaults: no bound that would reject the negative numbers.
    assert "contracts" not in tree

    ran = _train_score_report(capsys, params, export, tmp_path)
    assert "held-out (random split: no date column) test" in ran["train"]
    assert "out-of-time" not in ran["train"]
    # No row lost to a "below 0" rule (the training quarantine is in leadq-out/ beside the
    # params file, never beside the export).
    assert not list(tmp_path.rglob("*.rejected.csv"))

    scored = ran["scores"]
    assert len(scored) == len(original)
    assert scored["row_number"].astype(int).tolist() == list(range(1, len(original) + 1))
    pd.testing.assert_frame_equal(scored[list(original.columns)], original)
    assert scored["score"].astype(float).between(0, 1).all()

    html = ran["html"]
    assert "as of None" not in html and "out-of-time" not in html
    assert "held-out (random split: no date column)" in html


def test_a_tab_separated_export_gets_a_params_file_that_reads_back_as_tabs(tmp_path, capsys):
    """init writes the tab as YAML's "\\t" (a single-quoted '\\t' would be two characters and
    stop training with a reader error), and the chain runs on the file it describes."""
    export = tmp_path / "export" / "bank.txt"
    original = telemarketing(export)
    original.to_csv(export, sep="\t", index=False)
    params = tmp_path / "params.yaml"
    cli_json(capsys, ["init", "--leads", str(export), "--out", str(params)])
    assert 'delimiter: "\\t"' in params.read_text()
    assert _tree(params)["data"]["leads"]["delimiter"] == "\t"
    ran = _train_score_report(capsys, params, export, tmp_path)
    assert len(ran["scores"]) == len(original)


def test_a_report_footer_is_profiled_around_and_quarantined_by_training(tmp_path, capsys):
    """A CRM report's footer lines (a total, a confidentiality line) have one field where the
    header has many: init profiles the rows above them and says so, and training accounts
    for them as quarantined rows, by line."""
    export = tmp_path / "export" / "bank.csv"
    original = telemarketing(export)
    with export.open("a") as f:
        f.write('\n"Grand Totals (2000 records)"\n\n"Confidential Information"\n')
    params = tmp_path / "params.yaml"
    summary = cli_json(capsys, ["init", "--leads", str(export), "--out", str(params)])
    assert summary["label"] == "y"
    assert "2 line(s) with another field count than the header" in params.read_text()
    code, _, err = _run(capsys, ["train", "--params", str(params)])
    assert code == 0, err
    rejected = pd.read_csv(quarantine_file(tmp_path, "leads", "bank"), dtype=str)
    assert len(rejected) == 2 and rejected["reason"].str.startswith("ragged row").all()
    assert len(original) == 2000


@pytest.mark.parametrize("sep", [";", ","])
def test_a_title_line_above_the_header_is_named_as_such(tmp_path, capsys, sep):
    export = tmp_path / "export" / "bank.csv"
    telemarketing(export)
    if sep == ",":
        pd.read_csv(export, sep=";").to_csv(export, index=False)
    export.write_text('"Lead report"\n\n' + export.read_text())
    code, _, err = _run(capsys, ["init", "--leads", str(export), "--out",
                                 str(tmp_path / "params.yaml")])
    assert code == 2
    assert "title line" in err or "report title" in err


@pytest.mark.parametrize("outcome", ["flag", "date"])
def test_a_hubspot_like_contacts_export_gets_its_outcome_and_its_stage_set_aside(tmp_path,
                                                                                 capsys,
                                                                                 outcome):
    """"Became a Customer" (yes / no), or its date, is the outcome, while yes / no attributes
    that merely mention customers are not; the lifecycle stage and lead status are written by
    sales and stay out of the inputs."""
    rng = np.random.default_rng(3)
    n = 600
    customer = rng.random(n) < 0.2
    created = pd.date_range("2025-01-01", periods=n, freq="11h")
    frame = pd.DataFrame({
        "Record ID": np.arange(100_000, 100_000 + n),
        "Create Date": created.strftime("%Y-%m-%d %H:%M"),
        "Number of Pageviews": rng.poisson(4, n) + customer,
        "Original Source": rng.choice(["Organic Search", "Paid Social", "Direct Traffic"], n),
        "Existing Customer": rng.choice(["Yes", "No"], n),
        "Is Customer Referral": rng.choice(["Yes", "No"], n),
        "Lifecycle Stage": np.where(customer, "customer",
                                    rng.choice(["lead", "subscriber", "opportunity"], n)),
        "Lead Status": rng.choice(["New", "Open", "In Progress", "Unqualified"], n),
    })
    if outcome == "flag":
        frame["Became a Customer"] = np.where(customer, "Yes", "No")
    else:
        won = pd.Series(created + pd.Timedelta(days=3)).dt.strftime("%Y-%m-%d %H:%M")
        frame["Became a Customer Date"] = won.where(customer, "")
    export = tmp_path / "contacts.csv"
    frame.to_csv(export, index=False)
    summary = cli_json(capsys, ["init", "--leads", str(export), "--out",
                                str(tmp_path / "params.yaml")])
    leads = _tree(tmp_path / "params.yaml")["data"]["leads"]
    if outcome == "flag":
        assert summary["label"] == "Became a Customer" == leads["label"]
    else:
        assert leads["converted_at"] == "Became a Customer Date"
        assert leads["created_at"] == "Create Date"
    tree = _tree(tmp_path / "params.yaml")
    inputs = tree["features"].get("numeric", []) + tree["features"].get("categorical", [])
    assert "Lifecycle Stage" not in inputs and "Lead Status" not in inputs
    assert "Number of Pageviews" in inputs


def test_deal_ids_that_differ_by_case_alone_are_named_not_matched(tmp_path, capsys):
    """Ids compare exactly (Salesforce's 15-character ids differ by case alone), so a deals
    file that lower-cases them matches nothing; init says that case is the difference."""
    n = 300
    leads = pd.DataFrame({"Lead ID": [f"00Q5e{i:05d}AbC" for i in range(n)],
                          "Created": pd.date_range("2025-01-01", periods=n, freq="D")
                          .strftime("%Y-%m-%d"),
                          "Source": np.resize(["Web", "Event", "Partner"], n)})
    leads.to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead": leads["Lead ID"].str.lower().iloc[::3],
                  "won_on": "2025-12-01"}).to_csv(tmp_path / "deals.csv", index=False)
    code, _, err = _run(capsys, ["init", "--leads", str(tmp_path / "leads.csv"), "--deals",
                                 str(tmp_path / "deals.csv"), "--out",
                                 str(tmp_path / "params.yaml")])
    assert code == 2
    assert "'lead' matches 100% when case is ignored" in err


def _hand_params(directory: Path, export: Path, bounds: dict) -> Path:
    """What a user writes by hand: a global `numeric_min: 0` and per-column bounds over it."""
    path = directory / "hand.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"leads": {"path": str(export), "delimiter": ";", "label": "y"}},
        "features": {"numeric": ["age", "balance", "campaign"], "categorical": ["contact"]},
        "contracts": {"numeric_min": 0, "numeric_bounds": bounds},
        "train": {"candidates": ["logreg"], "search": {"enabled": False}},
        "registry": {"model_name": "hand", "criteria": {}},
    }, sort_keys=False))
    return path


@pytest.mark.parametrize("bounds", [{"balance": None}, {"balance": [None, None]}],
                         ids=["null", "null-null"])
def test_null_numeric_bounds_train_and_override_numeric_min(tmp_path, capsys, bounds):
    """The issue's failures 3 and 4: `numeric_bounds: {balance: null}` and `[null, null]`."""
    from leadq.features.contracts import check_rows
    from leadq.pipelines.params.loader import load_params

    export = tmp_path / "export" / "bank.csv"
    original = telemarketing(export, n=1500, seed=3)
    negative = original["balance"].astype(int) < 0
    assert negative.mean() > 0.2
    # The control: numeric_min 0 alone rejects the negative balances...
    control = load_params(_hand_params(tmp_path, export, {}))
    reasons = check_rows(original, "leads", control)
    assert (reasons[negative.to_numpy()].str.contains("balance")).all()
    # ...and a null bound for balance lifts it: training keeps every row.
    path = _hand_params(tmp_path, export, bounds)
    assert check_rows(original, "leads", load_params(path)).eq("").all()
    code, _, err = _run(capsys, ["train", "--params", str(path)])
    assert code == 0, err
    assert not list(tmp_path.rglob("*.rejected.csv"))


# ------------------------------------------------------------------------------ b: a CRM export

def test_crm_export_with_stage_dates_personal_fields_leaks_and_a_lookup(tmp_path, capsys):
    from leadq.pipelines.io.files import read_table
    from leadq.pipelines.io.lookups import enrich
    from leadq.pipelines.params.loader import load_params

    paths = crm_export(tmp_path / "crm")
    params = tmp_path / "crm" / "p.yaml"
    argv = ["init", "--leads", str(paths["leads"]), "--lookup", f"{paths['products']}:product",
            "--out", str(params)]
    summary = cli_json(capsys, argv)
    first = params.read_bytes()
    tree = _tree(params)
    leads, feats = tree["data"]["leads"], tree["features"]
    inputs = feats.get("categorical", []) + feats.get("numeric", [])

    assert leads["id"] == "opportunity_id"
    assert leads["created_at"] == "created_at" and leads["date_format"] == "%d/%m/%y"
    assert summary["label_form"] == "stage" and leads["label"] == "stage"
    assert leads["label_won"] == ["Won"] and leads["label_lost"] == ["Lost"]
    assert leads["label_open"] == ["Open"]
    assert summary["roles"]["dob"] == "personal" and "dob" in leads["personal"]
    assert summary["roles"]["email"] == "email"
    assert feats["email_column"] == "email" and "email" in leads["personal"]
    assert not {"dob", "email", "stage", "opportunity_id", "created_at"} & set(inputs)
    # Leaks: close_value by its name, signal_x by what it predicts; neither is an input.
    assert {"close_value", "signal_x"} <= set(feats["extra_forbidden"])
    assert not {"close_value", "signal_x"} & set(inputs)
    assert "name says" in summary["leak_suspects"]["close_value"]
    assert "ROC AUC" in summary["leak_suspects"]["signal_x"]
    # The lookup: its price is a numeric input, joined on the loosely matched product.
    lookup = tree["data"]["lookups"]["products"]
    assert lookup["key"] == "product" and "sales_price" in lookup["columns"]
    assert Path(lookup["path"]).name == "products.csv"
    # Four prices, one per product, whose conversion rates do not rise or fall with the price:
    # categories (issue 28), their reason in the file.
    assert "sales_price" in feats["categorical"] and summary["roles"]["sales_price"] == \
        "categorical"
    assert "rates do not follow the value" in params.read_text(encoding="utf-8")
    assert "2,500 of 2,500 leads match" in params.read_text(encoding="utf-8")

    effective = cli_json(capsys, ["params", "--params", str(params)])
    assert effective["data"]["lookups"]["products"]["columns"] == lookup["columns"]
    loaded = load_params(params)
    raw = read_table(paths["leads"], loaded["data"]["leads"], name="leads")
    joined = enrich(raw, loaded)
    assert joined["sales_price"].notna().all()
    assert set(joined.loc[raw["product"] == "GTXPro", "sales_price"]) == {"4821"}

    # Determinism: the same files give the same bytes, so no --force is needed.
    code, _, err = _run(capsys, argv)
    assert code == 0, err
    assert params.read_bytes() == first
    # A file that differs (the user edited it) is kept unless --force is given.
    params.write_bytes(first + b"# my edit\n")
    code, _, err = _run(capsys, argv)
    assert code == 2 and "--force" in err
    assert params.read_bytes().endswith(b"# my edit\n")
    code, _, err = _run(capsys, [*argv, "--force"])
    assert code == 0, err
    assert params.read_bytes() == first

    ran = _train_score_report(capsys, params, paths["leads"], tmp_path)
    assert "out-of-time test" in ran["train"]
    scored = ran["scores"]
    ids = pd.read_csv(paths["leads"], dtype=str)["opportunity_id"]
    assert scored["opportunity_id"].tolist() == ids.tolist()
    assert not {"close_value", "signal_x", "dob", "email"} & set(scored.columns)
    assert "as of None" not in ran["html"]


# ------------------------------------------------------------------------------ c: which label?

def test_init_asks_for_the_label_when_it_cannot_tell(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame({"visits": rng.poisson(3, n), "region": rng.choice(["n", "s"], n),
                          "converted": rng.choice(["yes", "no"], n),
                          "subscribed": rng.choice(["yes", "no"], n)})
    two = tmp_path / "two.csv"
    frame.to_csv(two, index=False)
    out = tmp_path / "p.yaml"
    code, _, err = _run(capsys, ["init", "--leads", str(two), "--out", str(out)])
    assert code == 2
    assert "converted (" in err and "subscribed (" in err and "--label" in err
    assert not out.exists()

    none = tmp_path / "none.csv"
    frame.drop(columns=["converted", "subscribed"]).to_csv(none, index=False)
    code, _, err = _run(capsys, ["init", "--leads", str(none), "--out", str(out)])
    assert code == 2 and "candidates: none" in err and "--label" in err
    assert not out.exists()

    code, _, err = _run(capsys, ["init", "--leads", str(two), "--out", str(out),
                                 "--label", "nope"])
    assert code == 2 and "--label nope: no such column" in err

    code, _, err = _run(capsys, ["init", "--leads", str(two), "--out", str(out),
                                 "--label", "converted"])
    assert code == 0, err
    assert _tree(out)["data"]["leads"]["label"] == "converted"


# ------------------------------------------------------------------------------ d: repeated key

def test_a_lookup_with_a_repeated_key_stops_init_and_train(tmp_path, capsys):
    paths = crm_export(tmp_path / "crm", n=600)
    dup = tmp_path / "crm" / "products_dup.csv"
    pd.DataFrame({"product": ["GTX Pro", "MG Special", "gtx pro"],
                  "sales_price": [4821, 55, 4900]}).to_csv(dup, index=False)
    out = tmp_path / "p.yaml"
    code, _, err = _run(capsys, ["init", "--leads", str(paths["leads"]), "--lookup",
                                 f"{dup}:product", "--out", str(out)])
    assert code == 2
    assert str(dup) in err and "unique lookup key" in err
    assert not out.exists()

    hand = tmp_path / "hand.yaml"
    hand.write_text(yaml.safe_dump({
        "data": {"leads": {"path": str(paths["leads"]), "id": "opportunity_id",
                           "created_at": "created_at", "date_format": "%d/%m/%y",
                           "label": "stage", "label_won": ["Won"], "label_lost": ["Lost"],
                           "label_open": ["Open"]},
                 "lookups": {"products": {"path": str(dup), "key": "product",
                                          "columns": ["sales_price"]}}},
        "features": {"numeric": ["employees", "sales_price"], "categorical": ["sector"]},
    }, sort_keys=False))
    code, _, err = _run(capsys, ["train", "--params", str(hand)])
    assert code == 2, err
    assert str(dup) in err and "unique lookup key" in err


# ------------------------------------------------------------------------------ f: converted_at

def test_a_conversion_date_is_the_label(tmp_path, capsys):
    export = tmp_path / "web" / "signups.csv"
    conversion_export(export)
    params = tmp_path / "p.yaml"
    summary = cli_json(capsys, ["init", "--leads", str(export), "--out", str(params)])
    assert summary["label_form"] == "converted_at" and summary["label"] == "converted_at"
    leads = _tree(params)["data"]["leads"]
    assert leads["converted_at"] == "converted_at" and "label" not in leads
    assert leads["id"] == "lead_id" and leads["created_at"] == "created_at"
    assert "date_format" not in leads  # ISO 8601 with Z: the default
    assert "converted_at" not in (_tree(params)["features"].get("numeric", [])
                                  + _tree(params)["features"].get("categorical", []))
    code, out, err = _run(capsys, ["train", "--params", str(params)])
    assert code == 0, err
    assert "out-of-time test" in out


# ------------------------------------------------------------------------------ --deals errors

def test_deals_init_cannot_use_is_bad_input(tmp_path, capsys):
    export = tmp_path / "export" / "bank.csv"
    telemarketing(export, n=300)
    deals = tmp_path / "deals.csv"
    deals.write_text("lead,closed_at\nx,2025-01-01\n")
    code, _, err = _run(capsys, ["init", "--leads", str(export), "--deals", str(deals),
                                 "--out", str(tmp_path / "p.yaml")])
    assert "needs a lead id and a creation date" in err
    assert code == 2 and "unexpected error" not in err


def test_an_activity_log_gets_its_columns_types_and_the_snapshot_counters(tmp_path, capsys,
                                                                           small_crm):
    """--activities: the log's columns are found, sales' own actions are kept apart, and the
    leads' export-day counters of the log's types become snapshot columns; the file loads."""
    from leadq.pipelines.params.loader import load_params

    out = tmp_path / "params.yaml"
    args = ["init", "--leads", str(small_crm["leads"]), "--deals", str(small_crm["deals"]),
            "--activities", str(small_crm["activities"]), "--out", str(out)]
    assert cli(args) == 0
    first = out.read_text()
    acts = yaml.safe_load(first)["data"]["activities"]
    assert (acts["lead_id"], acts["occurred_at"], acts["type"], acts["value"], acts["id"]) == (
        "lead_id", "occurred_at", "activity_type", "value", "activity_id")
    assert set(acts["types"]) == {"web_visit", "email_open", "content_download", "webinar"}
    assert set(acts["sales_types"]) == {"sales_call", "meeting"}
    feats = yaml.safe_load(first)["features"]
    assert {"web_visits", "content_downloads", "email_opens"} <= set(feats["snapshot_columns"])
    assert not set(feats["snapshot_columns"]) & set(feats.get("numeric") or [])
    params = load_params(out)
    assert params["data"]["activities"]["path"] == str(small_crm["activities"].resolve()) or \
        Path(params["data"]["activities"]["path"]).name == "activities.csv"
    assert cli([*args, "--force"]) == 0 and out.read_text() == first  # deterministic
    capsys.readouterr()


def test_an_activity_log_without_a_lead_id_column_is_bad_input(tmp_path, capsys, small_crm):
    log = pd.read_csv(small_crm["activities"], dtype=str)
    log["lead_id"] = "X" + log["lead_id"]
    path = tmp_path / "activities.csv"
    log.to_csv(path, index=False)
    code = cli(["init", "--leads", str(small_crm["leads"]), "--activities", str(path),
                "--out", str(tmp_path / "p.yaml")])
    assert code == 2
    assert "--activities: no column of the log matches the leads' ids" in capsys.readouterr().err
