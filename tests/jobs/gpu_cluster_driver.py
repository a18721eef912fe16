"""The driver of tests/jobs/test_gpu_cluster.py, run as its own process (one SparkContext each).

Against a standalone master whose worker announces two GPUs, each task asks for one GPU. In the
tasks torch's CUDA calls are faked at the boundary (two devices); the rest is the package's own
code: ``udfs.devices.device_for_task`` reads the task's resources and gives its ``cuda:N``, the
accumulator of ``jobs.devices`` brings the devices back. Then the driver's GPU probe runs with
the real torch (a CPU build: no GPU) and must stop with one line. Prints one JSON object.
"""

import json
import sys
import time

from pyspark.sql import SparkSession


def main(master: str, discovery: str) -> None:
    from group_appeal_spark.jobs.devices import check_cluster_gpus, devices_used, record_devices
    from group_appeal_spark.lib.config import load_config
    from group_appeal_spark.lib.errors import ConfigError
    from group_appeal_spark.lib.models.bundle import ModelBundle

    spark = (SparkSession.builder.master(master).appName("gas-gpu-cluster-test")
             .config("spark.executor.cores", "2").config("spark.executor.memory", "1g")
             .config("spark.executor.resource.gpu.amount", "2")
             .config("spark.executor.resource.gpu.discoveryScript", discovery)
             .config("spark.task.resource.gpu.amount", "1")
             .config("spark.ui.enabled", "false").getOrCreate())
    bundle = ModelBundle(folders={}, ids={}, inference=load_config(overrides={"inference.device": "cuda"}).inference)
    hooks = record_devices(spark, None)

    def tasks(batches):
        import pandas as pd
        import torch
        from pyspark import TaskContext

        from group_appeal_spark.udfs.devices import device_for_task, task_gpus

        real = torch.cuda.is_available, torch.cuda.device_count
        for _ in batches:
            start = time.time()
            torch.cuda.is_available, torch.cuda.device_count = (lambda: True), (lambda: 2)  # the boundary
            try:
                device = device_for_task(bundle, "appeals")
            finally:  # the Python worker is reused: the next task (the probe) sees the real torch
                torch.cuda.is_available, torch.cuda.device_count = real
            hooks.on_task("appeals", device)
            time.sleep(3)  # two tasks at once on the two cores: they must hold different GPUs
            yield pd.DataFrame({"partition": [TaskContext.get().partitionId()], "device": [device],
                                "gpus": [",".join(task_gpus())], "start": [start], "end": [time.time()]})

    schema = "partition int, device string, gpus string, start double, end double"
    rows = [r.asDict() for r in spark.range(0, 4, 1, 4).mapInPandas(tasks, schema).collect()]
    try:
        check_cluster_gpus(spark, "cuda")
        probe = None
    except ConfigError as exc:
        probe = str(exc)
    print(json.dumps({"tasks": rows, "devices": devices_used(spark), "probe_error": probe}))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
