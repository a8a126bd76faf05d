"""`leadq init`: profile an export and write the params file for it.

Reads the files (the same reader as every other command), asks leadq.pipelines.profiling for
its guesses, and writes only what differs from the packaged defaults, every guess commented.
Nothing here depends on the clock or on the order files were listed in beyond the command
line, so running init twice on the same files writes the same file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import yaml

from leadq.errors import BadInputError
from leadq.features.labels import NEGATIVE_VALUES, POSITIVE_VALUES, canonical_outcome
from leadq.pipelines.io.progress import log
from leadq.pipelines.profiling.profile import (
    LABEL_WORDS,
    SEASON_MIN_DAYS,
    ColumnFacts,
    ProfileError,
    Proposal,
    _has_words,
    column_facts,
    propose,
)
from leadq.pipelines.profiling.sniff import parse_dates_as

OUTCOME_WORDS = LABEL_WORDS | {"stage", "status", "outcome"}
GENERIC_STEMS = {"train", "test", "data", "leads", "export", "dataset", "file", "table"}
COMMENT_COLUMN = 34
LINE_WIDTH = 100


# ------------------------------------------------------------------------------ reading

def _read(path: Path, name: str) -> tuple[pd.DataFrame, dict, list[str]]:
    """The table as text cells, the reader settings that differ from the defaults, and the
    comments saying what was sniffed."""
    from leadq.pipelines.io.files import (
        describe_csv,
        ragged_error,
        read_table_ragged,
        table_format,
    )

    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    spec: dict = {}
    notes: list[str] = []
    if table_format(path) == "csv":
        facts = describe_csv(path, name=name)
        if facts["delimiter"] != ",":
            spec["delimiter"] = facts["delimiter"]
        if facts["legacy"]:
            spec["encoding"] = facts["encoding"]
            notes.append(f"not valid UTF-8; every byte decodes as {facts['encoding']}")
        elif facts["bom"]:
            notes.append(f"starts with a byte-order mark ({facts['encoding']})")
        notes.append(f"{facts['line_end']} line ends, {facts['delimiter']!r}-separated")
    frame, ragged = read_table_ragged(path, {"encoding": "auto", "delimiter": ",", **spec},
                                      name=name)
    if ragged:
        # A report's footer ("Grand Totals", a copyright line) or a broken line: training
        # and scoring quarantine these, so profiling the rest is what they will see.
        if len(ragged) > max(10, 0.01 * (len(frame) + len(ragged))):
            if frame.shape[1] == 1 and len(ragged) > len(frame):
                raise BadInputError(
                    f"{path}: the first line has one field and most lines have "
                    f"{ragged[0].fields}: it looks like a report title above the header; "
                    "delete the lines above the column names and run init again")
            raise ragged_error(ragged[0])  # not a footer: the delimiter or quoting is off
        lines = ", ".join(str(r.line) for r in ragged[:5]) + (", …" if len(ragged) > 5 else "")
        notes.append(f"{len(ragged)} line(s) with another field count than the header "
                     f"(line {lines}): quarantined when read")
        log.warning("%s: %d line(s) with another field count than the header (line %s), "
                    "e.g. a report footer: left out here, quarantined by train and score",
                    path, len(ragged), lines)
    if frame.shape[1] == 1 and len(frame):
        # One column, yet the lines hold a separator: a title line above the header made the
        # sniffer see one field per line.
        cells = frame.iloc[:500, 0].dropna().astype(str)
        for sep in (";", "\t", "|", ","):
            if len(cells) and cells.str.contains(sep, regex=False).mean() > 0.8:
                raise BadInputError(
                    f"{path}: read as one column, but most lines hold {sep!r}: a title line "
                    "above the header? Delete the lines above the column names (or set the "
                    "table's delimiter) and run init again")
    return frame.reset_index(drop=True), spec, notes


def _split_lookup(arg: str) -> tuple[Path, str, str | None]:
    """PATH:KEY or PATH:KEY=LEADS_COLUMN (the last colon splits, so C:\\x.csv:key works)."""
    if ":" not in arg:
        raise BadInputError(f"--lookup {arg}: expected PATH:KEY (the lookup's key column)")
    path, key = arg.rsplit(":", 1)
    on = None
    if "=" in key:
        key, on = key.split("=", 1)
    return Path(path), key.strip(), (on or "").strip() or None


# ------------------------------------------------------------------------------ deals

def _lead_id_column(table: pd.DataFrame, lead_ids: pd.Series, what: str) -> tuple[str, float]:
    """The column of `table` whose values are the leads' ids, and the share of its values
    that are (padding ignored, case not: CRM ids such as Salesforce's 15-character ones
    differ by case alone)."""
    ids = set(lead_ids.dropna().astype(str).str.strip())
    cells = {c: table[c].dropna().astype(str).str.strip() for c in table.columns}
    overlap = {c: float(v.isin(ids).mean()) if len(v) else 0.0 for c, v in cells.items()}
    cols = list(table.columns)
    best = max(cols, key=lambda c: (overlap[c], -cols.index(c)))
    if overlap[best] >= 0.5:
        return best, float(overlap[best])
    lower = {i.lower() for i in ids}
    folded = {c: float(v.str.lower().isin(lower).mean()) if len(v) else 0.0
              for c, v in cells.items()}
    near = max(cols, key=lambda c: (folded[c], -cols.index(c)))
    hint = (f"; {near!r} matches {folded[near]:.0%} when case is ignored, but ids are "
            "compared exactly: export both files with the same id spelling"
            if folded[near] >= 0.5 else "")
    raise ProfileError(f"{what} matches the leads' ids (best: {best!r}, "
                       f"{overlap[best]:.0%} of values{hint})")


def _deal_columns(deals: pd.DataFrame, lead_ids: pd.Series, *, today: pd.Timestamp
                  ) -> tuple[str, str, str | None, ColumnFacts | None, dict]:
    """(lead id column, closed-at column, outcome column or None, its facts, date facts)."""
    lead_col, _ = _lead_id_column(deals, lead_ids, "--deals: no column of the deals file")
    facts = {c: column_facts(deals[c], c, today=today) for c in deals.columns if c != lead_col}
    dates = [c for c, f in facts.items() if f.date is not None]
    if not dates:
        raise ProfileError("--deals: the deals file has no date column (when each deal closed)")
    ranked = sorted(dates, key=lambda c: (not _has_words(facts[c].tokens, frozenset(
        {"won", "closed", "close", "win", "signed"})), dates.index(c)))
    closed = ranked[0]
    # An outcome column is a stage column, or two values under an outcome's name: a file of
    # won deals only has none (has_company TRUE/FALSE is an attribute, not the outcome).
    outcome = next((c for c, f in facts.items() if f.stage or (f.binary and _has_words(
        f.tokens, OUTCOME_WORDS))), None)
    return lead_col, closed, outcome, facts.get(outcome) if outcome else None, facts


def _deal_labels(leads: pd.DataFrame, deals: pd.DataFrame, *, id_col: str, created_at: str,
                 created_fmt: str, lead_col: str, closed: str, closed_fmt: str,
                 outcome: str | None, won: list[str], horizon_days: int, today: pd.Timestamp
                 ) -> tuple[pd.Series, pd.Timestamp | None]:
    """Each lead's label from the deals (training's rule), and the first win's date."""
    from leadq.features.labels import label_leads

    created = parse_dates_as(leads[created_at], created_fmt, today=today)
    canon = pd.DataFrame({"lead_id": leads[id_col].astype(str).str.strip(),
                          "created_at": created.astype("datetime64[ns]")})
    closed_at = parse_dates_as(deals[closed], closed_fmt, today=today).astype("datetime64[ns]")
    won_mask = (deals[outcome].astype(str).str.strip().str.lower().isin(
        {w.lower() for w in won}) if outcome else pd.Series(True, index=deals.index))
    canon_deals = pd.DataFrame({"lead_id": deals[lead_col].astype(str).str.strip(),
                                "closed_at": closed_at, "won": won_mask.to_numpy(bool)})
    as_of = max(canon["created_at"].max(), closed_at.max())
    labels = label_leads(canon, canon_deals, None, horizon_days=horizon_days, as_of=as_of,
                         matured_only=True)
    first_win = closed_at[won_mask.to_numpy(bool)].min()
    return labels["label"], (None if pd.isna(first_win) else first_win)


# ------------------------------------------------------------------------------ activities

def _singular(token: str) -> str:
    return token[:-1] if len(token) > 3 and token.endswith("s") else token


def _activity_spec(acts: pd.DataFrame, lead_ids: pd.Series, *, today: pd.Timestamp,
                   out_dir: Path, path: Path, spec: dict, notes: list[str]) -> dict:
    """data.activities for an activity log: its lead id, time, type and value columns, the
    marketing types (features) and sales' own actions (never features), each commented."""
    from leadq.features.activities import sales_like

    cols = list(acts.columns)
    lead_col, share = _lead_id_column(acts, lead_ids, "--activities: no column of the log")
    facts = {c: column_facts(acts[c], c, today=today) for c in cols if c != lead_col}
    dates = [c for c, f in facts.items() if f.date is not None]
    if not dates:
        raise ProfileError("--activities: the log has no date column (when each event "
                           "happened)")
    when = sorted(dates, key=lambda c: (not _has_words(facts[c].tokens, frozenset(
        {"occurred", "timestamp", "time", "at", "date", "when", "created"})), dates.index(c)))[0]
    texts = [c for c, f in facts.items() if c != when and f.date is None
             and 2 <= f.distinct <= 100 and f.numeric_share < 0.5 and f.blank_share < 0.5]
    if not texts:
        raise ProfileError("--activities: the log has no activity-type column (a text "
                           "column with 2 to 100 distinct values)")
    kind = sorted(texts, key=lambda c: (not _has_words(facts[c].tokens, frozenset(
        {"type", "activity", "event", "action", "kind", "channel"})), texts.index(c)))[0]
    numbers = [c for c, f in facts.items() if c not in (when, kind) and f.numeric_share >= 0.9
               and f.distinct > 2 and "id" not in f.tokens]
    event_id = next((c for c, f in facts.items() if c not in (when, kind)
                     and "id" in f.tokens and f.blank_share == 0 and f.distinct == len(acts)),
                    None)
    counts = acts[kind].astype("string").str.strip().value_counts()
    sales = [str(v) for v in counts.index if sales_like(v)]
    marketing = [str(v) for v in counts.index if str(v) not in sales]
    tree: dict = {"path": _rel(path, out_dir), **spec}
    com = {"data.activities.path": "; ".join(notes) or None}
    fmt = facts[when].date.format
    if fmt != "ISO8601":
        tree["date_format"] = fmt
        com["data.activities.date_format"] = "sniffed from the values"
    if event_id:
        tree["id"] = event_id
        com["data.activities.id"] = "unique on every event"
    tree.update({"lead_id": lead_col, "occurred_at": when, "type": kind})
    com["data.activities.lead_id"] = f"{share:.0%} of its values are the leads' ids"
    com["data.activities.occurred_at"] = "the event's date"
    com["data.activities.type"] = f"{len(counts)} distinct values"
    if numbers:
        tree["value"] = numbers[0]
        com["data.activities.value"] = "a number per event: summed per type"
    tree["types"] = marketing
    com["data.activities.types"] = ("marketing activity: counted before each lead's cut-off "
                                    "(remove a type to leave it out)")
    if sales:
        tree["sales_types"] = sales
        com["data.activities.sales_types"] = ("sales' own actions on a lead (name words): "
                                              "never features")
    return {"tree": tree, "comments": com, "types": marketing}


def name_tokens_of(text: str) -> list[str]:
    from leadq.pipelines.profiling.sniff import name_tokens

    return name_tokens(text)


def snapshot_counters(numeric: list[str], types: list[str]) -> list[str]:
    """Numeric leads columns whose name counts one of the log's activity types ("web_visits"
    beside a "Web Visit" type, "TotalVisits" beside "visit"): export-day counters."""
    from leadq.pipelines.profiling.profile import COUNT_WORDS

    type_words = {_singular(t) for v in types for t in name_tokens_of(v)} - COUNT_WORDS
    return [c for c in numeric
            if {_singular(t) for t in name_tokens_of(c)} - COUNT_WORDS & type_words]


# ------------------------------------------------------------------------------ writing

def _scalar(value) -> str:
    if isinstance(value, str) and len(value) == 1 and value.isprintable() \
            and not value.isalnum():
        return f"{value!r}" if value != "'" else '"\'"'  # ";" reads better quoted
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def _line(indent: int, text: str, comment: str | None) -> str:
    """`text` with its comment beside it, or above it (wrapped) when it would not fit."""
    line = " " * indent + text
    if not comment:
        return line
    beside = line.ljust(max(COMMENT_COLUMN, len(line) + 1)) + "# " + comment
    if len(beside) <= LINE_WIDTH:
        return beside
    above = [" " * indent + "# " + part for part in _wrap(comment, LINE_WIDTH - indent - 2)]
    return "\n".join([*above, line])


def render(tree: dict, comments: dict[str, str], *, header: list[str]) -> str:
    """YAML for `tree` with `comments[dotted.key]` after each key (and `dotted.key[item]`
    after list items written one per line). Keys keep their insertion order."""
    lines = [f"# {h}" if h else "#" for h in header]

    def emit(node: dict, prefix: str, indent: int) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            comment = comments.get(dotted)
            for extra in _wrap(comments.get(f"{dotted}#before", ""), LINE_WIDTH - indent - 2):
                lines.append(" " * indent + f"# {extra}" if extra else " " * indent + "#")
            if isinstance(value, dict) and value:
                lines.append(_line(indent, f"{_scalar(str(key))}:", comment))
                emit(value, f"{dotted}.", indent + 2)
            elif isinstance(value, list) and any(f"{dotted}[{v}]" in comments for v in value):
                lines.append(_line(indent, f"{_scalar(str(key))}:", comment))
                for item in value:
                    lines.append(_line(indent + 2, f"- {_scalar(item)}",
                                       comments.get(f"{dotted}[{item}]")))
            else:
                lines.append(_line(indent, f"{_scalar(str(key))}: {_scalar(value)}", comment))

    emit(tree, "", 0)
    return "\n".join(lines) + "\n"


def _standard(values, known) -> bool:
    """Whether every spelling is one the label reader knows anyway (1 / 1.0, TRUE, yes, …):
    then none is written, and a refreshed export spelling them another known way still reads."""
    spelt = canonical_outcome(pd.Series([str(v) for v in values], dtype="string"))
    return bool(spelt.isin(known).all())


def _slug(path: Path) -> str:
    from leadq.pipelines.profiling.sniff import name_tokens

    stem = path.name.split(".")[0]
    base = path.parent.name if stem.lower() in GENERIC_STEMS and path.parent.name else stem
    return "-".join(name_tokens(base)[:3]) or "leads"


def _rel(path: Path, out_dir: Path) -> str:
    """Relative to the params file when near it (a project folder moves as one), else absolute."""
    rel = os.path.relpath(path.resolve(), out_dir.resolve())
    return rel if rel.count("..") <= 2 else str(path.resolve())


def build(proposal: Proposal, *, leads_path: Path, leads_spec: dict, leads_notes: list[str],
          out_dir: Path, deals: dict | None, lookups: dict[str, dict], name: str,
          since: str | None, horizon_days: int, activities: dict | None = None,
          feedback: dict | None = None) -> tuple[dict, dict[str, str]]:
    """The params tree (only what differs from the defaults) and its comments."""
    tree: dict = {"data": {"leads": {}}}
    c: dict[str, str] = {}
    leads = tree["data"]["leads"]
    leads["path"] = _rel(leads_path, out_dir)
    c["data.leads.path"] = "; ".join(leads_notes) or None
    for key, value in leads_spec.items():
        leads[key] = value
    c["data.leads.delimiter"] = "sniffed: the same field count on every line"
    if "encoding" in leads_spec:
        c["data.leads.encoding"] = "not valid UTF-8: read as this (no warning)"
    if proposal.id:
        leads["id"] = proposal.id
        c["data.leads.id"] = proposal.id_why
    else:
        c["data.leads#before"] = ("no id column (" + proposal.id_why + ")")
    if proposal.created_at:
        leads["created_at"] = proposal.created_at
        c["data.leads.created_at"] = proposal.created_why
        if proposal.date_format and proposal.date_format != "ISO8601":
            leads["date_format"] = proposal.date_format
            c["data.leads.date_format"] = "sniffed from the values"
    form = proposal.label
    if form.kind in ("binary", "stage"):
        leads["label"] = form.column
        c["data.leads.label"] = form.why
        if form.kind == "stage":
            leads["label_won"] = list(form.won)
            leads["label_lost"] = list(form.lost)
            leads["label_open"] = list(form.open)
            c["data.leads.label_open"] = "still being worked: censored"
        elif not _standard(form.won, POSITIVE_VALUES) or not _standard(form.lost,
                                                                          NEGATIVE_VALUES):
            leads["label_won"] = list(form.won)
            leads["label_lost"] = list(form.lost)
    elif form.kind == "converted_at":
        leads["converted_at"] = form.column
        c["data.leads.converted_at"] = (f"{form.why}: positive within label.horizon_days "
                                        f"({horizon_days}) of created_at")
        if form.date_format and form.date_format != (proposal.date_format or "ISO8601"):
            leads["converted_at_format"] = form.date_format
            c["data.leads.converted_at_format"] = "sniffed: not the format of created_at"
    personal = proposal.columns("personal") + proposal.columns("email")
    if personal:
        leads["personal"] = personal
        c["data.leads.personal"] = "never model inputs, never logged"
    if deals:
        tree["data"]["deals"] = deals["tree"]
        c.update(deals["comments"])
    if feedback:
        tree["data"]["feedback"] = feedback["tree"]
        c.update(feedback["comments"])
    if activities:
        tree["data"]["activities"] = activities["tree"]
        c.update(activities["comments"])
    if lookups:
        tree["data"]["lookups"] = {n: spec["tree"] for n, spec in lookups.items()}
        for n, spec in lookups.items():
            c[f"data.lookups.{n}"] = spec["comment"]

    feats: dict = {}
    roles = {r.column: r for r in proposal.roles}
    cats = [r.column for r in proposal.roles if r.role == "categorical"]
    nums = [r.column for r in proposal.roles if r.role == "numeric"]
    te = [r.column for r in proposal.roles if r.role == "categorical" and r.target_encode]
    snapshots = proposal.columns("snapshot")
    if cats:
        feats["categorical"] = cats
    if nums:
        feats["numeric"] = nums
    if snapshots:
        feats["snapshot_columns"] = snapshots
        c["features.snapshot_columns"] = (
            "counters of the log's activity types as of the export day (they rise after a "
            "lead converts): the log's point-in-time counts replace them")
    for col in cats + nums:
        c[f"features.{'categorical' if col in cats else 'numeric'}[{col}]"] = (
            roles[col].why + (f" (from lookup {roles[col].table})"
                              if roles[col].table != "leads" else ""))
    if proposal.columns("email"):
        feats["email_column"] = proposal.columns("email")[0]
        c["features.email_column"] = "personal; only its corporate/free-mail flag is an input"
    if proposal.columns("job_title"):
        feats["job_title_column"] = proposal.columns("job_title")[0]
        c["features.job_title_column"] = "reaches the model as a seniority rank"
    if te:
        feats["target_encode"] = te
        c["features.target_encode"] = "many categories: cross-fitted target encoding"
    leaks = proposal.columns("leak")
    if leaks:
        feats["extra_forbidden"] = leaks
        c["features.extra_forbidden#before"] = (
            "Leak suspects, left out: each may be filled in after sales worked the lead.\n"
            "To use one knowingly, remove it here and add it to categorical or numeric.")
        for col in leaks:
            c[f"features.extra_forbidden[{col}]"] = roles[col].why
    left = [r for r in proposal.roles if r.role == "left_out"]
    if left:
        c["features#before"] = "Left out (not inputs): " + "; ".join(
            f"{r.column}: {r.why}" for r in left)
    if not proposal.created_at:
        c["features#before"] = "\n".join(filter(None, [c.get("features#before"),
                                                       "(no created_at: no date parts)"]))
    span = proposal.created_span_days
    if proposal.created_at and span is not None and span < SEASON_MIN_DAYS:
        # A season learnt from under two years is the trend in disguise: on Olist's one year,
        # logistic regression with season inputs ranked the next month's leads backwards.
        feats["date_parts"] = False
        c["features.date_parts"] = (f"{span:.0f} days of history: too short to tell a season "
                                    f"from a trend (needs {SEASON_MIN_DAYS})")
    if feats:
        tree["features"] = feats
    if since:
        tree["train"] = {"since": since}
        c["train.since"] = ("the deals file's first win minus the horizon: older leads could "
                            "not have a recorded win")
    agreement, acomments = _agreement_proposal(proposal, feedback)
    if agreement:
        tree["agreement"] = agreement
        c.update(acomments)
    if proposal.id and proposal.created_at:
        tree["recalibration"] = {"scores": "scores/*.csv"}
        c["recalibration.scores"] = ("write `leadq score --output scores/<date>.csv` here: "
                                     "recalibrate, plan, report and review read them")
    tree["registry"] = {"model_name": name, "criteria": {}}
    c["registry.model_name"] = "one registered model per export"
    c["registry.criteria"] = ("no absolute bar on a new export yet: a model is promoted when "
                              "it beats the champion; set e.g. min_test_roc_auc once known")
    tree["mlflow"] = {"experiment": name}
    return tree, c


CAMPAIGN_WORDS = frozenset({"campaign", "campaigns", "utm"})
SOURCE_WORDS = frozenset({"source", "channel", "origin", "medium"})


def _agreement_proposal(proposal: Proposal, feedback: dict | None
                        ) -> tuple[dict, dict[str, str]]:
    """The agreement's campaign / source columns and feedback meanings init can propose."""
    from leadq.pipelines.profiling.sniff import name_tokens

    tree: dict = {}
    c: dict[str, str] = {}
    cats = [r.column for r in proposal.roles if r.role == "categorical" and r.table == "leads"]
    campaign = next((col for col in cats if CAMPAIGN_WORDS & set(name_tokens(col))), None)
    source = next((col for col in cats if col != campaign
                   and SOURCE_WORDS & set(name_tokens(col))), None)
    if campaign:
        tree["campaign_column"] = campaign
        c["agreement.campaign_column"] = ("named like a campaign: campaign quality, acceptance "
                                          "and what to cut are reported per value")
    elif source:
        tree["campaign_column"] = source
        c["agreement.campaign_column"] = ("no campaign column; the lead source stands in "
                                          "(set the campaign column if the export has one)")
        source = None
    if source:
        tree["source_column"] = source
        c["agreement.source_column"] = "shown beside each campaign"
    if feedback:
        tree["feedback"] = feedback["agreement"]
        c.update(feedback["agreement_comments"])
    return tree, c


def _feedback_spec(path: Path, leads: pd.DataFrame, *, today: pd.Timestamp, out_dir: Path,
                   lookup_tables: dict[str, str]) -> dict:
    """data.feedback and the agreement's feedback meanings for a sales-feedback export."""
    from leadq.pipelines.profiling.feedback import profile_feedback

    frame, spec, notes = _read(path, "feedback")
    pre = _id_and_date(leads, today, lookup_tables, "--feedback: sales feedback")
    lead_col, share = _lead_id_column(frame, leads[pre.id],
                                      "--feedback: no column of the feedback file")
    guess = profile_feedback(frame, lead_col, today=today)
    tree: dict = {"path": _rel(path, out_dir), **spec}
    if guess.date_format and guess.date_format != "ISO8601":
        tree["date_format"] = guess.date_format
    tree.update({"lead_id": lead_col, "feedback_at": guess.feedback_at,
                 "status": guess.status})
    for key in ("first_contact_at", "first_contact_format", "rating", "reason", "rep"):
        if getattr(guess, key):
            tree[key] = getattr(guess, key)
    com = {"data.feedback.path": "; ".join(notes)}
    com.update({f"data.feedback.{k}": v for k, v in guess.why.items() if k in tree})
    com["data.feedback.lead_id"] = f"{share:.0%} of its values are the leads' ids"
    if guess.first_contact_format:
        com["data.feedback.first_contact_format"] = "sniffed: not the format of feedback_at"
    if not guess.first_contact_at:
        com["data.feedback.status"] = (com.get("data.feedback.status", "") + "; no first-"
                                       "contact date found: SLA compliance is not measured "
                                       "until data.feedback.first_contact_at is set")
    agreement = {k: v for k, v in guess.meaning.items() if v}
    acom = {"agreement.feedback#before": (
        "What sales' statuses mean (init read them; check each): accepted = sales took the "
        "lead on; rejected = turned down (a negative when rejected_is_negative); not_reached "
        "= tried, not reached yet (no label).")}
    if guess.unknown:
        acom["agreement.feedback.not_reached"] = (
            "unrecognised, counted as not reached: " + ", ".join(guess.unknown[:8])
            + " (move each to accepted or rejected if it means that)")
    if guess.rating_values:
        agreement["rating_values"] = guess.rating_values
    return {"tree": tree, "comments": com, "agreement": agreement,
            "agreement_comments": acom}


def _wrap(text: str, width: int = 94) -> list[str]:
    import textwrap

    if not text:
        return []
    return [line for para in text.split("\n") for line in (textwrap.wrap(para, width) or [""])]


def summary_table(proposal: Proposal) -> str:
    rows = [(r.column, r.table, r.role.replace("_", " "), r.why) for r in proposal.roles]
    w = [max(len(x[i]) for x in rows + [("column", "table", "role", "")]) for i in range(3)]
    head = f"{'column':<{w[0]}}  {'table':<{w[1]}}  {'role':<{w[2]}}  why"
    body = [f"{a:<{w[0]}}  {b:<{w[1]}}  {r:<{w[2]}}  {why}" for a, b, r, why in rows]
    return "\n".join([head, *body])


# ------------------------------------------------------------------------------ main

def main(leads: str, *, out: str = "params.yaml", deals: str | None = None,
         feedback: str | None = None, lookups: list[str] | None = None,
         label: str | None = None, name: str | None = None, force: bool = False,
         today: pd.Timestamp | None = None, activities: str | None = None) -> dict:
    """Profile the export and write the params file; a guess init cannot make is exit 2."""
    try:
        return _main(leads, out=out, deals=deals, feedback=feedback, lookups=lookups,
                     label=label, name=name, force=force, today=today, activities=activities)
    except ProfileError as exc:
        raise BadInputError(f"{leads}: {exc}") from None


def _main(leads: str, *, out: str, deals: str | None, feedback: str | None,
          lookups: list[str] | None, label: str | None, name: str | None, force: bool,
          today: pd.Timestamp | None, activities: str | None = None) -> dict:
    from leadq.features.lookups import duplicate_keys, join_lookup
    from leadq.pipelines.io.files import atomic_target, refuse_overwrite
    from leadq.pipelines.params.loader import default_params, effective_params

    today = pd.Timestamp.now().normalize() if today is None else today
    out_path = Path(out)
    out_dir = out_path.parent
    leads_path = Path(leads)
    # --force replaces an earlier params file, never one of the exports init reads.
    refuse_overwrite([(f"--{flag} file", Path(p)) for flag, p in
                      (("leads", leads), ("deals", deals), ("feedback", feedback),
                       ("activities", activities),
                       *(("lookup", _split_lookup(a)[0]) for a in lookups or ()))
                      if p], [("params file (--out)", out_path)])
    horizon = int(default_params()["label"]["horizon_days"])
    frame, leads_spec, leads_notes = _read(leads_path, "leads")
    log.info("init: %s leads × %d columns from %s", f"{len(frame):,}", frame.shape[1],
             leads_path)

    lookup_specs: dict[str, dict] = {}
    lookup_tables: dict[str, str] = {}
    for arg in lookups or []:
        path, key, on = _split_lookup(arg)
        table, spec, notes = _read(path, "lookup")
        on = on or key
        if key not in table.columns:
            raise BadInputError(f"{path}: lookup has no column {key!r} (--lookup {arg}); "
                                f"columns: {', '.join(table.columns)}")
        if on not in frame.columns:
            raise BadInputError(f"{leads_path}: leads have no column {on!r} to join {path} "
                                f"on; pass --lookup {path}:{key}=LEADS_COLUMN")
        dup = duplicate_keys(table, key)
        if dup.any():
            raise BadInputError(f"{path}: lookup key {key!r} repeats in {int(dup.sum())} rows "
                                "(ignoring case, spaces, hyphens and underscores): a lookup "
                                "needs one row per key (check: unique lookup key)")
        lname = re.sub(r"[^a-z0-9_]+", "_", path.name.split(".")[0].lower()).strip("_")
        while lname in lookup_specs:
            lname += "_2"
        cols = [col for col in table.columns if col != key and col not in frame.columns]
        clash = [col for col in table.columns if col != key and col in frame.columns]
        if not cols:
            raise BadInputError(
                f"{path}: every column of the lookup is already a leads column "
                f"({', '.join(clash)}): nothing to join; drop --lookup {arg}, or rename the "
                "columns in one of the files")
        frame, unmatched = join_lookup(frame, table, on=on, key=key, columns=cols)
        lookup_tables.update({col: lname for col in cols})
        tree = {"path": _rel(path, out_dir), "key": key}
        if on != key:
            tree["on"] = on
        tree.update(spec)
        tree["columns"] = cols
        comment = (f"{len(frame) - unmatched:,} of {len(frame):,} leads match; "
                   + "; ".join(notes))
        if clash:
            comment += f"; not joined (the leads have them): {', '.join(clash)}"
        lookup_specs[lname] = {"tree": tree, "comment": comment}

    deals_info = None
    deals_label = None
    since = None
    if deals:
        deals_path = Path(deals)
        dframe, dspec, dnotes = _read(deals_path, "deals")
        pre = _id_and_date(frame, today, lookup_tables, "--deals: labelling from deals")
        lead_col, closed, outcome, ofacts, dfacts = _deal_columns(dframe, frame[pre.id],
                                                                  today=today)
        won = lost = None
        open_stages: list[str] = []
        if ofacts is not None:
            if ofacts.stage:
                won, lost = list(ofacts.stage.won), list(ofacts.stage.lost)
                open_stages = list(ofacts.stage.open)
            else:
                won, lost = ofacts.binary
        closed_fmt = dfacts[closed].date.format
        deals_label, first_win = _deal_labels(
            frame, dframe, id_col=pre.id, created_at=pre.created_at,
            created_fmt=pre.date_format, lead_col=lead_col, closed=closed,
            closed_fmt=closed_fmt, outcome=outcome, won=won or [], horizon_days=horizon,
            today=today)
        dtree: dict = {"path": _rel(deals_path, out_dir), **dspec}
        dcom = {"data.deals.path": "; ".join(dnotes)}
        if closed_fmt != "ISO8601":
            dtree["date_format"] = closed_fmt
        dtree.update({"lead_id": lead_col, "closed_at": closed})
        dcom["data.deals.lead_id"] = "its values are the leads' ids"
        dcom["data.deals.closed_at"] = "the deal's date"
        if outcome:
            dtree.update({"outcome": outcome, "won_values": won, "lost_values": lost})
            if open_stages:
                dtree["open_values"] = open_stages
                dcom["data.deals.open_values"] = "still being worked: neither won nor lost"
        else:
            dcom["data.deals.closed_at"] += "; no outcome column: every deal listed is a win"
        deals_info = {"tree": dtree, "comments": dcom}
        created = parse_dates_as(frame[pre.created_at], pre.date_format, today=today)
        if first_win is not None:
            start = (first_win - pd.Timedelta(days=horizon)).normalize()
            if created.min() < start:
                since = str(start.date())

    feedback_info = None
    if feedback:
        feedback_info = _feedback_spec(Path(feedback), frame, today=today, out_dir=out_dir,
                                       lookup_tables=lookup_tables)

    activities_info = None
    if activities:
        acts_path = Path(activities)
        aframe, aspec, anotes = _read(acts_path, "activities")
        pre = _id_and_date(frame, today, lookup_tables,
                           "--activities: point-in-time features")
        activities_info = _activity_spec(aframe, frame[pre.id], today=today, out_dir=out_dir,
                                         path=acts_path, spec=aspec, notes=anotes)

    proposal = propose(frame, today=today, label=label, deals_label=deals_label,
                       horizon_days=horizon, lookup_tables=lookup_tables,
                       lookup_keys=frozenset(s["tree"].get("on") or s["tree"]["key"]
                                             for s in lookup_specs.values()))
    if activities_info:
        import dataclasses

        found = set(snapshot_counters(proposal.columns("numeric"), activities_info["types"]))
        proposal.roles = [dataclasses.replace(r, role="snapshot", why=(
            "export-day counter of an activity type in the log: the log's point-in-time "
            "counts replace it")) if r.column in found else r for r in proposal.roles]
    name = name or f"leadq-{_slug(leads_path)}"
    tree, comments = build(proposal, leads_path=leads_path, leads_spec=leads_spec,
                           leads_notes=leads_notes, out_dir=out_dir, deals=deals_info,
                           lookups=lookup_specs, name=name, since=since, horizon_days=horizon,
                           activities=activities_info, feedback=feedback_info)
    header = [
        *_wrap(f"leadq parameters for {leads_path.name}, written by `leadq init`. Only what "
               "differs from the packaged defaults; `leadq params --params THIS_FILE` prints "
               "the merged result. Every guess is commented: check them, then `leadq train "
               "--params THIS_FILE`.", 96),
        *[line for n in proposal.notes for line in _wrap(f"Note: {n}", 96)],
        "",
    ]
    text = render(tree, comments, header=header)
    effective_params(yaml.safe_load(text), source=str(out_path))  # what we write must load
    if out_path.exists() and out_path.read_text(encoding="utf-8") != text and not force:
        raise BadInputError(f"{out_path} exists and differs from what init would write; "
                            "pass --force to replace it (or --out another file)")
    with atomic_target(out_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(summary_table(proposal))
    for note in proposal.notes:
        print(f"note: {note}")
    log.info("wrote %s (%d lines): next, leadq train --params %s", out_path,
             text.count("\n"), out_path)
    return {"out": str(out_path), "id": proposal.id, "created_at": proposal.created_at,
            "label_form": proposal.label.kind, "label": proposal.label.column,
            "leak_suspects": {r.column: r.why for r in proposal.roles if r.role == "leak"},
            "roles": {r.column: r.role for r in proposal.roles},
            "segment_candidate": proposal.segment[0] if proposal.segment else None}


def _id_and_date(frame: pd.DataFrame, today: pd.Timestamp, lookup_tables: dict[str, str],
                 what: str) -> Proposal:
    """The leads' id and created_at, which `what` (a deals label, activity features) needs."""
    pre = propose_id_and_date(frame, today=today, lookup_tables=lookup_tables)
    if pre.id is None or pre.created_at is None:
        raise ProfileError(f"{what} needs a lead id and a creation date in the leads; init "
                           f"found id {pre.id!r}, created_at {pre.created_at!r}")
    return pre


def propose_id_and_date(frame: pd.DataFrame, *, today: pd.Timestamp,
                        lookup_tables: dict[str, str]) -> Proposal:
    """The id and created_at guesses alone (the deals label needs them before the rest)."""
    from leadq.pipelines.profiling.profile import LabelForm, choose_created_at, choose_id

    facts = {c: column_facts(frame[c], c, today=today) for c in frame.columns
             if c not in lookup_tables}
    id_col, id_why = choose_id(frame, facts, skip=set())
    created, why = choose_created_at(facts, {id_col} - {None})
    fmt = facts[created].date.format if created else None
    return Proposal(id=id_col, id_why=id_why, created_at=created, created_why=why,
                    date_format=fmt, label=LabelForm("deals"))
