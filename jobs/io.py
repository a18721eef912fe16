"""Reading documents and writing the job's outputs (the only Spark I/O of the jobs)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from group_appeal_spark.lib.config import InputConfig
from group_appeal_spark.lib.errors import InputError

log = logging.getLogger("group_appeal_spark")

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
        if cfg.format == "csv":
            # header + multiLine: archives keep paragraphs inside quoted text fields
            df = reader.option("header", cfg.options.get("header", "true")) \
                .option("multiLine", cfg.options.get("multiLine", "true")) \
                .option("mode", "PERMISSIVE").csv(cfg.path)
        elif cfg.format == "text":
            df = reader.text(cfg.path).withColumnRenamed("value", cfg.text_col)
        else:
            df = reader.format(_READ_FORMATS.get(cfg.format, cfg.format)).load(cfg.path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"input: cannot read {cfg.path} as {cfg.format}: {first}") from exc
    return df


def check_output_free(spark, path: str, mode: str) -> None:
    """Fail before any work when the output exists and the mode is ``error``."""
    if not path:
        raise InputError("output: no output path; give --output PATH")
    if mode == "error" and path_exists(spark, path):
        hpath, fs = _jvm_path(spark, path)
        if fs.isDirectory(hpath) and len(fs.listStatus(hpath)) == 0:
            return
        raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")


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
