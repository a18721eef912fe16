"""The model UDFs use every task slot: a one-partition input is spread, each task sorted by length."""

import os

import pandas as pd
import pytest
from group_appeal_spark.jobs import transforms
from group_appeal_spark.jobs.transforms.appeals import model_partitions, spread_for_models
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks
from pyspark.sql import functions as F
from sentences import sentences

pytestmark = pytest.mark.spark


def _record_partitions(folder):
    """A ``before_batch`` hook writing "<stage> <partition id>" lines (nested: cloudpickle ships it)."""
    folder = str(folder)

    def before_batch(stage: str) -> None:
        from pyspark import TaskContext

        with open(os.path.join(folder, f"batches-{os.getpid()}.txt"), "a", encoding="utf-8") as fh:
            fh.write(f"{stage} {TaskContext.get().partitionId()}\n")

    return before_batch


def _partitions_seen(folder, stage):
    lines = [line.split() for f in folder.glob("batches-*.txt") for line in f.read_text().splitlines()]
    return {int(p) for s, p in lines if s == stage}


@pytest.fixture(scope="module")
def one_partition_docs(spark):
    texts = sentences(40, seed=21)
    rows = [{"id": f"d{i:02d}", "text": t} for i, t in enumerate(texts)] + [{"id": "blank", "text": " "}]
    return spark.createDataFrame(pd.DataFrame(rows)).coalesce(1)


def _sorted(frame):
    return frame.sort_values(list(frame.columns[:4])).reset_index(drop=True)


def test_partitions_follow_the_config_and_the_session(spark):
    assert spark.sparkContext.defaultParallelism == 2
    config = load_config()
    small = spark.range(10).coalesce(1)
    assert model_partitions(spark, config, small) == 2, "at least the task slots"
    five = spark.range(0, 100, 1, numPartitions=5)  # a source of 5 partitions, no shuffle
    assert model_partitions(spark, config, five) == 5, "never fewer than the input's own partitions"
    shuffled = spark.range(100).groupBy((F.col("id") % 7).alias("k")).count()
    assert model_partitions(spark, config, shuffled) == 2, "a plan with a shuffle is not run to count"
    assert model_partitions(spark, load_config(overrides={"inference.partitions": 7}), five) == 7


def test_each_task_is_ordered_by_length(spark):
    texts = sentences(30, seed=3)
    df = spark.createDataFrame(pd.DataFrame({"id": range(len(texts)), "text": texts})).coalesce(1)
    spread = spread_for_models(df, 3, "id", sort_by="text").withColumn("part", F.spark_partition_id())
    rows = spread.collect()  # partitions in order, each in its own row order
    assert len(rows) == len(texts) and len({r.part for r in rows}) == 3
    for part in {r.part for r in rows}:
        lengths = [len(r.text) for r in rows if r.part == part]
        assert lengths == sorted(lengths)


def test_one_partition_input_runs_in_every_task_slot_with_the_same_results(spark, hub_cache, one_partition_docs,
                                                                           tmp_path):
    config = load_config(overrides={"clustering.k_max": 3, "inference.sort_by_length": True})
    bundle = ModelBundle.resolve(config)
    spread_log = tmp_path / "spread"
    spread_log.mkdir()
    hooks = UdfHooks(before_batch=_record_partitions(spread_log))
    spread = transforms.detect_appeals(one_partition_docs, config, bundle=bundle, hooks=hooks)
    mentions, documents = spread.mentions.toPandas(), spread.documents.toPandas()
    embeddings = transforms.embed_mentions(spread.mentions, config, bundle=bundle, hooks=hooks).toPandas()
    assert _partitions_seen(spread_log, "appeals") == {0, 1}
    assert _partitions_seen(spread_log, "embed") == {0, 1}

    # the input's one partition, in input order
    plain_config = load_config(overrides={"inference.partitions": 1, "inference.sort_by_length": False})
    plain_log = tmp_path / "plain"
    plain_log.mkdir()
    plain = transforms.detect_appeals(one_partition_docs, plain_config, bundle=bundle,
                                      hooks=UdfHooks(before_batch=_record_partitions(plain_log)))
    plain_mentions, plain_documents = plain.mentions.toPandas(), plain.documents.toPandas()
    assert _partitions_seen(plain_log, "appeals") == {0}
    assert len(documents) == one_partition_docs.count() == len(plain_documents)
    assert len(mentions) > 0
    pd.testing.assert_frame_equal(_sorted(mentions), _sorted(plain_mentions), check_exact=False,
                                  atol=1e-5)
    pd.testing.assert_frame_equal(_sorted(documents), _sorted(plain_documents))
    plain_embeddings = transforms.embed_mentions(plain.mentions, plain_config, bundle=bundle).toPandas()
    assert sorted(embeddings.mention_key) == sorted(plain_embeddings.mention_key)
    for frame in (spread, plain):
        frame.release()
