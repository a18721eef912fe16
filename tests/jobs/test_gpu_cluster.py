"""A standalone cluster whose worker announces two (fake) GPUs: each task gets its own cuda:N.

The worker announces GPUs 0 and 1 through a discovery script (``spark.worker.resource.gpu.amount``,
``spark.worker.resource.gpu.discoveryScript``); the application asks for one GPU per task. No
GPU exists: only torch's CUDA calls inside the tasks are faked (tests/jobs/gpu_cluster_driver.py).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
from paths import ROOT
from servers import stop_groups

pytestmark = pytest.mark.spark

SPARK_BIN = Path(pyspark.__file__).parent / "bin"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    if not (SPARK_BIN / "spark-class").exists():
        pytest.skip("spark-class is not in the installed pyspark")
    folder = tmp_path_factory.mktemp("gpu-cluster")
    script = folder / "gpus.sh"
    script.write_text('#!/bin/sh\necho \'{"name":"gpu","addresses":["0","1"]}\'\n')
    script.chmod(0o755)
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_OPTS": f"-Dspark.worker.resource.gpu.amount=2 "
                                f"-Dspark.worker.resource.gpu.discoveryScript={script}"}
    procs = []
    try:
        for name, args in (("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                                       str(port), "--webui-port", str(ui)]),
                           ("worker", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2",
                                       "--memory", "2g", "--work-dir", str(folder / "work"), "--webui-port",
                                       str(worker_ui), f"spark://127.0.0.1:{port}"])):
            with open(folder / f"{name}.log", "w") as log:
                procs.append(subprocess.Popen([str(SPARK_BIN / "spark-class"), *args], env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 90
        while "Successfully registered with master" not in (folder / "worker.log").read_text():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail("the standalone master and worker did not come up:\n"
                            + (folder / "worker.log").read_text()[-3000:])
            time.sleep(1)
        yield {"master": f"spark://127.0.0.1:{port}", "script": script, "folder": folder}
    finally:
        stop_groups(procs)


def _run_driver(script: str, *args: str, timeout: float) -> dict:
    """Run one of this test's driver scripts as its own process (one SparkContext); its JSON line."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT.parent)}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name(script)), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gpu_run(gpu_cluster):
    found = _run_driver("gpu_cluster_driver.py", gpu_cluster["master"], str(gpu_cluster["script"]), timeout=300)
    logs = "".join(p.read_text(errors="replace") for p in (gpu_cluster["folder"] / "work").glob("*/*/stderr"))
    return found, logs


def test_every_task_resolves_its_own_gpu(gpu_run):
    found, _ = gpu_run
    tasks = found["tasks"]
    assert len(tasks) == 4
    assert all(t["device"] == f"cuda:{t['gpus']}" for t in tasks)  # each from its own resources
    assert {t["device"] for t in tasks} == {"cuda:0", "cuda:1"}
    for a in tasks:  # tasks that ran at the same time held different GPUs
        for b in tasks:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["device"] != b["device"], tasks


def test_the_devices_reach_the_driver_and_the_executor_log(gpu_run):
    found, logs = gpu_run
    assert found["devices"] == {"recorded": True, "by_stage": {"appeals": ["cuda:0", "cuda:1"]}}
    assert "runs appeals on cuda:0 (Spark GPUs of the task: 0)" in logs
    assert "runs appeals on cuda:1 (Spark GPUs of the task: 1)" in logs


def test_cuda_on_executors_without_a_gpu_stops_with_one_line(gpu_run):
    found, _ = gpu_run
    # the real torch on the executors: Spark assigned GPU 0/1, torch (a CPU build) has none
    assert found["probe_error"].startswith("inference.device: Spark assigned GPU '")
    assert "but torch sees 0 CUDA device(s)" in found["probe_error"] and "\n" not in found["probe_error"]


@pytest.fixture(scope="module")
def profile_run(gpu_cluster, hub_cache, tmp_path_factory):
    """tests/jobs/profile_cluster_driver.py: the model stages with and without their own profile."""
    records = tmp_path_factory.mktemp("profile") / "tasks.jsonl"
    found = _run_driver("profile_cluster_driver.py", gpu_cluster["master"], str(gpu_cluster["script"]),
                        str(records), str(_free_port()), os.environ["HF_HUB_CACHE"], timeout=400)
    found["tasks"] = [json.loads(line) for line in records.read_text().splitlines()]
    return found


def test_the_model_stages_run_under_their_own_profile_and_the_input_side_does_not(profile_run):
    tasks, stages = profile_run["tasks"], profile_run["stages"]  # the stages of the profiled run
    assert {t["stage"] for t in tasks} == {"appeals", "embed"}
    assert all(t["cpus"] == 2 and len(t["gpus"]) == 1 for t in tasks), tasks  # the profile's requests
    profile = {s["stage_id"]: s["profile"] for s in stages}
    model_stages = {t["stage_id"] for t in tasks}
    assert all(profile[s] != 0 for s in model_stages), stages
    # the stage feeding each model stage (reading, segment checks, the shuffle that spreads the
    # rows) runs under the default profile; so do the stages after the embeddings were written
    for stage in model_stages:
        assert any(profile.get(s) == 0 for s in range(min(profile), stage)), (stage, stages)
    # Spark gives a stage the profile of every RDD in it, a cached one too: the stages that read
    # the models' cached output (the tables' writes) are under the profile without running a model
    # (docs/gpu.md says so)
    assert {s for s, p in profile.items() if p == 0}


def test_outputs_under_the_profile_equal_the_default_path(profile_run):
    plain, profiled = profile_run["outputs"]["plain"], profile_run["outputs"]["profiled"]
    assert len(plain["mentions"]) >= 5 and any(d["n_mentions"] == 0 for d in plain["documents"])
    assert profiled["mentions"] == plain["mentions"]
    assert profiled["documents"] == plain["documents"]
    assert profiled["embeddings"] == plain["embeddings"]
