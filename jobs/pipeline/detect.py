"""The models' half of the pipeline: documents -> mentions, errors, documents, segments, mention_embeddings.

Checkpointed in chunks under ``<output>/_work/`` (``storage.run_state``), so ``--resume``
continues an interrupted archive run; used by the ``detect`` and ``run`` jobs.
"""

from __future__ import annotations

import json
import logging

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.metadata import write_summary
from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.readers import read_documents
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.jobs.transforms import detect_appeals, embed_mentions
from group_appeal_spark.jobs.transforms.documents import check_document_columns, check_unique_ids, count_duplicate_ids
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks
from pyspark.sql import functions as F

log = logging.getLogger("group_appeal_spark")

# the tables of detect's output (those of `run` add the cluster half's)
TABLES = ("mentions", "errors", "documents", "segments", "mention_embeddings")
# the per-chunk tables of the detection pass (mention_embeddings is embedded after them)
_CHUNK_TABLES = ("mentions", "errors", "documents", "segments")


def fingerprint(config, bundle: ModelBundle) -> dict:
    """What must not change between an interrupted run and its resumption."""
    inp = config.input
    return {"input": inp.path, "table": inp.table, "format": inp.format, "text_col": inp.text_col, "id_col": inp.id_col,
            "carry_cols": inp.carry_cols, "chunks": inp.chunks, "duplicate_ids": inp.duplicate_ids,
            "segment_text": config.output.segment_text,
            "segmentation": config.segmentation.mode,
            "max_segment_chars": config.segmentation.max_segment_chars, "models": bundle.ids,
            "precision": config.inference.precision, "window_stride": config.inference.window_stride,
            # 2: chunks hold segments/ too; checkpoints of an older version are not resumed
            "layout": 2}


def _embed(spark, config, bundle: ModelBundle, work: str, *, resume: bool, final_mode: str,
           hooks: UdfHooks | None) -> tuple[int, int]:
    """``mention_embeddings/``, embedded in chunks by a hash of ``mention_key``, each checkpointed.

    Chunk i embeds the distinct mentions whose key hashes to i of ``input.chunks`` and leaves
    ``_work/embed-NNNNN/`` with a ``_DONE.json`` marker; ``resume`` skips the chunks that have
    one. The same rows as one pass: a mention key's rows are all in one chunk, and embeddings do
    not depend on batching (to the last bit, except that a batch of a few rows takes another
    matrix kernel: 1 ulp). Returns the distinct mentions and the chunks skipped.
    """
    out, fmt, n = config.output.path, config.output.format, config.input.chunks
    embedded = run_state.phase_done(spark, work, "embedded") if resume else None
    if embedded is not None:
        log.info("embed: mention_embeddings gathered by an earlier run; skipped")
        return embedded["unique_mentions"], n
    mentions = run_state.union_chunks(spark, work, "chunk", n, "mentions")  # typed, whatever output.format

    def embed_chunk(part, folder):
        keys = mentions.where(F.pmod(F.xxhash64("mention_key"), F.lit(n)) == part) if n > 1 else mentions
        table = join_path(folder, "mention_embeddings")
        write_table(embed_mentions(keys, config, bundle=bundle, hooks=hooks), table, run_state.WORK_FORMAT,
                    "overwrite")
        return {"unique_mentions": read_table(spark, table, run_state.WORK_FORMAT).count()}

    records, resumed = run_state.run_chunks(spark, work, "embed", n, embed_chunk, resume=resume, stage="embed")
    unique = sum(r["unique_mentions"] for r in records)
    write_table(run_state.union_chunks(spark, work, "embed", n, "mention_embeddings"),
                join_path(out, "mention_embeddings"), fmt, final_mode)
    run_state.phase_finished(spark, work, "embedded", {"unique_mentions": unique})
    return unique, resumed


def run_detect(spark, config, bundle: ModelBundle, timer: StageTimer, *, resume: bool = False,
               hooks: UdfHooks | None = None) -> dict:
    """The models' half of the pipeline; returns the counts for summary.json.

    Documents are processed in ``input.chunks`` chunks by a hash of their id. Each finished
    chunk leaves its tables and a ``_DONE.json`` marker under ``<output>/_work/``; with
    ``resume`` a re-run skips the chunks that have one, so an interrupted archive run continues
    where it stopped. The chunks are then gathered into ``mentions/`` and ``errors/``, and the
    distinct mentions embedded in chunks too (``_embed``); each phase that finishes leaves a
    marker under ``_work/``, so a resumed run skips it. Any earlier completion marker is removed
    first (``run_state.mark_started``); ``_work/`` stays until ``finish_output`` has marked the
    output complete. ``hooks`` go to both UDFs.
    """
    out, fmt = config.output.path, config.output.format
    final_mode = "overwrite" if resume else config.output.mode
    work = join_path(out, run_state.WORK)
    docs = read_documents(spark, config.input)
    check_document_columns(docs, config)  # before anything is written: a wrong column leaves the output as it was
    # before the fingerprint and the models: duplicate_ids=error stops the job here, checked once
    # for all chunks (the transform is told so; the fingerprint keeps the setting as asked)
    ids_checked = config.input.duplicate_ids == "error"
    duplicates = check_unique_ids(docs, config) if ids_checked else count_duplicate_ids(docs, config)
    run_state.check_resumable(spark, work, fingerprint(config, bundle), resume)
    run_state.mark_started(spark, out)
    # phases an interrupted run finished: None, or what they recorded (see run_state.phase_done)
    gathered = run_state.phase_done(spark, work, "gathered") if resume else None
    n_chunks = config.input.chunks

    def detect_chunk(chunk, folder):
        appeals = detect_appeals(docs, config, bundle=bundle, chunk=(chunk, n_chunks), hooks=hooks,
                                 ids_checked=ids_checked)
        counts = appeals.documents.selectExpr(
            "count(*) AS documents", "count(error) AS errors", "coalesce(sum(n_mentions), 0) AS mentions",
            "coalesce(sum(n_segments), 0) AS segments").first().asDict()
        for table in _CHUNK_TABLES:
            write_table(getattr(appeals, table), join_path(folder, table), run_state.WORK_FORMAT, "overwrite")
        appeals.release()
        counts["segment_rows"] = read_table(spark, join_path(folder, "segments"), run_state.WORK_FORMAT).count()
        return counts

    with timer.stage("detect"):
        chunk_counts, resumed = run_state.run_chunks(spark, work, "chunk", n_chunks, detect_chunk, resume=resume,
                                                     stage="detect")
        totals = {k: sum(c.get(k, 0) for c in chunk_counts)
                  for k in ("documents", "errors", "mentions", "segments", "segment_rows")}
        for table in _CHUNK_TABLES if gathered is None else ():
            write_table(run_state.union_chunks(spark, work, "chunk", n_chunks, table), join_path(out, table),
                        fmt, final_mode)
    timer.done("detect", totals["documents"], "documents")
    if gathered is None:
        n_input = docs.count()
        if n_input != totals["documents"]:
            raise GroupAppealSparkError(
                f"reconciliation failed: {n_input} input rows but {totals['documents']} processed or reported")
        if totals["segment_rows"] != totals["segments"]:
            raise GroupAppealSparkError(
                f"reconciliation failed: documents/ counts {totals['segments']} segments but segments/ holds "
                f"{totals['segment_rows']} rows")
        run_state.phase_finished(spark, work, "gathered", {"input_rows": n_input})
    else:
        n_input = gathered["input_rows"]
        log.info("detect: chunks gathered and reconciled by an earlier run; skipped")
    with timer.stage("embed"):
        unique, embed_resumed = _embed(spark, config, bundle, work, resume=resume, final_mode=final_mode, hooks=hooks)
    timer.done("embed", unique, "unique mentions")
    return {"input_rows": n_input, "documents_ok": totals["documents"] - totals["errors"],
            "documents_with_errors": totals["errors"], "segments": totals["segments"],
            "segment_rows": totals["segment_rows"],
            "mentions": totals["mentions"], "unique_mentions": unique, "chunks": n_chunks,
            "chunks_resumed": resumed, "embed_chunks_resumed": embed_resumed, "duplicate_ids": duplicates.ids,
            "duplicate_id_rows": duplicates.rows}


def work_tables(spark, config) -> dict:
    """The checkpointed mention_embeddings, mentions and documents of this run (in ``_work/``, typed
    whatever ``output.format``), for the cluster half of ``run``; valid until ``finish_output``."""
    work, n = join_path(config.output.path, run_state.WORK), config.input.chunks
    return {"mention_embeddings": run_state.union_chunks(spark, work, "embed", n, "mention_embeddings"),
            "mentions": run_state.union_chunks(spark, work, "chunk", n, "mentions"),
            "documents": run_state.union_chunks(spark, work, "chunk", n, "documents"),
            "segments": run_state.union_chunks(spark, work, "chunk", n, "segments")}


def finished_output(spark, config, bundle: ModelBundle, job: str) -> bool:
    """Whether ``--resume`` finds an output that a run of ``job`` finished: then nothing is to do.

    Its ``_SUCCESS.json`` must say complete and come from ``job`` (or from ``run``, which does
    all of ``detect``); other settings than the finished run's are refused, as for an
    interrupted run. Its tables are published under ``--output-table-prefix`` where they are
    not yet (``catalog.publish_finished``).
    """
    out = config.output.path
    info = run_state.read_marker(spark, out)
    if not info or info.get("complete") is not True or info.get("job") not in (job, "run"):
        return False
    expected = json.loads(json.dumps(fingerprint(config, bundle)))  # as the marker's JSON holds it
    changed = sorted(k for k in expected if (info.get("fingerprint") or {}).get(k) != expected[k])
    if changed:
        raise InputError(f"--resume: {out} is a complete output made with other settings ({', '.join(changed)} "
                         f"differ); choose another --output, or start again with --overwrite")
    log.info("%s: %s: output complete (finished %s), nothing to do", job, out, info.get("finished_at"))
    catalog.publish_finished(spark, config, info)
    return True


def finish_output(spark, config, bundle: ModelBundle, job: str, tables, catalog_tables=None) -> None:
    """Mark the output complete (its last write, after summary.json), then remove ``_work/``.

    ``catalog_tables``: the tables published (``catalog.publish``), recorded in the marker.
    """
    out = config.output.path
    run_state.mark_complete(spark, out, job, tables, format=config.output.format,
                            fingerprint=fingerprint(config, bundle), catalog_tables=catalog_tables or {})
    # after the marker: a run stopped before it resumes from the checkpoints, not from scratch
    filesystem(spark).delete(join_path(out, run_state.WORK))



def detect_job(spark, config, bundle: ModelBundle, timer: StageTimer, *, resume: bool = False,
               hooks: UdfHooks | None = None) -> None:
    """The ``detect`` job after its start-up checks: the models' half, publish, summary.json, marker."""
    if resume and finished_output(spark, config, bundle, "detect"):
        return
    counts = run_detect(spark, config, bundle, timer, resume=resume, hooks=hooks)
    # the folder's tables are complete: publish them before summary.json, which records them
    published = catalog.publish(spark, config, TABLES, replace=catalog.replacing(config, resume), timer=timer)
    write_summary(spark, config, counts, timer, published=published, bundle=bundle)
    finish_output(spark, config, bundle, "detect", TABLES, published)
    log.info("detect: done: %s", counts)
