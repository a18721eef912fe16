"""detect: documents -> mentions with stance, errors, and the distinct mentions' embeddings.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/detect.py \\
        --input docs.parquet --output out/ [--text-col text --id-col id --carry-cols party,date]

Writes ``<output>/mentions``, ``<output>/errors``, ``<output>/mention_embeddings`` and
``<output>/summary.json``. ``cluster`` then works from ``mention_embeddings`` without the models.
"""

import argparse
import dataclasses
import functools
import json
import sys

if __package__ in (None, ""):
    try:
        import _bootstrap  # noqa: F401 - a job file of a checkout: use the checkout's package
    except ModuleNotFoundError:
        pass  # the job file alone (cluster deploy mode): the package is the wheel on --py-files

from group_appeal_spark.jobs import common, storage
from group_appeal_spark.jobs.transforms import detect_appeals, embed_mentions
from group_appeal_spark.jobs.transforms.appeals import check_unique_ids, count_duplicate_ids
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks

log = common.log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="group-appeal-spark detect", description=__doc__.split("\n\n")[0],
        epilog="Output tables and columns: see README.md, section 'Outputs'.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_input_args(parser)
    common.add_model_args(parser)
    common.add_common_args(parser)
    return parser


def fingerprint(config, bundle: ModelBundle) -> dict:
    """What must not change between an interrupted run and its resumption."""
    inp = config.input
    return {"input": inp.path, "format": inp.format, "text_col": inp.text_col, "id_col": inp.id_col,
            "carry_cols": inp.carry_cols, "chunks": inp.chunks, "duplicate_ids": inp.duplicate_ids,
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


def run_detect(spark, config, bundle: ModelBundle, timer: common.StageTimer, *, resume: bool = False,
               hooks: UdfHooks | None = None) -> dict:
    """The models' half of the pipeline; returns the counts for summary.json.

    Documents are processed in ``input.chunks`` chunks by a hash of their id. Each finished
    chunk leaves its tables and a ``_DONE.json`` marker under ``<output>/_work/``; with
    ``resume`` a re-run skips the chunks that have one, so an interrupted archive run continues
    where it stopped. The chunks are then gathered into ``mentions/`` and ``errors/``. ``hooks``
    go to both UDFs.
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
            appeals.release()
            storage.put_text(spark, json.dumps(counts), marker)
            chunk_counts.append(counts)
            log.info("detect: chunk %d/%d: %s", chunk + 1, n_chunks, counts)
        totals = {k: sum(c[k] for c in chunk_counts) for k in ("documents", "errors", "mentions", "segments")}
        for table in ("mentions", "errors"):
            parts = [storage.read_table(spark, storage.join_path(work, f"chunk-{c:05d}", table), fmt) for c in range(n_chunks)]
            storage.write_table(functools.reduce(lambda a, b: a.unionByName(b), parts),
                           storage.join_path(out, table), fmt, final_mode)
    timer.done("detect", totals["documents"], "documents")
    n_input = docs.count()
    if n_input != totals["documents"]:
        raise GroupAppealSparkError(
            f"reconciliation failed: {n_input} input rows but {totals['documents']} processed or reported")
    with timer.stage("embed"):
        mentions = storage.read_table(spark, storage.join_path(out, "mentions"), fmt)
        storage.write_table(embed_mentions(mentions, config, bundle=bundle, hooks=hooks),
                       storage.join_path(out, "mention_embeddings"), fmt, final_mode)
        unique = storage.read_table(spark, storage.join_path(out, "mention_embeddings"), fmt).count()
    timer.done("embed", unique, "unique mentions")
    storage.delete(spark, work)
    return {"input_rows": n_input, "documents_ok": totals["documents"] - totals["errors"],
            "documents_with_errors": totals["errors"], "segments": totals["segments"],
            "mentions": totals["mentions"], "unique_mentions": unique, "chunks": n_chunks,
            "chunks_resumed": resumed, "duplicate_ids": duplicates.ids, "duplicate_id_rows": duplicates.rows}


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    parser = build_parser()

    def body(args):
        config, spark, bundle, timer = common.start(args, "group-appeal-spark detect")
        counts = run_detect(spark, config, bundle, timer, resume=args.resume, hooks=hooks)
        storage.put_text(spark, common.summary_json({**counts, "stage_seconds": timer.seconds,
                                                 "config": config.to_dict(),
                                                 **common.run_metadata(spark, config, bundle)}),
                    storage.join_path(config.output.path, "summary.json"))
        log.info("detect: done: %s", counts)

    return common.run_main("detect", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
