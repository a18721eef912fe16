"""Callables a caller hands to the UDFs, run on the executors at fixed points of a task."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class UdfHooks:
    """Optional callables the UDFs call on the executors; a missing one does nothing.

    The hooks travel to the executors with the UDF's closure (cloudpickle), so they must be
    picklable there: functions and classes of a module the executors can import, or closures,
    which cloudpickle ships by value.

    Parameters
    ----------
    before_batch : callable, optional
        ``before_batch(stage)`` before each Arrow batch is processed; ``stage`` is ``"appeals"``
        or ``"embed"``. An exception it raises fails the task as a failing batch would.
    on_load : callable, optional
        ``on_load(key)`` in the Python worker that has just loaded a stage's models into its
        cache, with the stage's cache key (once per worker and key).
    on_task : callable, optional
        ``on_task(stage, device)`` once per task, when the stage's models are ready, with the
        device they run on (``cpu``, ``cuda:1``...); ``jobs/devices.py`` records them.
    """

    before_batch: Callable[[str], None] | None = None
    on_load: Callable[[str], None] | None = None
    on_task: Callable[[str, str], None] | None = None
