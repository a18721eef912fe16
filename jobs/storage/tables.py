"""The output tables: checks before any work, and writes that appear whole or not at all."""

from __future__ import annotations

from group_appeal_spark.jobs.storage.filesystem import filesystem, first_line, join_path
from group_appeal_spark.lib.errors import InputError


def check_output_free(spark, path: str, mode: str) -> None:
    """Fail before any work when the output exists (mode ``error``) or cannot be written.

    An existing empty folder is free. On Spark Connect, for a path only Spark can reach, a
    folder is free when Spark lists no file in it (names starting with `_` or `.` do not count).
    """
    if not path:
        raise InputError("output: no output path; give --output PATH")
    if mode == "error" and filesystem(spark).is_used(path):
        raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
    check_output_writable(spark, path)


def check_output_writable(spark, path: str) -> None:
    """Create the output folder and a probe file in it, so a read-only target fails in seconds.

    On Spark Connect, for a path only Spark can reach, the probe is a one-row text table
    written to ``<path>/_write_probe/``; it stays there (Connect cannot delete), hidden from
    Spark's readers by its leading underscore.
    """
    try:
        filesystem(spark).check_writable(path)
    except Exception as exc:
        raise InputError(f"output: {path} is not writable: {first_line(exc)[:300]}") from exc


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
    writer = df.write.mode("overwrite" if staged or mode != "error" else "error").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(target)
    if staged:
        fs.move_into_place(target, path)


def _staging_path(path: str) -> str:
    parent, _, name = path.rstrip("/").rpartition("/")
    # a leading underscore: Spark's readers (and a read of the parent) skip it
    return join_path(parent, f"_writing-{name}") if parent else f"_writing-{name}"


def read_table(spark, path: str, fmt: str):
    if not filesystem(spark).exists(path):
        raise InputError(f"{path} does not exist; run `group-appeal-spark detect` first, or give the right --input")
    return spark.read.format(fmt).load(path)

