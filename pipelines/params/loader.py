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
from typing import TYPE_CHECKING, Any

import yaml

from leadq.errors import ConfigError

if TYPE_CHECKING:
    from leadq.features.agreement import Agreement

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")

# Mappings whose keys are the user's (column names, metric names): never checked against the
# defaults, and a user's mapping replaces the default one whole, so `criteria: {}` means none.
# A new free-form mapping is declared in defaults.yaml and listed here.
OPEN_MAPPINGS = frozenset({"contracts.numeric_bounds", "registry.criteria", "data.lookups",
                           "agreement.feedback.rating_values", "segments.capacity_share"})
# One entry of data.lookups (its keys are checked like any other section's).
LOOKUP_DEFAULTS = {"path": None, "key": None, "on": None, "columns": [], "delimiter": ",",
                   "encoding": "auto", "legacy_encoding": "cp1252", "sheet": None,
                   "table": None, "query": None}
# Sections a user may switch off with null (their defaults are what a given section starts from).
NULLABLE_SECTIONS = frozenset({"data.deals", "data.feedback"})
# Keys whose default is not null but for which null means something (documented in defaults).
NULLABLE_KEYS = frozenset({
    "data.leads.date_format", "data.deals.date_format", "data.feedback.date_format",
    "train.n_threads", "serve.scoring_log", "database.leads_table",
    "database.quarantine_table",
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
        user = read_params_yaml(path) or {}
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
        if flat.get(old, "set") is None:
            # Switched off in the old file: nothing is lost by dropping it.
            _pop_dotted(user, old)
            logging.getLogger("leadq").warning("%s: %s is gone (it was null): %s", source, old,
                                               why)
            continue
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
    check_values(params, source)
    _check_database_tables(params, source)
    _check_scores_url(params, source)
    _check_segments(params, source)
    return params


def _check_database_tables(params: dict, source: str) -> None:
    """A table read from a database names its URL in `path` and exactly one of `table` or
    `query`; `table`/`query` without a URL would be silently ignored. A URL holding a password
    is refused: params are logged to MLflow and printed by `leadq params` (write ${ENV_VAR}, or
    leave it to PGPASSWORD or ~/.pgpass)."""
    from leadq.pipelines.io.urls import has_password, is_database_url

    data = params["data"]
    specs = [(f"data.{t}", s) for t, s in data.items() if t != "lookups" and isinstance(s, dict)]
    specs += [(f"data.lookups.{n}", s) for n, s in (data.get("lookups") or {}).items()]
    for where, spec in specs:
        path = spec.get("path")
        if path is None:
            continue
        given = [k for k in ("table", "query") if spec.get(k)]
        if not is_database_url(path):
            if given:
                raise ConfigError(f"{source}: {where}.{given[0]}: set, but {where}.path is "
                                  "not a database URL (postgresql://…, duckdb:///…); set the "
                                  f"URL as {where}.path, or {where}.{given[0]}: null")
            continue
        if len(given) != 1:
            raise ConfigError(f"{source}: {where}.path is a database URL: set exactly one of "
                              f"{where}.table (a table name) or {where}.query (a SELECT)")
        if has_password(path):
            raise ConfigError(f"{source}: {where}.path: the database URL holds a password; "
                              "params are logged and printed, so write it as ${ENV_VAR} "
                              "(e.g. postgresql://leadq:${WAREHOUSE_PASSWORD}@host/db), or "
                              "leave it out and use PGPASSWORD or ~/.pgpass")


def _check_scores_url(params: dict, source: str) -> None:
    """recalibration.scores may be the database URL `leadq score --output` writes to; like a
    data table's URL it must not hold a password."""
    from leadq.pipelines.io.urls import has_password, is_database_url

    scores = (params.get("recalibration") or {}).get("scores")
    if scores and is_database_url(scores) and has_password(str(scores)):
        raise ConfigError(f"{source}: recalibration.scores: the database URL holds a password; "
                          "params are logged and printed, so write it as ${ENV_VAR}, or leave "
                          "it out and use PGPASSWORD or ~/.pgpass")


def _check_segments(params: dict, source: str) -> None:
    """segments.column must be a categorical model input: the scorer hands every model only
    its input columns, and the leakage guard then vouches that the value is known at MQL time."""
    seg = params.get("segments") or {}
    column = seg.get("column")
    from leadq.features.agreement import segment_split

    try:
        segment_split(seg)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if column is None:
        return
    categorical = params["features"].get("categorical") or []
    if column not in categorical:
        raise ConfigError(f"{source}: segments.column: {column!r} is not one of "
                          f"features.categorical ({', '.join(map(str, categorical)) or 'empty'});"
                          " list it there (a segment column is a model input known at MQL "
                          "time) or set segments.column: null")


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


# --- value checks the defaults' kinds cannot express ------------------------------------------
# A wrong value here once hung a run (chunk_size 0.5 looped forever), crashed it deep inside
# (a negative chunk size, a list as a column name: exit 1) or ate memory (an alias bomb); each
# is refused up front, exit 2 naming the key.

# Counts of rows, folds, items, days: whole numbers of at least 1 (null where NULLABLE_KEYS).
POSITIVE_INTS = frozenset({
    "label.horizon_days", "features.min_category_frequency", "features.max_categories",
    "features.max_encoded_mb", "train.min_positives", "train.n_threads", "train.search.folds",
    "train.search.trials",
    "train.search.max_rows", "train.hgb.max_iter", "train.hgb.max_leaf_nodes",
    "train.hgb.min_samples_leaf", "calibration.folds", "calibration.oof_folds",
    "evaluation.min_segment_rows", "evaluation.behaviour_rows", "segments.min_leads",
    "segments.min_conversions", "contracts.max_text_length",
    "contracts.gx_sample_rows", "scoring.chunk_size", "scoring.n_threads", "serve.port",
    "serve.workers", "serve.max_batch", "serve.max_body_bytes", "serve.log_flush_rows",
    "serve.max_queue", "agreement.review_days", "recalibration.outcome_window_days",
    "recalibration.min_matured_outcomes", "explain.max_rows", "explain.top",
    "report.importance_repeats", "report.importance_rows", "report.shap_rows",
    "report.insight_columns",
    "report.min_value_rows", "report.persona_rows", "agreement.campaign_min_feedback",
    "demo.leads", "lift.min_group_leads",
})
POSITIVE_INT_LISTS = frozenset({"features.activity_windows", "report.size_bins"})
# Shares of something that must not be empty: in (0, 1].
SHARES = frozenset({"split.train", "split.validation", "agreement.mql.top_share",
                    "agreement.tiers.a_share", "agreement.sla_target", "lift.power",
                    "lift.confidence", "segments.confidence"})
# Limits and rates where 0 means "none allowed" / "off": in [0, 1].
FRACTIONS = frozenset({
    "contracts.max_duplicate_id_share", "contracts.max_rejected_share",
    "contracts.max_missing_inputs_share", "contracts.label_rate_max_change",
    "scoring.explore_rate", "scoring.max_rejected_share", "agreement.mql.min_precision",
    "report.persona_min_share",
    "agreement.campaign_flag_rejection", "agreement.holdout_rate",
})
# Money that may be nothing but never negative.
NON_NEGATIVE_NUMBERS = frozenset({"agreement.mql.lead_cost"})
# Positive amounts (hours, MQLs a week, money): above 0.
POSITIVE_NUMBERS = frozenset({"agreement.sla_hours", "agreement.capacity_per_week",
                              "agreement.mql.won_value", "agreement.goal.won_deals",
                              "lift.detect", "serve.max_wait_ms"})
# Keys naming one column (or a path): a string when set; a list or a number here used to
# fail deep inside a run ("unhashable type").
TEXT_KEYS = frozenset({
    *(f"data.{table}.{key}" for table in ("leads", "deals", "feedback", "activities")
      for key in ("path", "table", "query", "id", "created_at", "label", "converted_at",
                  "converted_at_format",
                  "lead_id", "closed_at", "outcome", "amount", "feedback_at", "status",
                  "rating", "reason", "first_contact_at", "first_contact_format",
                  "occurred_at", "type", "value")),
    "features.email_column", "features.job_title_column", "contracts.quarantine_dir",
    "scoring.model_uri", "recalibration.scores", "recalibration.plan_by",
    "agreement.campaign_column", "agreement.source_column", "data.feedback.rep",
    "review.out", "report.out", "outputs.dir", "segments.column",
    "database.leads_table", "database.leads_query", "database.scores_table",
    "database.quarantine_table",
})
# A params file is a few hundred values; aliases that expand beyond this are a YAML bomb.
MAX_YAML_NODES = 100_000


def check_values(params: dict, source: str = "params") -> None:
    """Refuse values of the right kind but an impossible size or shape (see the sets above),
    and lists holding lists or mappings, each as a ConfigError naming the key."""

    def fail(key: str, value: Any, expected: str) -> None:
        shown = repr(value) if len(repr(value)) < 80 else f"{_kind(value)} ({type(value).__name__})"
        raise ConfigError(f"{source}: {key}: expected {expected}, got {shown}")

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if dotted in OPEN_MAPPINGS or dotted == "data.lookups":
                continue
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            elif value is None:
                continue
            elif dotted in POSITIVE_INTS and not _positive_int(value):
                fail(dotted, value, "a whole number of at least 1")
            elif dotted in POSITIVE_INT_LISTS and not (
                    isinstance(value, list) and all(_positive_int(v) for v in value)):
                fail(dotted, value, "a list of whole numbers of at least 1")
            elif dotted in SHARES and not (_number(value) and 0 < value <= 1):
                fail(dotted, value, "a share above 0 and at most 1")
            elif dotted in FRACTIONS and not (_number(value) and 0 <= value <= 1):
                fail(dotted, value, "a share from 0 to 1")
            elif dotted in POSITIVE_NUMBERS and not (_number(value) and value > 0):
                fail(dotted, value, "a number above 0")
            elif dotted in NON_NEGATIVE_NUMBERS and not (_number(value) and value >= 0):
                fail(dotted, value, "a number of at least 0")
            elif dotted in TEXT_KEYS and not isinstance(value, str):
                fail(dotted, value, "a column name (text)" if "path" not in dotted
                     and "dir" not in dotted else "a path (text)")
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, list | dict):
                        fail(dotted, value, "a list of single values (column names, "
                             "labels or numbers), not of lists or mappings")

    walk(params, "")
    for name, spec in ((params.get("data") or {}).get("lookups") or {}).items():
        for key in ("path", "key", "on"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                fail(f"data.lookups.{name}.{key}", spec[key], "a path or column name (text)")
        if not all(isinstance(c, str) for c in spec.get("columns") or []):
            fail(f"data.lookups.{name}.columns", spec["columns"], "a list of column names")
    for key, bound in ((params.get("registry") or {}).get("criteria") or {}).items():
        if not str(key).startswith(("min_", "max_")):
            fail(f"registry.criteria.{key}", key, "a min_<metric> or max_<metric> name")
        if not _number(bound):
            fail(f"registry.criteria.{key}", bound, "a number")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class _ParamsLoader(yaml.SafeLoader):
    """safe_load that refuses a key written twice in one mapping (YAML keeps the last and
    silently drops the first: a whole section could vanish)."""

    source = "params"

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.source}: line {line}: {key!r} is written twice in one section "
                    f"(first on line {seen[key]}); YAML would keep only the last, so merge "
                    "the two into one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(root: yaml.Node, source: str) -> int:
    """How many nodes the document holds once aliases are expanded, counted on the composed
    graph (each shared node once) so a bomb is measured without being built."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            active.discard(key)
            if sizes[key] > MAX_YAML_NODES:
                return sizes[key]
            continue
        if key in sizes:
            continue
        if key in active:
            raise ConfigError(f"{source}: a YAML alias refers to the value that holds it "
                              "(a recursive structure); write the values out")
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_params_yaml(path: Path) -> Any:
    """A params file as safe_load reads it, minus YAML's traps: a key written twice is an
    error, and aliases that expand beyond MAX_YAML_NODES values (a "billion laughs" bomb,
    which took minutes and 1.5 GB) are refused before anything is expanded."""
    loader = _ParamsLoader(path.read_text(encoding="utf-8"))
    loader.source = str(path)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a params file") from None
        if root is None:
            return None
        size = _expanded_nodes(root, str(path))
        if size > MAX_YAML_NODES:
            raise ConfigError(f"{path}: YAML aliases (*name) expand to more than "
                              f"{MAX_YAML_NODES:,} values, far more than any params file "
                              "holds; write the values out instead of aliasing them")
        return loader.construct_document(root)
    finally:
        loader.dispose()


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


def agreement_of(params: dict) -> Agreement:
    """The typed agreement every command reads; a value it refuses is a ConfigError."""
    from leadq.features.agreement import Agreement

    try:
        return Agreement.from_params(params)
    except ValueError as exc:
        raise ConfigError(f"{params.get('_path', 'params')}: {exc}") from None


def public_params(params: dict) -> dict:
    """The params without loader bookkeeping, as logged to MLflow."""
    return {k: copy.deepcopy(v) for k, v in params.items() if not k.startswith("_")}
