"""The per-Python-worker model cache.

PySpark reuses Python workers across tasks (``spark.python.worker.reuse=true``), so a model
loaded into this module-level dict serves every later task of the job on that worker. Keys are
made on the driver from the models' content and settings.
"""

from __future__ import annotations

import os
import threading

_MODELS: dict = {}
_SLOTS: dict = {}  # slot (a stage) -> the key it holds now
_LOCK = threading.Lock()


def get_or_load(key: str, loader, on_load=None, slot: str | None = None):
    """The cached object for ``key``, calling ``loader()`` the first time on this worker.

    ``on_load(key)``, when given, is called right after that first load (a :class:`UdfHooks` hook).
    ``slot``: one entry per slot; loading another key into it drops the one there (a reused worker
    whose next task Spark gave another GPU must not keep the models on the first one).
    """
    with _LOCK:
        if key not in _MODELS:
            _configure_worker()
            old = _SLOTS.get(slot) if slot is not None else None
            if old is not None and old != key:
                _drop(old)
            _MODELS[key] = loader()
            if slot is not None:
                _SLOTS[slot] = key
            if on_load is not None:
                on_load(key)
        return _MODELS[key]


def _drop(key: str) -> None:
    """Forget one cached stage and give its GPU memory back to the driver of the device."""
    import gc
    import sys

    _MODELS.pop(key, None)
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def task_model(bundle, hooks, stage: str, build):
    """In a task: the model of ``stage`` on the task's device, loaded on this worker's first use.

    Sets the task's torch threads, picks the device (the task's own GPU where Spark gave it
    one: ``udfs.devices``), and calls ``build(model_root, device)`` only where the worker does
    not hold it yet; ``hooks.on_task(stage, device)`` once the model is ready.
    """
    from group_appeal_spark.udfs.devices import device_for_task
    from group_appeal_spark.udfs.shipping import shipped_root

    set_torch_threads(bundle.inference.torch_threads)
    device = device_for_task(bundle, stage)
    model = get_or_load(bundle.cache_key(stage, device), lambda: build(shipped_root(bundle), device), hooks.on_load,
                        slot=bundle.cache_key(stage, "any device"))
    if hooks.on_task is not None:
        hooks.on_task(stage, device)
    return model
