"""The mutants `make mutants` applies: one minimal change per tested promise.

`old` must occur exactly once in `file`; `tests` are the pytest node ids expected to fail
once `old` is replaced by `new`. When the code moves on and a replacement no longer applies,
the runner says so: update the text here, keeping the change as small as the promise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    promise: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS: list[Mutant] = [
    # --- the layout and the trusted-types list (issue: one installable package) ---
    Mutant(
        id="upward-import",
        promise="features/ never imports pipelines/",
        file="features/columns.py",
        old="from leadq.errors import ConfigError\n",
        new="from leadq.errors import ConfigError\n"
            "from leadq.pipelines.io.progress import log  # noqa: F401\n",
        tests=("tests/code/test_architecture.py",),
    ),
    Mutant(
        id="load-skips-type-check",
        promise="a registered model loads only if every skops type it lists is leadq's",
        file="pipelines/scoring/model.py",
        old="            check_model_types(path, uri)\n",
        new="",
        tests=("tests/code/test_trusted_types.py",),
    ),
    Mutant(
        id="save-skips-type-check",
        promise="a model holding an unlisted type is refused when saved",
        file="pipelines/tracking/store.py",
        old="    refused = sorted(set(found) - TRUSTED_TYPES)\n",
        new="    refused = []\n",
        tests=("tests/code/test_trusted_types.py",),
    ),
]
