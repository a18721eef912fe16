"""detect: documents -> mentions with stance, errors, and the distinct mentions' embeddings.

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/detect.py \\
        --input docs.parquet --output out/ [--text-col text --id-col id --carry-cols party,date]

Writes ``<output>/documents``, ``<output>/mentions``, ``<output>/errors``,
``<output>/mention_embeddings``, ``<output>/summary.json`` and, last, ``<output>/_SUCCESS.json``.
``--input-table NAME`` reads the documents from a catalog table instead of ``--input``;
``--output-table-prefix P`` also publishes the four tables as catalog tables ``P<name>``.
``cluster`` then works from ``mention_embeddings`` without the models.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline import detect
from group_appeal_spark.udfs.hooks import UdfHooks


def build_parser():
    return flags.job_parser("detect", __doc__, flags.INPUT_FLAGS, flags.MODEL_FLAGS, flags.COMMON_FLAGS)


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    def body(args):
        config, spark, bundle, timer = startup.start(args, "group-appeal-spark detect", detect.TABLES)
        detect.detect_job(spark, config, bundle, timer, resume=args.resume, hooks=hooks)

    return startup.run_main("detect", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
