"""Stage-level scheduling: the model stages' own resources (``inference.task_gpus``, ``task_cpus``).

With either key set, the two model stages (detection + stance, embedding) run under a
``ResourceProfile`` of their own (``mapInArrow(..., profile=...)``): each of their tasks asks
``task_gpus`` GPUs and ``task_cpus`` CPUs, while reading, segment checks, shuffles and writes run
under the session's default profile (``spark.task.cpus``, ``spark.task.resource.gpu.amount``).
So a GPU executor runs as many model tasks at once as it has GPUs, and every core for the rest.

The profile has task requests only (a Spark ``TaskResourceProfile``): its tasks run on the
executors the application already has. Spark schedules it on YARN, Kubernetes and standalone
(dynamic allocation off: 3.4+ standalone, 3.5+ YARN/Kubernetes; on: new executors of the default
shape are asked for it), never in ``local[N]``. :func:`check_profile` says so on the driver, with
one line, before any model work (docs/gpu.md, Stage-level scheduling).
"""

from __future__ import annotations

import logging

from group_appeal_spark.jobs.devices import spark_conf
from group_appeal_spark.lib.config import InferenceConfig
from group_appeal_spark.lib.errors import ConfigError

log = logging.getLogger("group_appeal_spark")

_KEYS = "inference.task_gpus / inference.task_cpus"
# (application, task_gpus, task_cpus) already checked: the check and its log lines run once
_CHECKED: set = set()


def wants_profile(inference: InferenceConfig) -> bool:
    """Whether the model stages get their own resource profile."""
    return inference.task_gpus is not None or inference.task_cpus is not None


def model_profile(inference: InferenceConfig):
    """The model stages' ``ResourceProfile`` (task requests only), or None where neither key is set.

    Built on the driver (classic or Connect: pyspark builds a Connect profile on the server)."""
    if not wants_profile(inference):
        return None
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests()
    if inference.task_cpus is not None:
        requests.cpus(int(inference.task_cpus))
    if inference.task_gpus is not None:
        requests.resource("gpu", float(inference.task_gpus))
    return ResourceProfileBuilder().require(requests).build


def check_profile(spark, inference: InferenceConfig) -> None:
    """Stop on the driver, with one line, where the model stages' profile cannot be scheduled.

    Checked from the session's settings (classic or Connect): a ``local`` master; GPUs asked of
    executors that announce none (``spark.executor.resource.gpu.amount``) or fewer than a task
    asks; more CPUs per task than an executor has (``spark.executor.cores``): Spark would
    otherwise wait for ever for an executor that can run the task.
    """
    if not wants_profile(inference):
        return
    app = spark_conf(spark, "spark.app.id")
    key = (app, inference.task_gpus, inference.task_cpus)
    if app is not None and key in _CHECKED:  # start-up checked it; the transforms ask again per chunk
        return
    master = spark_conf(spark, "spark.master") or ""
    if master.startswith("local") and not master.startswith("local-cluster"):
        raise ConfigError(f"{_KEYS}: stage-level scheduling needs a cluster manager (YARN, Kubernetes or "
                          f"standalone), and master {master!r} runs every task in one process; unset them, or "
                          f"use spark.task.cpus for a local session (docs/gpu.md)")
    gpus, cpus = inference.task_gpus, inference.task_cpus
    if gpus is not None:
        announced = spark_conf(spark, "spark.executor.resource.gpu.amount")
        if announced is None or float(announced) <= 0:
            raise ConfigError(f"inference.task_gpus: {gpus} GPU(s) per model task, but the executors announce none "
                              f"(spark.executor.resource.gpu.amount is not set; also set "
                              f"spark.executor.resource.gpu.discoveryScript, docs/gpu.md)")
        if float(gpus) > float(announced):
            raise ConfigError(f"inference.task_gpus: {gpus} GPU(s) per model task, but each executor has "
                              f"{announced} (spark.executor.resource.gpu.amount)")
    cores = spark_conf(spark, "spark.executor.cores")
    if cpus is not None and cores is not None and int(cpus) > int(cores):
        raise ConfigError(f"inference.task_cpus: {cpus} CPUs per model task, but each executor has {cores} "
                          f"(spark.executor.cores); no executor could run a model task")
    if spark_conf(spark, "spark.task.resource.gpu.amount") is not None:
        log.warning("spark.task.resource.gpu.amount is set, so every task of the default profile (reading, "
                    "shuffles, writes) holds a GPU too; with inference.task_gpus only the model stages need it: "
                    "leave it unset (docs/gpu.md)")
    if app is not None:
        _CHECKED.add(key)
    log.info("model stages run with their own resource profile: %s GPU(s), %s CPU(s) per task",
             gpus if gpus is not None else 0, cpus if cpus is not None else spark_conf(spark, "spark.task.cpus") or 1)
