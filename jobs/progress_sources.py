"""Where progress comes from (jobs/progress.py): a classic session's status tracker, or the
progress handler of a Spark Connect session."""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from group_appeal_spark.jobs.session import is_connect

log = logging.getLogger("group_appeal_spark")


class StageCounts(NamedTuple):
    """The task counts of one Spark stage, from either source."""

    stage_id: int
    total: int
    done: int
    running: int = 0
    failed: int = 0
    bytes_read: int | None = None


class _TrackerSource:
    """Classic session: the stages the status tracker shows active while watching."""

    def __init__(self, spark):
        self._tracker = spark.sparkContext.statusTracker()
        self._known: dict[int, StageCounts] = {}
        self._finished: set[int] = set()

    def poll(self) -> None:
        active = set(self._tracker.getActiveStageIds())
        # a stage seen before and no longer active is read once more, for its final counts
        for stage_id in sorted(active | (self._known.keys() - self._finished)):
            info = self._tracker.getStageInfo(stage_id)
            if info is not None:
                self._known[stage_id] = StageCounts(stage_id, info.numTasks, info.numCompletedTasks,
                                                    info.numActiveTasks, info.numFailedTasks)
            if stage_id not in active:
                self._finished.add(stage_id)

    def counts(self) -> tuple[list[StageCounts], int | None]:
        return list(self._known.values()), None

    def close(self) -> None:
        pass


class ConnectProgress:
    """A Spark Connect progress handler that keeps each stage's latest counts, per operation.

    The client calls it with keywords (``stages``, ``inflight_tasks``, ``operation_id``,
    ``done``) on the thread that runs the query; ``counts`` reads them from another thread.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._stages: dict[tuple[str | None, int], StageCounts] = {}
        self._running: dict[str | None, int] = {}

    def __call__(self, stages=None, inflight_tasks: int = 0, operation_id: str | None = None,
                 done: bool = False, **_) -> None:
        with self._lock:
            for s in stages or ():
                self._stages[(operation_id, s.stage_id)] = StageCounts(
                    s.stage_id, s.num_tasks, s.num_completed_tasks, 0, 0, s.num_bytes_read)
            self._running[operation_id] = 0 if done else inflight_tasks

    def counts(self) -> tuple[list[StageCounts], int | None]:
        with self._lock:
            return list(self._stages.values()), sum(self._running.values())


class _ConnectSource:
    """Spark Connect: a ``ConnectProgress`` registered on the session while watching."""

    def __init__(self, spark):
        self._spark = spark
        self.handler = ConnectProgress()
        register = getattr(spark, "registerProgressHandler", None)
        if register is None:  # a pyspark before 4.0: only the elapsed time is known
            log.debug("progress: this Spark Connect client has no registerProgressHandler")
        else:
            register(self.handler)

    def poll(self) -> None:
        pass

    def counts(self) -> tuple[list[StageCounts], int | None]:
        return self.handler.counts()

    def close(self) -> None:
        remove = getattr(self._spark, "removeProgressHandler", None)
        if remove is not None:
            remove(self.handler)


def source(spark):
    """The progress source of ``spark``: the status tracker (classic) or a Connect handler."""
    return _ConnectSource(spark) if is_connect(spark) else _TrackerSource(spark)
