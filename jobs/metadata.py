"""What summary.json records: the run's counts and settings, models, software, Spark, precision.

:func:`write_summary` writes it, the same way for every job.
"""

from __future__ import annotations

import json
import os

from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.testing.smoke import uses_tiny_models


def summary_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


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
    ``smoke_test`` (with a ``bundle``): whether the models were ``--tiny-models``' random ones.
    """
    meta = {}
    if bundle is not None:
        meta["models"] = bundle.provenance(config.model_sources())
        # --tiny-models: random weights, meaningless numbers; said where the results are read
        meta["smoke_test"] = uses_tiny_models(bundle.folders)
    meta["versions"] = software_versions()
    meta["spark"] = spark_facts(spark)
    meta["precision"] = precision_facts(config)
    if bundle is not None:  # the devices the model tasks ran on (jobs/devices.py)
        from group_appeal_spark.jobs.devices import devices_used

        meta["devices"] = devices_used(spark)
    return meta



def write_summary(spark, config, counts: dict, timer, *, published: dict, bundle=None,
                  name: str = "summary.json", job: str = "detect", track: bool = True, **extra) -> dict:
    """Write ``<output>/<name>``: ``counts``, ``extra``, the catalog tables published, stage seconds,
    the effective config and :func:`run_metadata`; returns what was written. With
    ``tracking.mlflow``, also logs the ``job`` to MLflow (``jobs/tracking.py``; never fails the job),
    unless ``track`` is false (a stream's summary after each micro-batch: it is logged at its refreshes)."""
    from group_appeal_spark.jobs.tracking import track_job

    summary = {**counts, **extra, "catalog_tables": published, "stage_seconds": timer.seconds,
               "config": config.to_dict(), **run_metadata(spark, config, bundle)}
    filesystem(spark).write_text(summary_json(summary), join_path(config.output.path, name))
    if track:
        track_job(spark, config, summary, job=job, summary_name=name)
    return summary
