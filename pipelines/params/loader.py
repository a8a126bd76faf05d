"""Load params.yaml: one section per stage, paths resolved relative to the file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from leadq.errors import ConfigError

REQUIRED_SECTIONS = ("data", "label", "features", "split", "train", "registry", "mlflow")


def load_params(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict:
    """Read params.yaml (default: ./params.yaml), apply dotted-key overrides, resolve paths."""
    path = Path(path or "params.yaml")
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found (pass --params FILE)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for key, value in (overrides or {}).items():
        set_dotted(params, key, value)
    missing = [s for s in REQUIRED_SECTIONS if s not in params]
    if missing:
        raise ConfigError(f"{path}: missing section(s): {', '.join(missing)}")
    params["_base_dir"] = str(path.resolve().parent)
    params["_path"] = str(path.resolve())
    return params


def set_dotted(params: dict, key: str, value: Any) -> None:
    """Set params['a']['b'] from key 'a.b', creating intermediate sections."""
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def resolve_path(params: dict, path: str | Path | None) -> Path | None:
    """A path from params.yaml, relative to the file that named it."""
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else Path(params.get("_base_dir", ".")) / path


def public_params(params: dict) -> dict:
    """The params without loader bookkeeping, as logged to MLflow."""
    return {k: copy.deepcopy(v) for k, v in params.items() if not k.startswith("_")}
