"""Per-stage wall-clock seconds, logged like Spark applications log their stages."""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("group_appeal_spark")


class StageTimer:
    """Per-stage wall-clock seconds, logged like Spark applications log their stages.

    While a stage runs, its Spark progress (tasks done of known, rate, ETA) is logged every
    ``progress_seconds`` (0: never). ``start`` sets the class default from
    ``output.progress_seconds`` (``set_progress_seconds``), so timers made after it follow the config.
    """

    default_progress_seconds: float = 30.0

    def __init__(self, progress_seconds: float | None = None):
        self.seconds: dict[str, float] = {}
        self.progress_seconds = self.default_progress_seconds if progress_seconds is None else progress_seconds

    @classmethod
    def set_progress_seconds(cls, seconds: float) -> None:
        cls.default_progress_seconds = float(seconds)

    @contextlib.contextmanager
    def stage(self, name: str):
        from group_appeal_spark.jobs.progress import watch_stage

        log.info("stage %s: started", name)
        start = time.perf_counter()
        with watch_stage(name, self.progress_seconds):  # its thread stops here, also on an exception
            yield
        self.seconds[name] = round(time.perf_counter() - start, 3)

    def done(self, name: str, rows: int, what: str) -> None:
        seconds = self.seconds.get(name, 0.0)
        rate = rows / seconds if seconds > 0 else float("inf")
        log.info("stage %s: %s %s in %.1f s (%.1f/s)", name, f"{rows:,}", what, seconds, rate)

