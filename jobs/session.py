"""The job's SparkSession: an existing one, Spark Connect, spark-submit's, or one of its own.

Also what the other modules ask of a session: whether it is a Connect session, and whether a
Connect server runs on this machine.
"""

from __future__ import annotations

import logging
import os
import sys

from group_appeal_spark.lib.errors import GroupAppealSparkError

log = logging.getLogger("group_appeal_spark")

# Host names of a Connect server on this machine (``sc://localhost:15002``...).
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM on this side)."""
    # By class, not pyspark.sql.utils.is_remote(): that reads a process-wide flag, and importing
    # pyspark.sql.connect to test isinstance needs the client's gRPC packages.
    return type(spark).__module__.startswith("pyspark.sql.connect")


def connect_server_is_local(spark) -> bool:
    """Whether a Connect session's server runs on this machine with a ``local[...]`` master.

    Then the server's executors see this machine's files under the same paths. A server reached
    through a tunnel on localhost looks local too; give ``models.ship: files`` there.
    """
    try:
        if spark.client.host not in _LOOPBACK:
            return False
        return str(spark.conf.get("spark.master", "") or "").startswith("local")
    except Exception:  # a server that hides spark.master (serverless): not ours, so not local
        return False



def spark_defaults() -> dict:
    """The Spark settings of conf/spark.yaml."""
    from importlib import resources

    import yaml

    text = resources.files("group_appeal_spark.conf").joinpath("spark.yaml").read_text(encoding="utf-8")
    return {str(k): str(v) for k, v in (yaml.safe_load(text) or {}).items()}


def build_session(config, app_name: str, master: str | None = None):
    """The job's SparkSession; whatever launched the job decides the master and its settings.

    The jobs take it through ``startup.session``, which then gets the executors ready.

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

    requested = {**spark_defaults(), **{k: str(v) for k, v in config.spark.items()}}
    active = SparkSession.getActiveSession()
    if active is not None:
        _set_runtime_confs(active, {k: str(v) for k, v in config.spark.items()})
        if master:
            log.warning("%s %s ignored: the job runs in the existing Spark session",
                        "--remote" if master.startswith("sc://") else "--master", master)
        return active
    remote = master if master and master.startswith("sc://") else None
    if remote is None and os.environ.get("SPARK_REMOTE"):
        # pyspark's builder itself turns to Connect whenever SPARK_REMOTE is set
        if master:
            log.warning("--master %s ignored: SPARK_REMOTE=%s", master, os.environ["SPARK_REMOTE"])
        remote = os.environ["SPARK_REMOTE"]
    if remote is not None:
        return connect_session(remote, requested)
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

