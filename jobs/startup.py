"""A job's start: logging, the config, the models, the session and executors, the early checks,
and its end: a package error as one line and exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.devices import check_cluster_gpus
from group_appeal_spark.jobs.memory import check_memory
from group_appeal_spark.jobs.profiles import check_profile, model_profile
from group_appeal_spark.jobs.executors import executors_are_local, prepare_executors
from group_appeal_spark.jobs.flags import config_from_args
from group_appeal_spark.jobs.session import build_session, is_connect
from group_appeal_spark.jobs.storage.files import first_line
from group_appeal_spark.jobs.storage.readers import check_input_given
from group_appeal_spark.jobs.storage.run_state import check_output_free
from group_appeal_spark.jobs.storage.tables import check_output_writable
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.lib.clustering.dictionary import CategoryMatcher, read_dictionary
from group_appeal_spark.lib.errors import ConfigError, GroupAppealSparkError, InputError

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
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback of every thread Spark was in
        hint = "; finished chunks are kept: run the same command with --resume to go on" if hasattr(args, "resume") \
            else ""
        print(f"{job_name}: interrupted{hint}", file=sys.stderr)
        return 130
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


def _comparable(path: str) -> str:
    """A path as it can be compared with another: a local one resolved, a URI without trailing slashes."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) and not path.startswith("file:"):
        return path.rstrip("/")
    local = "/" + path[len("file:"):].lstrip("/") if path.startswith("file:") else path
    return os.path.realpath(os.path.expanduser(local))


def check_apart(config) -> None:
    """The output folder is not, and does not lie inside, the input (nor the input inside it).

    Otherwise a second run would read its own outputs (summary.json, report.html) as documents,
    and ``--overwrite`` would replace what it reads.
    """
    given, out = config.input.path, config.output.path
    if not given or not out:
        return
    source, target = _comparable(given), _comparable(out)
    if target == source or target.startswith(source.rstrip("/") + "/"):
        raise InputError(f"output: --output {out} is, or lies inside, the input {given}: a run would read its own "
                         f"outputs as documents; choose a folder outside the input")
    if source.startswith(target.rstrip("/") + "/"):
        raise InputError(f"output: the input {given} lies inside --output {out}, which a run replaces; keep the "
                         f"documents outside the output folder")


def check_early(config) -> None:
    """What the driver can check of the settings before a session exists: the dictionary reads."""
    if config.clustering.dictionary:
        CategoryMatcher(read_dictionary(config.clustering.dictionary))


def check_device(spark, config) -> None:
    """``inference.device: cuda`` needs a GPU torch can see: on this machine for local executors,
    else on the executors, asked by one probe task per slot (``jobs/devices.py``)."""
    device = str(config.inference.device)
    if device.split(":", 1)[0].lower() != "cuda":
        return
    if executors_are_local(spark):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"inference.device: {device!r}, but torch sees no CUDA GPU on this machine (a CPU build "
                              f"of torch, or no driver); use --device cpu or auto")
    elif not is_connect(spark):  # a Connect client cannot run a probe it could trust the GPUs of
        check_cluster_gpus(spark, device, profile=model_profile(config.inference))


def check_schema_ddl(spark, config):
    """``input.schema`` as a StructType (Spark's own DDL parser, classic or Connect), or None."""
    if config.input.schema is None:
        return None
    try:
        return spark.createDataFrame([], config.input.schema).schema
    except Exception as exc:
        raise ConfigError(f"input.schema: {config.input.schema!r} is not a DDL schema ({first_line(exc)}); e.g. "
                          f"'id STRING, text STRING, party STRING'") from None


def start(args, app_name: str, tables=()):
    """Everything before the first write of a job that runs the models: config, models, session,
    input and output checks (fail early); returns ``(config, spark, bundle, timer)``.

    ``tables``: every table the job may write, checked against the catalog when they are to be
    published (``--output-table-prefix``).
    """
    config = config_from_args(args)
    check_input_given(config.input)
    check_apart(config)
    check_early(config)
    StageTimer.set_progress_seconds(config.output.progress_seconds)
    timer = StageTimer()
    bundle = resolve_models(config, timer)
    spark = session(config, app_name, args.master)
    check_device(spark, config)
    check_profile(spark, config.inference)  # the model stages' own resources can be scheduled
    check_memory(spark, config, bundle)  # a model-running Python worker fits (jobs/memory.py)
    check_schema_ddl(spark, config)
    catalog.check_input_table(spark, config.input)
    catalog.check_targets(spark, config, tables, replace=catalog.replacing(config, args.resume))
    if args.resume:
        check_output_writable(spark, config.output.path, config.output.format)
    else:
        check_output_free(spark, config.output.path, config.output.mode, config.output.format)
    return config, spark, bundle, timer
