"""A real multi-process Spark cluster: a standalone master and worker on 127.0.0.1.

spark-submit's ``--master`` must win over the job's own defaults: the application registers with
the master and its tasks run in executors on the worker, not in the driver. Models reach the
executors as shipped files (a cluster master refuses a local directory).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pyspark
import pytest

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
SPARK_BIN = Path(pyspark.__file__).parent / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
        return json.load(resp)


@pytest.fixture(scope="session")
def standalone(tmp_path_factory):
    """One standalone master and one worker (2 cores) for the test session."""
    if not (SPARK_BIN / "spark-class").exists():
        pytest.skip("spark-class is not in the installed pyspark")
    folder = tmp_path_factory.mktemp("standalone")
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(folder / "work")}
    procs = []
    try:
        with open(folder / "master.log", "w") as log:
            procs.append(subprocess.Popen(
                [str(SPARK_BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(ui)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        with open(folder / "worker.log", "w") as log:
            procs.append(subprocess.Popen(
                [str(SPARK_BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", "2", "--memory", "3g", "--work-dir", str(folder / "work"),
                 "--webui-port", str(worker_ui), f"spark://127.0.0.1:{port}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 90
        while True:
            try:
                if _master_state(ui).get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail("the standalone master and worker did not come up:\n"
                            + (folder / "master.log").read_text()[-2000:] + (folder / "worker.log").read_text()[-2000:])
            time.sleep(1)
        yield {"master": f"spark://127.0.0.1:{port}", "ui": ui, "work": folder / "work"}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_spark_submit_master_wins_and_tasks_run_on_the_worker(standalone, spark, tmp_path):
    from group_appeal_spark.jobs import run as run_job

    out = tmp_path / "cluster-out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1"}
    args = ["--input", str(ROOT / "examples" / "sample_corpus.jsonl"), "--input-format", "json",
            "--carry-cols", "party", "--tiny-models", "--k-min", "2", "--k-max", "3"]
    proc = subprocess.run(
        [str(SPARK_BIN / "spark-submit"), "--master", standalone["master"],
         "--conf", "spark.executor.memory=1g", "--conf", "spark.executorEnv.HF_HUB_OFFLINE=1",
         str(ROOT / "jobs" / "run.py"), "--output", str(out), *args],
        capture_output=True, text=True, env=env, timeout=400, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # the driver did not start a local executor of its own
    assert "Starting executor ID driver" not in log
    apps = [a for a in _master_state(standalone["ui"])["completedapps"] if a["name"] == "group-appeal-spark run"]
    assert apps, "the application never registered with the standalone master"
    app_dir = standalone["work"] / apps[-1]["id"]
    executor_logs = list(app_dir.glob("*/stderr"))
    assert executor_logs and any("Running task" in p.read_text() for p in executor_logs)
    # the models reached the executor as shipped files, laid out again by role
    assert any(app_dir.glob("*/gas-models-*/detector/model.safetensors"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_rows"] == 40 and summary["documents_ok"] == 40

    # the same job in the local test session gives the same mentions
    local = tmp_path / "local-out"
    assert run_job.main(["--output", str(local), *args]) == 0
    cols = ["doc_id", "party", "seg_idx", "span", "start", "end", "stance", "mention_key"]
    got = pd.read_parquet(out / "mentions")[cols].sort_values(cols).reset_index(drop=True)
    want = pd.read_parquet(local / "mentions")[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
