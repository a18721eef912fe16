"""The output tables: checks before any work, and writes that appear whole or not at all."""

from __future__ import annotations

from group_appeal_spark.jobs.storage.filesystem import filesystem, first_line, join_path
from group_appeal_spark.lib.errors import InputError
from pyspark.sql import functions as F
from pyspark.sql import types as T


# Spark's own sources: a probe write of any other (delta, avro) shows that its package is there.
BUILT_IN_FORMATS = ("parquet", "orc", "json", "csv", "text")


def check_output_writable(spark, path: str, fmt: str | None = None) -> None:
    """Create the output folder and a probe file in it, so a read-only target fails in seconds; for a
    format that needs a package (``delta``, ``avro``), write a one-row probe table in it too.

    On Spark Connect, for a path only Spark can reach, the probe is a one-row text table
    written to ``<path>/_write_probe/``; it stays there (Connect cannot delete), hidden from
    Spark's readers by its leading underscore.
    """
    fs = filesystem(spark)
    try:
        fs.check_writable(path)
    except Exception as exc:
        raise InputError(f"output: {path} is not writable: {first_line(exc)[:300]}") from exc
    if fmt and fmt.lower() not in BUILT_IN_FORMATS:
        probe = join_path(path, "_format_probe")
        try:
            spark.range(1).write.mode("overwrite").format(fmt).save(probe)
        except Exception as exc:
            raise InputError(f"output: cannot write output.format {fmt!r} (--output-format): "
                             f"{first_line(exc)[:300]}; install its Spark package, or choose parquet") from exc
        finally:
            if fs.can_delete(probe):
                fs.delete(probe)


def write_table(df, path: str, fmt: str, mode: str) -> None:
    """Write one output table (``mode`` error or overwrite) so that it appears whole or not at all.

    The table is written to ``<parent>/_writing-<name>/`` and then moved to ``path`` (see
    :meth:`FileSystem.can_rename`): a write that fails or is killed leaves only that hidden staging folder
    (replaced by the next attempt), and an overwrite keeps the old table until the new one is
    complete. Where no rename is available (Spark Connect on a path only Spark reaches, or a
    Delta table, whose log makes its commits atomic already) the table is written in place; the
    run's ``_SUCCESS.json`` marker (``run_state.check_complete``) is then what vouches for it.
    """
    fs = filesystem(df.sparkSession)
    staged = fs.can_rename(path) and fmt != "delta"
    if staged and mode == "error" and fs.exists(path):
        raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
    target = _staging_path(path) if staged else path
    # "error", not its alias "errorifexists": the Spark Connect client knows only the short name
    if fmt == "csv":  # a CSV cell holds text: arrays and structs as JSON, read back by read_table
        df = df.select(*[F.to_json(f.name).alias(f.name) if _nested(f.dataType) else F.col(f"`{f.name}`")
                         for f in df.schema.fields])
    writer = df.write.mode("overwrite" if staged or mode != "error" else "error").format(fmt)
    if fmt == "csv":  # RFC 4180, as spreadsheets read it: a header, a quote inside a field doubled
        writer = writer.option("header", "true").option("escape", '"')
    writer.save(target)
    if staged:
        fs.move_into_place(target, path)


def _staging_path(path: str) -> str:
    parent, _, name = path.rstrip("/").rpartition("/")
    # a leading underscore: Spark's readers (and a read of the parent) skip it
    return join_path(parent, f"_writing-{name}") if parent else f"_writing-{name}"


def read_table(spark, path: str, fmt: str, schema=None):
    """A table as :func:`write_table` wrote it; ``schema`` (a StructType) gives a CSV or JSON table
    its columns' types back (JSON lines keep no column order, CSV no types)."""
    if not filesystem(spark).exists(path):
        raise InputError(f"{path} does not exist; run `group-appeal-spark detect` first, or give the right --input")
    if schema is None or fmt not in ("csv", "json"):
        return spark.read.format(fmt).load(path)
    if fmt == "json":
        return spark.read.schema(schema).json(path)
    text = T.StructType([T.StructField(f.name, T.StringType()) for f in schema.fields])
    raw = spark.read.option("header", "true").option("multiLine", "true").option("escape", '"').schema(text).csv(path)
    return raw.select(*[(F.from_json(f.name, f.dataType) if _nested(f.dataType) else F.col(f"`{f.name}`").cast(
        f.dataType)).alias(f.name) for f in schema.fields])


def _nested(data_type) -> bool:
    return isinstance(data_type, (T.ArrayType, T.StructType, T.MapType))

