"""On an executor: the device a task's models go to, from the GPUs Spark gave the task."""

from __future__ import annotations

import sys

from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.lib.models.devices import task_device


def task_gpus() -> list[str]:
    """The GPU addresses Spark assigned to the running task (``spark.task.resource.gpu.amount``);
    empty outside a task or where the task asked for none."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return []
    try:
        gpu = ctx.resources().get("gpu")
    except Exception:  # a TaskContext without resources (old or Connect-side stubs)
        return []
    return list(gpu.addresses) if gpu is not None else []


def device_for_task(bundle: ModelBundle, stage: str) -> str:
    """``inference.device`` made concrete for this task (``lib.models.devices.task_device``); a task
    on a GPU says in the executor's log which one it got."""
    gpus = task_gpus()
    device = task_device(bundle.inference.device, gpus)
    if gpus or device.startswith("cuda"):
        from pyspark import TaskContext

        ctx = TaskContext.get()
        where = f"task {ctx.taskAttemptId()} (stage {ctx.stageId()}, partition {ctx.partitionId()})" if ctx else "task"
        # stderr: the executor's log (a Python worker's logging is not configured there)
        print(f"group_appeal_spark: {where} runs {stage} on {device} (Spark GPUs of the task: "
              f"{','.join(gpus) or 'none'})", file=sys.stderr, flush=True)
    return device
