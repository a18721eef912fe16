"""One micro-batch of the ``stream`` job, and the refresh of the tables that summarise them all.

A micro-batch is what ``run`` does to its documents, over only the new ones: the same reading,
validation, segmentation, detection and stance; its rows are appended to ``documents/``,
``segments/``, ``mentions/`` and ``errors/``; the mention keys not yet in
``mention_embeddings/`` are embedded once and put into the saved cluster model's clusters as
``assign`` does (``clusters/``). Every write of a batch lands exactly once
(``storage.stream_state``). The refresh recomputes from those tables what depends on all of
them: the mention counts of ``mention_embeddings/`` and ``clusters/``, ``cluster_summary/``,
``aggregates/``, ``report.html``, ``summary.json`` and ``_SUCCESS.json``.
"""

from __future__ import annotations

import logging
import time

from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.jobs.storage.filesystem import filesystem, first_line, join_path
from group_appeal_spark.jobs.storage.readers import read_documents
from group_appeal_spark.jobs.storage.stream_state import BatchCommitter, read_state, write_state
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.transforms import assign_clusters, detect_appeals, embed_mentions
from group_appeal_spark.jobs.transforms.appeals import distinct_mentions
from group_appeal_spark.jobs.transforms.documents import check_unique_ids
from group_appeal_spark.jobs.transforms.columns import DOC_ID
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from pyspark.sql import functions as F

log = logging.getLogger("group_appeal_spark")

BATCH_TABLES = ("documents", "segments", "mentions", "errors", "mention_embeddings", "clusters")
COUNTS = ("input_rows", "documents_ok", "documents_with_errors", "segments", "mentions", "new_unique_mentions",
          "skipped_known_ids", "unreadable_files")


class BatchProcessor:
    """The ``foreachBatch`` function of a stream: ``processor(batch_df, batch_id)``.

    Pickled to wherever Spark runs it (the driver; on Spark Connect a Python process on the
    server): it holds the config, the resolved models, the cluster model and plain settings only.
    ``rows``: the batch holds documents (a table or a streaming DataFrame); otherwise the paths of
    new files, read here with ``read_documents`` as ``run`` reads its input. ``schema``: the input
    columns recorded at the first start ({name: Spark type}), checked on every batch of files.
    """

    def __init__(self, config, bundle, model, *, rows: bool, schema: dict | None, app_id: str,
                 refresh_every: int, hooks=None):
        self.config, self.bundle, self.model = config, bundle, model
        self.rows, self.schema, self.app_id = rows, schema, app_id
        self.refresh_every, self.hooks = refresh_every, hooks

    def __call__(self, batch_df, batch_id: int) -> None:
        spark = batch_df.sparkSession
        out, fmt = self.config.output.path, self.config.output.format
        committer = BatchCommitter(spark, out, fmt, self.app_id)
        if committer.committed(batch_id) is not None:
            log.info("stream: batch %d was committed before a restart; skipped", batch_id)
            return
        undone = committer.undo(batch_id, BATCH_TABLES)
        if undone:
            log.info("stream: batch %d: %d part files of an interrupted attempt removed", batch_id, undone)
        began = time.perf_counter()
        counts = self._process(spark, batch_df, batch_id, committer)
        counts["seconds"] = round(time.perf_counter() - began, 3)
        committer.commit(batch_id, BATCH_TABLES, counts)
        state = read_state(spark, out)
        totals = {k: state.get(k, 0) + counts.get(k, 0) for k in COUNTS}
        state = {**state, **totals, "batches": state.get("batches", 0) + 1, "last_batch_id": batch_id,
                 "last_batch": counts}
        write_state(spark, out, state)
        _summary(spark, self.config, state, self.bundle)
        rate = counts["input_rows"] / counts["seconds"] if counts["seconds"] else 0.0
        log.info("stream: batch %d: %d documents (%d with errors), %d mentions, %d new mention keys in %.1f s "
                 "(%.1f documents/s)", batch_id, counts["input_rows"], counts["documents_with_errors"],
                 counts["mentions"], counts["new_unique_mentions"], counts["seconds"], rate)
        if self.refresh_every and state["batches"] % self.refresh_every == 0:
            refresh(spark, self.config, self.model, state, self.bundle)

    # -- the batch ------------------------------------------------------------------------------
    def _process(self, spark, batch_df, batch_id, committer) -> dict:
        """The batch's tables, staged; returns its counts (with ``step_seconds``, where the time went)."""
        files = None if self.rows else [r["path"] for r in batch_df.select("path").collect()]
        try:
            return self._tables(spark, batch_df, files, [], batch_id, committer)
        except Exception:
            if not files:
                raise
            # a file that cannot be read at all fails the batch's first read: find it, process the others
            # (where every file reads on its own, the failure was another one: raised as it was)
            bad = self._unreadable(spark, files)
            if not bad:
                raise
            committer.undo(batch_id, BATCH_TABLES)
            good = [f for f in files if f not in dict(bad)]
            return self._tables(spark, batch_df, good, bad, batch_id, committer)

    def _tables(self, spark, batch_df, files, bad_files, batch_id, committer) -> dict:
        config, out, fmt = self.config, self.config.output.path, self.config.output.format
        steps, clock = {}, [time.perf_counter()]

        def lap(step):
            now = time.perf_counter()
            steps[step] = round(now - clock[0], 3)
            clock[0] = now

        if files is None:
            docs = batch_df
        elif files:
            docs = self._check_schema(read_documents(spark, config.input, files))
        else:
            docs = spark.createDataFrame([], _schema_ddl(self.schema))
        docs, skipped = self._known_ids(spark, docs, out, fmt)
        lap("read")
        appeals = detect_appeals(docs, config, bundle=self.bundle, hooks=self.hooks,
                                 ids_checked=config.input.duplicate_ids == "error")
        documents, errors = appeals.documents, appeals.errors
        if bad_files:
            documents = documents.unionByName(_file_rows(spark, documents.schema, bad_files, "documents"))
            errors = errors.unionByName(_file_rows(spark, errors.schema, bad_files, "errors"))
        committer.stage(batch_id, "documents", documents)  # runs the models once; the rest reads their cache
        lap("detect")
        for table, df in (("segments", appeals.segments), ("mentions", appeals.mentions), ("errors", errors)):
            committer.stage(batch_id, table, df)
        row = documents.agg(F.count(F.lit(1)).alias("n"), F.count("error").alias("bad"),
                            F.coalesce(F.sum("n_segments"), F.lit(0)).alias("segments"),
                            F.coalesce(F.sum("n_mentions"), F.lit(0)).alias("mentions")).first()
        lap("tables")
        new = appeals.mentions
        if filesystem(spark).exists(join_path(out, "mention_embeddings")):
            known = read_table(spark, join_path(out, "mention_embeddings"), fmt).select("mention_key")
            new = new.join(known, "mention_key", "left_anti")
        embeddings = embed_mentions(new, config, bundle=self.bundle, hooks=self.hooks)
        if fmt == "delta":  # appended straight into the table: computed once, before the table holds them
            embeddings = embeddings.localCheckpoint()
        committer.stage(batch_id, "mention_embeddings", embeddings)
        appeals.release()
        new_embeddings = embeddings if fmt == "delta" else \
            read_table(spark, committer.staging(batch_id, "mention_embeddings"), fmt)
        lap("embed")
        committer.stage(batch_id, "clusters", _like_clusters(spark, assign_clusters(new_embeddings, self.model, config),
                                                             out, fmt))
        n_new = new_embeddings.count()
        lap("assign")
        return {"input_rows": row["n"], "documents_ok": row["n"] - row["bad"], "documents_with_errors": row["bad"],
                "segments": row["segments"], "mentions": row["mentions"], "new_unique_mentions": n_new,
                "skipped_known_ids": skipped, "unreadable_files": len(bad_files), "step_seconds": steps}

    def _unreadable(self, spark, files: list[str]) -> list[tuple[str, str]]:
        """(path, reason) of each file that cannot be read on its own, its text read whole."""
        cfg, bad = self.config.input, []
        for path in files:
            try:
                read_documents(spark, cfg, [path]).select(F.sum(F.length(cfg.text_col))).collect()
            except Exception as exc:
                bad.append((path, f"file {path} cannot be read as {cfg.format}: {first_line(exc)}"))
        return bad

    def _check_schema(self, docs):
        """The recorded input columns, with their types: a missing one, or a typed format's changed
        type, stops the stream; JSON and CSV batches (types inferred per batch) are cast."""
        cfg = self.config.input
        if not self.schema:
            return docs
        used = [c for c in dict.fromkeys([cfg.text_col, cfg.id_col, *cfg.carry_cols]) if c in self.schema]
        present = {f.name: f.dataType.simpleString() for f in docs.schema.fields}
        for column in used:
            if column not in present:
                raise InputError(f"input: column {column!r} is missing from the new files (the stream started with "
                                 f"{sorted(self.schema)}); put the files with another layout in another folder")
            if present[column] != self.schema[column]:
                if cfg.format in ("json", "csv", "text"):
                    docs = docs.withColumn(column, F.col(column).cast(self.schema[column]))
                else:
                    raise InputError(f"input: column {column!r} is {present[column]} in the new files, "
                                     f"{self.schema[column]} when the stream started; the schema changed")
        return docs

    def _known_ids(self, spark, docs, out, fmt):
        """``input.duplicate_ids`` across batches, for rows whose id is already in documents/: ``keep``
        processes them again, ``first`` skips and counts them, ``error`` stops the stream."""
        cfg = self.config.input
        if cfg.id_col not in docs.columns or cfg.duplicate_ids == "keep":
            return docs, 0
        if cfg.duplicate_ids == "error":
            check_unique_ids(docs, self.config)  # within the batch
        path = join_path(out, "documents")
        if not filesystem(spark).exists(path):
            return docs, 0
        known = read_table(spark, path, fmt).where(F.col(DOC_ID).isNotNull()).select(F.col(DOC_ID).alias("__known"))
        seen = F.col(cfg.id_col) == F.col("__known")
        if cfg.duplicate_ids == "error":
            ids = [str(r[0]) for r in docs.join(known, seen, "left_semi").select(cfg.id_col).distinct()
                   .orderBy(cfg.id_col).limit(5).collect()]
            if ids:
                raise InputError(f"input.duplicate_ids: error: ids already processed by an earlier batch arrived "
                                 f"again, e.g. {', '.join(ids)}; use first to skip them or keep to process them again")
            return docs, 0
        return docs.join(known, seen, "left_anti"), docs.join(known, seen, "left_semi").count()


def _schema_ddl(schema: dict | None) -> str:
    if not schema:
        raise GroupAppealSparkError("stream: no input schema recorded")
    return ", ".join(f"`{name}` {dtype}" for name, dtype in schema.items())


def _file_rows(spark, schema, bad_files, table: str):
    """A documents/ or errors/ row per unreadable file: no id, the file named in ``error``."""
    rows = []
    for _, reason in bad_files:
        values = {"error": reason, "stage": "input"}
        rows.append(tuple(values.get(f.name, 0 if f.name.startswith("n_") else None) for f in schema.fields))
    return spark.createDataFrame(rows, schema)


def _like_clusters(spark, clusters, out: str, fmt: str):
    """New keys' clusters with the columns of the clusters/ table they join (a run's has category)."""
    path = join_path(out, "clusters")
    if not filesystem(spark).exists(path):
        return clusters
    existing = read_table(spark, path, fmt).schema
    return clusters.select(*[(F.col(f.name) if f.name in clusters.columns else F.lit(None)).cast(f.dataType)
                             .alias(f.name) for f in existing.fields])


def refresh(spark, config, model, state: dict, bundle) -> None:
    """Bring what summarises all batches up to date: counts, cluster_summary, aggregates, report, marker."""
    from group_appeal_spark.jobs.pipeline.stream_report import write_report_tables
    from group_appeal_spark.jobs.timing import StageTimer

    out, fmt = config.output.path, config.output.format
    if not filesystem(spark).exists(join_path(out, "mentions")):
        return
    mentions = read_table(spark, join_path(out, "mentions"), fmt)
    counts = distinct_mentions(mentions)
    for table in ("mention_embeddings", "clusters"):
        path = join_path(out, table)
        if not filesystem(spark).exists(path):
            continue
        old = read_table(spark, path, fmt)
        keep = [c for c in old.columns if c not in ("mention", "count")]
        fresh = old.select(*keep).join(counts, "mention_key", "left") \
            .select(*[F.coalesce(F.col("count"), F.lit(0)).cast("long").alias("count") if c == "count" else c
                      for c in old.columns])
        # staged and then moved: the old files are read until the new table is complete
        write_table(fresh, path, fmt, "overwrite")
    timer = StageTimer()
    tables = write_report_tables(spark, config, model, bundle, timer)
    _summary(spark, config, state, bundle, timer, track=True)
    run_state.mark_complete(spark, out, "stream", tables, format=fmt, fingerprint=state.get("fingerprint"))


def _summary(spark, config, state: dict, bundle, timer=None, *, track: bool = False) -> None:
    """summary.json with the stream's cumulative accounts (input rows = processed + errors)."""
    from group_appeal_spark.jobs.metadata import write_summary
    from group_appeal_spark.jobs.timing import StageTimer

    counts = {k: state.get(k, 0) for k in (*COUNTS, "batches")}
    counts["last_batch_id"] = state.get("last_batch_id")
    counts["reconciled"] = counts["input_rows"] == counts["documents_ok"] + counts["documents_with_errors"]
    counts["job"] = "stream"
    write_summary(spark, config, counts, timer or StageTimer(), published={}, bundle=bundle, job="stream", track=track)
