"""The scorer's own check of the packages a model was saved with (MLflow's is skipped: slow)."""

from __future__ import annotations

import logging
from importlib.metadata import version
from types import SimpleNamespace

import pytest

from leadq.pipelines.io.progress import log
from leadq.pipelines.scoring.model import warn_environment_mismatch


@pytest.fixture(autouse=True)
def _propagate(monkeypatch):
    monkeypatch.setattr(log, "propagate", True)  # the CLI turns it off; caplog listens at root


def _meta(python_version: str) -> SimpleNamespace:
    return SimpleNamespace(flavors={"python_function": {"python_version": python_version}})


def test_mismatched_package_and_python_are_warned(tmp_path, caplog):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "requirements.txt").write_text(
        f"numpy=={version('numpy')}\nscikit-learn==0.20.0\nno-such-package-leadq==1.0\n")
    with caplog.at_level(logging.WARNING, logger="leadq"):
        warn_environment_mismatch(tmp_path, _meta("2.7.18"), "models:/leadq/1")
    text = caplog.text
    assert "scikit-learn==0.20.0" in text and f"scikit-learn {version('scikit-learn')}" in text
    assert "no no-such-package-leadq" in text
    assert "Python 2.7.18" in text
    assert "numpy" not in text  # the installed version matches: nothing to say


def test_matching_environment_is_quiet(tmp_path, caplog):
    import platform

    (tmp_path / "requirements.txt").write_text(f"pandas=={version('pandas')}\n-r extra.txt\n")
    with caplog.at_level(logging.WARNING, logger="leadq"):
        warn_environment_mismatch(tmp_path, _meta(platform.python_version()), "models:/x/1")
    assert caplog.text == ""
