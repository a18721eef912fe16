"""The driver's memory check before any model work: will a model-running Python worker fit?

Two limits matter (docs/gpu.md, 'Memory'): ``spark.executor.pyspark.memory``, which Spark splits
over the executor's cores and enforces on each Python worker as an address-space limit (a
worker over it dies with MemoryError: the job stops here instead), and the executor's non-JVM
memory (``spark.executor.memoryOverhead``, default 10% of ``spark.executor.memory``, at least
384 MiB), which YARN and Kubernetes count the Python workers against (a warning: the
container's real headroom is not visible from the driver).
"""

from __future__ import annotations

import logging
import re

from group_appeal_spark.jobs.devices import spark_conf
from group_appeal_spark.jobs.executors import executors_are_local
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.models.memory import MIB, mib, worker_need

log = logging.getLogger("group_appeal_spark")

_UNITS = {"": 1, "b": 1 / MIB, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def size_mib(text) -> float | None:
    """A Spark memory size (``512m``, ``4g``, ``2048``: MiB without a unit) in MiB; None if unset."""
    if text is None or str(text).strip() == "":
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", str(text).lower())
    if not found:
        raise ConfigError(f"spark memory setting: {text!r} is not a size such as 512m or 4g")
    return float(found.group(1)) * _UNITS[found.group(2)]


def check_memory(spark, config, bundle) -> dict | None:
    """Stop (per-worker limit) or warn (executor overhead) with one line naming the setting to
    raise; nothing for local executors or with ``inference.memory_check: false``. Returns the
    figures compared, or None where nothing was checked."""
    if not config.inference.memory_check or bundle is None or executors_are_local(spark):
        return None
    precision = config.inference.precision
    need = worker_need(bundle.folders, precision, config.inference.backend)
    cores = int(float(spark_conf(spark, "spark.executor.cores") or 1))
    task_cpus = int(float(spark_conf(spark, "spark.task.cpus") or 1))
    workers = max(1, cores // max(1, task_cpus))
    what = (f"one model-running Python worker needs about {mib(need.one_worker)} (weights {mib(need.mapped)} "
            f"mapped + {mib(need.private)} at {precision} + {mib(need.overhead)} measured overhead)")
    pyspark_mib = size_mib(spark_conf(spark, "spark.executor.pyspark.memory"))
    if pyspark_mib is not None:
        per_worker = pyspark_mib / max(1, cores)  # Spark's split: executor cores, not task slots
        if per_worker * MIB < need.one_worker:
            want = need.one_worker * max(1, cores) / MIB
            raise ConfigError(f"spark.executor.pyspark.memory: {pyspark_mib:.0f} MiB over {cores} executor core(s) "
                              f"leaves {per_worker:.0f} MiB per Python worker, but {what}; raise "
                              f"spark.executor.pyspark.memory to at least {want:,.0f}m (or inference.memory_check: "
                              f"false)")
        return {"limit_mib": per_worker, "need_mib": need.one_worker / MIB, "setting": "spark.executor.pyspark.memory"}
    heap = size_mib(spark_conf(spark, "spark.executor.memory")) or 1024
    overhead = size_mib(spark_conf(spark, "spark.executor.memoryOverhead")) or max(384.0, 0.10 * heap)
    total = need.workers(workers) / MIB
    if overhead < total:
        log.warning("spark.executor.memoryOverhead: %.0f MiB, but %d model-running Python worker(s) per executor "
                    "(spark.executor.cores %d / spark.task.cpus %d) need about %.0f MiB (%s); raise "
                    "spark.executor.memoryOverhead (or set spark.executor.pyspark.memory) to at least %.0fm",
                    overhead, workers, cores, task_cpus, total, what, total)
    return {"limit_mib": overhead, "need_mib": total, "setting": "spark.executor.memoryOverhead"}
