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


def get_or_load(key: str, loader, on_load=None):
    """The cached object for ``key``, calling ``loader()`` the first time on this worker.

    ``on_load(key)``, when given, is called right after that first load (a :class:`UdfHooks` hook).
    """
    with _LOCK:
        if key not in _MODELS:
            _configure_worker()
            _MODELS[key] = loader()
            if on_load is not None:
                on_load(key)
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
