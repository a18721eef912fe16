"""What every Spark job shares: flags, configuration, models, the session, logging, errors, timing."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time

from group_appeal_spark.jobs import storage
from group_appeal_spark.lib.config import load_config, parse_override
from group_appeal_spark.lib.errors import GroupAppealSparkError

log = logging.getLogger("group_appeal_spark")

SMOKE_WARNING = ("OFFLINE SMOKE TEST: --tiny-models runs the pipeline on tiny RANDOM-weight models built on "
                 "the fly; every output of this run is meaningless")


def add_input_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input and output")
    g.add_argument("--input", help="documents: a file or folder (input.path)")
    g.add_argument("--output", help="output folder (output.path)")
    g.add_argument("--input-format", help="parquet | csv | json (JSON lines) | text (one document a line) | delta ...")
    g.add_argument("--text-col", help="column with the document text (default text)")
    g.add_argument("--id-col", help="document id column (default id; stable ids are generated when absent)")
    g.add_argument("--carry-cols", help="comma-separated input columns copied to every output row, e.g. party,date")
    g.add_argument("--segmentation", help="sentence (default) | none: what one model input is")
    g.add_argument("--chunks", type=int, help="process the documents in N chunks, each checkpointed (input.chunks)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same --output: finished chunks are skipped")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models and inference")
    g.add_argument("--models-dir", help="folder written by `fetch-models`: read every model from it, never the hub")
    g.add_argument("--offline", action="store_true", default=None,
                   help="never contact the hub; use the hub cache or local folders only")
    g.add_argument("--embedder-dir", help="a custom embedder folder (e.g. from `train-embedder`); "
                   "sets models.embedder.local_dir and models.embedder_config.local_dir")
    g.add_argument("--device", help="cpu | cuda | cuda:N | mps | auto (inference.device)")
    g.add_argument("--precision", help="fp32 (identical to the reference) | bf16 | fp16 (inference.precision)")
    g.add_argument("--tiny-models", action="store_true",
                   help="OFFLINE SMOKE TEST ONLY: build tiny random-weight models of the real architectures "
                        "and use them; exercises the whole pipeline, outputs are meaningless")


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("clustering")
    g.add_argument("--k-min", type=int, help="smallest k of the search (clustering.k_min)")
    g.add_argument("--k-max", type=int, help="largest k of the search, inclusive (clustering.k_max)")
    g.add_argument("--n-clusters", type=int, help="a fixed k; skips the search (clustering.n_clusters)")
    g.add_argument("--metric", help="silhouette | nmi (clustering.metric)")
    g.add_argument("--dictionary", help="category dictionary CSV for the nmi metric (clustering.dictionary)")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file overriding conf/defaults.yaml (any subset of its keys)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set inference.stance_batch_size=64 (repeatable)")
    parser.add_argument("--output-format", help="parquet (default) | delta | orc | json | csv ... (output.format)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace an existing output (output.mode=overwrite); default is to refuse")
    parser.add_argument("--master", help="Spark master when not launched by spark-submit or inside an existing "
                        "session (default local[*]); spark-submit's --master wins")
    parser.add_argument("--log-level", default="INFO", help="DEBUG | INFO | WARNING (default INFO)")


# flag name -> dotted config key
FLAG_KEYS = {
    "input": "input.path", "output": "output.path", "input_format": "input.format",
    "text_col": "input.text_col", "id_col": "input.id_col", "carry_cols": "input.carry_cols",
    "segmentation": "segmentation.mode", "chunks": "input.chunks", "models_dir": "models.models_dir", "offline": "models.offline",
    "device": "inference.device", "precision": "inference.precision", "output_format": "output.format",
    "k_min": "clustering.k_min", "k_max": "clustering.k_max", "n_clusters": "clustering.n_clusters",
    "metric": "clustering.metric", "dictionary": "clustering.dictionary",
}


def config_from_args(args: argparse.Namespace):
    """The validated configuration: defaults, then --config, then --set, then the flags."""
    overrides = dict(parse_override(s) for s in args.set)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "overwrite", None):
        overrides["output.mode"] = "overwrite"
    if getattr(args, "embedder_dir", None):
        overrides["models.embedder.local_dir"] = args.embedder_dir
        overrides["models.embedder_config.local_dir"] = args.embedder_dir
    if getattr(args, "tiny_models", False):
        overrides.update(tiny_model_overrides())
    return load_config(args.config, overrides)


def tiny_model_overrides() -> dict:
    """Local folders of freshly built tiny random models (the offline smoke option)."""
    from group_appeal_spark.lib.models.hub import MODEL_ROLES
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    log.warning(SMOKE_WARNING)
    repos = build_tiny_repos(tempfile.mkdtemp(prefix="gas-tiny-models-"), seed=0)
    return {f"models.{role}.local_dir": str(repos[repo]) for role, repo in MODEL_ROLES.items()}


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%y/%m/%d %H:%M:%S")
    for noisy in ("py4j", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def spark_defaults() -> dict:
    """The Spark settings of conf/spark.yaml."""
    from importlib import resources

    import yaml

    text = resources.files("group_appeal_spark.conf").joinpath("spark.yaml").read_text(encoding="utf-8")
    return {str(k): str(v) for k, v in (yaml.safe_load(text) or {}).items()}


def build_session(config, app_name: str, master: str | None = None):
    """The job's SparkSession; whatever launched the job decides the master and its settings.

    - Inside an existing session (a notebook, Databricks, a caller's session): that session,
      as it is; only the job config's own ``spark`` keys are set on it, where Spark allows
      them at run time.
    - Launched by ``spark-submit``: its ``--master``, ``--conf`` and spark-defaults.conf win;
      conf/spark.yaml and the config's ``spark`` keys fill in only what it did not set, and a
      ``--master`` flag of the job is ignored with a warning.
    - Started from plain Python (the console script): ``--master`` (default ``local[*]``),
      conf/spark.yaml, then the config's ``spark`` keys.
    """
    from pyspark.sql import SparkSession

    requested = {**spark_defaults(), **{k: str(v) for k, v in config.spark.items()}}
    active = SparkSession.getActiveSession()
    if active is not None:
        _set_runtime_confs(active, {k: str(v) for k, v in config.spark.items()})
        if master:
            log.warning("--master %s ignored: the job runs in the existing Spark session", master)
        return active
    submitted = submitted_conf()
    builder = SparkSession.builder.appName(app_name)
    if submitted is not None:
        if master and master != submitted.get("spark.master", None):
            log.warning("--master %s ignored: spark-submit gave --master %s", master,
                        submitted.get("spark.master", "(its default)"))
        settings = {k: v for k, v in requested.items() if not submitted.contains(k)}
    else:
        master = master or "local[*]"
        builder = builder.master(master)
        settings = requested
    if (submitted.get("spark.master", "") if submitted is not None else master).startswith("local"):
        # Local workers start `python3` from PATH unless told otherwise: make them use this
        # interpreter (the virtualenv the job runs in), with the same packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def submitted_conf():
    """The settings spark-submit launched this process with, or None when it did not launch it.

    spark-submit starts the JVM first and hands its gateway to Python in PYSPARK_GATEWAY_PORT,
    with --master and --conf as the JVM's system properties. A plain ``SparkConf()`` made before
    the gateway is up cannot see them (it reads nothing), so connect first, then read.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return SparkConf()


def _set_runtime_confs(spark, settings: dict) -> None:
    for key, value in settings.items():
        if spark.conf.get(key, None) == value:
            continue
        try:
            modifiable = spark.conf.isModifiable(key)
        except Exception:  # Connect servers may refuse the question; then try and see
            modifiable = True
        if not modifiable:
            log.warning("spark setting %s=%s not applied: the existing session was started without it and "
                        "Spark cannot change it at run time", key, value)
            continue
        spark.conf.set(key, value)


class StageTimer:
    """Per-stage wall-clock seconds, logged like Spark applications log their stages."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        log.info("stage %s: started", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)

    def done(self, name: str, rows: int, what: str) -> None:
        seconds = self.seconds.get(name, 0.0)
        rate = rows / seconds if seconds > 0 else float("inf")
        log.info("stage %s: %s %s in %.1f s (%.1f/s)", name, f"{rows:,}", what, seconds, rate)


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


def summary_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def resolve_models(config, timer: StageTimer):
    """Find every model before Spark starts, so a missing one fails the job in seconds."""
    from group_appeal_spark.lib.models.bundle import ModelBundle

    with timer.stage("resolve-models"):
        return ModelBundle.resolve(config)


def start(args, app_name: str):
    """Everything before the first write: config, models, session, output checks (fail early)."""
    config = config_from_args(args)
    timer = StageTimer()
    bundle = resolve_models(config, timer)
    spark = build_session(config, app_name, args.master)
    if args.resume:
        storage.check_output_writable(spark, config.output.path)
    else:
        storage.check_output_free(spark, config.output.path, config.output.mode)
    return config, spark, bundle, timer
