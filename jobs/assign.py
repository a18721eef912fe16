"""assign: distinct mentions' embeddings -> the clusters of a saved cluster model (no refit, no models needed).

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/assign.py \\
        --input out-2024/ --cluster-model out-2023/cluster_model --output out-2024-assigned/

Reads ``<input>/mention_embeddings`` and ``<input>/summary.json`` (written by ``detect`` or
``run``) and the ``cluster_model/`` folder written by ``run`` or ``cluster``; refuses a model made
with another embedder than the input, then writes ``<output>/clusters`` (each mention's cluster
among the model's, by the nearest saved centroid; a mention key the model was fitted on keeps
its cluster id) and ``<output>/summary.json``; ``--output-table-prefix P`` also publishes
``clusters`` as the catalog table ``P`` + ``clusters``.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline import assign

CLUSTER_MODEL = flags.Flag("--cluster-model", "cluster_model/ folder written by `run` or `cluster`, or an MLflow "
                           "model URI of one (models:/NAME/VERSION, runs:/RUN_ID/cluster_model_pyfunc)")


def build_parser():
    return flags.job_parser("assign", __doc__, flags.RUN_OUTPUT_FLAGS, flags.COMMON_FLAGS, extra=(CLUSTER_MODEL,))


def main(argv=None) -> int:
    def body(args):
        config = flags.config_from_run_output(args)
        assign.check_given(args.cluster_model)  # before the session starts
        spark = startup.session(config, "group-appeal-spark assign", args.master)
        assign.assign_job(spark, config, args.cluster_model)

    return startup.run_main("assign", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
