"""The pipeline stages on a real local Spark Connect server: a fit there is the classic fit, and a
PipelineModel saved there loads and transforms alike on Connect and on a classic session.

As in tests/jobs/test_connect.py, the Connect side runs in a child process (pyspark refuses a
Connect session beside a classic one): this file run as a script.
"""

import os
import subprocess
import sys
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


@pytest.fixture(scope="module")
def connect_url(connect_server):
    """The test session's local Spark Connect server (tests/conftest.py), up: its sc:// URL."""
    from servers import wait_for_connect

    url, server, log = connect_server
    wait_for_connect(url, server, log)
    return url


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
