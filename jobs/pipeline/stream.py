"""The ``stream`` job and ``stream_appeals``: only what is new, exactly once, into the same tables.

A Structured Streaming query lists the input folder's new files (Spark's file source, or
Databricks Auto Loader with ``input.format: cloudfiles``), or reads a table's new rows, and
hands each micro-batch to :class:`~group_appeal_spark.jobs.pipeline.stream_batch.BatchProcessor`
(``foreachBatch``). The checkpoint (``<output>/_checkpoint`` or ``--checkpoint``) records which
files or table versions each batch took; ``_stream/`` in the output records which batches were
committed. ``available-now`` processes everything new and stops, then refreshes the summary
tables; ``every=5m`` runs until stopped, refreshing every ``--refresh-every`` batches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re

from group_appeal_spark.jobs.pipeline import detect
from group_appeal_spark.jobs.pipeline.cluster_model import bundle_embedder, load_checked_model
from group_appeal_spark.jobs.pipeline.stream_batch import BatchProcessor, refresh
from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.readers import read_documents
from group_appeal_spark.jobs.storage.stream_state import check_rename, read_state, recover_tables
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from group_appeal_spark.lib.table_names import parse_table, spark_name

log = logging.getLogger("group_appeal_spark")

SCHEMA_RECORD = "gas-input-schema.json"
# what must be the same for a stream to continue an output (the run's fingerprint, less its input)
_SAME = ("text_col", "id_col", "carry_cols", "segment_text", "segmentation", "max_segment_chars", "models",
         "precision", "window_stride", "layout")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}
_BINARY_FILE = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
# the tables a refresh rewrites whole (write_table: staged, then moved into place)
REFRESHED = ("mention_embeddings", "clusters", "cluster_summary", "aggregates")


@dataclasses.dataclass(frozen=True)
class StreamRequest:
    """The stream's own settings (its flags)."""

    cluster_model: str | None = None
    trigger: str = "available-now"
    max_files_per_batch: int | None = None
    checkpoint: str | None = None
    refresh_every: int = 10


def parse_trigger(text: str) -> dict:
    """``available-now`` or ``every=<n><s|m|h>`` as ``DataStreamWriter.trigger``'s keyword."""
    if text.strip().lower() == "available-now":
        return {"availableNow": True}
    found = re.fullmatch(r"every=(\d+)\s*([smh])", text.strip().lower())
    if not found or int(found.group(1)) < 1:
        raise InputError(f"--trigger: {text!r}; expected available-now, or every=N followed by s, m or h "
                         f"(e.g. every=5m)")
    return {"processingTime": f"{int(found.group(1))} {_UNITS[found.group(2)]}"}


def check_request(req: StreamRequest) -> None:
    parse_trigger(req.trigger)
    if req.max_files_per_batch is not None and req.max_files_per_batch < 1:
        raise InputError(f"--max-files-per-batch: {req.max_files_per_batch}; give at least 1")
    if req.refresh_every < 0:
        raise InputError(f"--refresh-every: {req.refresh_every}; give 0 (only at the end) or more")


def check_continued(spark, config, bundle) -> str:
    """The output is new, or one this stream may go on writing: made by ``run``, ``detect`` or a
    stream with the same models and settings, in the same format. Returns the format to write."""
    out, fmt = config.output.path, config.output.format
    fs = filesystem(spark)
    mine = {k: v for k, v in json.loads(json.dumps(detect.fingerprint(config, bundle))).items() if k in _SAME}
    marker = run_state.read_marker(spark, out)
    state = read_state(spark, out)
    if marker is None and not state:
        if fs.is_used(out) and not run_state.earlier_output(spark, out):
            raise InputError(f"output: {out} holds files but is not the output of a run or a stream; choose a new "
                             f"or empty --output")
        return fmt
    recorded = state.get("fingerprint") or (marker or {}).get("fingerprint") or {}
    changed = sorted(k for k in mine if k in recorded and recorded[k] != mine[k])
    if changed:
        raise InputError(f"output: {out} was made with other settings ({', '.join(changed)} differ); a stream goes "
                         f"on only with the same models and settings: choose another --output")
    theirs = (marker or {}).get("format") or state.get("format") or fmt
    if theirs != fmt:
        log.info("stream: %s holds %s tables: the stream appends in %s", out, theirs, theirs)
    return theirs


def cluster_model_path(spark, config, req: StreamRequest) -> str:
    """--cluster-model, else the output's own cluster_model/ (a run's output goes on as a stream)."""
    if req.cluster_model:
        return req.cluster_model
    own = join_path(config.output.path, "cluster_model")
    if filesystem(spark).exists(own):
        return own
    raise InputError("--cluster-model: give the cluster_model/ folder of a `run` or `cluster` (a stream puts new "
                     "mentions into its clusters and never refits), or --output a run's folder that holds one")


def input_schema(spark, config, checkpoint: str) -> dict | None:
    """The input's columns ({name: Spark type}), fixed at the first start and recorded in the checkpoint.

    From ``input.schema`` (a DDL string) where given, else read from a few of the files present.
    A table's stream (``input.table``) carries its own schema: None.
    """
    cfg = config.input
    if cfg.table:
        return None
    fs, path = filesystem(spark), join_path(checkpoint, SCHEMA_RECORD)
    if fs.exists(path):
        return json.loads(fs.read_text(path))
    if cfg.schema:
        from group_appeal_spark.jobs.startup import check_schema_ddl

        struct = check_schema_ddl(spark, config)
    else:
        files = [r["path"] for r in _listing(spark, config, stream=False).limit(20).collect()]
        if not files:
            raise InputError(f"input: no file in {cfg.path} yet, and no input.schema: give input.schema (a DDL "
                             f"string, e.g. 'id STRING, text STRING, party STRING') for a stream that starts empty")
        struct = read_documents(spark, cfg, files).schema
    schema = {f.name: f.dataType.simpleString() for f in struct.fields if not f.name.startswith("__")}
    fs.write_text(json.dumps(schema, indent=2) + "\n", path)
    return schema


def _listing(spark, config, *, stream: bool, max_files: int | None = None):
    """The input folder's files (``path``): Spark's binaryFile source, which reads no content when
    only the path is asked for; on Databricks Auto Loader for ``cloudfiles``."""
    cfg = config.input
    options = {k: str(v) for k, v in cfg.options.items()}
    reader = spark.readStream if stream else spark.read
    if cfg.format == "cloudfiles":
        if not stream:
            reader = reader.format("binaryFile").option("recursiveFileLookup", "true")
        else:
            auto = {k: v for k, v in options.items() if k.lower().startswith("cloudfiles.")}
            auto["cloudFiles.format"] = "binaryFile"
            if max_files:
                auto["cloudFiles.maxFilesPerTrigger"] = str(max_files)
            reader = reader.format("cloudFiles").options(**auto)
    else:
        reader = reader.format("binaryFile")
        if stream:  # a streaming source needs its schema given: binaryFile's own, fixed one
            reader = reader.schema(_BINARY_FILE)
        for key in ("pathGlobFilter", "recursiveFileLookup"):
            if key in options:
                reader = reader.option(key, options[key])
        if stream and max_files:
            reader = reader.option("maxFilesPerTrigger", str(max_files))
    try:
        return reader.load(cfg.path).select("path")
    except Exception as exc:
        if cfg.format == "cloudfiles" and "cloudFiles" in str(exc):
            raise InputError("input.format cloudfiles: Databricks Auto Loader is not available on this Spark; use "
                             "the files' own --input-format (json, parquet...) here") from None
        raise InputError(f"input: cannot list {cfg.path}: {str(exc).strip().splitlines()[0]}") from None


def start_stream(spark, config, bundle, req: StreamRequest, *, hooks=None, source=None):
    """Start the query: ``(query, model, config)``; ``source``: streaming documents instead of the input."""
    check_request(req)
    fmt = check_continued(spark, config, bundle)
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, format=fmt))
    out = config.output.path
    if fmt != "delta":
        check_rename(spark, out)
    model = load_checked_model(spark, cluster_model_path(spark, config, req), bundle_embedder(config, bundle),
                               "this stream's embedder")
    checkpoint = req.checkpoint or join_path(out, "_checkpoint")
    if not run_state.read_marker(spark, out) and not read_state(spark, out):
        run_state.mark_started(spark, out)
    elif fmt != "delta":
        for table in recover_tables(spark, out, REFRESHED):
            log.warning("stream: %s/%s put back: a refresh was stopped while replacing it", out, table)
    rows = source is not None or bool(config.input.table)
    if source is not None:
        stream = source
    elif config.input.table:
        stream = spark.readStream.options(**{k: str(v) for k, v in config.input.options.items()}) \
            .table(spark_name(parse_table(config.input.table)))
    else:
        stream = _listing(spark, config, stream=True, max_files=req.max_files_per_batch)
    schema = None if rows else input_schema(spark, config, checkpoint)
    _record_fingerprint(spark, config, bundle)
    processor = BatchProcessor(config, bundle, model, rows=rows, schema=schema,
                               app_id=f"group-appeal-spark:{out}", refresh_every=req.refresh_every, hooks=hooks)
    query = stream.writeStream.foreachBatch(processor).option("checkpointLocation", checkpoint) \
        .trigger(**parse_trigger(req.trigger)).queryName(f"group-appeal-spark stream {out}"[:200]).start()
    return query, model, config


def _record_fingerprint(spark, config, bundle) -> None:
    """At a stream's first start: its settings, and the accounts of the run whose output it goes on."""
    from group_appeal_spark.jobs.storage.stream_state import write_state

    out = config.output.path
    state = read_state(spark, out)
    if "fingerprint" in state:
        return
    fs, path = filesystem(spark), join_path(out, "summary.json")
    earlier = json.loads(fs.read_text(path)) if fs.exists(path) else {}
    seed = {k: earlier.get(k) or 0 for k in ("input_rows", "documents_ok", "documents_with_errors", "segments",
                                             "mentions")}
    seed["new_unique_mentions"] = earlier.get("unique_mentions") or 0
    write_state(spark, out, {**state, **seed, "format": config.output.format,
                             "fingerprint": detect.fingerprint(config, bundle)})


def unwrap(exc: Exception) -> Exception:
    """The package's own error inside a StreamingQueryException (raised in a batch), as one line."""
    found = re.search(r"(InputError|ConfigError|ClusterModelError|GroupAppealSparkError): ([^\n]+)", str(exc))
    if found:
        return InputError(found.group(2).strip())
    return GroupAppealSparkError(f"the stream stopped: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")


def stream_job(spark, config, bundle, req: StreamRequest, *, hooks=None) -> dict:
    """The ``stream`` job: start the query, wait for it (``available-now``: until everything new is
    processed), refresh the summary tables; returns the stream's accounts."""
    query, model, config = start_stream(spark, config, bundle, req, hooks=hooks)
    listener = _listen(spark)
    # a batch that raises is logged by py4j with its traceback; the job says it in one line instead
    py4j_log = logging.getLogger("py4j.clientserver")
    level = py4j_log.level
    py4j_log.setLevel(logging.CRITICAL)
    try:
        query.awaitTermination()
    except Exception as exc:  # a batch raised: the query is stopped
        raise unwrap(exc) from None
    finally:
        py4j_log.setLevel(level)
        if listener is not None:
            spark.streams.removeListener(listener)
    state = read_state(spark, config.output.path)
    refresh(spark, config, model, state, bundle)
    log.info("stream: done: %s batches, %s documents, %s mentions (%s new mention keys) in %s",
             state.get("batches", 0), state.get("input_rows", 0), state.get("mentions", 0),
             state.get("new_unique_mentions", 0), config.output.path)
    return state


def _listen(spark):
    """Log each micro-batch's progress (rows, rate, duration) through a StreamingQueryListener."""
    try:
        from pyspark.sql.streaming import StreamingQueryListener
    except ImportError:
        return None

    class Progress(StreamingQueryListener):
        def onQueryStarted(self, event):
            log.info("stream: query %s started", event.id)

        def onQueryProgress(self, event):
            p = event.progress
            log.info("stream: batch %s: %s input rows (files or table rows), %.1f rows/s, %s ms", p.batchId,
                     p.numInputRows, p.processedRowsPerSecond or 0.0, (p.durationMs or {}).get("triggerExecution"))

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            if event.exception:
                log.warning("stream: query stopped: %s", str(event.exception).splitlines()[0])

    listener = Progress()
    try:
        spark.streams.addListener(listener)
    except Exception:  # a Connect server without listener support: the batches log themselves
        return None
    return listener


def stream_appeals(stream_df, config=None, *, output: str, cluster_model: str | None = None,
                   checkpoint: str | None = None, trigger: str = "available-now", refresh_every: int = 10,
                   bundle=None):
    """Start the ``stream`` job's query over a streaming DataFrame of documents; returns its
    ``StreamingQuery`` (``query.awaitTermination()``, ``query.stop()``).

    Each micro-batch goes through ``detect_appeals`` and into ``output``'s tables exactly as the
    ``stream`` job's do; new mention keys are put into ``cluster_model``'s clusters. Summary
    tables are refreshed every ``refresh_every`` batches; call
    ``group_appeal_spark.jobs.pipeline.stream_batch.refresh`` (or run ``stream`` once) for the rest.
    """
    from group_appeal_spark.lib.config import as_job_config
    from group_appeal_spark.lib.models.bundle import ModelBundle

    config = as_job_config(config)
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, path=output))
    bundle = bundle or ModelBundle.resolve(config)
    req = StreamRequest(cluster_model, trigger, None, checkpoint, refresh_every)
    query, _, _ = start_stream(stream_df.sparkSession, config, bundle, req, source=stream_df)
    return query
