"""Two leadq processes on one registry (issue 30): every alias move lands in the history, and
registry decisions take turns. No model is trained: versions point at a placeholder source."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

MOVES = 15


@pytest.fixture
def store(tmp_path):
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.store import configure

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"mlflow": {"tracking_uri": "sqlite:///mlflow.db"}}))
    params = load_params(path)
    configure(params)
    client = mlflow.MlflowClient()
    client.create_registered_model("leadq")
    for _ in range(2):
        client.create_model_version("leadq", (tmp_path / "placeholder").as_uri())
    return {"params": params, "path": path, "client": client}


def _movers(store, *, locked: bool) -> list[Exception]:
    from leadq.pipelines.tracking.registry import record_move

    lock = contextlib.nullcontext
    if locked:
        from leadq.pipelines.tracking.store import registry_lock

        lock = lambda: registry_lock(store["params"])  # noqa: E731
    client, errors = store["client"], []
    start = threading.Barrier(2)

    def mover(version: str) -> None:
        start.wait()
        try:
            for i in range(MOVES):
                with lock():
                    record_move(client, "leadq", "champion", version, "promote", f"move {i}",
                                None)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(v,)) for v in ("1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("locked", [False, True], ids=["server-store", "local-store"])
def test_concurrent_alias_moves_keep_the_history_whole(store, locked):
    """Two writers recording moves at once used to take the same history key: one move was
    overwritten, or failed with a raw IntegrityError after its alias had moved. Without a lock
    (a server store) every move is still recorded; under the registry lock (a local store)
    the sequence numbers run without a gap or a repeat too."""
    from leadq.pipelines.tracking.registry import read_history

    assert _movers(store, locked=locked) == []
    history = read_history(store["client"], "leadq")
    assert sorted(e["version"] for e in history) == ["1"] * MOVES + ["2"] * MOVES
    if locked:
        assert [e["seq"] for e in history] == list(range(1, 2 * MOVES + 1))


PROMOTER = """
import sys
from leadq.pipelines.params.loader import load_params
from leadq.pipelines.tracking.registry import promote
params = load_params(sys.argv[1])
changed = 0
for i in range(int(sys.argv[3])):
    changed += promote(params, sys.argv[2], force=True)["changed"]
    changed += promote(params, "2" if sys.argv[2] == "1" else "1", force=True)["changed"]
print(changed)
"""


@pytest.mark.slow
def test_two_processes_promoting_on_one_store_take_turns(store):
    """Through the registry lock: every promotion of either process is in the history, in
    an order that ends at the alias's actual version."""
    from leadq.pipelines.tracking.registry import CHAMPION, alias_version, read_history

    procs = [subprocess.Popen([sys.executable, "-c", PROMOTER, str(store["path"]), v, "6"],
                              cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in ("1", "2")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    changed = sum(int(out.split()[-1]) for out, _ in outputs)
    client = store["client"]
    history = read_history(client, "leadq")
    moved = [e for e in history if e["alias"] == CHAMPION]
    # Every promotion that moved the alias is recorded ("already champion" moves nothing).
    assert len(moved) == len(history) == changed >= 12
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert moved[-1]["version"] == alias_version(client, "leadq", CHAMPION)
    # Taking turns: each recorded move names the champion the one before it left.
    for before, after in zip(moved, moved[1:], strict=False):
        assert after["previous"] == before["version"]


@pytest.mark.slow
def test_two_trainings_on_one_store_both_finish_with_the_history_whole(
        tmp_path, base_params, small_crm):
    """The audit's case: two `leadq train` at once on one store. One used to exit 1 with a raw
    IntegrityError after moving the champion. Now both finish, the second gate judges against
    the first's outcome (same data: a tie, so the first stays champion), and every move is in
    the history."""
    import mlflow

    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.registry import CHAMPION, alias_version, read_history
    from leadq.pipelines.tracking.store import configure
    from tests.conftest import write_params

    path = write_params(tmp_path, base_params, small_crm, train__candidates=["logreg"],
                        train__search__enabled=False, train__compare_defaults=False)
    cmd = [sys.executable, "-m", "leadq.pipelines.cli", "train", "--params", str(path)]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-4000:] for e in errors]
    configure(load_params(path))
    client = mlflow.MlflowClient()
    versions = {str(v.version): v.tags for v in client.search_model_versions("name='leadq'")}
    assert sorted(versions) == ["1", "2"]
    decisions = sorted(tags["promotion_decision"] for tags in versions.values())
    assert decisions[0].startswith("challenger ties the champion"), decisions
    assert decisions[1].startswith("no champion to beat"), decisions
    history = read_history(client, "leadq")
    assert [e["seq"] for e in history] == [1, 2, 3]  # two registrations, one promotion
    moves = [(e["alias"], e["action"]) for e in history]
    assert moves.count(("challenger", "register")) == 2
    assert moves.count(("champion", "gate")) == 1
    champion = [e for e in history if e["alias"] == CHAMPION][0]["version"]
    assert alias_version(client, "leadq", CHAMPION) == champion
