"""cluster: distinct mentions' embeddings -> k search, clusters and plots (no models needed).

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/cluster.py \\
        --input out/ --output out-k5/ --k-min 2 --k-max 40 [--metric nmi --dictionary dict.csv]

Reads ``<input>/mention_embeddings`` and ``<input>/mentions`` (written by ``detect`` or ``run``)
and writes ``<output>/k_search``, ``<output>/clusters``, ``<output>/cluster_summary``,
``<output>/aggregates``, ``<output>/cluster_model``, ``<output>/plots`` and ``<output>/summary.json``;
``--output-table-prefix P`` also publishes each table written as the catalog table ``P<name>``.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline import cluster


def build_parser():
    return flags.job_parser("cluster", __doc__, flags.RUN_OUTPUT_FLAGS, flags.CLUSTER_FLAGS, flags.COMMON_FLAGS)


def main(argv=None) -> int:
    def body(args):
        config = flags.config_from_run_output(args)
        startup.check_early(config)  # the dictionary, before the session starts
        cluster.cluster_job(startup.session(config, "group-appeal-spark cluster", args.master), config)

    return startup.run_main("cluster", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
