"""run: documents -> mentions with stance -> distinct mentions -> embeddings -> k search and clusters.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/run.py \\
        --input docs.parquet --output out/ [--carry-cols party,date,speaker --k-max 40]

    group-appeal-spark run --input examples/sample_corpus.jsonl --input-format json --output out/

Writes documents/, mentions/, errors/, mention_embeddings/, k_search/, clusters/, cluster_summary/,
aggregates/, cluster_model/, plots/, report.html, summary.json and, last, _SUCCESS.json under --output
(columns: docs/outputs.md). --input-table NAME reads the documents from a catalog table;
--output-table-prefix P also publishes each table written as the catalog table P<name>.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline import run
from group_appeal_spark.udfs.hooks import UdfHooks

CLUSTER_MODEL = flags.Flag("--cluster-model", "cluster_model/ folder of an earlier `run` or `cluster`: assign the "
                           "mentions to its clusters instead of searching k and fitting (same embedder required)",
                           options={"metavar": "FOLDER"})


def build_parser():
    return flags.job_parser("run", __doc__, flags.INPUT_FLAGS, flags.MODEL_FLAGS, flags.CLUSTER_FLAGS,
                            flags.COMMON_FLAGS, extra=(CLUSTER_MODEL,))


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    def body(args):
        config, spark, bundle, timer = startup.start(args, "group-appeal-spark run", run.run_tables(args.cluster_model))
        run.run_job(spark, config, bundle, timer, cluster_model=args.cluster_model, resume=args.resume, hooks=hooks)

    return startup.run_main("run", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
