"""`leadq score --engine spark`: score a leads file or glob on Spark with the registered model.

Same contract as the pandas engine: rows are checked row by row (`features.contracts.evaluate`,
the rules behind `check_rows`), bad rows go to DIR/rejected/ with their reason, good rows are
typed with `coerce_leads`, scored by `mlflow.pyfunc.spark_udf` on the same registry version and
turned into the same output columns by `leadq.pipelines.scoring.core.score_leads`. Output is Parquet
partitioned by scored date:

    DIR/scores/scored_date=YYYY-MM-DD/part-*.parquet    lead id, score, is_mql, model_version, ...
    DIR/rejected/scored_date=YYYY-MM-DD/part-*.parquet  original columns + reason

A re-run on the same day replaces that day's partitions only (dynamic partition overwrite), so a
nightly job can write into one DIR and keep its history.

pyspark and mlflow are imported inside functions: `leadq --help` must not pay for them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from leadq.errors import BadInputError, LeadqError
from leadq.features.columns import model_inputs, raw_input_columns
from leadq.features.tables import coerce_leads
from leadq.pipelines.io.progress import log, step

REASON = "reason"            # every rule a rejected row broke, "; "-joined (as the quarantine)
PRIMARY = "_leadq_primary"   # the first rule it broke: what the accounting counts
WARNINGS = "_leadq_warnings"  # a batch's warning counts (JSON) on its first row, else ""
ROW, PRIOR, FIRST, DUP_KEY = "_leadq_row", "_leadq_prior", "_leadq_first", "_leadq_dup_key"
# Spark's corrupt-record column: the raw text of a CSV row whose field count differs from the
# header's (a ragged row). Quarantined as `raw_line`, like the pandas engine does.
RAW_LINE = "_leadq_raw_line"
SCORE_TMP = "_leadq_score"
PARTITION = "scored_date"


# --------------------------------------------------------------------------- environment

def ensure_spark_env() -> None:
    """Point Spark at this venv's python and at a JVM before the first session starts.

    Executors under local[*] must run the python that has leadq and the model's libraries
    installed; a fresh machine often has java on PATH but no JAVA_HOME.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # pyspark warns about pandas 3 on every worker; the paths leadq uses are tested with it.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
    if not os.environ.get("JAVA_HOME"):
        java = shutil.which("java")
        if java is None:
            raise LeadqError("the Spark engine needs Java 17+: install a JDK or set JAVA_HOME")
        # .../jvm/java-17/bin/java → .../jvm/java-17
        os.environ["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)


def spark_session(master: str | None = None, app_name: str = "leadq-score"):
    """A SparkSession: --master wins; under spark-submit the submitted master; else local[*]."""
    ensure_spark_env()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise LeadqError("the Spark engine needs pyspark: pip install 'leadq[spark]'") from exc
    builder = SparkSession.builder.appName(app_name)
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit already chose a master
    if master:
        builder = builder.master(master)
    elif not submitted:
        builder = builder.master("local[*]")
    if (master or "local").startswith("local") and not submitted:
        # The driver is the executor in local mode; 1g (Spark's default) spills early.
        builder = builder.config("spark.driver.memory",
                                 os.environ.get("LEADQ_SPARK_DRIVER_MEMORY", "2g"))
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("LEADQ_SPARK_SHUFFLE", "8"))
        # Rows per Arrow batch handed to the Python steps: fewer, larger model calls.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch",
                os.environ.get("LEADQ_SPARK_BATCH_ROWS", "50000"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.showConsoleProgress", "false")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------- row checks

def _csv_na_to_null(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas.read_csv turns 'NA', 'null', 'NaN'... into missing; Spark's CSV reader only ''.
    Apply pandas' rule so both engines see the same missing cells."""
    from pandas._libs.parsers import STR_NA_VALUES

    na = list(STR_NA_VALUES)
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].where(~frame[col].isin(na), None)
    return frame


def ragged_reasons(raw_line: pd.Series, expected: int, delimiter: str) -> pd.Series:
    """'ragged row: N fields, header has M' where Spark kept a row's raw text, else ''."""
    import csv

    def reason(text) -> str:
        if text is None or (isinstance(text, float) and np.isnan(text)):
            return ""
        fields = len(next(csv.reader([str(text)], delimiter=delimiter), []))
        return f"ragged row: {fields} fields, header has {expected}"

    return pd.Series([reason(t) for t in raw_line], index=raw_line.index, dtype=object)


def _check_batches(params: dict, reference: dict | None, is_csv: bool, delimiter: str = ","):
    """mapInPandas step: A's row contract (leadq.features.contracts.evaluate) on each batch.

    `_prior` marks rows whose id an earlier row of the input already had (found by Spark over
    the whole input), the role leadq.pipelines.io.quarantine.IdTracker plays for the pandas engine.
    """
    from leadq.features.contracts import evaluate

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            prior = frame.pop(PRIOR).fillna(False).to_numpy(dtype=bool)
            frame = frame.drop(columns=[ROW]).reset_index(drop=True)
            raw_line = frame.pop(RAW_LINE) if RAW_LINE in frame else None
            if is_csv:
                frame = _csv_na_to_null(frame)
            check = evaluate(frame, "leads", params, reference, duplicates=prior)
            if raw_line is not None and raw_line.notna().any():
                # A ragged row's fields were spread over the columns by position: its only
                # reason is the field count, as in the pandas engine.
                ragged = ragged_reasons(raw_line, len(frame.columns), delimiter)
                hit = ragged != ""
                check.reasons = check.reasons.where(~hit.to_numpy(), ragged)
                check.primary = check.primary.where(~hit.to_numpy(), ragged)
            if raw_line is not None:
                frame[RAW_LINE] = raw_line
            # Warning counts add up over batches; one cell per batch carries them to the
            # driver without a column per warning kind.
            batch_warnings = np.full(len(frame), "", dtype=object)
            if check.warnings and len(frame):
                batch_warnings[0] = json.dumps(check.warnings)
            yield frame.assign(**{REASON: check.reasons.to_numpy(dtype=object),
                                  PRIMARY: check.primary.to_numpy(dtype=object),
                                  WARNINGS: batch_warnings})

    return run


def _mark_prior_duplicates(raw, id_col: str):
    """raw + `_prior`: True on every occurrence of an id after its first (in input order).

    Only ids that occur more than once are broadcast back, so the cost is one aggregation of
    (id, row number) pairs, not a shuffle of whole rows.
    """
    from pyspark.sql import functions as F

    numbered = raw.withColumn(ROW, F.monotonically_increasing_id())
    # Padding is ignored, as in the pandas engine (" L1" is L1 once typed).
    key = F.regexp_replace(F.col(f"`{id_col}`"), r"^\s+|\s+$", "")
    firsts = (numbered.filter(key.isNotNull()).groupBy(key.alias(DUP_KEY))
              .agg(F.min(ROW).alias(FIRST), F.count(F.lit(1)).alias("_n"))
              .filter(F.col("_n") > 1).drop("_n"))
    joined = numbered.join(F.broadcast(firsts), key == firsts[DUP_KEY], "left")
    prior = F.col(FIRST).isNotNull() & (F.col(ROW) != F.col(FIRST))
    return joined.withColumn(PRIOR, prior).drop(DUP_KEY, FIRST)


def _examples(checked, params: dict, reference: dict | None, is_csv: bool,
              cols: list[str]) -> dict[str, list[str]]:
    """A few offending values per reason, for check_totals' message: re-checked on a sample of
    rejected rows (cheap), duplicates shown by id."""
    from pyspark.sql import functions as F

    from leadq.features.contracts import evaluate

    sample = checked.filter(F.col(PRIMARY) != "").limit(200).toPandas()
    if sample.empty:
        return {}
    frame = sample[cols]
    if is_csv:
        frame = _csv_na_to_null(frame)
    examples = dict(evaluate(frame, "leads", params, reference).examples)
    idc = params["data"]["leads"]["id"]
    dups = sample.loc[sample[REASON].str.contains(f"{idc}: duplicate id", regex=False), idc]
    if len(dups):
        examples[f"{idc}: duplicate id"] = [str(v) for v in dups.head(3)]
    if RAW_LINE in sample:
        ragged = sample[sample[REASON].str.startswith("ragged row", na=False)]
        for reason, group in ragged.groupby(REASON):
            examples[reason] = [repr(str(v)[:80]) for v in group[RAW_LINE].head(3)]
    return examples


# --------------------------------------------------------------------------- typing + output

CUT = "_leadq_cut"  # each lead's activity cut-off (epoch seconds), for the aggregation


def typed_columns(params: dict) -> list[str]:
    """What the coerce step hands on: the model's lead columns (the activity features are
    joined in after it) and, with an activity log, each lead's cut-off."""
    spec = params["data"]["leads"]
    activity = set(model_inputs(params)["activity"])
    cols = [spec["id"], *(c for c in raw_input_columns(params) if c not in activity)]
    if activity:
        cols.append(CUT)
    if spec.get("created_at"):
        cols.append(spec["created_at"])
    return list(dict.fromkeys(cols))


def typed_schema(params: dict):
    """Spark schema of coerce_leads' output for the columns the model and output need."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampNTZType

    roles = model_inputs(params)
    created = params["data"]["leads"].get("created_at")
    fields = []
    for col in typed_columns(params):
        if col in roles["numeric"] or col == CUT:
            kind = DoubleType()
        elif col == created:
            # NTZ: coerce_leads gives naive UTC; a session-zone type would shift it.
            kind = TimestampNTZType()
        else:
            kind = StringType()
        fields.append(StructField(col, kind, True))
    return StructType(fields)


def _coerce_batches(params: dict, scored_at: pd.Timestamp | None = None):
    from leadq.features.activities import activity_spec, cutoff_seconds

    cols = typed_columns(params)
    spec = activity_spec(params)
    created = params["data"]["leads"].get("created_at")

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            typed = coerce_leads(frame, params)
            if spec is not None:
                typed[CUT] = cutoff_seconds(typed[created], spec, scored_at)
            yield typed[cols]

    return run


EVENTS_SCHEMA = "ev_lead string, ev_t double, ev_type string, ev_value double"


def _event_batches(params: dict, is_csv: bool):
    """mapInPandas step over the activity log: its row contract (the rules of
    features/rules.py "activities", as the pandas engine applies them) and the typed
    marketing events of the rows that pass."""
    from leadq.features.activities import canonical_events
    from leadq.features.contracts import evaluate
    from leadq.features.tables import parse_date_cells

    spec = params["data"]["activities"]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            prior = (frame.pop(PRIOR).fillna(False).to_numpy(dtype=bool) if PRIOR in frame
                     else None)
            frame = frame.drop(columns=[c for c in (ROW,) if c in frame]).reset_index(drop=True)
            if is_csv:
                frame = _csv_na_to_null(frame)
            check = evaluate(frame, "activities", params, None, duplicates=prior)
            good = frame.loc[~check.bad]
            yield canonical_events(good, spec, parse_date_cells(good[spec["occurred_at"]],
                                                                spec.get("date_format")))

    return run


def spark_events(spark, params: dict):
    """The activity log as a Spark DataFrame of typed events, read and checked on the
    executors (a log larger than the driver's memory is fine)."""
    from pyspark.errors import AnalysisException

    from leadq.pipelines.io.activities import activities_path

    spec = params["data"]["activities"]
    path = activities_path(params)
    if isinstance(path, str):
        from leadq.errors import BadInputError

        raise BadInputError("data.activities.path is a database URL: the Spark engine reads the "
                            "activity log from files (use the pandas engine)")
    path = str(path)
    is_csv = path.lower().endswith((".csv", ".txt", ".tsv"))
    try:
        if is_csv:
            charset, delimiter = csv_options(path, spec)
            raw = (spark.read.option("header", True).option("inferSchema", False)
                   .option("sep", delimiter).option("encoding", charset).csv(path))
        elif path.lower().endswith((".parquet", ".pq")):
            raw = spark.read.parquet(path)
        else:
            raise BadInputError(f"{path}: the Spark engine reads a CSV or Parquet activity "
                                "log (data.activities.path)")
    except AnalysisException as exc:
        raise BadInputError(f"{path}: cannot read the activity log: "
                            f"{str(exc).splitlines()[0]}") from exc
    renamed = [str(c).lstrip("\ufeff").strip() for c in raw.columns]
    if renamed != raw.columns:
        raw = raw.toDF(*renamed)
    from leadq.features.contracts import check_columns

    check_columns(list(raw.columns), "activities", params, path=path, for_training=False)
    if is_csv:
        from pyspark.sql import functions as F

        raw = raw.select([F.col(f"`{c}`").cast("string").alias(c) for c in raw.columns])
    if spec.get("id"):
        raw = _mark_prior_duplicates(raw, spec["id"]).drop(ROW)
    return raw.mapInPandas(_event_batches(params, is_csv), EVENTS_SCHEMA)


def with_activity_features(spark, typed, params: dict):
    """`typed` with the activity features joined on: the aggregation of
    leadq.features.activities (the same SQL as DuckDB runs for the pandas engine and
    `leadq serve`), run by Spark over the log's checked events."""
    from pyspark.sql import functions as F

    from leadq.features.activities import activity_spec, aggregation_sql

    spec = activity_spec(params)
    if spec is None:
        return typed
    idc = params["data"]["leads"]["id"]
    # Views under leadq's own names: a session shared with a user's job keeps its views.
    spark_events(spark, params).createOrReplaceTempView("_leadq_events")
    (typed.select(F.col(idc).cast("string").alias("c_pos"),
                  F.trim(F.col(idc).cast("string")).alias("c_lead"), F.col(CUT).alias("c_cut"))
     .createOrReplaceTempView("_leadq_cutoffs"))
    feats = spark.sql(aggregation_sql(spec, events="_leadq_events", cutoffs="_leadq_cutoffs"))
    feats = feats.select(F.col("c_pos").alias(idc),
                         *[F.col(c).cast("double").alias(c) for c in spec.feature_names()])
    return typed.join(feats, on=idc, how="left").drop(CUT)


class _Precomputed:
    """A pyfunc stand-in holding the scores spark_udf computed, so scoring.core.score_leads
    builds the output columns (MQL flag, tiers, versions) exactly as the pandas engine does.
    With `raw_model` (the sklearn pipeline, for --explain) the reasons come from it too."""

    def __init__(self, scores: np.ndarray, raw_model=None) -> None:
        self.scores = scores
        self.raw_model = raw_model

    def get_raw_model(self):
        if self.raw_model is None:
            raise LeadqError("reasons need the model on the executors; score with --explain")
        return self.raw_model

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if len(rows) != len(self.scores):
            raise ValueError("precomputed scores do not match the rows")
        return self.scores


def _output_batches(model, params: dict, scored_at: pd.Timestamp, columns: list[str],
                    raw_model=None):
    """mapInPandas step: score_leads on spark_udf's scores. `raw_model`, a broadcast of the
    sklearn pipeline, turns reasons on (each Python worker unpickles it once)."""
    from leadq.pipelines.scoring.core import score_leads

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sk = raw_model.value if raw_model is not None else None
        for frame in batches:
            scores = frame.pop(SCORE_TMP).to_numpy(dtype="float64")
            stub = dataclasses.replace(model, pyfunc=_Precomputed(scores, sk))
            out = score_leads(frame.reset_index(drop=True), stub, params, scored_at=scored_at,
                              explain=sk is not None)
            out[PARTITION] = scored_at.strftime("%Y-%m-%d")
            yield out[columns]

    return run


def _output_schema(spark, model, params: dict, scored_at: pd.Timestamp, sample: pd.DataFrame,
                   explain: bool = False):
    """Columns and Spark schema of score_leads' output, found by running it on a few typed
    good rows on the driver (with the driver's own copy of the model: no Spark job needed)."""
    from leadq.pipelines.scoring.core import score_leads

    frame = score_leads(sample.reset_index(drop=True), model, params, scored_at=scored_at,
                        explain=explain)
    frame[PARTITION] = scored_at.strftime("%Y-%m-%d")
    columns = list(frame.columns)
    return columns, spark.createDataFrame(frame).schema


# --------------------------------------------------------------------------- main

_JAVA_CHARSETS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16",
                  "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE", "cp1252": "windows-1252",
                  "latin-1": "ISO-8859-1", "iso8859-1": "ISO-8859-1"}


def csv_options(path: str, spec: dict) -> tuple[str, str]:
    """(Java charset, delimiter) for Spark's CSV reader: `encoding: auto` and `delimiter: auto`
    are decided on the driver from the first local file, as the pandas engine decides them."""
    import codecs

    from leadq.pipelines.io.files import _plan_csv, input_files

    encoding, delimiter = spec.get("encoding") or "auto", spec.get("delimiter") or ","
    if "auto" in (encoding, delimiter):
        try:
            first = input_files(path, "leads")[0]
            plan, _ = _plan_csv(first, spec, "leads", full_scan=True, required=None)
            encoding, delimiter = plan.encoding, plan.delimiter
        except BadInputError:
            raise
        except OSError:  # not a local path (hdfs://, s3a://): Spark's defaults
            encoding = "utf-8" if encoding == "auto" else encoding
            delimiter = "," if delimiter == "auto" else delimiter
    name = codecs.lookup(encoding).name
    return _JAVA_CHARSETS.get(name, encoding), delimiter


def read_input(spark, path: str, params: dict):
    """Spark DataFrame of the leads as exported: CSV as text (like the pandas engine), Parquet
    with its own types. A glob or directory reads many files at once. CSV rows whose field
    count differs from the header's keep their raw text in RAW_LINE (Spark's corrupt-record
    column), to be quarantined as ragged rows."""
    from pyspark.errors import AnalysisException
    from pyspark.sql.types import StringType, StructField, StructType

    from leadq.pipelines.io.files import check_header

    spec = params["data"]["leads"]
    lower = path.lower().rstrip("/")
    is_csv = lower.endswith((".csv", ".txt", ".tsv")) or lower.endswith(".csv*")
    try:
        if is_csv:
            charset, delimiter = csv_options(path, spec)
            reader = (spark.read.option("header", True).option("inferSchema", False)
                      .option("sep", delimiter).option("encoding", charset))
            names = reader.csv(path).columns  # the header only: a one-line job
            check_header(names, path, "leads")
            schema = StructType([*(StructField(c, StringType(), True) for c in names),
                                 StructField(RAW_LINE, StringType(), True)])
            df = (reader.option("mode", "PERMISSIVE")
                  .option("columnNameOfCorruptRecord", RAW_LINE).schema(schema).csv(path))
        else:
            df = spark.read.parquet(path)
            check_header(df.columns, path, "leads")
    except AnalysisException as exc:
        raise BadInputError(f"{path}: cannot read leads: {str(exc).splitlines()[0]}") from exc
    renamed = [c if c == RAW_LINE else str(c).lstrip("\ufeff").strip() for c in df.columns]
    if renamed != df.columns:
        df = df.toDF(*renamed)
    return df, is_csv


def pinned_uri(model) -> str:
    """models:/NAME/VERSION for the version the alias points at now, so every executor loads the
    same version even if someone moves the alias mid-job."""
    if model.uri.startswith("models:/") and str(model.version).isdigit():
        name = model.uri[len("models:/"):].split("@", 1)[0].split("/", 1)[0]
        return f"models:/{name}/{model.version}"
    return model.uri


def main_spark(input_path: str, output_dir: str, model_uri: str | None = None,
               params_path: str | None = None, master: str | None = None,
               explain: bool = False) -> dict:
    """Score INPUT (file, directory or glob) into DIR/scores and DIR/rejected; returns the
    same summary as the pandas engine: read = used + rejected, rejected counted per reason.
    With `explain`, reasons_positive / reasons_negative as in the pandas engine (off by
    default: counting a glob's rows to decide would cost a pass over the input)."""
    import mlflow
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

    from leadq.features.contracts import check_columns, check_totals
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.scoring.model import load_scoring_model
    from leadq.pipelines.tracking.contracts import load_reference

    params = load_params(params_path)
    if not params["data"]["leads"].get("id"):
        raise BadInputError("the Spark engine needs data.leads.id (duplicates are found by id "
                            "across the whole input); score an export without one with the "
                            "pandas engine")
    if params["data"].get("lookups"):
        # The checked batches keep the input's schema; joining columns in needs a broadcast
        # join ahead of them, which is not built yet.
        raise BadInputError("the Spark engine does not join data.lookups yet; score with the "
                            "pandas engine (leadq score), or join the lookups into the input")
    out_dir = Path(output_dir)
    if out_dir.suffix.lower() in (".csv", ".parquet", ".pq"):
        raise BadInputError(f"{output_dir}: the Spark engine writes a directory of Parquet "
                            "files; pass a directory as --output")
    with step("load model"):
        model = load_scoring_model(params, model_uri)
    uri = pinned_uri(model)
    log.info("model %s (%s) version %s, MQL bar %.4f", model.uri, uri, model.version,
             model.threshold)
    run_id = model.tags.get("train_run_id") or getattr(model.pyfunc.metadata, "run_id", None)
    reference = load_reference(run_id)
    # The pyfunc stays on the driver: executors get spark_udf's copy, not a pickled one.
    model_meta = dataclasses.replace(model, pyfunc=None)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    day = scored_at.strftime("%Y-%m-%d")
    idc = params["data"]["leads"]["id"]
    spark = spark_session(master)
    raw, is_csv = read_input(spark, input_path, params)
    check_columns([c for c in raw.columns if c != RAW_LINE], "leads", params, path=input_path,
                  for_training=False)
    if is_csv:
        raw = raw.select([F.col(f"`{c}`").cast("string").alias(c) for c in raw.columns])
    original = [c for c in raw.columns if c != RAW_LINE]
    delimiter = csv_options(input_path, params["data"]["leads"])[1] if is_csv else ","
    checked_schema = StructType([*raw.schema.fields, StructField(REASON, StringType(), False),
                                 StructField(PRIMARY, StringType(), False),
                                 StructField(WARNINGS, StringType(), False)])
    checked = (_mark_prior_duplicates(raw, idc)
               .mapInPandas(_check_batches(params, reference, is_csv, delimiter),
                            checked_schema)
               .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        with step(f"read and check {input_path}"):
            dup_flag = F.col(REASON).contains(f"{idc}: duplicate id").cast("long")
            rows = (checked.groupBy(PRIMARY)
                    .agg(F.count(F.lit(1)).alias("n"), F.sum(dup_flag).alias("dups"))
                    .collect())
            warned: Counter = Counter()
            for r in checked.filter(F.col(WARNINGS) != "").select(WARNINGS).collect():
                warned.update(json.loads(r[WARNINGS]))
        counts = {r[PRIMARY]: int(r["n"]) for r in rows}
        read = sum(counts.values())
        if read == 0:
            raise BadInputError(f"{input_path}: leads file has a header but no rows "
                                "(check: not empty)")
        rejected = {k: v for k, v in counts.items() if k}
        used = counts.get("", 0)
        duplicate_ids = sum(int(r["dups"] or 0) for r in rows)
        if rejected:
            check_totals("leads", params, path=input_path, rows=read, rejected=rejected,
                         duplicate_ids=duplicate_ids,
                         examples=_examples(checked, params, reference, is_csv, original))
        quarantine = None
        if rejected:
            quarantine = str(out_dir / "rejected")
            with step(f"write {sum(rejected.values()):,} rejected rows to {quarantine}"):
                rejected_rows = checked.filter(F.col(PRIMARY) != "").drop(PRIMARY, WARNINGS)
                if RAW_LINE in rejected_rows.columns:
                    rejected_rows = rejected_rows.withColumnRenamed(RAW_LINE, "raw_line")
                (rejected_rows
                 .withColumn(PARTITION, F.lit(day))
                 .write.mode("overwrite").partitionBy(PARTITION).parquet(quarantine))
        mql = 0
        if used:
            good = checked.filter(F.col(PRIMARY) == "").drop(REASON, PRIMARY, WARNINGS,
                                                             RAW_LINE)
            typed = with_activity_features(
                spark, good.mapInPandas(_coerce_batches(params, scored_at), typed_schema(params)),
                params)
            udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=ArrayType(DoubleType()),
                                          env_manager="local")
            inputs = F.struct(*[F.col(c) for c in raw_input_columns(params)])
            with_score = typed.withColumn(SCORE_TMP, udf(inputs).getItem(1))
            sample = typed.limit(3).toPandas()
            columns, out_schema = _output_schema(spark, model, params, scored_at, sample,
                                                 explain=explain)
            raw_model = (spark.sparkContext.broadcast(model.pyfunc.get_raw_model())
                         if explain else None)
            out = with_score.mapInPandas(
                _output_batches(model_meta, params, scored_at, columns, raw_model), out_schema)
            with step(f"score and write {used:,} leads to {out_dir / 'scores'}"):
                out.write.mode("overwrite").partitionBy(PARTITION).parquet(
                    str(out_dir / "scores"))
            mql = int(spark.read.parquet(str(out_dir / "scores"))
                      .filter((F.col(PARTITION) == day) & F.col("is_mql")).count())
    finally:
        checked.unpersist()
    accounting = {"table": "leads", "path": str(input_path), "read": read, "used": used,
                  "rejected": sum(rejected.values()),
                  "rejected_by_reason": dict(sorted(rejected.items())),
                  "warnings": dict(warned.most_common()),
                  "quarantine": quarantine}
    summary = {"rows": used, "mql": mql, "output": str(out_dir / "scores"),
               "model_version": model.version, "threshold": model.threshold,
               "accounting": accounting, "engine": "spark",
               "master": spark.sparkContext.master, "scored_date": day}
    lines = [f"leads {input_path}: read {read:,} = used {used:,} + rejected "
             f"{accounting['rejected']:,}"]
    lines += [f"  rejected {n:,}: {reason}" for reason, n in
              sorted(rejected.items(), key=lambda kv: -kv[1])]
    lines += [f"  warning {n:,}: {key}" for key, n in warned.most_common()]
    if quarantine:
        lines.append(f"  quarantine: {quarantine}")
    print("\n".join(lines), file=sys.stderr)
    log.info("wrote %s: %d leads, %d MQLs (%.1f%%)", summary["output"], used, mql,
             100 * mql / max(used, 1))
    return summary
