"""Reading documents and writing the job's outputs (the only Spark I/O of the jobs, with ``catalog``)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
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
    """The Hadoop ``Path`` and its ``FileSystem`` (classic sessions only: they reach the JVM)."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


class ConnectUnsupported(GroupAppealSparkError):
    """A filesystem operation that a Spark Connect session cannot do for that path."""


# On Spark Connect the client has no JVM, so no Hadoop FileSystem. Each helper below then takes
# one of two routes:
# - the path is one this machine sees as Spark does (_client_path): Python's filesystem;
# - any other path: Spark itself, through DataFrame reads and writes on the server. That sees
#   what the jobs' reads and writes see (HDFS, S3, DBFS...), with these limits: files and
#   folders whose names start with `_` or `.` are hidden (Spark's readers skip them), a small
#   text file is written as a folder holding one part file, nothing can be deleted, and a
#   local file cannot be copied (put_file raises ConnectUnsupported).


def _connect(spark) -> bool:
    from group_appeal_spark.udfs.shipping import is_connect

    return is_connect(spark)


def _client_path(spark, path: str) -> str | None:
    """On Connect: where this machine sees ``path`` exactly as Spark does, or None.

    - ``/Volumes/...`` (or ``dbfs:/Volumes/...``) where the Unity Catalog volumes are mounted
      here (Databricks notebooks and jobs): Spark resolves the same path to the same volume.
    - ``dbfs:/x`` where the DBFS root is mounted at ``/dbfs`` (Databricks clusters): ``/dbfs/x``.
    - a plain or ``file:`` path when the Connect server is a ``local[...]`` server on this
      machine: its executors read this machine's files.
    """
    from group_appeal_spark.udfs.shipping import connect_server_is_local

    if path.startswith("dbfs:/"):
        rest = "/" + path[len("dbfs:"):].lstrip("/")
        if rest.startswith("/Volumes/") and os.path.isdir("/Volumes"):
            return rest
        return "/dbfs" + rest if os.path.isdir("/dbfs") else None
    if path.startswith("/Volumes/") and os.path.isdir("/Volumes"):
        return path
    if path.startswith("file:"):
        local = "/" + path[len("file:"):].lstrip("/")
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return None  # s3a://, abfss://, hdfs://...: only Spark can reach them
    else:
        local = path
    return local if connect_server_is_local(spark) else None


def _not_found(exc: Exception) -> bool:
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        name = condition() if condition is not None else None
    except Exception:
        name = None
    return name == "PATH_NOT_FOUND" or "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc)


def _spark_files(spark, path: str):
    """The files under ``path`` as Spark lists them (``binaryFile``; contents are not read)."""
    # recursiveFileLookup: an output folder holds table folders, which partition discovery
    # would refuse as conflicting directory structures.
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path).select("path")


def _spark_exists(spark, path: str) -> bool:
    try:
        _spark_files(spark, path).schema  # analysis lists the path: PATH_NOT_FOUND when missing
    except Exception as exc:
        if _not_found(exc):
            return False
        raise
    return True


def path_exists(spark, path: str) -> bool:
    """Whether ``path`` exists, on any filesystem Spark can reach (local, HDFS, DBFS, S3...).

    On Spark Connect, through Python's filesystem where this machine sees the path as Spark
    does (see ``_client_path``), else by asking Spark to list it: one listing of the whole
    folder tree, as a read of it makes (a missing path is Spark's PATH_NOT_FOUND; an empty
    folder exists). Other errors (no permission) are raised.
    """
    if not _connect(spark):
        hpath, fs = _jvm_path(spark, path)
        return bool(fs.exists(hpath))
    local = _client_path(spark, path)
    if local is not None:
        return os.path.exists(local)
    return _spark_exists(spark, path)


def read_documents(spark, cfg: InputConfig):
    """Read the input (``input.path`` or the catalog table ``input.table``) as a DataFrame; errors
    name the path and format, or the table."""
    from group_appeal_spark.jobs import catalog

    catalog.check_input_given(cfg)
    if cfg.table:
        return catalog.read_input_table(spark, cfg)
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


def check_output_free(spark, path: str, mode: str) -> None:
    """Fail before any work when the output exists (mode ``error``) or cannot be written.

    An existing empty folder is free. On Spark Connect, for a path only Spark can reach, a
    folder is free when Spark lists no file in it (names starting with `_` or `.` do not count).
    """
    if not path:
        raise InputError("output: no output path; give --output PATH")
    if mode == "error" and _output_used(spark, path):
        raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
    check_output_writable(spark, path)


def _output_used(spark, path: str) -> bool:
    """Whether ``path`` is a file, or a folder with anything in it."""
    if not _connect(spark):
        if not path_exists(spark, path):
            return False
        hpath, fs = _jvm_path(spark, path)
        return not (fs.isDirectory(hpath) and len(fs.listStatus(hpath)) == 0)
    local = _client_path(spark, path)
    if local is not None:
        return os.path.exists(local) and not (os.path.isdir(local) and not os.listdir(local))
    try:
        return bool(_spark_files(spark, path).limit(1).collect())
    except Exception as exc:
        if _not_found(exc):
            return False
        raise


def check_output_writable(spark, path: str) -> None:
    """Create the output folder and a probe file in it, so a read-only target fails in seconds.

    On Spark Connect, for a path only Spark can reach, the probe is a one-row text table
    written to ``<path>/_write_probe/``; it stays there (Connect cannot delete), hidden from
    Spark's readers by its leading underscore.
    """
    try:
        if not _connect(spark):
            hpath, fs = _jvm_path(spark, path)
            probe = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(join_path(path, "_write_probe"))
            fs.mkdirs(hpath)
            fs.create(probe, True).close()
            fs.delete(probe, False)
            return
        local = _client_path(spark, path)
        if local is not None:
            os.makedirs(local, exist_ok=True)
            probe = os.path.join(local, "_write_probe")
            with open(probe, "w", encoding="utf-8"):
                pass
            os.unlink(probe)
            return
        spark.range(1).select(F.lit("probe").alias("value")).write.mode("overwrite") \
            .text(join_path(path, "_write_probe"))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"output: {path} is not writable: {first[:300]}") from exc


def write_table(df, path: str, fmt: str, mode: str) -> None:
    """Write one output table (``mode`` error or overwrite) so that it appears whole or not at all.

    The table is written to ``<parent>/_writing-<name>/`` and then moved to ``path`` (see
    :func:`_can_rename`): a write that fails or is killed leaves only that hidden staging folder
    (replaced by the next attempt), and an overwrite keeps the old table until the new one is
    complete. Where no rename is available (Spark Connect on a path only Spark reaches, or a
    Delta table, whose log makes its commits atomic already) the table is written in place; the
    run's ``_SUCCESS.json`` marker (:func:`check_complete`) is then what vouches for it.
    """
    spark = df.sparkSession
    staged = _can_rename(spark, path) and fmt != "delta"
    if staged and mode == "error" and path_exists(spark, path):
        raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
    target = _staging_path(path) if staged else path
    # "error", not its alias "errorifexists": the Spark Connect client knows only the short name
    writer = df.write.mode("overwrite" if staged or mode != "error" else "error").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(target)
    if staged:
        _move_into_place(spark, target, path)


def _staging_path(path: str) -> str:
    parent, _, name = path.rstrip("/").rpartition("/")
    # a leading underscore: Spark's readers (and a read of the parent) skip it
    return join_path(parent, f"_writing-{name}") if parent else f"_writing-{name}"


def _can_rename(spark, path: str) -> bool:
    """Whether a finished table can be moved onto ``path`` by a rename.

    Classic sessions: always (Hadoop FileSystem.rename; atomic on HDFS and local disks, a copy
    on object stores such as S3, where the run marker is the guarantee). Spark Connect: only on
    a ``local[...]`` server of this machine with a plain local path (Python's os.rename);
    /Volumes and /dbfs mounts and paths only Spark reaches are written in place.
    """
    if not _connect(spark):
        return True
    local = _client_path(spark, path)
    return local is not None and not path.startswith(("dbfs:", "/Volumes/")) and not local.startswith("/dbfs")


def _move_into_place(spark, staged: str, path: str) -> None:
    """Replace ``path`` by the finished table at ``staged``."""
    if not _connect(spark):
        src, fs = _jvm_path(spark, staged)
        dst, _ = _jvm_path(spark, path)
        if fs.exists(dst):
            fs.delete(dst, True)
        fs.mkdirs(dst.getParent())
        # rename onto a missing path: onto an existing folder it would move the table inside it
        if not fs.rename(src, dst):
            raise GroupAppealSparkError(f"output: could not move the finished table {staged} to {path}")
        return
    src, dst = _client_path(spark, staged), _client_path(spark, path)
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    elif os.path.exists(dst):
        os.unlink(dst)
    os.rename(src, dst)


def read_table(spark, path: str, fmt: str):
    if not path_exists(spark, path):
        raise InputError(f"{path} does not exist; run `group-appeal-spark detect` first, or give the right --input")
    return spark.read.format(fmt).load(path)


# ----------------------------------------------------------------------------------------------
# Run-level completion marker: written last by a job that finished; what readers check first.

SUCCESS_MARKER = "_SUCCESS.json"


def mark_started(spark, folder: str) -> None:
    """Before a run writes into ``folder``: nothing there may look complete any more.

    Removes ``_SUCCESS.json`` and ``summary.json`` of an earlier run (the latter, so the
    folder cannot pass for an output of an older version either). On Spark Connect, for a path
    only Spark reaches, nothing can be deleted: the marker is overwritten with
    ``{"complete": false}`` instead, which :func:`check_complete` refuses the same way.
    """
    marker = join_path(folder, SUCCESS_MARKER)
    if not _connect(spark) or _client_path(spark, folder) is not None:
        delete(spark, marker)
        delete(spark, join_path(folder, "summary.json"))
        return
    put_text(spark, json.dumps({"complete": False, "started_at": _now()}), marker)


def mark_complete(spark, folder: str, job: str, tables, **extra) -> None:
    """Write ``<folder>/_SUCCESS.json``: the run's last write, after every table and summary.json."""
    from group_appeal_spark import __version__

    info = {"complete": True, "job": job, "tables": sorted(tables), "finished_at": _now(),
            "group_appeal_spark": __version__, **extra}
    put_text(spark, json.dumps(info, indent=2, default=str), join_path(folder, SUCCESS_MARKER))


def update_marker(spark, folder: str, *, add=(), remove=(), catalog_tables=None) -> None:
    """Add or remove tables in a complete ``_SUCCESS.json`` (cluster into its own input folder).

    ``catalog_tables`` (``{table: catalog table}``, see ``catalog.publish``) are recorded over
    the marker's; a removed table's record goes with it (its catalog table no longer matches).
    """
    info = read_marker(spark, folder)
    if info and info.get("complete") is True:
        tables = (set(info.get("tables", ())) - set(remove)) | set(add)
        published = {k: v for k, v in (info.get("catalog_tables") or {}).items() if k not in set(remove)}
        info.update(tables=sorted(tables), catalog_tables={**published, **(catalog_tables or {})},
                    updated_at=_now())
        put_text(spark, json.dumps(info, indent=2, default=str), join_path(folder, SUCCESS_MARKER))


def read_marker(spark, folder: str) -> dict | None:
    """The content of ``<folder>/_SUCCESS.json``, ``{"complete": False}`` if unreadable, or None."""
    marker = join_path(folder, SUCCESS_MARKER)
    if not path_exists(spark, marker):
        return None
    try:
        info = json.loads(get_text(spark, marker))
    except ValueError:  # cut short while being written
        return {"complete": False}
    return info if isinstance(info, dict) else {"complete": False}


def check_complete(spark, folder: str, *, needs=(), made_by: str = "detect/run") -> dict | None:
    """Refuse to read ``folder`` unless the run that wrote it finished; returns its marker.

    A finished run's last write is ``_SUCCESS.json`` with ``"complete": true``. An output
    without it is accepted only where it has a ``summary.json`` (written last by versions before
    the marker existed; a warning says completeness cannot be checked); anything else, an
    interrupted or running job's output, raises one clear ``InputError``. ``needs``: tables that
    must be there (a missing one is named).
    """
    if not path_exists(spark, folder):
        raise InputError(f"{folder} does not exist; run `group-appeal-spark {made_by.split('/')[0]}` first, "
                         f"or give the right --input")
    rerun = "rerun it with --resume"
    info = read_marker(spark, folder)
    if info is None:
        if not path_exists(spark, join_path(folder, "summary.json")):
            raise InputError(f"{folder} is not a complete output of {made_by} (interrupted or still running?): "
                             f"it has neither {SUCCESS_MARKER} nor summary.json; {rerun}")
        log.warning("%s has no %s (written by an older version): accepted because it has a summary.json, "
                    "but whether every table is complete cannot be checked", folder, SUCCESS_MARKER)
    elif info.get("complete") is not True:
        raise InputError(f"{folder} is not a complete output of {made_by} (interrupted or still running?): "
                         f"its {SUCCESS_MARKER} says the run did not finish; {rerun}")
    missing = [t for t in needs if not path_exists(spark, join_path(folder, t))]
    if missing:
        raise InputError(f"{folder} has no {', '.join(missing)} table; it is not an output of {made_by}, "
                         f"or give the right --input")
    return info


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def put_file(spark, local_file: str | Path, dest: str) -> None:
    """Copy a local file to ``dest`` on any Hadoop filesystem (plots, summary.json).

    On Spark Connect only where this machine sees ``dest`` as Spark does (``_client_path``:
    a local server, ``/Volumes/...``, ``dbfs:/`` with ``/dbfs`` mounted); elsewhere Spark has
    no way to take a binary file from the client, and ``ConnectUnsupported`` says so.
    """
    if not _connect(spark):
        hpath, fs = _jvm_path(spark, dest)
        jvm = spark.sparkContext._jvm
        fs.mkdirs(hpath.getParent())
        fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(str(Path(local_file).resolve())), hpath)
        return
    local = _client_path(spark, dest)
    if local is None:
        raise ConnectUnsupported(f"cannot copy {Path(local_file).name} to {dest} through Spark Connect: only "
                                 f"Spark can reach that path and it cannot upload a file; write the output "
                                 f"under /Volumes/... or run on a classic Spark session")
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    shutil.copyfile(local_file, local)


def put_text(spark, text: str, dest: str) -> None:
    """Write a small UTF-8 text file (summary.json, markers).

    On Spark Connect, for a path only Spark can reach, ``dest`` becomes a folder holding one
    text part file with ``text`` and a final newline (a one-partition DataFrame write);
    :func:`get_text` reads either form.
    """
    if _connect(spark) and _client_path(spark, dest) is None:
        spark.range(1).select(F.lit(text).alias("value")).write.mode("overwrite").text(dest)
        return
    with tempfile.NamedTemporaryFile("w", suffix=os.path.splitext(dest)[1], delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        put_file(spark, fh.name, dest)
    finally:
        os.unlink(fh.name)


def join_path(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def get_text(spark, path: str) -> str:
    """Read a small text file from any Hadoop filesystem (markers: Spark's readers skip `_` names).

    On Spark Connect, for a path only Spark can reach, through ``spark.read.text(path,
    wholetext=True)``: a file, or the folder :func:`put_text` wrote there.
    """
    if not _connect(spark):
        hpath, fs = _jvm_path(spark, path)
        stream = fs.open(hpath)
        try:
            return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
    local = _client_path(spark, path)
    if local is not None:
        return Path(local).read_text(encoding="utf-8")
    rows = spark.read.text(path, wholetext=True).collect()
    return "".join(row.value for row in rows)


def delete(spark, path: str) -> None:
    """Remove a folder (recursively) on any Hadoop filesystem; nothing when it is not there.

    On Spark Connect, for a path only Spark can reach, nothing can delete it: the folder is
    left in place with a warning (the jobs only delete ``_work/``, which Spark's readers skip).
    """
    if not _connect(spark):
        hpath, fs = _jvm_path(spark, path)
        if fs.exists(hpath):
            fs.delete(hpath, True)
        return
    local = _client_path(spark, path)
    if local is None:
        log.warning("%s left in place: a Spark Connect session cannot delete on that filesystem", path)
    elif os.path.isdir(local):
        shutil.rmtree(local)
    elif os.path.exists(local):
        os.unlink(local)
