"""Reading documents and writing the job's outputs (the only Spark I/O of the jobs)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from group_appeal_spark.lib.config import InputConfig
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from pyspark.sql import functions as F

log = logging.getLogger("group_appeal_spark")

# A reader's per-row verdict (malformed line, text that is not a string...); null = fine.
INPUT_ERROR = "__input_error"

_READ_FORMATS = {"json": "json", "csv": "csv", "text": "text", "parquet": "parquet",
                 "delta": "delta", "orc": "orc", "avro": "avro"}


def _jvm_path(spark, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def path_exists(spark, path: str) -> bool:
    """Whether ``path`` exists, on any filesystem Spark can reach (local, HDFS, DBFS, S3...)."""
    hpath, fs = _jvm_path(spark, path)
    return bool(fs.exists(hpath))


def read_documents(spark, cfg: InputConfig):
    """Read the input as a DataFrame; errors name the path and format."""
    if not cfg.path:
        raise InputError("input: no input path; give --input PATH")
    if not path_exists(spark, cfg.path):
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"input: cannot read {cfg.path} as {cfg.format}: {first}") from exc
    return df


def valid_utf8(column):
    """True where a string column holds valid UTF-8 (text files may carry any bytes).

    Such a value must never reach a Python UDF: Arrow refuses to decode it and the task dies.
    Spark 4 tests it directly; on Spark 3.5, decoding replaces invalid sequences, so the round
    trip differs exactly for invalid text.
    """
    if hasattr(F, "is_valid_utf8"):
        return F.is_valid_utf8(column)
    return F.decode(column.cast("binary"), "UTF-8") == column


def _read_json_lines(spark, reader, cfg: InputConfig):
    """JSON lines with the text field parsed in Python (numbers, objects, bad escapes stay visible).

    The other fields keep the types Spark infers for them. Blank lines are not documents.
    """
    from group_appeal_spark.udfs.json_text import make_json_text_udf
    from pyspark.sql import types as T

    inferred = reader.json(cfg.path).schema
    if cfg.text_col not in inferred.names:
        raise InputError(f"input: column {cfg.text_col!r} not found in {cfg.path}; the JSON lines have: "
                         f"{', '.join(inferred.names)}. Set --text-col (input.text_col)")
    others = T.StructType([f for f in inferred.fields if f.name not in (cfg.text_col, "_corrupt_record")])
    lines = reader.text(cfg.path).where(F.trim("value") != "")
    ok = valid_utf8(F.col("value"))
    parsed = lines.select(
        F.from_json(F.when(ok, F.col("value")), others).alias("j"),
        make_json_text_udf(cfg.text_col)(F.when(ok, F.col("value"))).alias("t"))
    return parsed.select("j.*", F.col("t.text").alias(cfg.text_col), F.col("t.error").alias(INPUT_ERROR))


def _read_csv(reader, cfg: InputConfig):
    """CSV with a header; every column read as a string, a malformed line reported, not dropped."""
    from pyspark.sql import types as T

    # header + multiLine: archives keep paragraphs inside quoted text fields
    reader = reader.option("header", cfg.options.get("header", "true")) \
        .option("multiLine", cfg.options.get("multiLine", "true"))
    columns = reader.csv(cfg.path).columns
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                          + [T.StructField("_corrupt_record", T.StringType())])
    df = reader.schema(schema).option("mode", "PERMISSIVE") \
        .option("columnNameOfCorruptRecord", "_corrupt_record").csv(cfg.path)
    error = F.when(F.col("_corrupt_record").isNotNull(), F.lit("malformed CSV line"))
    return df.withColumn(INPUT_ERROR, error).drop("_corrupt_record")


def check_output_free(spark, path: str, mode: str) -> None:
    """Fail before any work when the output exists (mode ``error``) or cannot be written."""
    if not path:
        raise InputError("output: no output path; give --output PATH")
    if mode == "error" and path_exists(spark, path):
        hpath, fs = _jvm_path(spark, path)
        if not (fs.isDirectory(hpath) and len(fs.listStatus(hpath)) == 0):
            raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
    check_output_writable(spark, path)


def check_output_writable(spark, path: str) -> None:
    """Create the output folder and a probe file in it, so a read-only target fails in seconds."""
    try:
        hpath, fs = _jvm_path(spark, path)
        probe = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(join_path(path, "_write_probe"))
        fs.mkdirs(hpath)
        fs.create(probe, True).close()
        fs.delete(probe, False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"output: {path} is not writable: {first[:300]}") from exc


def write_table(df, path: str, fmt: str, mode: str) -> None:
    """Write one output table (``mode`` error or overwrite)."""
    writer = df.write.mode("errorifexists" if mode == "error" else "overwrite").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(path)


def read_table(spark, path: str, fmt: str):
    if not path_exists(spark, path):
        raise InputError(f"{path} does not exist; run `group-appeal-spark detect` first, or give the right --input")
    return spark.read.format(fmt).load(path)


def put_file(spark, local_file: str | Path, dest: str) -> None:
    """Copy a local file to ``dest`` on any Hadoop filesystem (plots, summary.json)."""
    hpath, fs = _jvm_path(spark, dest)
    jvm = spark.sparkContext._jvm
    fs.mkdirs(hpath.getParent())
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(str(Path(local_file).resolve())), hpath)


def put_text(spark, text: str, dest: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=os.path.splitext(dest)[1], delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        put_file(spark, fh.name, dest)
    finally:
        os.unlink(fh.name)


def join_path(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def get_text(spark, path: str) -> str:
    """Read a small text file from any Hadoop filesystem (markers: Spark's readers skip `_` names)."""
    hpath, fs = _jvm_path(spark, path)
    stream = fs.open(hpath)
    try:
        return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def delete(spark, path: str) -> None:
    """Remove a folder (recursively) on any Hadoop filesystem; nothing when it is not there."""
    hpath, fs = _jvm_path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)
