"""Reading the lookup tables of `data.lookups` and joining them to leads (the I/O half of
leadq.features.lookups). Each table is read once per process and kept while its file is
unchanged, so `leadq serve` and a streamed `leadq score` do not re-read it per batch."""

from __future__ import annotations

import threading

import pandas as pd

from leadq.errors import BadInputError, ConfigError
from leadq.features.lookups import duplicate_keys, join_lookup
from leadq.pipelines.io.files import read_table, require_columns
from leadq.pipelines.io.progress import log
from leadq.pipelines.params.loader import resolve_path

_cache: dict[tuple, pd.DataFrame] = {}
_lock = threading.Lock()


def lookup_specs(params: dict) -> dict[str, dict]:
    return (params.get("data") or {}).get("lookups") or {}


def load_lookup(params: dict, name: str) -> pd.DataFrame:
    """The lookup table `name`, its key and columns checked: a missing column or a repeated key
    is a BadInputError naming the file, the column and the rows."""
    from leadq.pipelines.io.database import is_database_url, table_label

    spec = lookup_specs(params)[name]
    if is_database_url(spec["path"]):
        # Read once per process (as a file is, while it does not change).
        path = str(spec["path"])
        cache_key = (path, spec.get("table"), spec.get("query"), spec["key"],
                     tuple(spec["columns"]))
    else:
        path = resolve_path(params, spec["path"])
        if not path.exists():
            raise ConfigError(f"data.lookups.{name}.path: {path} not found")
        stat = path.stat()
        cache_key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, spec["key"],
                     tuple(spec["columns"]))
    with _lock:
        if cache_key in _cache:
            return _cache[cache_key]
    table = read_table(path, spec, name=f"lookups.{name}")
    path = table_label(path, spec, f"lookups.{name}")  # messages: no password
    require_columns(table, [spec["key"], *spec["columns"]], path=path,
                    name=f"lookup {name!r} (data.lookups.{name})")
    dup = duplicate_keys(table, spec["key"])
    if dup.any():
        # Line numbers, not the key values: a key may be a person's or a company's name.
        lines = ", ".join(str(i + 2) for i in list(dup.to_numpy().nonzero()[0])[:6])
        raise BadInputError(
            f"{path}: lookup {name!r} has {int(dup.sum())} rows whose key column "
            f"{spec['key']!r} repeats another's (ignoring case, spaces, hyphens and underscores), "
            f"lines {lines}; a lookup needs one row per key (check: unique lookup key)")
    table = table[[spec["key"], *spec["columns"]]].reset_index(drop=True)
    with _lock:
        _cache.clear()  # one version per file is enough; an old one is never read again
        _cache[cache_key] = table
    return table


def enrich(leads: pd.DataFrame, params: dict, *, quiet: bool = True) -> pd.DataFrame:
    """`leads` with every configured lookup's columns joined on (unchanged when none)."""
    specs = lookup_specs(params)
    if not specs:
        return leads
    out = leads
    for name, spec in specs.items():
        on = spec.get("on") or spec["key"]
        if on not in out.columns:
            raise BadInputError(f"leads have no column {on!r} to join lookup {name!r} on "
                                f"(data.lookups.{name}.on)")
        clash = [c for c in spec["columns"] if c in out.columns]
        if clash:
            raise ConfigError(f"data.lookups.{name}.columns: {', '.join(map(repr, clash))} "
                              "already a leads column (or another lookup's): drop it from "
                              "the list")
        out, unmatched = join_lookup(out, load_lookup(params, name), on=on, key=spec["key"],
                                     columns=list(spec["columns"]))
        if not quiet:
            log.info("lookup %s: %s of %s leads matched on %s (%s without a match keep "
                     "missing values)", name, f"{len(out) - unmatched:,}", f"{len(out):,}",
                     on, f"{unmatched:,}")
    return out

