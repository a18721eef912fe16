"""detect: documents -> mentions with stance, errors, and the distinct mentions' embeddings.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/detect.py \\
        --input docs.parquet --output out/ [--text-col text --id-col id --carry-cols party,date]

Writes ``<output>/documents``, ``<output>/mentions``, ``<output>/errors``,
``<output>/mention_embeddings``, ``<output>/summary.json`` and, last, ``<output>/_SUCCESS.json``.
``--input-table NAME`` reads the documents from a catalog table instead of ``--input``;
``--output-table-prefix P`` also publishes the four tables as catalog tables ``P<name>``.
``cluster`` then works from ``mention_embeddings`` without the models.
"""

import argparse
import contextlib
import dataclasses
import functools
import json
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import catalog, common, storage
from group_appeal_spark.jobs.transforms import detect_appeals, embed_mentions
from group_appeal_spark.jobs.transforms.appeals import check_unique_ids, count_duplicate_ids
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks
from pyspark.sql import functions as F

log = common.log


def build_parser() -> argparse.ArgumentParser:
    return common.job_parser("detect", __doc__, common.add_input_args, common.add_model_args, common.add_common_args)


def fingerprint(config, bundle: ModelBundle) -> dict:
    """What must not change between an interrupted run and its resumption."""
    inp = config.input
    return {"input": inp.path, "table": inp.table, "format": inp.format, "text_col": inp.text_col, "id_col": inp.id_col,
            "carry_cols": inp.carry_cols, "chunks": inp.chunks, "duplicate_ids": inp.duplicate_ids,
            "segment_text": config.output.segment_text,
            "segmentation": config.segmentation.mode,
            "max_segment_chars": config.segmentation.max_segment_chars, "models": bundle.ids,
            "precision": config.inference.precision, "window_stride": config.inference.window_stride}


def _check_resumable(spark, work: str, expected: dict, resume: bool) -> None:
    path = storage.join_path(work, "fingerprint.json")
    if resume and storage.path_exists(spark, path):
        found = json.loads(storage.get_text(spark, path))
        changed = sorted(k for k in expected if found.get(k) != expected[k])
        if changed:
            raise InputError(f"--resume: {work} was made with other settings ({', '.join(changed)} differ); "
                             f"resume with the same settings, or start again with --overwrite")
    else:
        storage.put_text(spark, json.dumps(expected, indent=2), path)


def _phase_done(spark, work: str, phase: str) -> dict | None:
    """What a finished phase of an interrupted run recorded in ``_work/_<PHASE>.json``, or None."""
    marker = storage.join_path(work, f"_{phase.upper()}.json")
    return json.loads(storage.get_text(spark, marker)) if storage.path_exists(spark, marker) else None


def _phase_finished(spark, work: str, phase: str, record: dict) -> None:
    storage.put_text(spark, json.dumps(record), storage.join_path(work, f"_{phase.upper()}.json"))


def _embed(spark, config, bundle: ModelBundle, work: str, *, resume: bool, final_mode: str,
           hooks: UdfHooks | None) -> tuple[int, int]:
    """``mention_embeddings/``, embedded in chunks by a hash of ``mention_key``, each checkpointed.

    Chunk i embeds the distinct mentions whose key hashes to i of ``input.chunks`` and leaves
    ``_work/embed-NNNNN/`` with a ``_DONE.json`` marker; ``resume`` skips the chunks that have
    one. The same rows as one pass: a mention key's rows are all in one chunk, and embeddings do
    not depend on batching (to the last bit, except that a batch of a few rows takes another
    matrix kernel: 1 ulp). Returns the distinct mentions and the chunks skipped.
    """
    out, fmt = config.output.path, config.output.format
    embedded = _phase_done(spark, work, "embedded") if resume else None
    n = config.input.chunks
    if embedded is not None:
        log.info("embed: mention_embeddings gathered by an earlier run; skipped")
        return embedded["unique_mentions"], n
    mentions = storage.read_table(spark, storage.join_path(out, "mentions"), fmt)
    unique, resumed = 0, 0
    for part in range(n):
        folder = storage.join_path(work, f"embed-{part:05d}")
        marker = storage.join_path(folder, "_DONE.json")
        if resume and storage.path_exists(spark, marker):
            unique += json.loads(storage.get_text(spark, marker))["unique_mentions"]
            resumed += 1
            log.info("embed: chunk %d/%d done by an earlier run; skipped", part + 1, n)
            continue
        keys = mentions.where(F.pmod(F.xxhash64("mention_key"), F.lit(n)) == part) if n > 1 else mentions
        table = storage.join_path(folder, "mention_embeddings")
        storage.write_table(embed_mentions(keys, config, bundle=bundle, hooks=hooks), table, fmt, "overwrite")
        count = storage.read_table(spark, table, fmt).count()
        storage.put_text(spark, json.dumps({"unique_mentions": count}), marker)
        unique += count
        log.info("embed: chunk %d/%d: %d unique mentions", part + 1, n, count)
    parts = [storage.read_table(spark, storage.join_path(work, f"embed-{p:05d}", "mention_embeddings"), fmt)
             for p in range(n)]
    storage.write_table(functools.reduce(lambda a, b: a.unionByName(b), parts),
                        storage.join_path(out, "mention_embeddings"), fmt, final_mode)
    _phase_finished(spark, work, "embedded", {"unique_mentions": unique})
    return unique, resumed


def run_detect(spark, config, bundle: ModelBundle, timer: common.StageTimer, *, resume: bool = False,
               hooks: UdfHooks | None = None) -> dict:
    """The models' half of the pipeline; returns the counts for summary.json.

    Documents are processed in ``input.chunks`` chunks by a hash of their id. Each finished
    chunk leaves its tables and a ``_DONE.json`` marker under ``<output>/_work/``; with
    ``resume`` a re-run skips the chunks that have one, so an interrupted archive run continues
    where it stopped. The chunks are then gathered into ``mentions/`` and ``errors/``, and the
    distinct mentions embedded in chunks too (``_embed``); each phase that finishes leaves a
    marker under ``_work/``, so a resumed run skips it. Any earlier completion marker is removed
    first (``storage.mark_started``); ``_work/`` stays until ``finish_output`` has marked the
    output complete. ``hooks`` go to both UDFs.
    """
    out, fmt = config.output.path, config.output.format
    final_mode = "overwrite" if resume else config.output.mode
    work = storage.join_path(out, "_work")
    docs = storage.read_documents(spark, config.input)
    # before the fingerprint and the models: duplicate_ids=error stops the job here
    if config.input.duplicate_ids == "error":
        duplicates = check_unique_ids(docs, config)
        # checked once for all chunks; "keep" is the same thing without duplicates
        config = dataclasses.replace(config, input=dataclasses.replace(config.input, duplicate_ids="keep"))
    else:
        duplicates = count_duplicate_ids(docs, config)
    _check_resumable(spark, work, fingerprint(config, bundle), resume)
    storage.mark_started(spark, out)
    # phases an interrupted run finished: None, or what they recorded (see _phase_done)
    gathered = _phase_done(spark, work, "gathered") if resume else None
    n_chunks = config.input.chunks
    chunk_counts, resumed = [], 0
    with timer.stage("detect"):
        for chunk in range(n_chunks):
            folder = storage.join_path(work, f"chunk-{chunk:05d}")
            marker = storage.join_path(folder, "_DONE.json")
            if resume and storage.path_exists(spark, marker):
                chunk_counts.append(json.loads(storage.get_text(spark, marker)))
                resumed += 1
                log.info("detect: chunk %d/%d done by an earlier run; skipped", chunk + 1, n_chunks)
                continue
            appeals = detect_appeals(docs, config, bundle=bundle, chunk=(chunk, n_chunks), hooks=hooks)
            counts = appeals.documents.selectExpr(
                "count(*) AS documents", "count(error) AS errors", "coalesce(sum(n_mentions), 0) AS mentions",
                "coalesce(sum(n_segments), 0) AS segments").first().asDict()
            storage.write_table(appeals.mentions, storage.join_path(folder, "mentions"), fmt, "overwrite")
            storage.write_table(appeals.errors, storage.join_path(folder, "errors"), fmt, "overwrite")
            storage.write_table(appeals.documents, storage.join_path(folder, "documents"), fmt, "overwrite")
            appeals.release()
            storage.put_text(spark, json.dumps(counts), marker)
            chunk_counts.append(counts)
            log.info("detect: chunk %d/%d: %s", chunk + 1, n_chunks, counts)
        totals = {k: sum(c[k] for c in chunk_counts) for k in ("documents", "errors", "mentions", "segments")}
        for table in ("mentions", "errors", "documents") if gathered is None else ():
            parts = [storage.read_table(spark, storage.join_path(work, f"chunk-{c:05d}", table), fmt) for c in range(n_chunks)]
            storage.write_table(functools.reduce(lambda a, b: a.unionByName(b), parts),
                           storage.join_path(out, table), fmt, final_mode)
    timer.done("detect", totals["documents"], "documents")
    if gathered is None:
        n_input = docs.count()
        if n_input != totals["documents"]:
            raise GroupAppealSparkError(
                f"reconciliation failed: {n_input} input rows but {totals['documents']} processed or reported")
        _phase_finished(spark, work, "gathered", {"input_rows": n_input})
    else:
        n_input = gathered["input_rows"]
        log.info("detect: chunks gathered and reconciled by an earlier run; skipped")
    with timer.stage("embed"):
        unique, embed_resumed = _embed(spark, config, bundle, work, resume=resume, final_mode=final_mode, hooks=hooks)
    timer.done("embed", unique, "unique mentions")
    return {"input_rows": n_input, "documents_ok": totals["documents"] - totals["errors"],
            "documents_with_errors": totals["errors"], "segments": totals["segments"],
            "mentions": totals["mentions"], "unique_mentions": unique, "chunks": n_chunks,
            "chunks_resumed": resumed, "embed_chunks_resumed": embed_resumed, "duplicate_ids": duplicates.ids,
            "duplicate_id_rows": duplicates.rows}


# the tables of detect's output (those of `run` add the cluster job's)
TABLES = ("mentions", "errors", "documents", "mention_embeddings")


def finished_output(spark, config, bundle: ModelBundle, job: str) -> bool:
    """Whether ``--resume`` finds an output that a run of ``job`` finished: then nothing is to do.

    Its ``_SUCCESS.json`` must say complete and come from ``job`` (or from ``run``, which does
    all of ``detect``); other settings than the finished run's are refused, as for an
    interrupted run. Its tables are published under ``--output-table-prefix`` where they are
    not yet (``catalog.publish_finished``).
    """
    out = config.output.path
    info = storage.read_marker(spark, out)
    if not info or info.get("complete") is not True or info.get("job") not in (job, "run"):
        return False
    expected = json.loads(json.dumps(fingerprint(config, bundle)))
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
    storage.mark_complete(spark, out, job, tables, fingerprint=fingerprint(config, bundle),
                          catalog_tables=catalog_tables or {})
    # after the marker: a run stopped before it resumes from the checkpoints, not from scratch
    storage.delete(spark, storage.join_path(out, "_work"))


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    parser = build_parser()

    def body(args):
        config, spark, bundle, timer = common.start(args, "group-appeal-spark detect", TABLES)
        if args.resume and finished_output(spark, config, bundle, "detect"):
            return
        counts = run_detect(spark, config, bundle, timer, resume=args.resume, hooks=hooks)
        # the folder's tables are complete: publish them before summary.json, which records them
        published = catalog.publish(spark, config, TABLES, replace=catalog.replacing(config, args.resume), timer=timer)
        storage.put_text(spark, common.summary_json({**counts, "catalog_tables": published,
                                                 "stage_seconds": timer.seconds,
                                                 "config": config.to_dict(),
                                                 **common.run_metadata(spark, config, bundle)}),
                    storage.join_path(config.output.path, "summary.json"))
        finish_output(spark, config, bundle, "detect", TABLES, published)
        log.info("detect: done: %s", counts)

    return common.run_main("detect", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
