"""Load params: the packaged defaults with the user's params file deep-merged over them.

`defaults.yaml` (beside this module) lists every parameter leadq reads, so it is also the
schema: a key it does not hold is an error naming the closest one, and a value of another kind
than the default's is an error naming the key and what was expected. A user's params file
therefore only holds what differs. Paths are resolved relative to the user's file.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

import yaml

from leadq.errors import ConfigError

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")

# Mappings whose keys are the user's (column names, metric names): never checked against the
# defaults, and a user's mapping replaces the default one whole, so `criteria: {}` means none.
# A new free-form mapping is declared in defaults.yaml and listed here.
OPEN_MAPPINGS = frozenset({"contracts.numeric_bounds", "registry.criteria", "data.lookups",
                           "agreement.feedback.rating_values"})
# One entry of data.lookups (its keys are checked like any other section's).
LOOKUP_DEFAULTS = {"path": None, "key": None, "on": None, "columns": [], "delimiter": ",",
                   "encoding": "auto", "legacy_encoding": "cp1252", "sheet": None}
# Sections a user may switch off with null (their defaults are what a given section starts from).
NULLABLE_SECTIONS = frozenset({"data.deals", "data.feedback"})
# Keys whose default is not null but for which null means something (documented in defaults).
NULLABLE_KEYS = frozenset({
    "data.leads.date_format", "data.deals.date_format", "data.feedback.date_format",
    "train.n_threads", "serve.scoring_log",
})
# A table section is read only when it names a file; these columns it must then name.
TABLE_REQUIRED = {"deals": ("lead_id", "closed_at"),
                  "feedback": ("lead_id", "feedback_at", "status")}
# Loader bookkeeping a params dict carries; dropped when a dumped dict is read back.
_BOOKKEEPING = ("_base_dir", "_path")


@functools.cache
def _defaults_text() -> str:
    return DEFAULTS_PATH.read_text(encoding="utf-8")


def default_params() -> dict:
    """The packaged defaults (a fresh copy: callers may change it)."""
    return yaml.safe_load(_defaults_text())


def load_params(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict:
    """Read a params file (default: ./params.yaml), merge it over the packaged defaults,
    apply dotted-key overrides, check keys and types, and resolve paths to the file."""
    path = Path(path or "params.yaml")
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found (pass --params FILE)")
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for key in _BOOKKEEPING:
        user.pop(key, None)
    for key, value in (overrides or {}).items():
        set_dotted(user, key, value)
    params = effective_params(user, source=str(path))
    params["_base_dir"] = str(path.resolve().parent)
    params["_path"] = str(path.resolve())
    return params


# Keys that moved into the agreement (one home for the MQL policy, the SLA and what feedback
# means): an old params file is mapped with a warning naming the new place.
MOVED = {
    "threshold.policy": "agreement.mql.policy",
    "threshold.top_share": "agreement.mql.top_share",
    "threshold.min_precision": "agreement.mql.min_precision",
    "threshold.won_value": "agreement.mql.won_value",
    "threshold.lead_cost": "agreement.mql.lead_cost",
    "threshold.tiers.a_share": "agreement.tiers.a_share",
    "threshold.tiers.c_ratio": "agreement.tiers.c_ratio",
    "threshold.constraints.capacity": "agreement.capacity_per_week",
    "report.sla_hours": "agreement.sla_hours",
    "recalibration.sla_hours": "agreement.sla_hours",
    "recalibration.sla_target": "agreement.sla_target",
    "recalibration.window_days": "agreement.review_days",
    "report.campaign_column": "agreement.campaign_column",
    "report.source_column": "agreement.source_column",
    "report.campaign_min_feedback": "agreement.campaign_min_feedback",
    "report.campaign_flag_rejection": "agreement.campaign_flag_rejection",
    "data.feedback.accepted_values": "agreement.feedback.accepted",
    "data.feedback.rejected_values": "agreement.feedback.rejected",
}
# Keys with no new home: recalibration used to combine them with the training policy, which is
# how the bar's policy changed without anyone deciding it.
REMOVED = {
    "threshold.constraints.min_precision": "recalibration keeps the agreed MQL policy; for a "
    "precision floor set agreement.mql.policy: min_precision and agreement.mql.min_precision",
    "threshold.constraints.min_recall": "recalibration keeps the agreed MQL policy "
    "(agreement.mql); a recall floor is no longer a separate setting",
    "threshold.objective": "the objective follows the agreed policy: agreement.mql.policy "
    "(expected_value for Σ p·won_value − lead_cost)",
    "threshold.priority": "capacity (agreement.capacity_per_week) always caps the agreed "
    "policy: there is nothing left to order",
}


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and dotted not in OPEN_MAPPINGS:
            out.update(_flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _pop_dotted(tree: dict, dotted: str) -> None:
    parts = dotted.split(".")
    nodes = [tree]
    for part in parts[:-1]:
        nodes.append(nodes[-1][part])
    nodes[-1].pop(parts[-1], None)
    for node, part in zip(reversed(nodes[:-1]), reversed(parts[:-1]), strict=True):
        if isinstance(node.get(part), dict) and not node[part]:
            node.pop(part)


def migrate_old_keys(user: dict, *, source: str = "params") -> dict:
    """Map keys that moved into `agreement` (with a warning each); a removed key, or an old and
    a new key that disagree, is a ConfigError naming both."""
    import logging

    user = copy.deepcopy(user)
    flat = _flatten(user)
    for old, why in REMOVED.items():
        if any(k == old or k.startswith(old + ".") for k in flat):
            raise ConfigError(f"{source}: {old}: removed in the agreement release: {why}. "
                              "Delete the key (docs: the agreement)")
    set_by: dict[str, str] = {}
    for old, new in MOVED.items():
        if old not in flat:
            continue
        value = flat[old]
        if new in flat and flat[new] != value:
            raise ConfigError(f"{source}: {old} ({value!r}) and {new} ({flat[new]!r}) "
                              f"disagree; {old} moved to {new}: keep only that one")
        if new in set_by and _flatten(user).get(new) != value:
            raise ConfigError(
                f"{source}: {set_by[new]} and {old} both moved to {new} but disagree "
                f"({_flatten(user).get(new)!r} vs {value!r}): one agreement has one value; "
                f"set {new} and delete both")
        _pop_dotted(user, old)
        set_dotted(user, new, value)
        set_by[new] = old
        logging.getLogger("leadq").warning("%s: %s moved to %s (mapped; update the file)",
                                           source, old, new)
    return user


def effective_params(user: dict, *, source: str = "params") -> dict:
    """`user` deep-merged over the defaults, checked; the dict every command reads."""
    user = migrate_old_keys(user, source=source)
    try:
        params = _merge(default_params(), user, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    data = params["data"]
    for table, needed in TABLE_REQUIRED.items():
        spec = data.get(table)
        if spec is not None and not spec.get("path"):
            data[table] = None   # no file named: the table is not configured
            continue
        for key in needed if spec is not None else ():
            if not spec.get(key):
                raise ConfigError(f"{source}: data.{table}.{key}: required when "
                                  f"data.{table}.path is set (the {table} file's column name)")
    leads = data["leads"]
    if not (leads.get("label") or leads.get("converted_at")) and data.get("deals") is not None:
        # Outcomes come from deals, joined to leads by id and timed from created_at.
        for key in ("id", "created_at"):
            if not leads.get(key):
                raise ConfigError(
                    f"{source}: data.leads.{key}: null, but labelling leads from data.deals "
                    f"needs it; set it, or set data.leads.label to a 0/1 outcome column of "
                    "the leads and data.deals: null")
    _check_bounds(params["contracts"].get("numeric_bounds"), source)
    data["lookups"] = _check_lookups(data.get("lookups") or {}, source)
    for where, spec in [*((f"data.{t}", s) for t, s in data.items() if t != "lookups"),
                        *((f"data.lookups.{n}", s) for n, s in data["lookups"].items())]:
        if isinstance(spec, dict) and spec.get("delimiter") is not None:
            spec["delimiter"] = _one_delimiter(spec["delimiter"], f"{source}: {where}")
    return params


# How a tab gets written in YAML by hand: '\t' in single quotes, or unquoted, is two characters.
_TAB_SPELLINGS = frozenset({"\\t", "tab", "\\x09"})


def _one_delimiter(value: Any, where: str) -> str:
    """A delimiter as the readers take it: one character, or auto (sniffed)."""
    text = str(value)
    if text.lower() in _TAB_SPELLINGS:
        return "\t"
    if text != "auto" and len(text) != 1:
        raise ConfigError(f"{where}.delimiter: {text!r} is not one character (write a tab as "
                          '"\\t" in double quotes, or use auto to let leadq sniff it)')
    return text


def _check_lookups(lookups: dict, source: str) -> dict:
    """Each data.lookups entry merged over LOOKUP_DEFAULTS; path, key and columns required."""
    out = {}
    for name, entry in lookups.items():
        where = f"data.lookups.{name}"
        try:
            spec = _merge(LOOKUP_DEFAULTS, entry, f"{where}.")
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        for key in ("path", "key", "columns"):
            if not spec.get(key):
                raise ConfigError(f"{source}: {where}.{key}: required (a lookup names its file, "
                                  "its key column and the columns to join)")
        out[str(name)] = spec
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _merge(default: dict, user: Any, prefix: str) -> dict:
    """`user` over `default`, key by key; unknown keys and wrong kinds are ConfigErrors."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(user, dict):
        raise ConfigError(f"{where}: expected a mapping, got {user!r}")
    out = copy.deepcopy(default)
    for key, value in user.items():
        dotted = f"{prefix}{key}"
        if key not in default:
            close = difflib.get_close_matches(str(key), [str(k) for k in default], n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else (
                f"; valid keys here: {', '.join(map(str, default))}")
            raise ConfigError(f"{dotted}: unknown parameter{hint}")
        base = default[key]
        if dotted in OPEN_MAPPINGS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping (or null), got {value!r}")
            out[key] = copy.deepcopy(value) if value is not None else {}
        elif isinstance(base, dict):
            if value is None and dotted in NULLABLE_SECTIONS:
                out[key] = None
            else:
                out[key] = _merge(base, value, f"{dotted}.")
        elif base is None or value is None and (isinstance(base, list)
                                                 or dotted in NULLABLE_KEYS):
            out[key] = copy.deepcopy(value)
        elif not _same_kind(base, value):
            raise ConfigError(f"{dotted}: expected {_kind(base)} (like the default "
                              f"{base!r}), got {value!r}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_bounds(bounds: Any, source: str) -> None:
    """contracts.numeric_bounds: per column null or [min, max], either side a number or null."""
    for col, pair in (bounds or {}).items():
        ok = pair is None or (isinstance(pair, list | tuple) and len(pair) == 2 and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in pair))
        if not ok:
            raise ConfigError(f"{source}: contracts.numeric_bounds.{col}: expected [min, max] "
                              f"(either may be null) or null, got {pair!r}")


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


def agreement_of(params: dict):  # -> leadq.features.agreement.Agreement
    """The typed agreement every command reads; a value it refuses is a ConfigError."""
    from leadq.features.agreement import Agreement

    try:
        return Agreement.from_params(params)
    except ValueError as exc:
        raise ConfigError(f"{params.get('_path', 'params')}: {exc}") from None


def public_params(params: dict) -> dict:
    """The params without loader bookkeeping, as logged to MLflow."""
    return {k: copy.deepcopy(v) for k, v in params.items() if not k.startswith("_")}
