"""stream: only what is new in a growing archive, exactly once, into the same tables and clusters.

    group-appeal-spark stream --input speeches/ --input-format json --carry-cols party,date \\
        --cluster-model out/cluster_model --output out/ [--trigger available-now | --trigger every=5m]

A Structured Streaming query over the input folder's new files (``--input-format cloudfiles``:
Databricks Auto Loader, with ``cloudFiles.*`` reader options in ``input.options``) or a table's new
rows (``--input-table``). Each micro-batch is read, validated, segmented, detected and classified
as ``run`` does, and appended to ``documents/``, ``segments/``, ``mentions/`` and ``errors/``; new
mention keys are embedded once into ``mention_embeddings/`` and put into the saved cluster
model's clusters (``clusters/``; never refitted). ``aggregates/``, ``cluster_summary/``,
``report.html`` and ``summary.json`` are brought up to date at the end of an ``available-now``
run (the default: everything new, then stop) and every ``--refresh-every`` batches. The
checkpoint is ``<output>/_checkpoint`` (``--checkpoint``); a batch replayed after a crash writes
nothing twice. The output of ``run`` can be continued (it holds the cluster model). See
docs/streaming.md.
"""

import contextlib
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import flags, startup
from group_appeal_spark.jobs.pipeline.stream import StreamRequest, check_request, stream_job
from group_appeal_spark.udfs.hooks import UdfHooks

_INPUT = ("--input", "--input-table", "--output", "--input-format", "--text-col", "--id-col", "--carry-cols",
          "--segmentation")
_COMMON = ("--config", "--set", "--output-format", "--log-level")
FLAGS = (
    flags.Flag("--cluster-model", "cluster_model/ folder of a `run` or `cluster` (default: <output>/cluster_model): "
               "new mentions go into its clusters, never refitted", options={"metavar": "FOLDER"}),
    flags.Flag("--trigger", "available-now (default: everything new, then stop; the nightly job) | every=N<s|m|h> "
               "(a batch every N seconds, minutes or hours until stopped)", options={"default": "available-now"}),
    flags.Flag("--max-files-per-batch", "at most N new files per micro-batch (default: all)", options={"type": int}),
    flags.Flag("--checkpoint", "the query's checkpoint folder (default <output>/_checkpoint)"),
    flags.Flag("--refresh-every", "refresh aggregates/, cluster_summary/, report.html every N batches (default 10; "
               "0 = only at the end of an available-now run)", options={"type": int, "default": 10}),
)


def build_parser():
    picked = [f for _, table in (flags.INPUT_FLAGS, flags.COMMON_FLAGS) for f in table
              if f.name in (*_INPUT, *_COMMON)]
    parser = flags.job_parser("stream", __doc__, flags.MODEL_FLAGS, extra=(*picked, *FLAGS))
    target = parser.add_mutually_exclusive_group()
    for flag in flags.TARGET_FLAGS:
        flag.add_to(target)
    return parser


def main(argv=None, *, hooks: UdfHooks | None = None) -> int:
    """Run the job with command-line flags ``argv``; ``hooks`` are handed to the UDFs."""
    def body(args):
        req = StreamRequest(args.cluster_model, args.trigger, args.max_files_per_batch, args.checkpoint,
                            args.refresh_every)
        check_request(req)  # before the session starts
        args.resume = True  # a stream goes on writing its output: checked as writable, never refused as used
        config, spark, bundle, _ = startup.start(args, "group-appeal-spark stream")
        stream_job(spark, config, bundle, req, hooks=hooks)

    return startup.run_main("stream", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
