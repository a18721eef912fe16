"""A job's start: logging, the config, the models, the session and executors, the early checks,
and its end: a package error as one line and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.executors import prepare_executors
from group_appeal_spark.jobs.flags import config_from_args
from group_appeal_spark.jobs.session import build_session
from group_appeal_spark.jobs.storage.readers import check_input_given
from group_appeal_spark.jobs.storage.tables import check_output_free, check_output_writable
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.lib.errors import GroupAppealSparkError

log = logging.getLogger("group_appeal_spark")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%y/%m/%d %H:%M:%S")
    for noisy in ("py4j", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(job_name: str, parser: argparse.ArgumentParser, body, argv=None) -> int:
    """Parse flags, run ``body(args)``; a package error becomes one line and exit code 2."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level if hasattr(args, "log_level") else "INFO")
    try:
        body(args)
    except GroupAppealSparkError as exc:
        print(f"{job_name}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def session(config, app_name: str, master: str | None = None):
    """The job's session (``session.build_session``), its executors ready (``executors.prepare_executors``)."""
    StageTimer.set_progress_seconds(config.output.progress_seconds)  # every job logs progress as configured
    spark = build_session(config, app_name, master)
    prepare_executors(spark)
    return spark


def resolve_models(config, timer: StageTimer):
    """Find every model before Spark starts, so a missing one fails the job in seconds."""
    from group_appeal_spark.lib.models.bundle import ModelBundle

    with timer.stage("resolve-models"):
        return ModelBundle.resolve(config)


def start(args, app_name: str, tables=()):
    """Everything before the first write of a job that runs the models: config, models, session,
    input and output checks (fail early); returns ``(config, spark, bundle, timer)``.

    ``tables``: every table the job may write, checked against the catalog when they are to be
    published (``--output-table-prefix``).
    """
    config = config_from_args(args)
    check_input_given(config.input)
    StageTimer.set_progress_seconds(config.output.progress_seconds)
    timer = StageTimer()
    bundle = resolve_models(config, timer)
    spark = session(config, app_name, args.master)
    catalog.check_input_table(spark, config.input)
    catalog.check_targets(spark, config, tables, replace=catalog.replacing(config, args.resume))
    if args.resume:
        check_output_writable(spark, config.output.path)
    else:
        check_output_free(spark, config.output.path, config.output.mode)
    return config, spark, bundle, timer
