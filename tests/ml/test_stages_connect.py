"""The pipeline stages on a real local Spark Connect server: a fit there is the classic fit, and a
PipelineModel saved there loads and transforms alike on Connect and on a classic session.

As in tests/jobs/test_connect.py, the Connect side runs in a child process (pyspark refuses a
Connect session beside a classic one): this file run as a script.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paths import TESTS

pytestmark = pytest.mark.spark


def _pipeline():
    from pyspark.ml import Pipeline

    from group_appeal_spark.ml import AppealDetector, MentionClusterer, MentionEmbedder

    return Pipeline(stages=[AppealDetector(detectBatchSize=8), MentionEmbedder(), MentionClusterer(kMin=2, kMax=4)])


def _by_key(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("mention_key", kind="stable").reset_index(drop=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory, hub_cache):
    """A local[2] Spark Connect server of the installed pyspark, up: its sc:// URL."""
    import pyspark

    port, home = _free_port(), Path(pyspark.__file__).parent
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "PYSPARK_GATEWAY_PORT")}
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable, SPARK_HOME=str(home))
    log = tmp_path_factory.mktemp("ml-connect-server") / "server.log"
    cmd = [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--master", "local[2]", "--driver-memory", "1g", "--conf", f"spark.connect.grpc.binding.port={port}",
           "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", "spark.ui.enabled=false",
           "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.default.parallelism=2", "spark-internal"]
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        for _ in range(120):
            if server.poll() is not None:
                pytest.fail(f"the Connect server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spark):
    from sentences import sentences

    folder = tmp_path_factory.mktemp("ml-connect-corpus")
    texts = sentences(14, seed=5)
    docs = pd.DataFrame({"id": [f"c{i:02d}" for i in range(len(texts))], "text": texts, "party": ["A", "B"] * 7})
    spark.createDataFrame(docs).repartition(2).write.parquet(str(folder / "docs"))
    return folder / "docs"


@pytest.fixture(scope="module")
def connect_side(tmp_path_factory, connect_url, corpus):
    work = tmp_path_factory.mktemp("ml-connect-side")
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_GATEWAY_PORT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, connect_url, str(work), str(corpus)], env=env,
                          capture_output=True, text=True, timeout=400, cwd=Path(__file__).parent, check=False)
    assert done.returncode == 0, done.stderr[-5000:]
    return work


def test_a_pipeline_fitted_on_connect_is_the_classic_fit(connect_side, corpus, spark):
    from group_appeal_spark.lib.clustering.model import load_cluster_model

    classic = _pipeline().fit(spark.read.parquet(str(corpus))).stages[-1].cluster_model
    (folder,) = (connect_side / "model" / "stages").glob("2_MentionClusterModel_*")
    on_connect = load_cluster_model(folder / "cluster_model")
    assert on_connect.k == classic.k
    # the sessions spread the mentions over other model batches: embeddings, so centroids, to 1 ulp
    np.testing.assert_allclose(on_connect.centroids, classic.centroids, rtol=0, atol=1e-6)
    assert on_connect.mention_keys == classic.mention_keys and on_connect.labels == classic.labels
    assert np.array_equal(on_connect.key_cluster_ids, classic.key_cluster_ids)


def test_saved_on_connect_loads_and_transforms_alike_on_both_sessions(connect_side, corpus, spark):
    from pyspark.ml import PipelineModel

    loaded = PipelineModel.load(str(connect_side / "model"))
    assert [type(s).__name__ for s in loaded.stages] == ["AppealDetector", "MentionEmbedder", "MentionClusterModel"]
    classic = _by_key(loaded.transform(spark.read.parquet(str(corpus))).toPandas())
    assert len(classic) > 5
    pd.testing.assert_frame_equal(_by_key(pd.read_parquet(connect_side / "loaded.parquet")), classic)


def _connect_side(url: str, work: str, corpus: str) -> None:
    """The child: fit and save the pipeline on the Connect server at ``url``, load it there and transform."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).getOrCreate()
    docs = spark.read.parquet(corpus)
    _pipeline().fit(docs).write().overwrite().save(os.path.join(work, "model"))
    table = PipelineModel.load(os.path.join(work, "model")).transform(docs).toPandas()
    table.attrs.clear()  # Connect's plan metrics: not for a parquet file's metadata
    table.to_parquet(os.path.join(work, "loaded.parquet"))
    spark.stop()


if __name__ == "__main__":
    _connect_side(*sys.argv[1:4])
