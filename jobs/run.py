"""run: documents -> mentions with stance -> distinct mentions -> embeddings -> k search and clusters.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/run.py \\
        --input docs.parquet --output out/ [--carry-cols party,date,speaker --k-max 40]

    group-appeal-spark run --input examples/sample_corpus.jsonl --input-format json --output out/

Writes mentions/, errors/, mention_embeddings/, k_search/, clusters/, cluster_summary/, plots/ and summary.json
under --output (columns: README.md, section 'Outputs').
"""

import argparse
import sys

if __package__ in (None, ""):
    try:
        import _bootstrap  # noqa: F401 - a job file of a checkout: use the checkout's package
    except ModuleNotFoundError:
        pass  # the job file alone (cluster deploy mode): the package is the wheel on --py-files

from group_appeal_spark.jobs import common, storage
from group_appeal_spark.jobs.cluster import run_cluster
from group_appeal_spark.jobs.detect import run_detect
from group_appeal_spark.udfs.hooks import UdfHooks

log = common.log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="group-appeal-spark run", description=__doc__.split("\n\n")[0],
        epilog="Output tables and columns: see README.md, section 'Outputs'. Every config key: conf/defaults.yaml.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_input_args(parser)
    common.add_model_args(parser)
    common.add_cluster_args(parser)
    common.add_common_args(parser)
    return parser


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    parser = build_parser()

    def body(args):
        config, spark, bundle, timer = common.start(args, "group-appeal-spark run")
        counts = run_detect(spark, config, bundle, timer, resume=args.resume, hooks=hooks)
        counts.update(run_cluster(spark, config, config.output.path, timer,
                                  mode="overwrite" if args.resume else None))
        summary = {**counts, "stage_seconds": timer.seconds, "config": config.to_dict(),
                   **common.run_metadata(spark, config, bundle)}
        storage.put_text(spark, common.summary_json(summary), storage.join_path(config.output.path, "summary.json"))
        log.info("run: done: %s", {k: v for k, v in counts.items() if k != "plots"})

    return common.run_main("run", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
