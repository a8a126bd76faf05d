"""The one way code reads a parameter: `setting(params, "train.search.trials")`.

Every parameter has its default in `pipelines/params/defaults.yaml`, and the loader merges the
user's file over those defaults before any step sees them, so a key is never missing from the
params a step receives. A literal fallback in code (`cfg.get("trials", 10)`) could only ever
disagree with that file, which is why there is none: `tests/code/test_architecture.py` fails
when one is added. A missing key here is a bug (params that were not merged over the
defaults), reported with the key's full name.

This module sits beside `leadq.errors` rather than in `pipelines/params/` because the pure
layers (`features/`, `models/`) read parameters too and may not depend on `pipelines/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, overload

T = TypeVar("T")


class MissingSettingError(KeyError):
    """A step was given params that were not merged over the packaged defaults."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@overload
def setting(params: Mapping[str, Any], key: str) -> Any: ...
@overload
def setting(params: Mapping[str, Any], key: str, kind: type[T]) -> T: ...


def setting(params: Mapping[str, Any], key: str, kind: type | None = None) -> Any:
    """The value of dotted `key` in merged params, optionally converted to `kind`.

    `kind` converts numbers that YAML may give as another numeric type (`trials: 10.0`,
    `rate: 1`) and refuses anything else with the key's name; the loader has already checked
    each value against its default's kind, so this is a guard, not the validation.
    """
    node: Any = params
    walked: list[str] = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(walked)
            raise MissingSettingError(
                f"params have no '{where}' (reading '{key}'): steps expect params merged over "
                "pipelines/params/defaults.yaml (leadq.pipelines.params.loader.effective_params)"
            )
        node = node[part]
    if kind is None or node is None or isinstance(node, kind):
        return node
    if kind in (int, float) and isinstance(node, int | float) and not isinstance(node, bool):
        if kind is int and float(node) != int(node):
            raise TypeError(f"params '{key}': expected a whole number, got {node!r}")
        return kind(node)
    raise TypeError(f"params '{key}': expected {kind.__name__}, got {type(node).__name__}")
