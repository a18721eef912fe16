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

from group_appeal_spark.jobs import catalog, storage
from group_appeal_spark.lib.config import load_config, parse_override
from group_appeal_spark.lib.errors import GroupAppealSparkError

log = logging.getLogger("group_appeal_spark")

SMOKE_WARNING = ("OFFLINE SMOKE TEST: --tiny-models runs the pipeline on tiny RANDOM-weight models built on "
                 "the fly; every output of this run is meaningless")


def add_input_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input and output")
    g.add_argument("--input", help="documents: a file or folder (input.path); or give --input-table")
    g.add_argument("--input-table", metavar="NAME",
                   help="documents: a catalog table or view, [catalog.][schema.]table, read with spark.table "
                   "instead of --input (input.table)")
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
    g.add_argument("--precision", help="fp32 (identical to the reference) | auto (bf16 where the hardware has it, "
                   "else fp32) | bf16 | fp16 | int8 (CPU: dynamic int8 quantisation) (inference.precision)")
    g.add_argument("--tiny-models", action="store_true",
                   help="OFFLINE SMOKE TEST ONLY: build tiny random-weight models of the real architectures "
                        "and use them; exercises the whole pipeline, outputs are meaningless")


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("clustering")
    g.add_argument("--k-min", type=int, help="smallest k of the search (clustering.k_min)")
    g.add_argument("--k-max", type=int, help="largest k of the search, inclusive (clustering.k_max)")
    g.add_argument("--n-clusters", type=int, help="a fixed k; skips the search (clustering.n_clusters)")
    g.add_argument("--metric", help="silhouette | nmi (clustering.metric)")
    g.add_argument("--dictionary", help="category dictionary CSV: the nmi metric, and each mention's category "
                   "(clustering.dictionary)")
    g.add_argument("--group-by", help="comma-separated carried columns aggregates/ groups by, e.g. party,date; "
                   "default all carried columns (output.group_by)")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file overriding conf/defaults.yaml (any subset of its keys)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set inference.stance_batch_size=64 (repeatable)")
    parser.add_argument("--output-format", help="parquet (default) | delta | orc | json | csv ... (output.format)")
    parser.add_argument("--output-table-prefix", metavar="PREFIX",
                        help="also publish every table written as the catalog table PREFIX<name>, e.g. "
                        "main.appeals.hansard_ -> main.appeals.hansard_mentions, ... (saveAsTable in "
                        "--output-format; output.table_prefix); --output is still required")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace an existing output (output.mode=overwrite); default is to refuse")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--master", help="Spark master when not launched by spark-submit or inside an existing "
                        "session (default local[*]); spark-submit's --master wins")
    # Stored as the master: build_session takes an sc:// master as a Connect server, so every
    # job that hands args.master to it runs on Connect without code of its own.
    target.add_argument("--remote", dest="master", type=_connect_url, metavar="sc://HOST:PORT",
                        help="run on a Spark Connect server (Databricks serverless or shared clusters, "
                        "start-connect-server.sh) instead of a JVM of this process; default $SPARK_REMOTE")
    parser.add_argument("--log-level", default="INFO", help="DEBUG | INFO | WARNING (default INFO)")


OUTPUTS_EPILOG = "Output tables and columns: see README.md, section 'Outputs'. Every config key: conf/defaults.yaml."


def job_parser(job: str, doc: str, *add_args) -> argparse.ArgumentParser:
    """A job's flag parser: its name, the first paragraph of its docstring, then ``add_args(parser)`` each."""
    parser = argparse.ArgumentParser(prog=f"group-appeal-spark {job}", description=doc.split("\n\n")[0],
                                     epilog=OUTPUTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    for add in add_args:
        add(parser)
    return parser


def add_input_output_of_a_run(parser: argparse.ArgumentParser) -> None:
    """``--input`` (the output folder of detect or run) and ``--output``, for jobs that start from one."""
    parser.add_argument("--input", help="output folder of `detect` or `run` (holds mention_embeddings/)")
    parser.add_argument("--output", help="output folder (may be the same as --input with --overwrite)")


def config_from_run_output(args: argparse.Namespace):
    """The config of a job that starts from a ``detect``/``run`` output folder given as ``--input``."""
    if args.input:
        args.set.append(f"input.path={args.input}")
    config = config_from_args(args)
    if not config.input.path:
        from group_appeal_spark.lib.errors import InputError

        raise InputError("input: give --input, the output folder of `detect` or `run`")
    return config


# flag name -> dotted config key
FLAG_KEYS = {
    "input": "input.path", "input_table": "input.table", "output": "output.path", "input_format": "input.format",
    "text_col": "input.text_col", "id_col": "input.id_col", "carry_cols": "input.carry_cols",
    "segmentation": "segmentation.mode", "chunks": "input.chunks", "models_dir": "models.models_dir", "offline": "models.offline",
    "device": "inference.device", "precision": "inference.precision", "output_format": "output.format",
    "k_min": "clustering.k_min", "k_max": "clustering.k_max", "n_clusters": "clustering.n_clusters",
    "metric": "clustering.metric", "dictionary": "clustering.dictionary", "group_by": "output.group_by",
    "output_table_prefix": "output.table_prefix",
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
    """Local folders of tiny random models (the offline smoke option), built once per machine.

    The folder is reused by later runs, so ``--tiny-models --resume`` finds the same model
    folders (their ids include file times) and an interrupted smoke run can be resumed.
    """
    import os
    import shutil
    from pathlib import Path

    from group_appeal_spark import __version__
    from group_appeal_spark.lib.models.hub import MODEL_ROLES, repo_folder_name
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    log.warning(SMOKE_WARNING)
    import transformers

    # one folder per package and transformers version: each writes its own config.json defaults
    root = Path(tempfile.gettempdir()) / f"group-appeal-spark-tiny-models-{__version__}-tf{transformers.__version__}-seed0"
    if not (root / "_COMPLETE").is_file():
        staging = Path(tempfile.mkdtemp(prefix="gas-tiny-models-", dir=tempfile.gettempdir()))
        build_tiny_repos(staging, seed=0)
        (staging / "_COMPLETE").write_text("ok", encoding="utf-8")
        try:
            os.rename(staging, root)  # whole or not at all; another run may have been first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return {f"models.{role}.local_dir": str(root / repo_folder_name(repo)) for role, repo in MODEL_ROLES.items()}


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


def _connect_url(value: str) -> str:
    """An ``sc://`` URL (argparse type of ``--remote``)."""
    if not value.startswith("sc://"):
        raise argparse.ArgumentTypeError(f"expected a Spark Connect URL sc://HOST[:PORT][/;param=value...], got {value!r}")
    return value


def build_session(config, app_name: str, master: str | None = None):
    """The job's SparkSession; whatever launched the job decides the master and its settings.

    - Inside an existing session (a notebook, Databricks, a caller's session): that session,
      as it is; only the job config's own ``spark`` keys are set on it, where Spark allows
      them at run time.
    - Spark Connect, when ``master`` is an ``sc://`` URL (``--remote``) or else
      ``SPARK_REMOTE`` is set: a Connect session to that server. The server owns the master
      and the static settings; conf/spark.yaml and the config's ``spark`` keys are set where
      Spark allows them at run time (the others are logged as not applied).
    - Launched by ``spark-submit``: its ``--master``, ``--conf`` and spark-defaults.conf win;
      conf/spark.yaml and the config's ``spark`` keys fill in only what it did not set, and a
      ``--master`` flag of the job is ignored with a warning.
    - Started from plain Python (the console script): ``--master`` (default ``local[*]``),
      conf/spark.yaml, then the config's ``spark`` keys.
    """
    from pyspark.sql import SparkSession

    StageTimer.set_progress_seconds(config.output.progress_seconds)  # every job logs progress as configured
    requested = {**spark_defaults(), **{k: str(v) for k, v in config.spark.items()}}
    active = SparkSession.getActiveSession()
    if active is not None:
        _set_runtime_confs(active, {k: str(v) for k, v in config.spark.items()})
        if master:
            log.warning("%s %s ignored: the job runs in the existing Spark session",
                        "--remote" if master.startswith("sc://") else "--master", master)
        return _with_own_package(active)
    remote = master if master and master.startswith("sc://") else None
    if remote is None and os.environ.get("SPARK_REMOTE"):
        # pyspark's builder itself turns to Connect whenever SPARK_REMOTE is set
        if master:
            log.warning("--master %s ignored: SPARK_REMOTE=%s", master, os.environ["SPARK_REMOTE"])
        remote = os.environ["SPARK_REMOTE"]
    if remote is not None:
        return _with_own_package(connect_session(remote, requested))
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
    return _with_own_package(builder.getOrCreate())


def _with_own_package(spark):
    from group_appeal_spark.jobs.executors import prepare_executors

    prepare_executors(spark)  # a cluster's executors get this package, then a probe checks them
    return spark


def connect_session(url: str, settings: dict):
    """A Spark Connect session to ``url`` with ``settings`` applied where Spark allows at run time.

    Needs the client's packages (the ``connect`` extra: grpcio, grpcio-status,
    googleapis-common-protos, zstandard); their absence is one clear error.
    """
    from pyspark.sql import SparkSession

    try:
        import grpc  # noqa: F401
        import zstandard  # noqa: F401
        from google.rpc import status_pb2  # noqa: F401
        from grpc_status import rpc_status  # noqa: F401
    except ImportError as exc:
        raise GroupAppealSparkError(f"--remote {url}: the Spark Connect client needs {exc.name}; "
                                    f"pip install 'group-appeal-spark[connect]'") from exc
    # A classic session cannot be active here (build_session returned it), so the builder makes a
    # Connect session. The options are not given to the builder: it would drop any it cannot set
    # silently; _set_runtime_confs says which ones the server kept as they are.
    spark = SparkSession.builder.remote(url).getOrCreate()
    _set_runtime_confs(spark, settings, where="the Spark Connect server")
    return spark


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


def _set_runtime_confs(spark, settings: dict, where: str = "the existing session") -> None:
    """Set each Spark setting that differs, where Spark allows it at run time; warn about the others."""
    for key, value in settings.items():
        if spark.conf.get(key, None) == value:
            continue
        try:
            modifiable = spark.conf.isModifiable(key)
        except Exception:  # Connect servers may refuse the question; then try and see
            modifiable = True
        if not modifiable:
            log.warning("spark setting %s=%s not applied: %s was started without it and "
                        "Spark cannot change it at run time", key, value, where)
            continue
        spark.conf.set(key, value)


class StageTimer:
    """Per-stage wall-clock seconds, logged like Spark applications log their stages.

    While a stage runs, its Spark progress (tasks done of known, rate, ETA) is logged every
    ``progress_seconds`` (0: never). ``start`` sets the class default from
    ``output.progress_seconds`` (``set_progress_seconds``), so timers made after it follow the config.
    """

    default_progress_seconds: float = 30.0

    def __init__(self, progress_seconds: float | None = None):
        self.seconds: dict[str, float] = {}
        self.progress_seconds = self.default_progress_seconds if progress_seconds is None else progress_seconds

    @classmethod
    def set_progress_seconds(cls, seconds: float) -> None:
        cls.default_progress_seconds = float(seconds)

    @contextlib.contextmanager
    def stage(self, name: str):
        from group_appeal_spark.jobs.progress import watch_stage

        log.info("stage %s: started", name)
        start = time.perf_counter()
        with watch_stage(name, self.progress_seconds):  # its thread stops here, also on an exception
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


def start(args, app_name: str, tables=()):
    """Everything before the first write: config, models, session, input and output checks (fail early).

    ``tables``: every table the job may write, checked against the catalog when they are to be
    published (``--output-table-prefix``).
    """
    config = config_from_args(args)
    catalog.check_input_given(config.input)
    StageTimer.set_progress_seconds(config.output.progress_seconds)
    timer = StageTimer()
    bundle = resolve_models(config, timer)
    spark = build_session(config, app_name, args.master)
    catalog.check_input_table(spark, config.input)
    catalog.check_targets(spark, config, tables, replace=catalog.replacing(config, args.resume))
    if args.resume:
        storage.check_output_writable(spark, config.output.path)
    else:
        storage.check_output_free(spark, config.output.path, config.output.mode)
    return config, spark, bundle, timer


def _version(dist: str, module: str | None = None) -> str | None:
    """An installed distribution's version, else the module's ``__version__``, else None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    if module:
        try:
            return getattr(__import__(module), "__version__", None)
        except ImportError:
            return None
    return None


def software_versions() -> dict:
    """This package's, Python's, torch's, transformers' and pyspark's versions (driver side)."""
    import platform

    import group_appeal_spark

    return {"group_appeal_spark": group_appeal_spark.__version__,  # the code that ran, checkout or wheel
            "python": platform.python_version(), "torch": _version("torch", "torch"),
            "transformers": _version("transformers", "transformers"), "pyspark": _version("pyspark", "pyspark")}


def spark_facts(spark) -> dict:
    """The Spark version, master (or Connect remote), application name and id of ``spark``."""
    facts = {"version": spark.version}
    try:
        sc = spark.sparkContext
        facts.update(master=sc.master, app_name=sc.appName, app_id=sc.applicationId)
    except Exception:  # Spark Connect: no SparkContext on the client; ask the server's conf
        client = getattr(spark, "client", None)
        host, port = getattr(client, "host", None), getattr(client, "port", None)
        facts["remote"] = f"sc://{host}:{port}" if host else os.environ.get("SPARK_REMOTE")
        for name, key in (("master", "spark.master"), ("app_name", "spark.app.name"), ("app_id", "spark.app.id")):
            try:
                facts[name] = spark.conf.get(key, None)
            except Exception:
                facts[name] = None
    return facts


def precision_facts(config) -> dict:
    """The precision asked, the one the stages use when resolved on the driver, and the driver's CPU."""
    from group_appeal_spark.lib.errors import ConfigError
    from group_appeal_spark.lib.models.devices import cpu_capability, resolve_precision

    inf = config.inference
    out = {"asked": inf.precision, "device": inf.device}
    try:
        out["used"] = resolve_precision(inf.precision, inf.device, warn=False).value
    except ConfigError as exc:  # e.g. device cuda with a CPU-only driver: only executors know
        out["used"] = None
        out["used_unknown_because"] = str(exc)
    # `auto` is resolved again on each executor when it builds its stages (their hardware may
    # differ): `used` is exact in local mode and for every fixed precision.
    out["resolved_on"] = "driver"
    out["driver_cpu"] = cpu_capability()
    return out


def run_metadata(spark, config, bundle=None) -> dict:
    """What summary.json records for reproducing a run: models, software, Spark, precision.

    ``models`` (omitted without a ``bundle``, as in ``cluster``): per role, hub repo id and the
    commit sha its snapshot resolved to, or a local folder's content hash. ``precision.used`` and
    ``precision.driver_cpu`` describe the driver; executors resolve ``auto`` for their own hardware.
    """
    meta = {}
    if bundle is not None:
        meta["models"] = bundle.provenance(config.model_sources())
    meta["versions"] = software_versions()
    meta["spark"] = spark_facts(spark)
    meta["precision"] = precision_facts(config)
    return meta
