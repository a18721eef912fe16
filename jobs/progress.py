"""Progress of running Spark work, reported every few seconds: tasks done of known, rate, ETA.

A long stage (``detect`` over an archive) otherwise logs nothing between its start and its end.
``watch_progress`` reports what Spark itself knows about the work running while it is open:

- classic session: ``SparkContext.statusTracker()``, polled from a daemon thread; every Spark
  stage seen active while watching counts, with its last known task counts (a stage that
  starts and ends between two polls, about a second apart, is missed);
- Spark Connect (no SparkContext on the client): the server's execution progress, which the
  client hands to ``spark.registerProgressHandler`` handlers (pyspark >= 4.0) about every two
  seconds during each query (``spark.connect.progress.reportInterval`` on the server); the
  daemon thread only reports the latest counts.

Neither source knows rows while a stage runs: the jobs log rows when a stage is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable, Iterable

from group_appeal_spark.jobs.progress_sources import ConnectProgress, StageCounts, source  # noqa: F401

log = logging.getLogger("group_appeal_spark")

DEFAULT_EVERY = 30.0
THREAD_PREFIX = "gas-progress"
_POLL_SECONDS = 1.0  # classic: how often the tracker is read, to see short Spark stages too


@dataclasses.dataclass(frozen=True)
class StageProgress:
    """One progress report of the work watched under ``label``.

    ``tasks_total`` counts the tasks of the Spark stages seen so far: it grows when a later
    Spark stage starts, and ``eta_seconds`` is the time left for the known tasks at the average
    rate since watching began (None before the first task is done).
    """

    label: str
    tasks_done: int
    tasks_total: int
    tasks_running: int
    tasks_failed: int
    spark_stages: int
    elapsed_seconds: float
    rate: float | None  # tasks done per second since watching began
    eta_seconds: float | None
    bytes_read: int | None = None  # Spark Connect only

    @property
    def fraction(self) -> float | None:
        return self.tasks_done / self.tasks_total if self.tasks_total else None


def summarize(label: str, stages: Iterable[StageCounts], elapsed: float,
              running: int | None = None) -> StageProgress:
    """A report from the Spark stages' counts; ``running`` overrides their running tasks (Connect)."""
    stages = list(stages)
    done = sum(s.done for s in stages)
    total = sum(s.total for s in stages)
    rate = done / elapsed if done > 0 and elapsed > 0 else None
    eta = max(total - done, 0) / rate if rate else None
    read = [s.bytes_read for s in stages if s.bytes_read is not None]
    return StageProgress(
        label=label, tasks_done=done, tasks_total=total,
        tasks_running=sum(s.running for s in stages) if running is None else running,
        tasks_failed=sum(s.failed for s in stages), spark_stages=len(stages), elapsed_seconds=elapsed,
        rate=rate, eta_seconds=eta, bytes_read=sum(read) if read else None)


def format_duration(seconds: float) -> str:
    """``42s``, ``4m05s``, ``2h03m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_progress(p: StageProgress) -> str:
    """The log line of a report (without the ``stage NAME:`` prefix)."""
    if p.tasks_total == 0:
        return f"running {format_duration(p.elapsed_seconds)}, no Spark tasks yet"
    parts = [f"{p.tasks_done:,}/{p.tasks_total:,} Spark tasks ({100 * p.fraction:.0f}%)",
             f"{p.tasks_running} running"]
    if p.tasks_failed:
        parts.append(f"{p.tasks_failed} failed")
    parts.append(f"{p.spark_stages} Spark stage{'s' if p.spark_stages != 1 else ''}")
    if p.bytes_read:
        parts.append(f"{p.bytes_read / 2**20:,.1f} MiB read")
    parts.append(f"{p.rate:.2f} tasks/s" if p.rate else "no task done yet")
    if p.eta_seconds is not None:
        parts.append(f"ETA {format_duration(p.eta_seconds)}")
    parts.append(f"elapsed {format_duration(p.elapsed_seconds)}")
    return ", ".join(parts)


def log_progress(p: StageProgress) -> None:
    """The default callback: one INFO line (silent at ``--log-level WARNING``)."""
    log.info("stage %s: %s", p.label, format_progress(p))


class ProgressWatcher:
    """Reports the progress of ``spark``'s running work every ``every`` seconds from a daemon thread.

    ``start`` and ``stop`` (idempotent; joins the thread); ``watch_progress`` pairs them.
    """

    def __init__(self, spark, label: str, every: float = DEFAULT_EVERY,
                 callback: Callable[[StageProgress], None] | None = None):
        if every <= 0:
            raise ValueError(f"every: {every!r} must be a positive number of seconds")
        self.label, self.every = label, float(every)
        self.callback = callback or log_progress
        self._source = source(spark)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._callback_failed = False

    def start(self) -> "ProgressWatcher":
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"{THREAD_PREFIX}-{self.label}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, 2 * _POLL_SECONDS))
            self._thread = None
        with contextlib.suppress(Exception):  # a stopped session: nothing left to detach
            self._source.close()

    def report(self) -> StageProgress:
        """The progress now (also what the thread hands the callback)."""
        stages, running = self._source.counts()
        return summarize(self.label, stages, time.monotonic() - self._started, running)

    def _loop(self) -> None:
        poll = min(self.every, _POLL_SECONDS)
        next_report = self._started + self.every
        while not self._stop.wait(poll):
            try:
                self._source.poll()
            except Exception as exc:  # e.g. the SparkContext stopped under us; the stage will end
                log.debug("progress %s: status tracker unavailable: %s", self.label, exc)
                continue
            now = time.monotonic()
            if now >= next_report:
                next_report = now + self.every
                self._emit()

    def _emit(self) -> None:
        try:
            self.callback(self.report())
        except Exception:
            if not self._callback_failed:  # once: a broken callback must not flood the log
                self._callback_failed = True
                log.warning("progress %s: the callback failed; later failures are not logged",
                            self.label, exc_info=True)


@contextlib.contextmanager
def watch_progress(spark, every: float = DEFAULT_EVERY,
                   callback: Callable[[StageProgress], None] | None = None, label: str = "spark"):
    """Report the progress of the Spark work run inside the block every ``every`` seconds.

    Parameters
    ----------
    spark : SparkSession
        A classic or a Spark Connect session.
    every : float
        Seconds between reports; 0 or less: no reports (the block runs unwatched).
    callback : callable, optional
        Called with a ``StageProgress`` from a background thread; default: one INFO log line
        ``stage LABEL: 37/200 Spark tasks (18%), ..., ETA 4m32s, elapsed 1m02s``.
    label : str
        The name of the work in the reports.

    Yields the ``ProgressWatcher`` (None when ``every`` is 0); its thread is stopped when the
    block ends, also by an exception.

    Examples
    --------
    >>> with watch_progress(spark, every=10, callback=lambda p: print(p.tasks_done, p.eta_seconds)):
    ...     result = detect_appeals(docs, config).mentions.write.parquet(path)  # doctest: +SKIP
    """
    if spark is None or every is None or every <= 0:
        yield None
        return
    watcher = ProgressWatcher(spark, label, every, callback).start()
    try:
        yield watcher
    finally:
        watcher.stop()


@contextlib.contextmanager
def watch_stage(name: str, every: float):
    """``watch_progress`` on the active session, as the jobs' stages use it; never fails the stage.

    Nothing is watched without an active session (``resolve-models`` runs before Spark starts)
    or when ``every`` is 0.
    """
    watcher = None
    if every and every > 0:
        try:
            from pyspark.sql import SparkSession

            spark = SparkSession.getActiveSession()
            if spark is not None:
                watcher = ProgressWatcher(spark, name, every).start()
        except Exception as exc:  # progress is a convenience: the stage runs without it
            log.debug("stage %s: no progress reports: %s", name, exc)
    try:
        yield watcher
    finally:
        if watcher is not None:
            watcher.stop()
