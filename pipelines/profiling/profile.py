"""What `leadq init` guesses about an export: the id, the MQL date, the label, each column's
role and the leak suspects. Frames in, a Proposal out; reading and writing live in
leadq.pipelines.init.

Every guess carries its reason, because the user must be able to check it: the params file
init writes repeats them as comments. The rules, in the order they are applied to a column:

1. the id: unique and never blank, text or an integer named like an id (sniff.id_reason);
2. the label: an outcome column (0/1, yes/no, TRUE/FALSE named like an outcome, or a pipeline
   stage with won and lost values), a conversion date, or a deals table; `--label` settles it;
3. the MQL moment (`created_at`): the date column named like a creation date, or the only one;
4. personal fields (e-mail, phone, names, birth dates, addresses): never inputs; an e-mail
   column feeds only the corporate/free-mail flag. A personal word in the name counts only
   when the values look like it (a pattern, or many distinct values): `zip_code` holding
   Urban/Suburban/Rural is a category;
5. leak suspects (LEAK_WORDS in the name, one column or its missingness predicting the label
   with out-of-fold ROC AUC ≥ SUSPECT_AUC, being filled in, filled with a date after the
   lead's, or holding a placeholder predicting it as well, or filled in exactly where a
   suspect is): left out. Presence is judged on every column, the near-empty and constant
   ones too: under a 0.2% base rate a "converted at" column is 99.8% blank;
6. left out as useless: constant, near-empty, free text, nearly unique text, other dates;
7. the rest: numbers (numeric) or categories (high-cardinality ones target-encoded). Integer
   codes are categories: named like a code (CODE_WORDS last), or a few values whose rates
   rank leads better as categories than as a quantity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadq.pipelines.profiling import sniff

# Name words that say a column is written after sales worked the lead (or is the outcome).
LEAK_WORDS = frozenset({
    "stage", "status", "close", "closed", "closing", "won", "win", "lost", "converted",
    "conversion", "outcome", "result", "quality", "tag", "tags", "activity", "contacted",
    "called", "meeting", "disposition", "deal", "sold", "quote", "offer", "amount", "value",
    "values", "interest", "emi", "installment", "approved", "approval", "rating", "feedback",
    "churn", "churned", "qualified", "disqualified", "call", "calls",
})
# Whole names that are leaks although their words are not: a telemarketing export's
# `duration` is the length of the sales call (a session's or a flight's duration has a prefix).
LEAK_NAMES = frozenset({"duration", "calldate", "lastcontact"})
# Name words saying a column describes the time before the lead (they cancel LEAK_WORDS).
BEFORE_WORDS = frozenset({"existing", "previous", "prior", "past", "former", "historical"})
# Words of a leads column that counts events (a snapshot counter when its other words name an
# activity type of the log).
COUNT_WORDS = frozenset({"total", "number", "count", "num", "n", "of", "per", "so", "far"})
# Name words of an outcome column (a two-valued column is only taken as the label with one).
LABEL_WORDS = frozenset({
    "converted", "conversion", "convert", "label", "target", "outcome", "y", "won", "win",
    "approved", "purchase", "purchased", "revenue", "complete", "completed", "success",
    "successful", "sold", "signed", "subscribed", "enrolled", "churn", "churned", "class",
    "result", "response", "responded", "booked", "sale", "is_won",
})
# Words that name the outcome only together: HubSpot's "Became a Customer" (and its date);
# "customer" alone is as often an attribute ("existing_customer", "is_customer_referral").
OUTCOME_PHRASES = (frozenset({"became", "customer"}),)
# Name words of a conversion date (a date column named so is a label, never an input).
CONVERSION_DATE_WORDS = frozenset({"converted", "conversion", "won", "purchased", "signed",
                                   "enrolled", "subscribed"})
CREATED_WORDS = ("created", "creation", "create", "first", "submitted", "signup", "registered",
                 "engage", "engaged", "mql", "lead", "arrived", "received", "date")
PERSONAL_WORDS = frozenset({
    "email", "mail", "phone", "mobile", "telephone", "tel", "fax", "firstname", "lastname",
    "surname", "fullname", "dob", "birth", "birthday", "birthdate", "address", "street",
    "ssn", "passport", "ip", "zip", "postcode", "postal",
})
NAME_PAIRS = (("first", "name"), ("last", "name"), ("full", "name"), ("contact", "name"))
# What the values of a personal-word column look like when they are personal data (the share
# of sampled cells matching decides): a `zip_code` of Urban/Rural or a `phone_type` of
# mobile/landline names the topic, not the data.
POSTAL_WORDS = frozenset({"zip", "postcode", "postal"})
PHONE_WORDS = frozenset({"phone", "mobile", "telephone", "tel", "fax"})
BIRTH_WORDS = frozenset({"dob", "birth", "birthday", "birthdate"})
# Words whose values have no checkable shape (names, streets, encoded IPs): personal when
# they take many values, as names repeat (a thousand first names in 10,000 leads).
SHAPELESS_WORDS = frozenset({"firstname", "lastname", "surname", "fullname", "address",
                             "street", "ssn", "passport", "ip"})
VALUE_PATTERNS = {
    "postcodes": re.compile(
        r"\d{4,6}(\.0)?|\d{5}-\d{4}|\d{5}-\d{3}|\d{3}-\d{4}|\d{2}-\d{3}|\d{4} ?[A-Za-z]{2}"
        r"|[A-Za-z]{1,2}\d[A-Za-z\d]?( ?\d[A-Za-z]{2})?|[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d"),
    # 7 to 15 digits (E.164), checked apart: pyarrow's regex engine has no lookahead
    "phone numbers": re.compile(r"\+?[\d\s().\-/]{7,24}((x|ext\.?) ?\d{1,6})?"),
    "IP addresses": re.compile(r"(\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}"),
}
PATTERN_SHARE = 0.8  # sampled cells matching a pattern for the column to be that data
# Last name words of an integer column holding codes, not quantities (Region_Code,
# Policy_Sales_Channel, TalkingData's app/device/os/channel).
CODE_WORDS = frozenset({
    "code", "codes", "id", "channel", "region", "type", "category", "segment", "app", "device",
    "os", "platform", "zone", "area", "branch", "campaign", "source", "country", "state",
    "city", "district", "store", "agent", "dealer", "partner", "product", "brand", "group",
    "kind", "class", "sector", "industry", "occupation", "profession",
})
# Form defaults and zero dates that stand for "not filled in" (lower-cased cells); the
# contract's placeholder_values plus what CRMs write when nobody picked a value.
PLACEHOLDERS = frozenset({
    "select", "--select--", "- select -", "please select", "choose", "0000-00-00",
    "0000-00-00 00:00:00", "00/00/0000", "unknown", "n/a", "na", "none", "null", "-", "?",
    "(not set)", "not provided", "not specified",
})
# A job title (seniority rank): named so, not a bare "job" (bank exports' occupation categories).
JOB_WORDS = frozenset({"title", "position", "designation"})

SEASON_MIN_DAYS = 730      # season/weekday inputs only with two years of history (below)
SUSPECT_AUC = 0.85          # one column alone this predictive is set aside (train stops at 0.9)
NEAR_EMPTY = 0.95           # blank share above which a column is left out
NUMERIC_SHARE = 0.98        # share of non-blank cells that must parse as numbers
TARGET_ENCODE_ABOVE = 30    # distinct values above which a category is target-encoded
UNIQUE_TEXT_SHARE = 0.5     # distinct/non-blank above which text is an identifier, not a category
FREE_TEXT_LENGTH = 40       # median length above which text with spaces is free text
LEAK_SAMPLE_ROWS = 100_000  # labelled rows the out-of-fold check looks at
PRESENCE_MIN_CLASS = 10     # positives (and negatives) before presence can be judged: with
                            # ten, chance alone reaches ROC AUC 0.85 once in millions
CODE_AUC_GAIN = 0.02        # integer values ranking leads this much better as categories
                            # than as a quantity (and by two standard errors) are codes


@dataclass
class Role:
    column: str
    role: str        # id | created_at | label | numeric | categorical | email | job_title |
                     # personal | leak | left_out | lookup_key | snapshot (export-day
                     # counter of an activity type: leadq init --activities)
    why: str
    table: str = "leads"
    target_encode: bool = False


@dataclass
class LabelForm:
    kind: str                  # binary | stage | converted_at | deals
    column: str | None = None
    won: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    open: tuple[str, ...] = ()
    why: str = ""
    date_format: str | None = None  # converted_at: its own sniffed format


@dataclass
class Proposal:
    id: str | None
    id_why: str
    created_at: str | None
    created_why: str
    date_format: str | None
    label: LabelForm
    roles: list[Role] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created_span_days: float | None = None  # first to last created_at
    segment: tuple[str, str] | None = None  # a strong segments.column candidate, and why

    def columns(self, role: str) -> list[str]:
        return [r.column for r in self.roles if r.role == role]


class ProfileError(ValueError):
    """init cannot decide (e.g. which column is the label): the message lists the choices."""


@dataclass
class ColumnFacts:
    name: str
    tokens: list[str]
    blank_share: float
    distinct: int
    non_blank: int
    numeric_share: float
    date: sniff.DateGuess | None
    binary: tuple[list[str], list[str]] | None
    stage: sniff.StageValues | None
    email_like: bool
    median_length: float
    spaces_share: float
    integer_share: float = 0.0   # of the numbers, the share that are whole (codes are)
    patterns: dict[str, float] = field(default_factory=dict)  # VALUE_PATTERNS share matched


def text_cells(values: pd.Series) -> pd.Series:
    """Cells as stripped text, blanks missing (how the reader hands them over)."""
    out = values.astype("string").str.strip()
    return out.mask(out == "")


def column_facts(values: pd.Series, name: str, *, today: pd.Timestamp) -> ColumnFacts:
    text = text_cells(values)
    present = text.dropna()
    n = len(present)
    numbers = pd.to_numeric(present, errors="coerce") if n else present
    sample = present.iloc[:: max(1, n // 5000)] if n else present
    lengths = sample.str.len()
    return ColumnFacts(
        name=name, tokens=sniff.name_tokens(name),
        blank_share=float(1 - n / len(text)) if len(text) else 1.0,
        distinct=int(present.nunique()), non_blank=n,
        numeric_share=float(numbers.notna().mean()) if n else 0.0,
        date=sniff.sniff_date_format(present, today=today) if n else None,
        binary=sniff.binary_values(present), stage=sniff.stage_values(present),
        email_like=bool(n) and float(sample.str.contains("@", regex=False).mean()) > 0.8,
        median_length=float(lengths.median()) if n else 0.0,
        spaces_share=float(sample.str.contains(" ", regex=False).mean()) if n else 0.0,
        integer_share=_integer_share(numbers) if n else 0.0,
        patterns=_pattern_shares(sample) if n else {},
    )


def _integer_share(numbers: pd.Series) -> float:
    """Of the finite numbers, the share that are whole (0 when there are none): "inf" and
    NaN cells read as numbers but are no code."""
    values = pd.to_numeric(numbers, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    return float(np.mean(values % 1 == 0)) if len(values) else 0.0


def _pattern_shares(sample: pd.Series) -> dict[str, float]:
    """Share of the cells matching each VALUE_PATTERNS entry."""
    shares = {}
    for kind, rx in VALUE_PATTERNS.items():
        match = sample.str.fullmatch(rx.pattern).fillna(False).astype(bool)
        if kind == "phone numbers":
            match &= sample.str.count(r"\d").between(7, 15).fillna(False).astype(bool)
        shares[kind] = float(match.mean())
    return shares


def _has_words(tokens: list[str], words: frozenset[str]) -> list[str]:
    joined = "".join(tokens)
    hits = [t for t in tokens if t in words]
    return hits or ([joined] if joined in words else [])


def names_outcome_phrase(tokens: list[str]) -> bool:
    """Whether the name holds all the words of an OUTCOME_PHRASES entry (and none saying it
    describes the time before the lead)."""
    present = set(tokens)
    return not present & BEFORE_WORDS and any(p <= present for p in OUTCOME_PHRASES)


def names_conversion_date(tokens: list[str]) -> bool:
    """Whether a date column's name says it is when the lead converted (a label)."""
    return bool(_has_words(tokens, CONVERSION_DATE_WORDS)) or names_outcome_phrase(tokens)


def personal_word(facts: ColumnFacts) -> str | None:
    """The personal-data word of the name ("zip", "first name"), whatever the values."""
    hits = _has_words(facts.tokens, PERSONAL_WORDS)
    if hits:
        return hits[0]
    for a, b in NAME_PAIRS:
        if a in facts.tokens and b in facts.tokens:
            return f"{a} {b}"
    return "name" if facts.tokens == ["name"] else None


def _values_look_personal(facts: ColumnFacts, word: str) -> str | None:
    """How the values of a column named with a personal word look like personal data, or
    None: a postcode/phone/IP pattern, a date of birth, mostly distinct values, or (for
    names, streets and encoded IPs, which repeat) more than a category's worth of values."""
    key = word.replace(" ", "")
    pattern = ("postcodes" if key in POSTAL_WORDS else "phone numbers" if key in PHONE_WORDS
               else "IP addresses" if key == "ip" else None)
    if pattern and facts.patterns.get(pattern, 0.0) >= PATTERN_SHARE:
        return f"values are {pattern}"
    if key in BIRTH_WORDS and facts.date is not None:
        return "values are dates"
    if facts.non_blank and facts.distinct >= UNIQUE_TEXT_SHARE * facts.non_blank:
        return "values mostly distinct"
    if (key in SHAPELESS_WORDS or " " in word or key == "name") \
            and facts.distinct > TARGET_ENCODE_ABOVE:
        return f"{facts.distinct:,} distinct values"
    return None


def is_personal(facts: ColumnFacts) -> str | None:
    """Why the column is personal data, or None. A personal word in the name counts only
    when the values look like it (_values_look_personal)."""
    if facts.email_like:
        return "holds e-mail addresses"
    word = personal_word(facts)
    if word is None or facts.binary:
        return None  # "Do Not Email" (yes/no): about contact, not contact data
    seen = _values_look_personal(facts, word)
    if seen is None:
        return None
    what = "a person's name" if "name" in word else "personal data"
    return f"name says {what} ({word!r}) and its {seen}"


def personal_word_kept(facts: ColumnFacts) -> str | None:
    """Why a column named with a personal word is an input all the same, or None."""
    word = personal_word(facts)
    if word is None or facts.email_like or is_personal(facts):
        return None
    return (f"named like personal data ({word!r}), but its {facts.distinct:,} values are "
            "neither a pattern of it nor mostly distinct: an attribute, not a person")


def leak_words(facts: ColumnFacts) -> list[str]:
    if set(facts.tokens) & BEFORE_WORDS:
        return []  # "existing_emi", "previous_outcome": the state before the lead arrived
    if "".join(facts.tokens) in LEAK_NAMES:
        return ["".join(facts.tokens)]
    hits = _has_words(facts.tokens, LEAK_WORDS)
    if "last" in facts.tokens and "activity" not in hits and any(
            t.startswith("activ") for t in facts.tokens):
        hits.append("last activity")
    return hits


# ------------------------------------------------------------------------------ the label

def label_candidates(facts: dict[str, ColumnFacts], *, created_at: str | None) -> list[LabelForm]:
    out = []
    for name, f in facts.items():
        if f.binary and (_has_words(f.tokens, LABEL_WORDS) or names_outcome_phrase(f.tokens)):
            pos, neg = f.binary
            out.append(LabelForm("binary", name, tuple(pos), tuple(neg),
                                 why=f"two values {'/'.join(pos + neg)}, named like an outcome"))
        elif f.stage:
            st = f.stage
            out.append(LabelForm("stage", name, st.won, st.lost, st.open,
                                 why=f"a stage column: won {list(st.won)}, lost {list(st.lost)}, "
                                     f"open (censored) {list(st.open)}"))
        elif (f.date is not None and name != created_at
              and names_conversion_date(f.tokens)):
            out.append(LabelForm("converted_at", name, why="a date named like a conversion date",
                                 date_format=f.date.format))
    return out


def label_from_column(name: str, f: ColumnFacts) -> LabelForm:
    """The label form of a column the user named with --label."""
    if f.binary:
        pos, neg = f.binary
        return LabelForm("binary", name, tuple(pos), tuple(neg),
                         why=f"--label; two values {'/'.join(pos + neg)}")
    if f.stage:
        st = f.stage
        return LabelForm("stage", name, st.won, st.lost, st.open,
                         why=f"--label; won {list(st.won)}, lost {list(st.lost)}, open "
                             f"(censored) {list(st.open)}")
    if f.date is not None:
        return LabelForm("converted_at", name, why="--label; a date: the conversion date",
                         date_format=f.date.format)
    raise ProfileError(
        f"--label {name}: not an outcome leadq can read: expected two values (0/1, yes/no, "
        "TRUE/FALSE), a stage column with won and lost values, or a conversion date")


# ------------------------------------------------------------------------------ leak evidence

def label_vector(frame: pd.DataFrame, form: LabelForm, *, created: pd.Series | None,
                 horizon_days: int, deal_wins: pd.Series | None = None) -> pd.Series:
    """The label init's leak check judges against (NaN = censored), by the training rules."""
    from leadq.features.labels import labels_from_column, labels_from_conversion_date

    if form.kind in ("binary", "stage"):
        return labels_from_column(frame[form.column], column=form.column, won=list(form.won),
                                  lost=list(form.lost), open_values=list(form.open))["label"]
    if form.kind == "converted_at":
        converted = frame[form.column]
        as_of = max(s.max() for s in (converted, created) if s is not None and s.notna().any())
        return labels_from_conversion_date(created, converted, horizon_days=horizon_days,
                                           as_of=as_of, matured_only=True)["label"]
    return deal_wins if deal_wins is not None else pd.Series(np.nan, index=frame.index)


def statistical_suspects(inputs: pd.DataFrame, y: pd.Series, *, seed: int = 0
                         ) -> dict[str, str]:
    """Columns whose values or missingness alone predict the label with out-of-fold ROC AUC of
    SUSPECT_AUC or more (leadq.models.leakage, the check training itself runs at 0.9)."""
    from leadq.models.leakage import column_aucs

    known = y.notna()
    if known.sum() < 50 or y[known].nunique() < 2 or inputs.empty:
        return {}
    idx = np.flatnonzero(known.to_numpy())
    if len(idx) > LEAK_SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, LEAK_SAMPLE_ROWS, replace=False))
    found = {}
    for leak in column_aucs(inputs.iloc[idx], y.iloc[idx].to_numpy(int)):
        if leak.auc >= SUSPECT_AUC and leak.column not in found:
            what = "alone" if leak.kind == "values" else "by whether it is filled in"
            found[leak.column] = (f"{what} predicts the label with out-of-fold ROC AUC "
                                  f"{leak.auc:.2f}")
    return found


def _indicator_auc(y: np.ndarray, flag: np.ndarray) -> float:
    """ROC AUC of a 0/1 indicator, either direction: 0.5 + (TPR - FPR)/2 folded."""
    pos = y == 1
    if not pos.any() or pos.all():
        return 0.5
    gap = float(flag[pos].mean() - flag[~pos].mean())
    return 0.5 + abs(gap) / 2


def presence_suspects(frame: pd.DataFrame, columns: list[str], y: pd.Series, *,
                      created: pd.Series | None, today: pd.Timestamp,
                      date_formats: dict[str, str] | None = None, seed: int = 0
                      ) -> dict[str, str]:
    """Columns whose being filled in (placeholders count as blank), being filled with a date
    after (or not after) the lead's created_at, or holding a PLACEHOLDERS value predicts the
    label with ROC AUC of SUSPECT_AUC or more, whatever the fill rate: a conversion date
    filled for exactly the 0.2% who converted is near-empty, and a perfect leak.

    Each indicator is fixed before the label is seen (only its direction is chosen), so the
    in-sample ROC AUC is already an out-of-fold one; PRESENCE_MIN_CLASS keeps chance out."""
    known = y.notna()
    idx = np.flatnonzero(known.to_numpy())
    if len(idx) > LEAK_SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, LEAK_SAMPLE_ROWS, replace=False))
    y_s = y.iloc[idx].to_numpy(int)
    if min(y_s.sum(), len(y_s) - y_s.sum()) < PRESENCE_MIN_CLASS:
        return {}
    lead_date = created.iloc[idx].to_numpy() if created is not None else None
    date_formats = date_formats or {}
    found = {}
    for col in columns:
        cells = text_cells(frame[col].iloc[idx])
        lower = cells.str.lower()
        placeholder = lower.isin(PLACEHOLDERS).fillna(False).to_numpy(bool)
        filled = cells.notna().to_numpy(bool) & ~placeholder
        share = filled.mean()
        tests = [(_indicator_auc(y_s, filled),
                  f"filled in for {share:.1%} of leads, and whether it is filled in")]
        for value in lower[placeholder].unique():
            spelt = cells[(lower == value).fillna(False).to_numpy(bool)].iloc[0]
            tests.append((_indicator_auc(y_s, (lower == value).fillna(False).to_numpy(bool)),
                          f"its placeholder {spelt!r}"))
        fmt = date_formats.get(col)
        if fmt is None and placeholder.any() and filled.any():
            guess = sniff.sniff_date_format(cells[filled], today=today)  # 0000-00-00 aside
            fmt = guess.format if guess else None
        if lead_date is not None and fmt is not None and filled.any():
            dates = sniff.parse_dates_as(cells.where(filled), fmt, today=today).to_numpy()
            for when, flag in (("after", dates > lead_date), ("on or before",
                                                              dates <= lead_date)):
                tests.append((_indicator_auc(y_s, flag & filled),  # NaT compares False
                              f"being filled with a date {when} the lead's created_at"))
        auc, what = max(tests, key=lambda t: t[0])
        if auc >= SUSPECT_AUC:
            found[col] = f"{what} alone predicts the label with ROC AUC {auc:.2f}"
    return found


def filled_together(frame: pd.DataFrame, suspects: list[str], candidates: list[str]
                    ) -> dict[str, str]:
    """Columns blank in exactly the rows a suspect is blank in (at least 5% of rows): filled
    in at the same step of the process, so they leak with it."""
    out = {}
    masks = {s: text_cells(frame[s]).isna().to_numpy() for s in suspects}
    for col in candidates:
        miss = text_cells(frame[col]).isna().to_numpy()
        if miss.mean() < 0.05 or miss.all():
            continue
        for s, m in masks.items():
            if (miss == m).mean() >= 0.999:
                out[col] = f"blank exactly where leak suspect {s!r} is: filled in with it"
                break
    return out


# ------------------------------------------------------------------------------ roles

def input_role(f: ColumnFacts) -> Role:
    """numeric / categorical, or left out with the reason."""
    if f.non_blank == 0 or f.blank_share >= NEAR_EMPTY:
        return Role(f.name, "left_out", f"near-empty ({f.blank_share:.0%} blank)")
    if f.distinct <= 1:
        return Role(f.name, "left_out", "constant (one value)")
    if f.date is not None:
        return Role(f.name, "left_out", "a date other than the MQL moment (only created_at's "
                                        "season and weekday are inputs)")
    if f.numeric_share >= NUMERIC_SHARE:
        word = code_word(f)
        if word:
            return code_role(f, f"integer codes named like a code ({word!r})")
        return Role(f.name, "numeric", f"numbers ({f.distinct:,} distinct)")
    share = f.distinct / max(f.non_blank, 1)
    if f.median_length > FREE_TEXT_LENGTH and f.spaces_share > 0.5:
        return Role(f.name, "left_out", "free text (long, with spaces): not a category")
    if share > UNIQUE_TEXT_SHARE and f.distinct > TARGET_ENCODE_ABOVE:
        return Role(f.name, "left_out", f"nearly unique text ({f.distinct:,} values in "
                                        f"{f.non_blank:,} rows): an identifier, not a category")
    if f.distinct > TARGET_ENCODE_ABOVE:
        return Role(f.name, "categorical", f"{f.distinct:,} categories: target-encoded",
                    target_encode=True)
    return Role(f.name, "categorical", f"{f.distinct} categories")


def code_word(f: ColumnFacts) -> str | None:
    """The CODE_WORDS word ending the name of an integer column (Region_Code, channel), or
    None. Only the last word: "region_population" is a quantity about regions."""
    if f.integer_share < 1.0 or not f.tokens or f.tokens[-1] not in CODE_WORDS:
        return None
    return f.tokens[-1]


def code_role(f: ColumnFacts, reason: str) -> Role:
    """An integer column read as categories: a code's numbers are labels, not quantities."""
    if f.distinct > TARGET_ENCODE_ABOVE:
        return Role(f.name, "categorical", f"{reason}: {f.distinct:,} categories, "
                                           "target-encoded", target_encode=True)
    return Role(f.name, "categorical", f"{reason}: {f.distinct} categories, not a quantity")


def non_monotone_codes(frame: pd.DataFrame, roles: list[Role], facts: dict[str, ColumnFacts],
                       y: pd.Series, *, seed: int = 0) -> dict[str, str]:
    """Integer columns of a few values (3 to TARGET_ENCODE_ABOVE) that rank leads better as
    categories (out-of-fold conversion rate per value) than as a quantity (their order), by
    CODE_AUC_GAIN and two standard errors: the rates do not rise or fall with the value."""
    from leadq.models.leakage import column_aucs

    cols = [r.column for r in roles if r.role == "numeric"
            and facts[r.column].integer_share == 1.0
            and 3 <= facts[r.column].distinct <= TARGET_ENCODE_ABOVE]
    known = y.notna()
    labels = y[known].to_numpy(int) if known.any() else np.array([], int)
    if not cols or min(labels.sum(), len(labels) - labels.sum()) < PRESENCE_MIN_CLASS:
        return {}
    idx = np.flatnonzero(known.to_numpy())
    if len(idx) > LEAK_SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, LEAK_SAMPLE_ROWS, replace=False))
    y_s = y.iloc[idx].to_numpy(int)
    fewer = min(y_s.sum(), len(y_s) - y_s.sum())
    out = {}
    for col in cols:
        cells = text_cells(frame[col].iloc[idx])
        both = pd.DataFrame({"number": pd.to_numeric(cells, errors="coerce"),
                             "category": cells})
        aucs = {a.column: a.auc for a in column_aucs(both, y_s) if a.kind == "values"}
        as_cat, as_num = aucs["category"], aucs["number"]
        # Hanley and McNeil's standard error, bounded by the rarer class
        se = float(np.sqrt(as_cat * (1 - as_cat) / max(fewer, 1)))
        if as_cat - as_num >= max(CODE_AUC_GAIN, 2 * se):
            out[col] = (f"integer codes: rates do not follow the value (ROC AUC "
                        f"{as_cat:.2f} as categories, {as_num:.2f} as a number)")
    return out


def choose_id(frame: pd.DataFrame, facts: dict[str, ColumnFacts], *, skip: set[str]
              ) -> tuple[str | None, str]:
    """The first column that is a record id (sniff.id_reason), and why; or None and why not."""
    for c, f in facts.items():
        if c in skip:
            continue
        why = sniff.id_reason(frame[c], c)
        if why and not (f.email_like or f.date is not None):
            return c, why
    return None, "no column is unique and never blank: scores go beside the rows"


def choose_created_at(facts: dict[str, ColumnFacts], taken: set[str]) -> tuple[str | None, str]:
    dates = [n for n, f in facts.items() if f.date is not None and n not in taken
             and not is_personal(f) and not leak_words(f)
             and not names_conversion_date(f.tokens)
             and f.blank_share < 0.5]  # a lead without its date is rejected: half is too many
    if not dates:
        return None, "no date column: the split is stratified random"
    for word in CREATED_WORDS:
        named = [n for n in dates if word in facts[n].tokens]
        if len(named) == 1:
            return named[0], f"a date named {word!r}" + (
                f" (other dates: {', '.join(d for d in dates if d != named[0])})"
                if len(dates) > 1 else "")
        if len(named) > 1:
            break
    if len(dates) == 1:
        return dates[0], "the only date column"
    return None, (f"several date columns ({', '.join(dates)}) and none clearly the lead's "
                  "creation: the split is stratified random (set data.leads.created_at)")


def propose(frame: pd.DataFrame, *, today: pd.Timestamp, label: str | None = None,
            deals_label: pd.Series | None = None, horizon_days: int = 90,
            lookup_tables: dict[str, str] | None = None,
            lookup_keys: frozenset[str] = frozenset()) -> Proposal:
    """The guesses for a leads frame (raw text cells, lookup columns already joined).

    `deals_label`: the label from a deals table (init computed it), when one was given;
    `lookup_tables`: joined column → lookup name, for the summary."""
    lookup_tables = lookup_tables or {}
    facts = {c: column_facts(frame[c], c, today=today) for c in frame.columns}
    roles: list[Role] = []

    id_col, id_why = choose_id(frame, facts, skip=set(lookup_tables))
    taken = {id_col} - {None}

    created_at, created_why = choose_created_at(facts, taken | set(lookup_tables))
    date_format = facts[created_at].date.format if created_at else None
    taken |= {created_at} - {None}

    if label:
        if label not in facts:
            raise ProfileError(f"--label {label}: no such column; columns: "
                               + ", ".join(list(frame.columns)[:30]))
        form = label_from_column(label, facts[label])
    elif deals_label is not None:
        form = LabelForm("deals", why="a won deal within the horizon (deals table)")
    else:
        candidates = label_candidates({c: f for c, f in facts.items() if c not in taken},
                                      created_at=created_at)
        if len(candidates) != 1:
            listed = "; ".join(f"{c.column} ({c.why})" for c in candidates) or (
                "none: no two-valued outcome column named like one, no stage column, no "
                "conversion date")
            raise ProfileError(
                f"init cannot tell which column is the label; candidates: {listed}. Pass "
                "--label COLUMN (an outcome column or a conversion date), or --deals FILE")
        form = candidates[0]
    if form.column:
        taken.add(form.column)
        if form.column == created_at:
            raise ProfileError(f"{form.column} cannot be both the label and created_at")

    if id_col:
        roles.append(Role(id_col, "id", id_why))
    if created_at:
        roles.append(Role(created_at, "created_at", created_why))
    if form.column:
        roles.append(Role(form.column, "label", form.why))

    created = None
    if created_at:
        created = sniff.parse_dates_as(frame[created_at], date_format, today=today)
    if form.kind == "converted_at":
        conv = sniff.parse_dates_as(frame[form.column], facts[form.column].date.format,
                                    today=today)
        y = label_vector(frame.assign(**{form.column: conv}), form, created=created,
                         horizon_days=horizon_days)
    else:
        y = label_vector(frame, form, created=created, horizon_days=horizon_days,
                         deal_wins=deals_label)

    email_done = job_done = False
    named_leaks: list[str] = []
    pending: list[Role] = []
    for c, f in facts.items():
        if c in taken:
            continue
        table = lookup_tables.get(c, "leads")
        personal = is_personal(f)
        if personal:
            if f.email_like and not email_done:
                email_done = True
                roles.append(Role(c, "email", f"{personal}: personal; only its corporate/"
                                              "free-mail flag reaches the model", table))
            else:
                roles.append(Role(c, "personal", f"{personal}: never an input", table))
            continue
        useless = input_role(f)
        if useless.role == "left_out" and useless.why.startswith(("constant", "near-empty")):
            useless.table = table
            pending.append(useless)  # only its presence can leak (presence_suspects)
            continue
        if c in lookup_keys and f.numeric_share >= NUMERIC_SHARE:
            roles.append(Role(c, "lookup_key", "a numeric lookup key: joins, is no input"))
            continue
        if table == "leads" and sniff.id_reason(frame[c], c):
            roles.append(Role(c, "left_out", "another unique identifier (a record number "
                                             "predicts nothing, or only the order of entry)"))
            continue
        words = leak_words(f)
        if words:
            named_leaks.append(c)
            roles.append(Role(c, "leak", f"name says it is filled in after sales worked the "
                                         f"lead ({', '.join(repr(w) for w in words)})", table))
            continue
        if (not job_done and _has_words(f.tokens, JOB_WORDS) and f.numeric_share < 0.5
                and f.date is None and f.distinct > 1):
            job_done = True
            roles.append(Role(c, "job_title", "a job title: reaches the model as a seniority "
                                              "rank", table))
            continue
        role = input_role(f)
        role.table = table
        kept = personal_word_kept(f)
        if kept and role.role in ("numeric", "categorical"):
            role.why = f"{role.why}; {kept}"
        pending.append(role)

    codes = non_monotone_codes(frame, pending, facts, y)
    pending = [code_role(facts[r.column], codes[r.column]) if r.column in codes else r
               for r in pending]
    for r in pending:
        r.table = lookup_tables.get(r.column, "leads")
    inputs = [r for r in pending if r.role in ("numeric", "categorical")]
    evidence = pd.DataFrame(index=frame.index)
    for r in inputs:
        cells = text_cells(frame[r.column])
        evidence[r.column] = pd.to_numeric(cells, errors="coerce") if r.role == "numeric" \
            else cells
    suspects = statistical_suspects(evidence, y)
    for col, why in presence_suspects(
            frame, [r.column for r in pending], y, created=created, today=today,
            date_formats={c: f.date.format for c, f in facts.items() if f.date}).items():
        suspects.setdefault(col, why)
    together = filled_together(frame, named_leaks + list(suspects),
                               [r.column for r in inputs if r.column not in suspects])
    for r in pending:
        why = suspects.get(r.column) or together.get(r.column)
        if why:
            roles.append(Role(r.column, "leak", why, r.table))
        else:
            roles.append(r)

    proposal = Proposal(id=id_col, id_why=id_why, created_at=created_at, created_why=created_why,
                        date_format=date_format, label=form, roles=roles)
    if created is not None and created.notna().any():
        proposal.created_span_days = float((created.max() - created.min()).days)
    if created_at and facts[created_at].blank_share > 0:
        proposal.notes.append(
            f"{created_at} is blank in {facts[created_at].blank_share:.1%} of rows: those leads "
            "have no MQL moment and are rejected (quarantined) by the contract")
    if created_at and facts[created_at].date.ambiguous:
        proposal.notes.append(f"{created_at}: day and month order cannot be told from the data "
                              f"(no day above 12); read as {date_format}: check it")
    proposal.segment = _segment_candidate(frame, roles, y)
    if proposal.segment:
        col, why = proposal.segment
        proposal.notes.append(
            f"segment column candidate: {col} ({why}). For a model per segment where it beats "
            f"the pooled one, set segments.column: {col} in this file (off until set)")
    known = y.notna()
    if known.any():
        proposal.notes.append(f"label: {int(known.sum()):,} labelled leads, "
                              f"{float(y[known].mean()):.1%} positive, "
                              f"{int((~known).sum()):,} censored")
    return proposal


def _segment_candidate(frame: pd.DataFrame, roles: list[Role], y: pd.Series
                       ) -> tuple[str, str] | None:
    """The strongest segments.column candidate among the categorical inputs (or None)."""
    from leadq.pipelines.params.loader import default_params
    from leadq.pipelines.profiling.segments import segment_candidate

    seg = default_params()["segments"]
    cats = [r.column for r in roles if r.role == "categorical" and not r.target_encode
            and r.column in frame.columns]
    return segment_candidate(frame, cats, y, min_leads=int(seg["min_leads"]),
                             min_conversions=int(seg["min_conversions"]))
