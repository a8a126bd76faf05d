"""The calibration map is chosen and fitted on rows before the test set, never on it (issue 30).

Calibrating on the test rows makes the test ECE look better than any lead will meet (the
audit's hand mutation improved it from 0.0135 to 0.0085) and nothing noticed: every row the
calibration choosers receive is recorded here and checked against the test split.
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("final_fit", ["train_validation", "train"])
def test_calibration_never_sees_the_test_rows(small_crm, base_params, tmp_path, monkeypatch,
                                              final_fit):
    import leadq.models.calibration_choice as choice
    import leadq.pipelines.train as train
    from leadq.pipelines.io.crm import load_crm
    from leadq.pipelines.params.loader import load_params
    from tests.conftest import write_params

    seen: list = []

    def spy(real, frame_at: int):
        def wrapper(*args, **kwargs):
            seen.append(args[frame_at].index)
            return real(*args, **kwargs)
        return wrapper

    for module in (train, choice):
        for name in ("choose_calibration", "choose_calibration_oof"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy(getattr(choice, name), 1))
    params = load_params(write_params(tmp_path, base_params, small_crm,
                                      train__candidates=["logreg"],
                                      train__search__enabled=False,
                                      train__compare_defaults=False,
                                      train__final_fit=final_fit))
    result = train.train_models(load_crm(params, quarantine=False), params)
    assert result.calibration["method"] in ("none", "sigmoid", "isotonic")
    assert seen, "no calibration step was observed: the spy no longer sees it"
    test_rows = result.test_frame.index
    for index in seen:
        assert len(index.intersection(test_rows)) == 0, (
            f"calibration received {len(index.intersection(test_rows))} test rows")
