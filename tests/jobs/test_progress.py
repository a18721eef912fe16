"""Progress reports of running stages: the arithmetic and wording, the Connect handler, the thread."""

import dataclasses
import logging
import threading
import time

import pytest

from group_appeal_spark.jobs import progress
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.jobs.progress import (ConnectProgress, StageCounts, StageProgress, format_duration,
                                              format_progress, summarize, watch_progress)


def _threads():
    return [t.name for t in threading.enumerate() if t.name.startswith(progress.THREAD_PREFIX)]


# ----------------------------------------------------------------------------------------------
# Pure: counts -> report -> line

def test_summarize_adds_the_stages_and_derives_rate_and_eta():
    stages = [StageCounts(3, total=10, done=10), StageCounts(4, total=40, done=10, running=2, failed=1)]
    p = summarize("detect", stages, elapsed=10.0)
    assert p == StageProgress(label="detect", tasks_done=20, tasks_total=50, tasks_running=2, tasks_failed=1,
                              spark_stages=2, elapsed_seconds=10.0, rate=2.0, eta_seconds=15.0)
    assert p.fraction == 0.4


@pytest.mark.parametrize("stages, elapsed", [([], 5.0), ([StageCounts(0, total=8, done=0, running=2)], 5.0),
                                             ([StageCounts(0, total=8, done=3)], 0.0)])
def test_no_rate_and_no_eta_before_a_task_is_done_or_any_time_passed(stages, elapsed):
    p = summarize("embed", stages, elapsed)
    assert (p.rate, p.eta_seconds) == (None, None)


def test_running_tasks_given_by_the_source_win_and_bytes_add_up():
    p = summarize("x", [StageCounts(0, 4, 1, bytes_read=2**20), StageCounts(1, 4, 0, bytes_read=2**20)], 4.0, running=3)
    assert (p.tasks_running, p.bytes_read, p.rate, p.eta_seconds) == (3, 2**21, 0.25, 28.0)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (245, "4m05s"),
                                           (3599, "59m59s"), (7380, "2h03m")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_progress_line():
    p = StageProgress(label="detect", tasks_done=37, tasks_total=200, tasks_running=2, tasks_failed=0, spark_stages=1,
                      elapsed_seconds=62.0, rate=0.6, eta_seconds=272.0)
    assert format_progress(p) == ("37/200 Spark tasks (18%), 2 running, 1 Spark stage, 0.60 tasks/s, ETA 4m32s, "
                                  "elapsed 1m02s")
    p = dataclasses.replace(p, tasks_done=1200, tasks_total=4000, tasks_failed=3, spark_stages=2, bytes_read=3 * 2**20)
    assert format_progress(p) == ("1,200/4,000 Spark tasks (30%), 2 running, 3 failed, 2 Spark stages, 3.0 MiB read, "
                                  "0.60 tasks/s, ETA 4m32s, elapsed 1m02s")
    waiting = summarize("detect", [StageCounts(0, 4, 0, running=2)], 3.0)
    assert format_progress(waiting) == "0/4 Spark tasks (0%), 2 running, 1 Spark stage, no task done yet, elapsed 3s"
    assert format_progress(summarize("cluster", [], 95.0)) == "running 1m35s, no Spark tasks yet"


# ----------------------------------------------------------------------------------------------
# Spark Connect: the handler, fed as the client feeds it

@dataclasses.dataclass
class _Stage:  # the fields of pyspark.sql.connect.shell.progress.StageInfo
    stage_id: int
    num_tasks: int
    num_completed_tasks: int
    num_bytes_read: int
    done: bool


def test_connect_handler_keeps_the_latest_counts_of_each_stage_of_each_operation():
    handler = ConnectProgress()
    handler(stages=[_Stage(0, 10, 4, 100, False)], inflight_tasks=3, operation_id="a", done=False)
    handler(stages=[_Stage(0, 10, 10, 400, True), _Stage(1, 5, 2, 0, False)], inflight_tasks=2,
            operation_id="a", done=False)
    handler(stages=[_Stage(2, 4, 1, 50, False)], inflight_tasks=1, operation_id="b", done=False)
    p = _summary(handler)
    assert (p.tasks_done, p.tasks_total, p.tasks_running, p.spark_stages, p.bytes_read) == (13, 19, 3, 3, 450)
    assert p.rate == 1.0 and p.eta_seconds == 6.0
    handler(stages=[_Stage(0, 10, 10, 400, True), _Stage(1, 5, 5, 0, True)], inflight_tasks=0,
            operation_id="a", done=True)
    handler(stages=None, inflight_tasks=7, operation_id="b", done=True)  # `done` ends its running tasks
    p = _summary(handler)
    assert (p.tasks_done, p.tasks_total, p.tasks_running) == (16, 19, 0)


def _summary(handler):
    stages, running = handler.counts()
    return summarize("detect", stages, 13.0, running)


def test_connect_handler_takes_the_calls_of_pysparks_own_progress_reporter():
    shell = pytest.importorskip("pyspark.sql.connect.shell.progress", exc_type=ImportError)
    handler = ConnectProgress()
    with shell.Progress(handlers=[handler], operation_id="op-1", enabled=False) as bar:
        bar.update_ticks([shell.StageInfo(7, 8, 3, 1024, False)], inflight_tasks=2)
        stages, running = handler.counts()
        assert ([(s.stage_id, s.total, s.done, s.bytes_read) for s in stages], running) == ([(7, 8, 3, 1024)], 2)
    assert handler.counts()[1] == 0  # the reporter's finish() says done


# ----------------------------------------------------------------------------------------------
# The thread, on a stand-in source (no Spark)

class _FakeSource:
    def __init__(self):
        self.done, self.closed = 0, False

    def poll(self):
        self.done = min(self.done + 1, 50)

    def counts(self):
        return [StageCounts(0, 50, self.done, running=1)], None

    def close(self):
        self.closed = True


@pytest.fixture
def fake_source(monkeypatch):
    source = _FakeSource()
    monkeypatch.setattr(progress, "source", lambda spark: source)
    return source


def test_the_callback_gets_reports_and_the_thread_ends_with_the_block_even_on_an_exception(fake_source):
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with watch_progress(object(), every=0.05, callback=seen.append, label="fake") as watcher:
            assert _threads() == ["gas-progress-fake"]
            time.sleep(0.4)
            raise RuntimeError("boom")
    assert _threads() == [] and fake_source.closed
    assert len(seen) >= 2 and all(p.label == "fake" and 0 < p.tasks_done <= p.tasks_total == 50 for p in seen)
    assert [p.tasks_done for p in seen] == sorted(p.tasks_done for p in seen)
    assert watcher.report().tasks_done == fake_source.done


def test_a_failing_callback_is_logged_once_and_the_reports_go_on(fake_source, caplog):
    calls = []

    def broken(p):
        calls.append(p)
        raise ValueError("bad callback")

    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        with watch_progress(object(), every=0.05, callback=broken, label="fake"):
            time.sleep(0.4)
    assert len(calls) >= 2
    assert [r.getMessage() for r in caplog.records] == [
        "progress fake: the callback failed; later failures are not logged"]


@pytest.mark.parametrize("every", [0, -1, None])
def test_no_interval_no_thread(fake_source, every):
    with watch_progress(object(), every=every) as watcher:
        assert watcher is None and _threads() == []


def test_stage_timer_takes_its_interval_from_the_class_default(monkeypatch):
    monkeypatch.setattr(StageTimer, "default_progress_seconds", 30.0)
    StageTimer.set_progress_seconds(0)
    assert StageTimer().progress_seconds == 0.0
    assert StageTimer(progress_seconds=5).progress_seconds == 5
    timer = StageTimer()
    with timer.stage("quiet"):
        assert _threads() == []
    assert "quiet" in timer.seconds


# ----------------------------------------------------------------------------------------------
# A classic session: a slow job, watched through the status tracker

def _slow_job(spark):
    """8 tasks of 0.25 s on local[2] (about a second)."""
    import pandas as pd

    def slow(batches):
        for batch in batches:
            time.sleep(0.25)
            yield pd.DataFrame({"n": [len(batch)]})

    return spark.range(0, 16, numPartitions=8).mapInPandas(slow, "n long").agg({"n": "sum"}).collect()[0][0]


@pytest.mark.spark
def test_classic_session_reports_tasks_done_of_total(spark):
    seen = []
    with watch_progress(spark, every=0.2, callback=seen.append, label="slow"):
        assert _slow_job(spark) == 16
    assert _threads() == []
    assert seen, "no progress report during a job of about a second at every=0.2"
    assert any(0 < p.tasks_done <= p.tasks_total for p in seen), seen
    assert all(p.label == "slow" and p.tasks_done <= p.tasks_total for p in seen)
    assert max(p.tasks_total for p in seen) >= 8


@pytest.mark.spark
@pytest.mark.parametrize("level, logged", [(logging.INFO, True), (logging.WARNING, False)])
def test_stage_timer_logs_progress_at_info_and_is_silent_at_warning(spark, caplog, level, logged):
    timer = StageTimer(progress_seconds=0.2)
    with caplog.at_level(level, logger="group_appeal_spark"):
        with timer.stage("slow"):
            _slow_job(spark)
    lines = [r.getMessage() for r in caplog.records if "Spark tasks" in r.getMessage()]
    assert _threads() == []
    if logged:
        assert lines and all(line.startswith("stage slow: ") for line in lines), lines
    else:
        assert lines == []
