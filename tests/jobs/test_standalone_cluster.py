"""A real multi-process Spark cluster: a standalone master and worker on 127.0.0.1.

What a user's cluster looks like: spark-submit's ``--master`` wins over the job's own defaults,
the application registers with the master and its tasks run in executors on the worker, each
in its own working folder. The executors run an interpreter that cannot see the project
(tests/support/sitecustomize.py hides every copy that is not an archive on sys.path); in the
deploy-mode run the driver's does too, the job file lies alone in an empty folder and the
package comes only from the wheel on ``--py-files``, which the driver ships again as a .zip
(``jobs/executors.py`` ``ship_own_package``). The models
reach the executors as shipped files (``models.ship: auto`` is ``files`` on a cluster master),
each fetched once per executor. A Python worker killed while it runs the models costs one task
attempt, not the job, and not a digit of the outputs.

One undisturbed cluster run is the reference of every test here: docs/deploying.md's (README's)
spark-submit block, run as written from a copy of the checkout (the driver imports the
checkout, which it zips and ships). It is compared with a local run of the same job, and with
the run of the job file alone and the wheel whose Python worker was killed. Executors without a
dependency stop the job at its start-up probe.
"""

import collections
import json
import shlex
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyspark
import pytest
from paths import ROOT, SUPPORT
from servers import stop_groups

pytestmark = pytest.mark.spark

SPARK_BIN = Path(pyspark.__file__).parent / "bin"
APP_NAME = "group-appeal-spark run"
MENTION_KEYS = ["doc_id", "seg_idx", "start", "end"]
# "Utils: Fetching spark://host:port/files/NAME to /local/tmp/file": one line per download
FETCHED = re.compile(r"Utils: Fetching \S+/files/(\S+) to ")
RUNNING = re.compile(r"Running task (\S+) in stage (\S+) \(TID (\d+)\)")
FINISHED = re.compile(r"Finished task \S+ in stage \S+ \(TID (\d+)\)")


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
        # spark-class execs the JVM, so the worker's pid is the parent of its executors' JVMs
        yield {"master": f"spark://127.0.0.1:{port}", "ui": ui, "work": folder / "work", "worker_pid": procs[1].pid}
    finally:
        stop_groups(procs)


def _submit(standalone, wheel, folder: Path, readme_inputs, conf_dir: Path | None = None) -> subprocess.Popen:
    """spark-submit the run job as cluster deploy mode would see it: the job file alone, the wheel;
    the job's flags and ``spark.task.cpus`` are README's block's (so its outputs are the reference's)."""
    job_dir = folder / "job"
    job_dir.mkdir()
    shutil.copy(ROOT / "jobs" / "run.py", job_dir / "run.py")
    env = {**os.environ, "PYTHONPATH": str(SUPPORT), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
           **({"SPARK_CONF_DIR": str(conf_dir)} if conf_dir else {})}
    log = open(folder / "driver.log", "w")
    try:
        return subprocess.Popen(
            [str(SPARK_BIN / "spark-submit"), "--master", standalone["master"], "--py-files", str(wheel),
             "--conf", "spark.task.cpus=2", "--conf", "spark.executor.memory=1g",
             "--conf", "spark.executorEnv.HF_HUB_OFFLINE=1", "--conf", "spark.executorEnv.PYTHONPATH=" + str(SUPPORT),
             "run.py", *_readme_args(readme_inputs, folder / "out")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=job_dir, start_new_session=True)
    finally:
        log.close()


def _finish(proc: subprocess.Popen, standalone, folder: Path, seconds: float = 400) -> dict:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log = (folder / "driver.log").read_text()
    assert proc.returncode == 0, log[-4000:]
    found = re.search(r"Connected to Spark cluster with app ID (app-\S+)", log)
    assert found, "the application never registered with the standalone master:\n" + log[-3000:]
    app_dir = standalone["work"] / found.group(1)
    return {"out": folder / "out", "log": log, "app_id": found.group(1), "app_dir": app_dir,
            "executor_dirs": sorted(p.parent for p in app_dir.glob("*/stderr"))}


README_BLOCK = re.compile(r"```bash\n(pip wheel --no-deps \. -w dist/.*?)```", re.S)
# What a site sets: README's own values, replaced by this cluster's; nothing else of the block changes.
README_VALUES = ("yarn", "hdfs:///corpora/hansard", "hdfs:///out/hansard", "/shared/models/group-appeal")


def _cluster_conf(folder: Path, **executor_env: str) -> Path:
    """A SPARK_CONF_DIR for the cluster's site settings (what spark-defaults.conf says on a real one).

    The executors run this interpreter with tests/support on PYTHONPATH: it cannot see the project.
    """
    conf = folder / "spark-conf"
    conf.mkdir()
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SUPPORT), **executor_env}
    lines = ["spark.executor.memory 1g", f"spark.pyspark.python {sys.executable}",
             *(f"spark.executorEnv.{k} {v}" for k, v in env.items())]
    (conf / "spark-defaults.conf").write_text("\n".join(lines) + "\n")
    return conf


def _copy_checkout(dest: Path) -> Path:
    """The checkout's tracked files (a fresh clone's worth), without any build or venv folders."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:  # no git: everything but what git would ignore here
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".ci-venv*", "build", "dist", "*.egg-info", "__pycache__", "out", "spark-warehouse"))
    return dest


@pytest.fixture(scope="module")
def readme_inputs(tmp_path_factory):
    """The corpus (examples/ as one parquet file, the block's default input format) and the models
    folder (the smoke test's tiny models, one folder per repo, as fetch-models lays them out)."""
    import pyarrow.json
    import pyarrow.parquet

    from group_appeal_spark.testing.smoke import tiny_model_overrides

    corpus = tmp_path_factory.mktemp("readme-corpus")
    pyarrow.parquet.write_table(pyarrow.json.read_json(ROOT / "examples" / "sample_corpus.jsonl"),
                                corpus / "part-0.parquet")
    return corpus, Path(next(iter(tiny_model_overrides().values()))).parent


def _readme_args(readme_inputs, out: Path) -> list[str]:
    """The job flags of README's block, with this cluster's input, output and models folder."""
    corpus, models = readme_inputs
    return ["--input", str(corpus), "--output", str(out), "--carry-cols", "party,speaker,date",
            "--models-dir", str(models)]


@pytest.fixture(scope="module")
def reference_runs(standalone, readme_inputs, spark, tmp_path_factory):
    """README's "On a cluster with spark-submit" block, run by bash in a copy of the checkout: the
    undisturbed cluster run, the reference of every test here; and the same job run locally.

    The local run (in the test session, models read in place: ship auto is path there) goes on
    while the cluster runs: each keeps about one core busy.
    """
    from group_appeal_spark.jobs import run as run_job

    block = README_BLOCK.search((ROOT / "docs" / "deploying.md").read_text(encoding="utf-8"))
    assert block, "docs/deploying.md has no spark-submit block starting with `pip wheel --no-deps . -w dist/`"
    script = block.group(1)
    folder = tmp_path_factory.mktemp("readme-run")
    checkout = _copy_checkout(folder / "checkout")
    corpus, models = readme_inputs
    for value, replacement in zip(README_VALUES, (standalone["master"], str(corpus), str(folder / "out"),
                                                  str(models)), strict=True):
        assert script.count(value) == 1, f"README's block no longer holds {value!r} once:\n{script}"
        script = script.replace(value, shlex.quote(replacement))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SPARK_CONF_DIR": str(_cluster_conf(folder)), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with open(folder / "driver.log", "w") as log:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=checkout, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        local = tmp_path_factory.mktemp("local-run") / "out"
        assert run_job.main(_readme_args(readme_inputs, local)) == 0
        return {**_finish(proc, standalone, folder, seconds=500), "checkout": checkout}, local
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster_run(reference_runs):
    return reference_runs[0]


@pytest.fixture(scope="module")
def local_run(reference_runs):
    return reference_runs[1]


def test_readme_spark_submit_block_runs_from_a_checkout(cluster_run):
    log = cluster_run["log"]
    summary = json.loads((cluster_run["out"] / "summary.json").read_text())
    assert summary["input_rows"] == 40 and summary["documents_ok"] == 40 and summary["mentions"] > 0
    assert (cluster_run["out"] / "_SUCCESS.json").is_file()
    # the driver ran the checkout's code, zipped it and shipped the zip; every executor fetched it once
    shipped = re.search(r"shipping this package to the executors as (group_appeal_spark-0\.1\.0-[0-9a-f]{12}\.zip) "
                        r"\(zipped from (\S+)\)", log)
    assert shipped, log[-4000:]
    assert Path(shipped.group(2)) == cluster_run["checkout"] / "group_appeal_spark"
    for folder in cluster_run["executor_dirs"]:
        assert FETCHED.findall((folder / "stderr").read_text()).count(shipped.group(1)) == 1


def test_an_executor_without_a_dependency_stops_the_job_at_start_up(standalone, wheel, readme_inputs, tmp_path):
    """No model work, no output: one line naming the missing module and the fix, exit 2."""
    proc = _submit(standalone, wheel, tmp_path, readme_inputs,
                   conf_dir=_cluster_conf(tmp_path, GAS_TEST_HIDE_MODULES="torch"))
    started = time.monotonic()
    proc.wait(timeout=300)
    seconds = time.monotonic() - started
    log = (tmp_path / "driver.log").read_text()
    assert proc.returncode == 2, log[-4000:]
    errors = [line for line in log.splitlines() if line.startswith("run: error:")]
    assert len(errors) == 1 and "lacks torch" in errors[0] and "--archives" in errors[0], log[-3000:]
    assert "Traceback" not in log
    assert "stage detect: started" not in log and "stage resolve-models" in log
    assert not (tmp_path / "out").exists()
    # session start, the probe's retried task attempts: seconds, not the job's minutes
    assert seconds < 90, seconds


def _mentions(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "mentions").sort_values(MENTION_KEYS).reset_index(drop=True)


def _by_key(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / table).sort_values("mention_key").reset_index(drop=True)


def _assert_same_outputs(got: Path, want: Path, atol: float) -> None:
    """mentions (every column), mention_embeddings and clusters agree; floats within ``atol``."""
    g, w = _mentions(got), _mentions(want)
    assert len(g) > 0 and sorted(g.columns) == sorted(w.columns)
    pd.testing.assert_frame_equal(g, w[g.columns.tolist()], check_exact=atol == 0, rtol=0, atol=atol)

    g, w = _by_key(got, "mention_embeddings"), _by_key(want, "mention_embeddings")
    pd.testing.assert_frame_equal(g.drop(columns="embedding"), w.drop(columns="embedding"))
    np.testing.assert_allclose(np.stack(g["embedding"]), np.stack(w["embedding"]), rtol=0, atol=atol)

    # k-means is seeded (clustering.random_state): the same embeddings give the same cluster ids
    g, w = _by_key(got, "clusters"), _by_key(want, "clusters")
    pd.testing.assert_frame_equal(g, w, check_exact=atol == 0, rtol=0, atol=atol)
    assert g["cluster_id"].nunique() >= 2


def test_spark_submit_master_wins_and_tasks_run_on_the_worker(standalone, cluster_run):
    log = cluster_run["log"]
    # the driver did not start a local executor of its own
    assert "Starting executor ID driver" not in log
    apps = [a["id"] for a in _master_state(standalone["ui"])["completedapps"] if a["name"] == APP_NAME]
    assert cluster_run["app_id"] in apps
    assert cluster_run["executor_dirs"], f"no executor folder under {cluster_run['app_dir']}"
    assert all("Running task" in (d / "stderr").read_text() for d in cluster_run["executor_dirs"])
    summary = json.loads((cluster_run["out"] / "summary.json").read_text())
    assert summary["input_rows"] == 40 and summary["documents_ok"] == 40
    assert summary["spark"]["master"] == standalone["master"]


def test_the_package_reaches_the_executors_only_as_the_wheel_shipped_as_a_zip(killed_run, wheel):
    run = killed_run[0]  # the job file alone: the package only from the wheel
    assert "shipping this package to the executors as " + wheel.stem + ".zip" in run["log"]
    for folder in run["executor_dirs"]:
        fetched = FETCHED.findall((folder / "stderr").read_text())
        assert fetched.count(wheel.stem + ".zip") == 1, fetched
        assert (folder / (wheel.stem + ".zip")).is_file()
        # nothing of the checkout in the executor's working folder: it holds only fetched files
        assert not list(folder.glob("*.py")) and not (folder / "group_appeal_spark").exists()


def test_outputs_equal_a_local_run(cluster_run, local_run):
    _assert_same_outputs(cluster_run["out"], local_run, atol=1e-6)


def test_each_executor_fetches_each_model_file_once(cluster_run):
    for folder in cluster_run["executor_dirs"]:
        fetched = collections.Counter(n for n in FETCHED.findall((folder / "stderr").read_text())
                                      if n.startswith("gas-models-"))
        assert fetched and set(fetched.values()) == {1}, fetched
        # SparkFiles' root is the executor's working folder: one laid-out bundle, whole
        bundles = [p for p in folder.glob("gas-models-*") if p.is_dir()]
        assert len(bundles) == 1, sorted(p.name for p in folder.iterdir())
        assert (bundles[0] / "_COMPLETE").is_file()
        assert not list(folder.glob(".gas-models-*")), "a half-built bundle folder was left behind"
        assert {p.name for p in bundles[0].iterdir() if p.is_dir()} == {
            "detector", "detector_tokenizer", "stance", "embedder", "embedder_config"}
        # every file of the layout is one of the fetched files, and every fetched file is used
        linked = {Path(os.readlink(p)) for p in bundles[0].rglob("*") if p.is_symlink()}
        assert {p.name for p in linked} == set(fetched)
        assert all(p.parent == folder and p.is_file() for p in linked)


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command line, CPU ticks used) of every process on this machine."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
        table[int(entry.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]))
    return table


def _model_workers(worker_pid: int) -> tuple[dict[int, int], list[int], set[str]]:
    """This cluster's Python workers that have loaded torch ({pid: CPU ticks}), their daemons, the apps.

    The chain is the standalone worker JVM -> the executor JVM (CoarseGrainedExecutorBackend)
    -> ``pyspark.daemon`` -> the workers it forks (``spark.python.worker.reuse``). The test
    session's own local-mode workers hang from its own driver JVM, never from this chain. torch
    is imported only inside the model UDFs, so a worker with libtorch mapped runs (or ran) models.
    """
    table = _processes()
    executors = {pid: cmd for pid, (ppid, cmd, _) in table.items()
                 if ppid == worker_pid and "CoarseGrainedExecutorBackend" in cmd}
    apps = {m.group(1) for cmd in executors.values() for m in [re.search(r"--app-id (\S+)", cmd)] if m}
    daemons = [pid for pid, (ppid, cmd, _) in table.items() if ppid in executors and "pyspark.daemon" in cmd]
    workers = {}
    for pid, (ppid, _, ticks) in table.items():
        if ppid in daemons:
            try:
                if "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                    workers[pid] = ticks
            except OSError:
                pass
    return workers, daemons, apps


def _running_tids(stderr: Path) -> dict[str, str]:
    """TID -> "task T in stage S" of the tasks the executor log shows started and not finished."""
    text = stderr.read_text() if stderr.is_file() else ""
    done = set(FINISHED.findall(text))
    return {tid: f"task {task} in stage {stage}" for task, stage, tid in RUNNING.findall(text) if tid not in done}


@pytest.fixture(scope="module")
def killed_run(standalone, wheel, readme_inputs, cluster_run, tmp_path_factory):
    """The job file alone with the wheel (cluster deploy mode's view), a model-running Python
    worker killed midway; returns (the run, (killed pid, tasks running then, the daemons))."""
    tmp_path = tmp_path_factory.mktemp("killed-run")
    proc = _submit(standalone, wheel, tmp_path, readme_inputs)
    killed = None
    try:
        deadline = time.monotonic() + 300
        seen: dict[int, int] = {}
        while killed is None:
            assert proc.poll() is None, ("the job ended before a Python worker ran the models:\n"
                                         + (tmp_path / "driver.log").read_text()[-3000:])
            assert time.monotonic() < deadline, "no Python worker of the cluster ever loaded the models"
            workers, daemons, apps = _model_workers(standalone["worker_pid"])
            # busy: it used CPU since the last look, so it is inside a task, not idle in the pool
            busy = [pid for pid, ticks in workers.items() if pid in seen and ticks > seen[pid]]
            stderrs = [p for app in apps for p in (standalone["work"] / app).glob("*/stderr")]
            running = {tid: what for s in stderrs for tid, what in _running_tids(s).items()}
            if busy and running:
                os.kill(busy[0], signal.SIGKILL)
                killed = (busy[0], running, daemons)
            seen = workers
            time.sleep(0.2)
        # the executors' Python workers run the interpreter that cannot see the project
        for daemon in killed[2]:
            environ = Path(f"/proc/{daemon}/environ").read_bytes().split(b"\0")
            assert any(v.startswith(b"PYTHONPATH=") and str(SUPPORT).encode() in v for v in environ), environ
        return _finish(proc, standalone, tmp_path), killed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_python_worker_killed_while_it_runs_the_models_costs_one_task_attempt(killed_run, cluster_run):
    run, (pid, running, _) = killed_run
    log = run["log"]
    # the task that was running when the worker died was lost, then retried and the job went on
    lost = re.findall(r"Lost task (\S+) in stage (\S+) \(TID (\d+)\)", log)
    assert lost, f"killed worker {pid} while {sorted(running.values())} ran, but no task was lost:\n" + log[-3000:]
    assert {tid for _, _, tid in lost} <= set(running), (lost, running)
    assert "Python worker exited unexpectedly" in log
    # and it was lost inside a model stage of the job (the jobs log where each stage starts)
    before = log[:log.index("Lost task")]
    assert re.findall(r"group_appeal_spark: stage (\S+): started", before)[-1] in ("detect", "embed"), before[-3000:]
    executor_logs = "".join((d / "stderr").read_text() for d in run["executor_dirs"])
    for task, stage, _ in lost:
        attempt = task.rsplit(".", 1)
        retry = f"{attempt[0]}.{int(attempt[1]) + 1}"
        assert f"Running task {retry} in stage {stage}" in executor_logs, f"task {task} of stage {stage} not retried"
        assert f"Finished task {retry} in stage {stage}" in executor_logs
    # the new Python worker found the models already on the executor: still fetched once each
    for folder in run["executor_dirs"]:
        fetched = collections.Counter(FETCHED.findall((folder / "stderr").read_text()))
        assert fetched and set(fetched.values()) == {1}, fetched
    _assert_same_outputs(run["out"], cluster_run["out"], atol=0)
