"""The batch side's fault audit (issue 30, item 6): inputs are never replaced, publishing is
all-or-nothing, and the spreadsheet guard covers every text column.

The scorer is the real streaming writer (pipelines/scoring/stream.py) with the real row
contract; only the model is a stand-in (a constant score), so no test here trains anything.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadq.errors import BadInputError
from leadq.features.contracts import evaluate
from leadq.pipelines.io.quarantine import quarantine_path
from leadq.pipelines.params.loader import effective_params
from leadq.pipelines.scoring.stream import score_file


@pytest.fixture
def params() -> dict:
    return effective_params({
        "data": {"leads": {"path": "leads.csv", "id": "lead_id", "created_at": "created_at"},
                 "deals": None, "feedback": None, "activities": {"path": None}},
        "features": {"categorical": ["source"], "numeric": ["employees"]},
        "contracts": {"max_rejected_share": 1.0},
    })


def leads(n_good: int = 5, n_bad: int = 5) -> pd.DataFrame:
    """Good rows, then rows whose employees is not a number (rejected by the contract)."""
    n = n_good + n_bad
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n)],
        "created_at": ["2024-03-01"] * n,
        "source": ["web"] * n,
        "employees": ["10"] * n_good + ["many"] * n_bad,
    })


def fake_scorer(params: dict):
    def score_batch(raw: pd.DataFrame, duplicates: np.ndarray, hashes: np.ndarray):
        check = evaluate(raw.reset_index(drop=True), "leads", params, None,
                         duplicates=duplicates)
        good = raw.reset_index(drop=True).loc[~check.bad]
        if good.empty:
            return check, None
        return check, pd.DataFrame({"lead_id": good["lead_id"].to_numpy(), "score": 0.5})
    return score_batch


def run(params: dict, source: Path, output: Path, quarantine: Path | None = None):
    return score_file(source, output, quarantine or quarantine_path(params, output=output), params,
                      fake_scorer(params), chunk_size=None)


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------- an input destroyed

@pytest.mark.parametrize("n_bad", [0, 5])
def test_scoring_a_quarantine_file_into_its_stem_refuses_and_keeps_the_input(
        tmp_path, params, n_bad):
    """`pq/s.rejected.csv` scored into `pq/s.csv`: the quarantine path is the input. With no
    bad row the old code deleted it, with bad rows replaced it; now it is exit 2, untouched."""
    folder = tmp_path / "pq"
    folder.mkdir()
    source = folder / "s.rejected.csv"
    leads(5, n_bad).to_csv(source, index=False)
    before = source.read_bytes()
    with pytest.raises(BadInputError) as err:
        run(params, source, folder / "s.csv")
    assert err.value.exit_code == 2
    assert str(source) in str(err.value) and "quarantine" in str(err.value)
    assert source.read_bytes() == before
    assert files_in(folder) == ["s.rejected.csv"]


def test_score_command_refuses_an_output_whose_quarantine_is_the_input(tmp_path, capsys):
    """The same, through `leadq score`: exit 2 naming both paths, before a model is looked
    for (this store is empty) and with nothing created."""
    from leadq.pipelines.cli import main

    folder = tmp_path / "pq"
    folder.mkdir()
    source = folder / "s.rejected.csv"
    leads(5, 0).to_csv(source, index=False)
    before = source.read_bytes()
    params_file = tmp_path / "params.yaml"
    params_file.write_text("data:\n  leads: {id: lead_id, created_at: created_at}\n"
                           "mlflow: {tracking_uri: 'sqlite:///mlflow.db'}\n")
    code = main(["score", "--input", str(source), "--output", str(folder / "s.csv"),
                 "--params", str(params_file)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(source) in err and str(folder / "s.rejected.csv") in err
    assert source.read_bytes() == before
    assert files_in(folder) == ["s.rejected.csv"]
    assert not (tmp_path / "mlflow.db").exists()


def test_scoring_through_a_hard_link_to_the_input_is_refused(tmp_path, params):
    source = tmp_path / "leads.csv"
    leads(5, 0).to_csv(source, index=False)
    os.link(source, tmp_path / "alias.csv")
    before = source.read_bytes()
    with pytest.raises(BadInputError, match="would replace"):
        run(params, source, tmp_path / "alias.csv")
    assert source.read_bytes() == before


def test_init_force_never_replaces_the_export_it_reads(tmp_path, capsys):
    from leadq.pipelines.cli import main

    victim = tmp_path / "victim.csv"
    frame = leads(200, 0)
    frame["converted"] = np.arange(200) % 5 == 0  # an outcome init can profile without --deals
    frame.to_csv(victim, index=False)
    before = victim.read_bytes()
    code = main(["init", "--leads", str(victim), "--out", str(victim), "--force",
                 "--label", "converted"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--leads" in err and str(victim) in err
    assert victim.read_bytes() == before


# --------------------------------------------------------------------- all or nothing

def test_a_blocked_quarantine_path_publishes_nothing(tmp_path, params):
    """A directory sits where the quarantine goes: exit 2 naming it, no scores published
    (the old code published x.csv and lost the 5 rejected rows), no temporary file left."""
    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 5).to_csv(source, index=False)
    out = tmp_path / "out"
    (out / "x.rejected.csv").mkdir(parents=True)
    with pytest.raises(BadInputError, match="x.rejected.csv"):
        run(params, source, out / "x.csv")
    assert files_in(out) == ["x.rejected.csv"]


def test_an_output_path_that_is_a_directory_leaves_no_temporary_file(tmp_path, params):
    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 5).to_csv(source, index=False)
    out = tmp_path / "out"
    (out / "x.csv").mkdir(parents=True)
    with pytest.raises(BadInputError, match="x.csv"):
        run(params, source, out / "x.csv")
    assert files_in(out) == ["x.csv"]


@pytest.mark.parametrize("failing", ["x.rejected.csv", "x.csv"])
def test_a_failed_rename_publishes_neither_file(tmp_path, params, monkeypatch, failing):
    """A rename that fails at the very end (disk, permissions): whichever of the two fails,
    the earlier scores and quarantine stay as they were and no temporary file is left."""
    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 5).to_csv(source, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.csv").write_text("old scores\n")
    (out / "x.rejected.csv").write_text("old quarantine\n")
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == failing and str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        run(params, source, out / "x.csv")
    monkeypatch.undo()
    assert (out / "x.csv").read_text() == "old scores\n"
    assert (out / "x.rejected.csv").read_text() == "old quarantine\n"
    assert files_in(out) == ["x.csv", "x.rejected.csv"]


def test_a_run_publishes_scores_and_quarantine_together(tmp_path, params):
    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 5).to_csv(source, index=False)
    out = tmp_path / "out"
    acct = run(params, source, out / "x.csv")
    assert acct.used == 5 and acct.n_rejected == 5
    assert files_in(out) == ["x.csv", "x.rejected.csv"]
    assert len(pd.read_csv(out / "x.rejected.csv")) == 5
    # A clean re-run removes the stale quarantine with the same all-or-nothing move.
    leads(5, 0).to_csv(source, index=False)
    run(params, source, out / "x.csv")
    assert files_in(out) == ["x.csv"]


# --------------------------------------------------------------------- formula guard

def test_formula_guard_covers_parquet_categorical_columns(tmp_path, params):
    """A Parquet export's dictionary-encoded columns read back as pandas categoricals; their
    cells reach the quarantine CSV guarded like any text."""
    frame = leads(2, 2)
    frame.loc[2, "source"] = '=HYPERLINK("http://x.example","hi")'
    frame.loc[3, "source"] = "@SUM(1+1)"
    frame["source"] = frame["source"].astype("category")
    source = tmp_path / "in" / "leads.parquet"
    source.parent.mkdir()
    frame.to_parquet(source, index=False)
    assert isinstance(pd.read_parquet(source)["source"].dtype, pd.CategoricalDtype)
    out = tmp_path / "out"
    run(params, source, out / "x.csv")
    with open(out / "x.rejected.csv", newline="") as handle:
        cells = [row["source"] for row in csv.DictReader(handle)]
    assert cells == ['\'=HYPERLINK("http://x.example","hi")', "'@SUM(1+1)"]


def test_guard_formulas_on_a_categorical_keeps_clean_cells():
    from leadq.pipelines.io.spreadsheet import guard_formulas

    frame = pd.DataFrame({"c": pd.Categorical(["=1+1", "ok", None, "-5"])})
    got = guard_formulas(frame)["c"].tolist()
    assert got[0] == "'=1+1" and got[1] == "ok" and pd.isna(got[2]) and got[3] == "-5"


# --------------------------------------------------------------------- the score command

def score_params_file(directory: Path, **contracts) -> Path:
    path = directory / "params.yaml"
    lines = ["data:", "  leads: {id: lead_id, created_at: created_at}",
             "features: {categorical: [source], numeric: [employees]}",
             "mlflow: {tracking_uri: 'sqlite:///mlflow.db'}",
             "contracts: {max_rejected_share: 1.0"
             + "".join(f", {k}: {v}" for k, v in contracts.items()) + "}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_against_an_empty_store_is_exit_2_and_creates_nothing(tmp_path, capsys):
    from leadq.pipelines.cli import main

    source = tmp_path / "leads.csv"
    leads(5, 0).to_csv(source, index=False)
    params_file = score_params_file(tmp_path)
    before = files_in(tmp_path)
    code = main(["score", "--input", str(source), "--output", str(tmp_path / "s.csv"),
                 "--params", str(params_file)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"no champion in sqlite:///{tmp_path / 'mlflow.db'}" in err
    assert "leadq train" in err
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("bad", ["0", "-5"])
def test_score_refuses_a_chunk_size_below_one(tmp_path, capsys, bad):
    from leadq.pipelines.cli import main

    source = tmp_path / "leads.csv"
    leads(5, 0).to_csv(source, index=False)
    code = main(["score", "--input", str(source), "--output", str(tmp_path / "s.csv"),
                 "--params", str(score_params_file(tmp_path)), "--chunk-size", bad])
    err = capsys.readouterr().err
    assert code == 2 and "--chunk-size" in err, err


def test_score_puts_the_quarantine_in_contracts_quarantine_dir(tmp_path, monkeypatch):
    """contracts.quarantine_dir was ignored by `leadq score` (the quarantine went beside the
    output). The model is a stand-in: what is tested is where the rejected rows go."""
    import types

    import leadq.pipelines.score as score
    import leadq.pipelines.tracking.contracts as contracts

    params_file = score_params_file(tmp_path, quarantine_dir="held")
    model = types.SimpleNamespace(uri="models:/fake@champion", version="1", threshold=0.5,
                                  threshold_version="0", tags={"train_run_id": "r"})
    monkeypatch.setattr(score, "load_scoring_model", lambda params, uri=None: model)
    monkeypatch.setattr(score, "require_store", lambda params, uri=None: None, raising=False)
    monkeypatch.setattr(contracts, "load_reference", lambda run_id: None)

    def check_and_score(raw, model, params, **kw):
        check, out = fake_scorer(params)(raw, kw["duplicates"], kw["hashes"])
        return check, None if out is None else out.assign(is_mql=False)

    monkeypatch.setattr(score, "check_and_score", check_and_score)
    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 3).to_csv(source, index=False)
    summary = score.main(str(source), str(tmp_path / "out" / "s.csv"),
                         params_path=str(params_file), explain=False)
    assert files_in(tmp_path / "out") == ["s.csv"]
    assert summary["accounting"]["quarantine"] == str(tmp_path / "held" / "s.rejected.csv")
    assert len(pd.read_csv(tmp_path / "held" / "s.rejected.csv")) == 3


def test_score_against_a_store_without_a_champion_is_exit_2(tmp_path, capsys):
    """A store that exists but holds no champion (nothing promoted yet) is a usage problem
    too, named as such, with no output written."""
    import mlflow

    from leadq.pipelines.cli import main
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    source = tmp_path / "leads.csv"
    leads(5, 0).to_csv(source, index=False)
    params_file = score_params_file(tmp_path)
    configure(load_params(params_file))
    mlflow.MlflowClient().create_registered_model("leadq")
    code = main(["score", "--input", str(source), "--output", str(tmp_path / "s.csv"),
                 "--params", str(params_file)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "champion" in err and "leadq train" in err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("limit, code", [(0.4, 3), (0.5, 0)])
def test_a_rejected_share_over_the_schedulers_limit_publishes_nothing(tmp_path, params, limit,
                                                                      code):
    """5 of 10 rows refused: over a 40% policy the run stops with exit 3 before anything is
    published (and an old output stays as it was); at 50% it publishes both files."""
    from leadq.errors import EXIT_TOO_MANY_REJECTED, TooManyRejectedError

    source = tmp_path / "in" / "leads.csv"
    source.parent.mkdir()
    leads(5, 5).to_csv(source, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.csv").write_text("last night\n")
    if code:
        with pytest.raises(TooManyRejectedError, match="5 of 10 rows") as raised:
            score_file(source, out / "x.csv", quarantine_path(params, output=out / "x.csv"),
                       params, fake_scorer(params), chunk_size=3, max_rejected_share=limit)
        assert raised.value.exit_code == EXIT_TOO_MANY_REJECTED == 3
        assert files_in(out) == ["x.csv"] and (out / "x.csv").read_text() == "last night\n"
    else:
        score_file(source, out / "x.csv", quarantine_path(params, output=out / "x.csv"),
                   params, fake_scorer(params), chunk_size=3, max_rejected_share=limit)
        assert files_in(out) == ["x.csv", "x.rejected.csv"]
