"""Shared fixtures: a small synthetic CRM and a params file pointing at a temporary MLflow store.

Tests never touch ../shared or the developer's ./mlflow.db.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # An xdist worker's __main__ (execnet's) has neither __file__ nor __spec__, which
    # pyspark.sql.connect (imported by great_expectations) takes for a doctest run: without
    # grpc it then calls sys.exit(0) at import. A file name tells it this is a program.
    import __main__

    if getattr(__main__, "__spec__", None) is None and not hasattr(__main__, "__file__"):
        __main__.__file__ = "pytest-xdist-worker"
SMALL_LEADS = 4000


MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME")
# Tests that need a program from outside PyPI (Chromium, a JVM, a PostgreSQL server). Locally
# they skip with the reason when it is missing; under CI=true a skip is a failure, so a CI
# machine without them cannot go green having run none of them.
INTEGRATION_MARKERS = ("browser", "spark", "postgres")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marks = [m for m in INTEGRATION_MARKERS if item.get_closest_marker(m)]
    if report.skipped and marks and _in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"CI=true: the {'/'.join(marks)} integration test {item.nodeid} "
                           f"would have been skipped ({reason}); CI must install what it needs "
                           "(.ci/run)")


# The fast lane (`make test-fast`: -m "not slow") is unit and data tests on small frames. A test
# is slow, whatever its own marks say, when it trains a model (it or a fixture it depends on,
# however indirectly, uses one of TRAINING_FIXTURES), lives under a folder whose tests all train
# or start services (SLOW_FOLDERS), or needs a browser, a JVM or a database (INTEGRATION_MARKERS).
TRAINING_FIXTURES = frozenset({"trained_store", "report_store"})
SLOW_FOLDERS = ("model", "integration")


def pytest_collection_modifyitems(config, items):
    tests_root = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.path)).resolve()
        folder = path.relative_to(tests_root).parts[0] if path.is_relative_to(tests_root) \
            else ""
        if (folder in SLOW_FOLDERS
                or TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                or any(item.get_closest_marker(m) for m in INTEGRATION_MARKERS)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_mlflow_env():
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI and tracking.configure lets that
    # variable win, so it is dropped after every test too: otherwise the next session or module
    # fixture (set up before this fixture runs) registers its model in the previous test's store.
    for var in MLFLOW_ENV:
        os.environ.pop(var, None)
    yield
    for var in MLFLOW_ENV:
        os.environ.pop(var, None)


@pytest.fixture(scope="session")
def base_params() -> dict:
    """The repository's params.yaml as every command sees it: merged over the packaged
    defaults (so tests may set any key), without the loader's bookkeeping."""
    from leadq.pipelines.params.loader import load_params, public_params

    params = public_params(load_params(REPO / "params.yaml"))
    # params.yaml's activity log is the demo's file: a test's CRM brings its own (write_params)
    params["data"]["activities"]["path"] = None
    return params


@pytest.fixture(scope="session")
def small_crm(tmp_path_factory) -> dict[str, Path]:
    """A 4,000-lead synthetic CRM on disk (CSV), shared by the session's tests."""
    from leadq.pipelines.synthetic.crm import write_crm

    return write_crm(tmp_path_factory.mktemp("crm"), n_leads=SMALL_LEADS, seed=3)


def write_params(directory: Path, base: dict, crm: dict[str, Path], **changes) -> Path:
    """A params.yaml in `directory` reading `crm`, with its own sqlite MLflow store."""
    params = copy.deepcopy(base)
    for table in ("leads", "deals", "feedback"):
        params["data"][table]["path"] = str(crm[table])
    # The activity log, when the CRM has one (a leads-only CRM scores without it).
    params["data"]["activities"]["path"] = str(crm["activities"]) if "activities" in crm \
        else None
    params["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"
    params["mlflow"]["artifact_location"] = "mlruns"
    params["train"]["hgb"]["max_iter"] = 120
    # A token search budget keeps fixtures fast; the search itself is tested in tests/model.
    params["train"].setdefault("search", {}).update({"trials": 2, "timeout_seconds": 5})
    for dotted, value in changes.items():
        node = params
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def params_file(tmp_path, base_params, small_crm) -> Path:
    return write_params(tmp_path, base_params, small_crm)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, base_params, small_crm) -> dict:
    """One trained and registered model, shared by read-only tests (scoring, registry)."""
    from leadq.pipelines.train import main as train_main

    directory = tmp_path_factory.mktemp("store")
    path = write_params(directory, base_params, small_crm)
    summary = train_main(str(path))
    return {"params_path": path, "dir": directory, "summary": summary, "crm": small_crm}


@pytest.fixture
def make_params(base_params):
    """Factory: make_params(directory, crm, **changes) -> path of a params.yaml (see write_params).

    Keys use '__' for nesting: make_params(d, crm, label__horizon_days=30).
    """

    def factory(directory: Path, crm: dict[str, Path], **changes) -> Path:
        return write_params(directory, base_params, crm, **changes)

    return factory


REPORT_LEADS = 12000  # personas need a few hundred conversions to rank segments


@pytest.fixture(scope="session")
def report_store(tmp_path_factory, base_params) -> dict:
    """A 12,000-lead CRM, a champion trained on it and its HTML report (engineer D's tests)."""
    from leadq.pipelines.report import main as report_main
    from leadq.pipelines.synthetic.crm import write_crm
    from leadq.pipelines.train import main as train_main

    directory = tmp_path_factory.mktemp("report")
    crm = write_crm(directory / "crm", n_leads=REPORT_LEADS, seed=3)
    # One candidate, no search: the report is about reading a model, not choosing one.
    path = write_params(directory, base_params, crm, train__search__enabled=False,
                        train__candidates=["hgb"], report__importance_repeats=3,
                        report__shap_rows=1000)
    train = train_main(str(path))
    html = directory / "report.html"
    summary = report_main(str(path), out=str(html))
    return {"params_path": path, "dir": directory, "crm": crm, "train": train,
            "report": summary, "html": html}
