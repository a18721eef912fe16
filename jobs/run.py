"""run: documents -> mentions with stance -> distinct mentions -> embeddings -> k search and clusters.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/run.py \\
        --input docs.parquet --output out/ [--carry-cols party,date,speaker --k-max 40]

    group-appeal-spark run --input examples/sample_corpus.jsonl --input-format json --output out/

Writes documents/, mentions/, errors/, mention_embeddings/, k_search/, clusters/, cluster_summary/,
aggregates/, cluster_model/, plots/, report.html, summary.json and, last, _SUCCESS.json under --output
(columns: README.md, section 'Outputs'). --input-table NAME reads the documents from a catalog table;
--output-table-prefix P also publishes each table written as the catalog table P<name>.
"""

import argparse
import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import catalog, common, storage
from group_appeal_spark.jobs.assign import bundle_embedder, load_checked_model, run_assign
from group_appeal_spark.jobs.cluster import TABLES as CLUSTER_TABLES
from group_appeal_spark.jobs.cluster import run_cluster
from group_appeal_spark.jobs.detect import TABLES as DETECT_TABLES
from group_appeal_spark.jobs.detect import finish_output, finished_output, run_detect
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.udfs.hooks import UdfHooks

log = common.log


def build_parser() -> argparse.ArgumentParser:
    def add_cluster_model(parser):
        parser.add_argument("--cluster-model", metavar="FOLDER",
                            help="cluster_model/ folder of an earlier `run` or `cluster`: assign the mentions to its "
                            "clusters instead of searching k and fitting (same embedder required)")

    return common.job_parser("run", __doc__, common.add_input_args, common.add_model_args, common.add_cluster_args,
                             add_cluster_model, common.add_common_args)


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    parser = build_parser()

    def body(args):
        # every table this run may write (checked against the catalog with --output-table-prefix)
        tables = (*DETECT_TABLES, *(CLUSTER_TABLES if args.cluster_model is None else ("clusters",)))
        config, spark, bundle, timer = common.start(args, "group-appeal-spark run", tables)
        if args.resume and finished_output(spark, config, bundle, "run"):
            return
        if config.output.group_by and not config.input.carry_cols:  # run carries only what --carry-cols names
            raise InputError(f"output.group_by (--group-by): {config.output.group_by} not carried; this run "
                             f"carries no columns (input.carry_cols / --carry-cols)")
        # a bad or foreign cluster model stops the job here, before the models run
        cluster_model = None if args.cluster_model is None else load_checked_model(
            spark, args.cluster_model, bundle_embedder(config, bundle), "this run's embedder")
        counts = run_detect(spark, config, bundle, timer, resume=args.resume, hooks=hooks)
        if cluster_model is None:
            counts.update(run_cluster(spark, config, config.output.path, timer,
                                      mode="overwrite" if args.resume else None, bundle=bundle))
        else:
            counts.update(run_assign(spark, config, config.output.path, cluster_model, timer,
                                     mode="overwrite" if args.resume else None))
        written = (*DETECT_TABLES, *counts.pop("tables"))  # the cluster half's: aggregates may be skipped
        # the folder's tables are complete: publish them before summary.json, which records them
        published = catalog.publish(spark, config, written, replace=catalog.replacing(config, args.resume),
                                    timer=timer, others=tables)
        summary = {**counts, "catalog_tables": published, "stage_seconds": timer.seconds, "config": config.to_dict(),
                   **common.run_metadata(spark, config, bundle)}
        storage.put_text(spark, common.summary_json(summary), storage.join_path(config.output.path, "summary.json"))
        finish_output(spark, config, bundle, "run", written, published)
        log.info("run: done: %s", {k: v for k, v in counts.items() if k != "plots"})

    return common.run_main("run", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
