"""A small input is dealt to the model tasks by length: tasks of the same work, in exact partitions."""

import json
import random

import pandas as pd
import pytest
from group_appeal_spark.jobs.transforms import deal
from group_appeal_spark.jobs.transforms.appeals import spread_for_models
from pyspark.sql import functions as F

pytestmark = pytest.mark.spark


def test_the_hash_is_sparks(spark):
    rng = random.Random(5)
    values = [0, 1, 2, -1, 7, 2**31 - 1, -(2**31)] + [rng.randint(-(2**31), 2**31 - 1) for _ in range(300)]
    rows = spark.createDataFrame([(v,) for v in values], "v int").select("v", F.hash("v").alias("h")).collect()
    assert [deal.spark_int_hash(r.v) for r in rows] == [r.h for r in rows]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_each_key_lands_in_its_partition(spark, n):
    keys = deal.partition_keys(n)
    assert len(set(keys)) == n
    rows = spark.createDataFrame(list(enumerate(keys)), "p int, k int").repartition(n, "k") \
        .select("p", F.spark_partition_id().alias("landed")).collect()
    assert sorted((r.p, r.landed) for r in rows) == [(p, p) for p in range(n)]


def test_partition_keys_refuse_no_partitions():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        deal.partition_keys(0)


def test_serpentine_by_hand(spark):
    ranks = spark.range(10).select(deal.serpentine_seat(F.col("id"), 3).alias("seat"))
    assert [r.seat for r in ranks.collect()] == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2]


def _skewed_docs(spark, n=301, seed=11):
    rng = random.Random(seed)
    texts = ["w " * max(1, int(rng.lognormvariate(3.6, 0.9))) for _ in range(n)]
    texts[17] = None  # a row already known bad: no text, no work
    return spark.createDataFrame(pd.DataFrame({"id": [f"d{i}" for i in range(n)], "text": texts}))


@pytest.mark.parametrize("n", [2, 3])
def test_the_deal_evens_the_tasks(spark, n):
    docs = _skewed_docs(spark)
    lengths = [len(t or "") for t in docs.toPandas().text]
    dealt = spread_for_models(docs, n, "id", sort_by="text", deal_by="text") \
        .withColumn("part", F.spark_partition_id())
    rows = dealt.collect()
    assert sorted(r.id for r in rows) == sorted(docs.toPandas().id), "every row once"
    per_part = pd.DataFrame([(r.part, len(r.text or "")) for r in rows], columns=["part", "chars"]) \
        .groupby("part").chars.agg(["count", "sum"])
    assert len(per_part) == n
    assert per_part["count"].max() - per_part["count"].min() <= 1
    # a serpentine deal of lengths sorted longest first: the totals differ by at most the longest
    assert per_part["sum"].max() - per_part["sum"].min() <= max(lengths)
    hashed = docs.repartition(n, "id").groupBy(F.spark_partition_id().alias("p")) \
        .agg(F.sum(F.coalesce(F.length("text"), F.lit(0))).alias("s")).toPandas()
    assert per_part["sum"].max() <= hashed.s.max(), "never worse than the hash split"
    for part in range(n):  # each task still ordered by length
        mine = [len(r.text or "") for r in rows if r.part == part]
        assert mine == sorted(mine)
    again = spread_for_models(docs, n, "id", sort_by="text", deal_by="text") \
        .withColumn("part", F.spark_partition_id()).collect()
    assert [(r.id, r.part) for r in again] == [(r.id, r.part) for r in rows], "the same deal on a rerun"


def test_small_input_reads_the_plan_estimate(spark, tmp_path, monkeypatch):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": "farmers " * i}) + "\n" for i in range(50)))
    scan = spark.read.json(str(path))
    assert deal.small_input(scan)
    monkeypatch.setattr(deal, "DEAL_BELOW_BYTES", path.stat().st_size // 2)
    assert not deal.small_input(scan), "a file scan's estimate is its files' size"
