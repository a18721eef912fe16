"""The per-Python-worker model cache.

PySpark reuses Python workers across tasks (``spark.python.worker.reuse=true``), so a model
loaded into this module-level dict serves every later task of the job on that worker. Keys are
made on the driver from the models' content and settings.
"""

from __future__ import annotations

import os
import threading

_MODELS: dict = {}
_LOCK = threading.Lock()

# Tests set this to a folder; each load then appends "<pid> <key>" to a file there, so a test
# can count loads per worker across processes.
LOAD_LOG_ENV = "GROUP_APPEAL_SPARK_LOAD_LOG"


def get_or_load(key: str, loader):
    """The cached object for ``key``, calling ``loader()`` the first time on this worker."""
    with _LOCK:
        if key not in _MODELS:
            _configure_worker()
            _MODELS[key] = loader()
            log_dir = os.environ.get(LOAD_LOG_ENV)
            if log_dir:
                with open(os.path.join(log_dir, f"loads-{os.getpid()}.txt"), "a", encoding="utf-8") as fh:
                    fh.write(f"{os.getpid()} {key}\n")
        return _MODELS[key]


def _configure_worker() -> None:
    # Forked workers must not start tokenizers' thread pool (it can deadlock after fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def set_torch_threads(requested: int | None) -> None:
    """Use as many torch threads as the task has cores (``spark.task.cpus``), unless configured."""
    import torch

    threads = requested
    if threads is None:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        threads = ctx.cpus() if ctx is not None and hasattr(ctx, "cpus") else 1
    if torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, int(threads)))
