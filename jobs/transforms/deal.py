"""Dealing a small input's documents to the model tasks by length, so the tasks finish together.

A hash split of a few hundred sentences over two tasks gives them about the same number of rows
but not the same work: on real-length sentences (p10 / p90 of 29 / 201 characters) one task of a
450-sentence run took 106 s and the other 78 s, a core idle for a fifth of the stage. Sorted by
length and dealt out in a serpentine (0, 1, ..., n-1, n-1, ..., 1, 0, 0, 1, ...), the tasks'
character totals differ by at most the longest text's.

The deal ranks every row in one window, a single task: worth it only where the rows are few. It
is used where Spark's size estimate of the input plan (known on a classic session without running
anything: the files' sizes for a file scan) is below :data:`DEAL_BELOW_BYTES`; larger inputs keep
the hash split, whose imbalance shrinks with the number of rows per task.
"""

from __future__ import annotations

import logging

from group_appeal_spark.jobs.session import is_connect
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

log = logging.getLogger("group_appeal_spark")

# about 500,000 real-length sentences of JSON lines: ranked in one task in a few seconds, a
# small part of the hours the models then take over them
DEAL_BELOW_BYTES = 64 * 1024 * 1024
# the seed of Spark's Murmur3Hash, the hash that repartition(n, column) partitions by
_SPARK_HASH_SEED = 42
_M32 = 0xFFFFFFFF


def small_input(df: DataFrame) -> bool:
    """Whether Spark's size estimate of ``df``'s plan is below :data:`DEAL_BELOW_BYTES`.

    False on Spark Connect (the client has no plan statistics) and where the estimate is unknown
    (Spark then reports its default, far above the threshold).
    """
    if is_connect(df.sparkSession):
        return False
    try:
        size = int(str(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))  # a BigInt
    except Exception as exc:  # a plan Spark cannot estimate: keep the hash split
        log.debug("no size estimate of the input plan (%s): hash split", exc)
        return False
    return size < DEAL_BELOW_BYTES


def spark_int_hash(value: int, seed: int = _SPARK_HASH_SEED) -> int:
    """Spark's ``hash()`` of an int column's value: Murmur3 x86 32-bit of its 4 bytes (a signed int)."""

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & _M32

    k1 = rotl((value & _M32) * 0xCC9E2D51 & _M32, 15) * 0x1B873593 & _M32
    h1 = (rotl(seed ^ k1, 13) * 5 + 0xE6546B64) & _M32
    h1 ^= 4  # the length in bytes
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & _M32
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & _M32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >= 1 << 31 else h1


def partition_keys(n: int) -> list[int]:
    """For each partition p of ``n``, the smallest int whose row ``repartition(n, column)`` sends to p.

    Spark's hash partitioning puts a row in ``pmod(hash(key), n)``: the integers 0..n-1 as keys
    would collide, these do not.
    """
    if n < 1:
        raise ValueError(f"partition_keys: n must be >= 1, got {n}")
    keys: dict[int, int] = {}
    value = 0
    while len(keys) < n:
        keys.setdefault(spark_int_hash(value) % n, value)  # Python's % of a positive n is pmod
        value += 1
    return [keys[p] for p in range(n)]


def serpentine_seat(rank: Column, n: int) -> Column:
    """The task of the ``rank``-th row (from 0) of a deal in laps of ``n``: forward, then back."""
    lap, seat = F.floor(rank / n), F.pmod(rank, F.lit(n))
    return F.when(F.pmod(lap, F.lit(2)) == 0, seat).otherwise(F.lit(n - 1) - seat)


def deal_by_length(df: DataFrame, n: int, by: str, order: list[Column]) -> DataFrame:
    """``df`` in ``n`` partitions, dealt by the length of ``by`` (longest first; ``order`` breaks ties).

    Partition p gets exactly the rows of seat p (:func:`serpentine_seat`): the rows carry the
    partition's key of :func:`partition_keys` through a hash repartition, which adaptive execution
    keeps at ``n`` partitions as for any repartition to a number.
    """
    # partitioned by a constant, not unpartitioned: the same one task without Spark's warning
    # that all data moves to a single partition, which here is the point
    window = Window.partitionBy(F.lit(0)).orderBy(F.coalesce(F.length(by), F.lit(0)).desc(), *order)
    seat = serpentine_seat(F.row_number().over(window) - 1, n)
    keys = F.array(*[F.lit(k) for k in partition_keys(n)])
    return df.withColumn("__deal", F.element_at(keys, (seat + 1).cast("int"))) \
        .repartition(n, "__deal").drop("__deal")
