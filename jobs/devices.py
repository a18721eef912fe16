"""The devices of a job: the driver's check that ``cuda`` can run, and which devices the tasks used.

Each model task picks its device on the executor (``udfs/devices.py``: the GPU Spark gave it,
else what torch sees) and says so once in the executor's log. The set of devices is brought back
to the driver in an accumulator (``on_task`` of the UDFs' hooks) and written to summary.json
as ``devices`` (:func:`devices_used`). Spark Connect has no accumulators: there summary.json
says so, and the executors' logs hold the devices.
"""

from __future__ import annotations

import dataclasses
import logging

from group_appeal_spark.jobs.session import is_connect
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.udfs.hooks import UdfHooks
from pyspark.accumulators import AccumulatorParam

log = logging.getLogger("group_appeal_spark")


class DeviceSet(AccumulatorParam):
    """Accumulates ``frozenset`` s of ``"stage=device"`` (a retried task adds nothing new)."""

    def zero(self, value):
        return frozenset()

    def addInPlace(self, value1, value2):
        return frozenset(value1) | frozenset(value2)


# application id -> the accumulator the model UDFs of that application add to
_ACCUMULATORS: dict = {}


def _accumulator(spark):
    sc = spark.sparkContext
    if sc.applicationId not in _ACCUMULATORS:
        _ACCUMULATORS[sc.applicationId] = sc.accumulator(frozenset(), DeviceSet())
    return _ACCUMULATORS[sc.applicationId]


def record_devices(spark, hooks: UdfHooks | None) -> UdfHooks | None:
    """``hooks`` with an ``on_task`` that adds each task's ``stage=device`` to this application's
    accumulator (the caller's own ``on_task`` still runs); unchanged on Spark Connect."""
    if is_connect(spark):
        return hooks
    acc = _accumulator(spark)
    hooks = hooks or UdfHooks()
    inner = hooks.on_task

    def on_task(stage: str, device: str) -> None:
        acc.add(frozenset([f"{stage}={device}"]))
        if inner is not None:
            inner(stage, device)

    return dataclasses.replace(hooks, on_task=on_task)


def devices_used(spark) -> dict:
    """What summary.json records as ``devices``: per model stage, the sorted devices its tasks ran on."""
    if is_connect(spark):
        return {"recorded": False, "why": "Spark Connect has no accumulators; each task's device is in the "
                                          "executors' logs ('runs appeals on cuda:N')"}
    acc = _ACCUMULATORS.get(spark.sparkContext.applicationId)
    found: dict = {}
    for item in sorted(acc.value if acc is not None else ()):
        stage, _, device = item.partition("=")
        found.setdefault(stage, []).append(device)
    if found:
        log.info("the model tasks ran on: %s", "; ".join(f"{k} {', '.join(v)}" for k, v in found.items()))
    return {"recorded": True, "by_stage": found}


def spark_conf(spark, key: str) -> str | None:
    """A Spark setting of the session (classic or Connect), None where unset."""
    try:
        return spark.conf.get(key, None)
    except Exception:
        return None


def check_cluster_gpus(spark, device: str, profile=None) -> list[dict]:
    """``inference.device: cuda`` on a cluster: one task per slot asks torch on the executors how
    many GPUs it sees; none anywhere stops the job with one line (before any model work).

    The probe's tasks run under the model stages' ``profile`` where they have one
    (jobs/profiles.py), else the default profile: they get GPUs where the model tasks will
    (``inference.task_gpus``, ``spark.task.resource.gpu.amount``), so a GPU Spark assigns that
    torch cannot use (a discovery script that disagrees with the node) stops the job here too.
    """
    from group_appeal_spark.jobs.executors import _parallelism

    def probe(batches):
        import os
        import socket

        import pandas as pd

        from group_appeal_spark.lib.models.devices import cuda_index
        from group_appeal_spark.udfs.devices import task_gpus

        for _ in batches:
            import torch

            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            gpus = task_gpus()
            problem = ""
            for address in gpus:
                try:
                    cuda_index(address, count=count)
                except ConfigError as exc:
                    problem = str(exc)
            yield pd.DataFrame({"host": [socket.gethostname()], "count": [count], "torch": [torch.__version__],
                                "visible": [os.environ.get("CUDA_VISIBLE_DEVICES", "")],
                                "gpus": [",".join(gpus)], "problem": [problem]})

    tasks = _parallelism(spark)
    schema = "host string, count int, torch string, visible string, gpus string, problem string"
    rows = [r.asDict() for r in spark.range(0, tasks, 1, tasks).mapInPandas(probe, schema, profile=profile).collect()]
    for row in rows:
        if row["problem"]:
            raise ConfigError(f"{row['problem']} (host {row['host']})")
    if rows and not any(row["count"] for row in rows):
        row = rows[0]
        raise ConfigError(f"inference.device: {device!r}, but torch on the executors ({row['host']}, torch "
                          f"{row['torch']}) sees no CUDA GPU: executors without GPUs, a CPU build of torch, or "
                          f"no driver; use --device cpu or auto, or see docs/gpu.md")
    if profile is None and spark_conf(spark, "spark.task.resource.gpu.amount") is None \
            and any(r["count"] > 1 for r in rows):
        log.warning("inference.device %s: executors see %d GPUs but spark.task.resource.gpu.amount is not set, "
                    "so every task of an executor uses its first GPU; set spark.executor.resource.gpu.amount and "
                    "spark.task.resource.gpu.amount (docs/gpu.md)", device, max(r["count"] for r in rows))
    log.info("GPUs the executors' torch sees: %s", ", ".join(sorted({f"{r['host']}: {r['count']}" for r in rows})))
    return rows
