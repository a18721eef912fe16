"""The Spark side of validation (``sample``, ``validate``): strata of ``segments/``, a stratified
random draw that is the same on any cluster, the coded segments' rows, and the predicted sums
per group that the DSL estimates are made from. No I/O; the statistics are in ``lib/validation``.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from group_appeal_spark.jobs.transforms.columns import DOC_ID
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.dsl import CROSS_PAIRS, MEASURES

HAS_MENTION = "has_mention"  # a derived stratum column: 1 where the models found a mention in the segment
MAX_STRATA = 10_000


def _predicted() -> dict:
    """Each segment's value of every measure of lib's DSL, from the models' counts (columns need a session)."""
    return {"has_mention": (F.col("n_mentions") > 0).cast("double"), "mentions": F.col("n_mentions").cast("double"),
            "positive": F.col("n_positive").cast("double"), "negative": F.col("n_negative").cast("double")}


def with_has_mention(segments: DataFrame) -> DataFrame:
    """``segments`` with ``has_mention`` (int 0/1) for strata."""
    return segments.withColumn(HAS_MENTION, (F.col("n_mentions") > 0).cast("int"))


def check_strata(segments: DataFrame, strata: list[str]) -> None:
    """Every stratum column is a column of ``segments/`` (the carried ones) or ``has_mention``."""
    allowed = [c for c in segments.columns if c not in ("seg_idx", "seg_start", "seg_end", "n_tokens",
                                                          "segment_text")]
    unknown = [c for c in strata if c not in allowed and c != HAS_MENTION]
    if unknown:
        raise InputError(f"--strata: {unknown} not in segments/; choose from {[*allowed, HAS_MENTION]} (the "
                         f"carried columns, doc_id, n_mentions..., or has_mention)")
    if len(set(strata)) != len(strata):
        raise InputError(f"--strata: {strata} names a column twice")


def check_unique_segments(segments: DataFrame) -> None:
    """A segment is found again by (doc_id, seg_idx): rows that share both cannot be told apart."""
    row = segments.agg(F.count(F.lit(1)).alias("n"),
                       F.count_distinct(F.col(DOC_ID).cast("string"), "seg_idx").alias("keys"),
                       F.count(F.when(F.col(DOC_ID).isNull(), 1)).alias("null_ids")).first()
    if row["n"] != row["keys"] or row["null_ids"]:
        raise InputError(f"segments/ has {row['n'] - row['keys']:,} rows whose (doc_id, seg_idx) another row has, and "
                         f"{row['null_ids']:,} without a doc_id: a coded segment could not be found again. Run the "
                         f"models again with input.duplicate_ids: first (or error), and an id for every row")


def stratum_sizes(segments: DataFrame, strata: list[str]) -> dict[tuple, int]:
    """Segments per stratum (a tuple of the strata columns' values; ``()`` without strata)."""
    rows = segments.groupBy(*strata).count().limit(MAX_STRATA + 1).collect()
    if len(rows) > MAX_STRATA:
        raise InputError(f"--strata {','.join(strata)}: more than {MAX_STRATA:,} strata; stratify by fewer or "
                         f"coarser columns (e.g. party, not speaker)")
    return {tuple(r[c] for c in strata): r["count"] for r in rows}


def _uniform(seed: int):
    """A number in [0, 1) per segment, from a hash of the seed, its doc_id and seg_idx: the same
    on every partitioning and cluster, so the draw is reproducible from the seed alone."""
    h = F.xxhash64(F.lit(int(seed)), F.col(DOC_ID).cast("string"), F.col("seg_idx"))
    return (F.pmod(h, F.lit(2 ** 53)).cast("double") / float(2 ** 53))


def draw(segments: DataFrame, strata: list[str], allocated: dict[tuple, int], pi: dict[tuple, float],
         seed: int) -> DataFrame:
    """A simple random sample without replacement of ``allocated[h]`` segments in each stratum ``h``.

    Each segment gets a pseudo-random number from a hash (``_uniform``); a stratum's sample is
    its ``n_h`` segments with the smallest numbers, which makes every subset of ``n_h`` equally
    likely. Adds ``u`` and ``pi`` (the stratum's inclusion probability ``n_h / N_h``). Only the
    segments below a per-stratum threshold a little above ``n_h / N_h`` are ranked, so an archive
    is never sorted whole; a stratum left short by the threshold (a chance below 1e-9) is ranked
    in full.
    """
    spark = segments.sparkSession
    fields = [T.StructField(f"_s{i}", segments.schema[c].dataType) for i, c in enumerate(strata)]
    plan_schema = T.StructType([*fields, T.StructField("_n", T.LongType()), T.StructField("_pi", T.DoubleType()),
                                T.StructField("_cut", T.DoubleType())])
    sizes = stratum_sizes(segments, strata)
    rows = []
    for key, n_h in allocated.items():
        if n_h:
            big = sizes[key]
            rows.append((*key, n_h, pi[key], min(1.0, (n_h + 6 * math.sqrt(n_h) + 20) / big)))
    plan = spark.createDataFrame(rows, plan_schema)
    cond = [F.col(c).eqNullSafe(F.col(f"_s{i}")) for i, c in enumerate(strata)] or F.lit(True)
    keyed = segments.withColumn("u", _uniform(seed)).join(F.broadcast(plan), cond, "inner")

    def ranked(candidates):
        order = Window.partitionBy(*[f"_s{i}" for i in range(len(strata))]).orderBy(
            "u", F.col(DOC_ID).cast("string"), "seg_idx")
        return candidates.withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= F.col("_n"))

    sample = ranked(keyed.where(F.col("u") < F.col("_cut")))
    if sample.count() != sum(allocated.values()):
        sample = ranked(keyed)
    return sample.withColumnRenamed("_pi", "pi").drop("_r", "_n", "_cut", *[f"_s{i}" for i in range(len(strata))])


def rows_of(table: DataFrame, keys: list[tuple[str, int]]) -> DataFrame:
    """The rows of ``table`` (segments/ or mentions/) whose (doc_id as text, seg_idx) is in ``keys``."""
    spark = table.sparkSession
    wanted = spark.createDataFrame(keys, "_doc string, _seg int")
    cond = (F.col(DOC_ID).cast("string") == F.col("_doc")) & (F.col("seg_idx") == F.col("_seg"))
    return table.join(F.broadcast(wanted), cond, "left_semi")


def predicted_sums(segments: DataFrame, groups: list[str]) -> list[dict]:
    """Per value of ``groups``: ``n`` (segments), ``s`` (the sum of each predicted measure, in
    lib's ``MEASURES`` order) and ``q`` (the sums of every pair's product), one pass over segments."""
    y = _predicted()
    aggs = [F.count(F.lit(1)).alias("_n"), *[F.sum(y[a]).alias(f"_s_{a}") for a in MEASURES],
            *[F.sum(y[a] * y[b]).alias(f"_q_{a}_{b}") for a, b in CROSS_PAIRS]]
    out = []
    for r in segments.groupBy(*groups).agg(*aggs).collect():
        s = [float(r[f"_s_{a}"] or 0.0) for a in MEASURES]
        q = [[0.0] * len(MEASURES) for _ in MEASURES]
        for a, b in CROSS_PAIRS:
            i, j = MEASURES.index(a), MEASURES.index(b)
            q[i][j] = q[j][i] = float(r[f"_q_{a}_{b}"] or 0.0)
        out.append({"group": tuple(r[g] for g in groups), "n": r["_n"], "s": s, "q": q})
    return out
