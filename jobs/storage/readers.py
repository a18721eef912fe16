"""Reading the documents: a file or folder in any input format, or a catalog table (``catalog``).

Hostile input becomes per-row verdicts in the column :data:`INPUT_ERROR` (a malformed JSON or
CSV line, text that is not a string, invalid UTF-8) instead of failing the read.
"""

from __future__ import annotations

import dataclasses

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.storage.filesystem import filesystem, first_line
from group_appeal_spark.jobs.transforms.columns import INPUT_ERROR, valid_utf8
from group_appeal_spark.lib.config import InputConfig
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from pyspark.sql import functions as F

NO_INPUT = ("input: no input; give --input PATH (a file or folder) or --input-table NAME "
            "(a catalog table, [catalog.][schema.]table)")

_READ_FORMATS = {"json": "json", "csv": "csv", "text": "text", "parquet": "parquet",
                 "delta": "delta", "orc": "orc", "avro": "avro"}


def check_input_given(cfg: InputConfig) -> None:
    """An input path or table is given (both at once the config refuses when it loads)."""
    if not cfg.path and not cfg.table:
        raise InputError(NO_INPUT)


def read_documents(spark, cfg: InputConfig, paths: list[str] | None = None):
    """Read the input (``input.path`` or the catalog table ``input.table``) as a DataFrame; errors
    name the path and format, or the table. ``paths``: these files instead of ``input.path``, in
    ``input.format`` (a stream's micro-batch)."""
    if cfg.format == "cloudfiles":
        if paths is None:
            raise InputError("input.format cloudfiles (Databricks Auto Loader) lists new files for the stream job "
                             "only; here give the files' own format (json, parquet...)")
        real = {k.lower(): v for k, v in cfg.options.items()}.get("cloudfiles.format")
        options = {k: v for k, v in cfg.options.items() if not k.lower().startswith("cloudfiles.")}
        cfg = dataclasses.replace(cfg, format=str(real).lower(), options=options)
    if paths is not None:
        cfg = dataclasses.replace(cfg, path=list(paths), table=None)  # Spark's readers take a list of paths
    elif cfg.table:
        return catalog.read_input_table(spark, cfg)
    elif not cfg.path:  # the jobs refuse this at start-up (check_input_given); a notebook caller learns here
        raise InputError(NO_INPUT)
    elif not filesystem(spark).exists(cfg.path):
        raise InputError(f"input: {cfg.path} does not exist (or is not readable)")
    reader = spark.read.options(**{k: str(v) for k, v in cfg.options.items()})
    try:
        if cfg.format == "json":
            df = _read_json_lines(spark, reader, cfg)
        elif cfg.format == "csv":
            df = _read_csv(reader, cfg)
        elif cfg.format == "text":
            df = reader.text(cfg.path).withColumnRenamed("value", cfg.text_col)
        else:
            df = reader.format(_READ_FORMATS.get(cfg.format, cfg.format)).load(cfg.path)
    except GroupAppealSparkError:
        raise
    except Exception as exc:
        raise InputError(f"input: cannot read {cfg.path} as {cfg.format}: {first_line(exc)}") from exc
    return df


def _read_json_lines(spark, reader, cfg: InputConfig):
    """JSON lines with the text field parsed in Python (numbers, objects, bad escapes stay visible).

    The other fields keep the types Spark infers for them. Blank lines are not documents.
    """
    from group_appeal_spark.udfs.json_text import make_json_text_udf
    from pyspark.sql import types as T

    inferred = reader.json(cfg.path).schema
    # no line parsed at all (a file of only malformed lines): each line is an error record, not a refusal
    only_malformed = inferred.names == ["_corrupt_record"]
    if cfg.text_col not in inferred.names and not only_malformed:
        raise InputError(f"input: column {cfg.text_col!r} not found in {cfg.path}; the JSON lines have: "
                         f"{', '.join(inferred.names)}. Set --text-col (input.text_col)")
    others = T.StructType([f for f in inferred.fields if f.name not in (cfg.text_col, "_corrupt_record")])
    lines = reader.text(cfg.path).where(F.trim("value") != "")
    ok = valid_utf8(F.col("value"))
    text = make_json_text_udf(cfg.text_col)(F.when(ok, F.col("value"))).alias("t")
    fields = [F.from_json(F.when(ok, F.col("value")), others).alias("j")] if others.fields else []
    return lines.select(*fields, text).select(*(["j.*"] if fields else []), F.col("t.text").alias(cfg.text_col),
                                              F.col("t.error").alias(INPUT_ERROR))


def _read_csv(reader, cfg: InputConfig):
    """CSV with a header; every column read as a string, a malformed line reported, not dropped.

    A quoted field that never closes makes Spark's parser swallow the following lines into that
    field; such a row is reported (see ``_swallowed_lines``) instead of passing as one document.
    """
    from pyspark.sql import types as T

    # Spark's option keys are case-insensitive: a user's "multiline" must win over our default.
    opts = {k.lower(): str(v) for k, v in cfg.options.items()}
    # header + multiLine: archives keep paragraphs inside quoted text fields. escape '"': RFC 4180
    # (Excel, pandas) doubles a quote inside a quoted field; Spark's default escape is a backslash,
    # which reads "" as the end of the field.
    reader = reader.option("header", opts.get("header", "true")) \
        .option("multiLine", opts.get("multiline", "true")).option("escape", opts.get("escape", '"'))
    header = reader.csv(cfg.path).columns
    # Spark 3.x keeps a UTF-8 byte order mark in the first column name (Spark 4 drops it)
    columns = [header[0].lstrip("\ufeff"), *header[1:]] if header else header
    quote = opts.get("quote", '"')
    sep = opts.get("sep", opts.get("delimiter", ","))
    # read before .schema(): the reader object is shared and schema() sticks to it
    odd_files = _files_with_odd_quotes(reader, cfg.path, quote) if quote not in ("", "\u0000") else None
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                          + [T.StructField("_corrupt_record", T.StringType())])
    df = reader.schema(schema).option("mode", "PERMISSIVE") \
        .option("columnNameOfCorruptRecord", "_corrupt_record").csv(cfg.path)
    error = F.when(F.col("_corrupt_record").isNotNull(), F.lit("malformed CSV line"))
    if odd_files is not None and columns:
        df = df.withColumn("__file", F.col("_metadata.file_path")).join(
            F.broadcast(odd_files), "__file", "left")
        error = F.coalesce(_swallowed_lines([*columns, "_corrupt_record"], len(columns), quote, sep), error)
    df = df.withColumn(INPUT_ERROR, error)
    return df.select(*[F.col(f"`{c}`") for c in columns], INPUT_ERROR)


# A line break of any convention, as Spark's multiLine parser accepts them.
_BREAK = r"\r\n|\r|\n"


def _files_with_odd_quotes(reader, path: str, quote: str):
    """``__file``, ``__odd_quotes``: the files whose quote characters do not pair up.

    Every well-formed quoted field holds an even number of quote characters (its two ends, and
    each inner quote doubled), so an odd total proves a quote never closed somewhere in the file.
    Counted line by line on the raw text: no order needed, so it scales like any text read.
    """
    lines = reader.text(path)
    per_line = F.length("value") - F.length(F.translate("value", quote, ""))
    return lines.groupBy(F.col("_metadata.file_path").alias("__file")) \
        .agg(F.sum(per_line).alias("__n")).where(F.col("__n") % 2 == 1) \
        .select("__file", F.lit(True).alias("__odd_quotes"))


def _swallowed_lines(columns: list[str], n_fields: int, quote: str, sep: str):
    """The reason for a row whose quoted field swallowed the lines after it, or null.

    A value is suspect when it holds a line break followed by a line with at least as many
    delimiters as the header (what looks like the next CSV record), and either its file's quotes
    do not pair up or it kept its opening quote and holds an odd number of quotes (Spark's parser
    gives up on the quoting and keeps the raw text when it meets a lone quote inside a quoted
    field). A legitimate multi-paragraph field passes: its file's quotes pair up, and so do the
    quotes of a value that starts with one.
    """
    record_line = f"({_BREAK})([^\\r\\n]*?\\Q{sep}\\E){{{max(n_fields - 1, 0)}}}"
    reasons = []
    for c in columns:
        value = F.col(f"`{c}`")
        # the raw-text case also needs unpaired quotes in the value itself: a legitimate value may
        # start with a quote too (raw """Quoted"" ...), but its quotes come in pairs
        odd = (F.length(value) - F.length(F.translate(value, quote, ""))) % 2 == 1
        # a malformed line's _corrupt_record is the whole raw record: unpaired quotes are enough
        raw_kept = odd if c == "_corrupt_record" else value.startswith(quote) & odd
        suspect = value.rlike(record_line) & (F.col("__odd_quotes").isNotNull() | raw_kept)
        breaks = F.size(F.split(value, _BREAK)) - 1
        reasons.append(F.when(suspect, F.format_string(
            "unterminated quoted field: this row swallowed the lines after it (%d line break(s) inside a quoted "
            "field of %s, and they hold what looks like further CSV rows, which are not processed); "
            "fix the quote in this row of %s: close the quoted field where it ends, and double any quote "
            "inside it (\"\"), then run again",
            breaks, F.lit(f"column {c!r}" if c != "_corrupt_record" else "this malformed line"), F.col("__file"))))
    return F.coalesce(*reasons)

