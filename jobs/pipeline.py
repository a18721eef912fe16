"""The DataFrame transforms of the jobs, usable directly from a notebook.

>>> from group_appeal_spark import detect_appeals, embed_mentions, cluster_mentions
>>> appeals = detect_appeals(docs_df, config)            # mentions + errors DataFrames
>>> embeddings = embed_mentions(appeals.mentions, config)
>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames

Transforms do no I/O of their own: reading and writing are in ``jobs/io.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from group_appeal_spark.jobs.io import INPUT_ERROR, valid_utf8
from group_appeal_spark.lib.bundle import ModelBundle
from group_appeal_spark.lib.cluster import MentionKMeans, search_k
from group_appeal_spark.lib.config import JobConfig, load_config
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.udfs.appeals import make_appeals_udf
from group_appeal_spark.udfs.embed import make_embed_udf
from group_appeal_spark.udfs.shipping import ship_models

log = logging.getLogger("group_appeal_spark")

DOC_ID = "doc_id"
APPEALS_ARRAY = ("array<struct<seg_idx:int,span:string,start:int,end:int,stance:string,prob_positive:double,"
                 "prob_negative:double,prob_neutral:double,mention_key:string>>")
MENTION_COLUMNS = ["seg_idx", "span", "start", "end", "stance", "prob_positive", "prob_negative",
                   "prob_neutral", "mention_key"]


@dataclasses.dataclass
class AppealsResult:
    """What ``detect_appeals`` returns: lazily computed tables over one cached pass of the models."""

    mentions: DataFrame  # doc_id, carried columns, seg_idx, span, start, end, stance, prob_*, mention_key
    errors: DataFrame    # doc_id, carried columns, stage, error
    documents: DataFrame  # doc_id, n_segments, n_mentions, error: one row per input row (cached)
    cached: DataFrame | None = None  # the persisted model results behind the three

    def release(self) -> None:
        """Drop the cached model results once the tables are written."""
        if self.cached is not None:
            self.cached.unpersist()


@dataclasses.dataclass
class ClusterResult:
    clusters: DataFrame   # mention_key, mention, count, cluster_id, distance_to_centroid
    k_search: DataFrame   # k, metric, score, estimated, n_points, chosen
    best_k: int | None
    skipped: str | None = None  # why there is no clustering (too few unique mentions)


def _config(config) -> JobConfig:
    return config if isinstance(config, JobConfig) else load_config(overrides=config or {})


def prepare_documents(df: DataFrame, config: JobConfig) -> DataFrame:
    """Check the input columns and give each row its ``doc_id``; keeps text and carried columns.

    ``doc_id`` is the id column's value (its type kept). Without an id column it is made from
    the content: the first 16 hex digits of the text's SHA-256 and the row's rank among rows
    with the same text (ordered by all their columns), so it does not depend on partitioning,
    file order or retries. A row with a null id, or text that is not valid UTF-8, is withheld
    from the models and reported.

    Returns
    -------
    DataFrame
        ``doc_id``, ``__text`` (null where the row is already known bad), carried columns,
        ``__input_error`` (the reason, or null).
    """
    cfg = config.input
    missing = [c for c in [cfg.text_col, *cfg.carry_cols] if c not in df.columns]
    if missing:
        raise InputError(
            f"input: column(s) {', '.join(map(repr, missing))} not found; the input has: {', '.join(df.columns)}. "
            f"Set --text-col / --carry-cols (input.text_col / input.carry_cols)")
    text = F.col(cfg.text_col)
    text_type = df.schema[cfg.text_col].dataType.simpleString()
    if text_type != "string":
        raise InputError(f"input: column {cfg.text_col!r} has type {text_type}; expected text (string)")
    error = F.col(INPUT_ERROR) if INPUT_ERROR in df.columns else F.lit(None).cast("string")
    if cfg.id_col in df.columns:
        error = F.coalesce(error, F.when(F.col(cfg.id_col).isNull(), F.lit(f"missing document id ({cfg.id_col})")))
        doc_id = F.col(cfg.id_col)
    else:
        source_cols = [c for c in df.columns if c != INPUT_ERROR]
        df = df.withColumn("__hash", F.substring(F.sha2(F.coalesce(text, F.lit("")), 256), 1, 16))
        order = Window.partitionBy("__hash").orderBy(*[F.col(c).asc_nulls_first() for c in source_cols])
        doc_id = F.concat(F.col("__hash"), F.lit("-"), F.row_number().over(order).cast("string"))
    error = F.coalesce(error, F.when(~valid_utf8(text), F.lit("invalid UTF-8 in text")))
    carried = [F.col(c) for c in cfg.carry_cols if c not in (cfg.text_col, cfg.id_col)]
    return df.withColumn("__error", error).select(
        doc_id.alias(DOC_ID), F.when(F.col("__error").isNull(), text).alias("__text"), *carried,
        F.col("__error").alias(INPUT_ERROR))


def carried_columns(config: JobConfig) -> list[str]:
    cfg = config.input
    return [c for c in cfg.carry_cols if c not in (cfg.text_col, cfg.id_col)]


def detect_appeals(df: DataFrame, config=None, *, bundle: ModelBundle | None = None,
                   chunk: tuple[int, int] | None = None) -> AppealsResult:
    """Find the group appeals of every document of ``df``.

    Parameters
    ----------
    df : DataFrame
        Documents with the text column (``input.text_col``), optionally the id column and the
        carried columns.
    config : JobConfig or dict of dotted overrides, optional
    bundle : ModelBundle, optional
        Already resolved models; resolved from ``config`` when omitted.
    chunk : (index, count), optional
        Only the documents whose id hashes to chunk ``index`` of ``count``.
    """
    config = _config(config)
    spark = df.sparkSession
    docs = prepare_documents(df, config)
    if chunk is not None and chunk[1] > 1:
        docs = docs.where(F.pmod(F.xxhash64(DOC_ID), F.lit(chunk[1])) == chunk[0])
    carried = carried_columns(config)
    bundle = ship_models(spark, bundle or ModelBundle.resolve(config), config.models.ship)
    find = make_appeals_udf(bundle)
    # A row already known bad reaches the UDF as null (Spark evaluates a Python UDF on every
    # row, even under when()), and its own reason replaces the UDF's.
    known_bad = F.struct(F.array().cast(APPEALS_ARRAY).alias("appeals"), F.lit(0).alias("n_segments"),
                         F.col(INPUT_ERROR).alias("error"), F.lit("input").alias("error_stage"))
    results = docs.select(DOC_ID, *carried, INPUT_ERROR, find(F.col("__text")).alias("r0")).select(
        DOC_ID, *carried, F.when(F.col(INPUT_ERROR).isNotNull(), known_bad).otherwise(F.col("r0")).alias("r"))
    # One pass of the models feeds mentions, errors and the counts.
    results = results.persist(StorageLevel.MEMORY_AND_DISK)
    mentions = results.select(DOC_ID, *carried, F.explode("r.appeals").alias("a")) \
        .select(DOC_ID, *carried, *[F.col(f"a.{c}").alias(c) for c in MENTION_COLUMNS])
    errors = results.where(F.col("r.error").isNotNull()) \
        .select(DOC_ID, *carried, F.col("r.error_stage").alias("stage"), F.col("r.error").alias("error"))
    documents = results.select(DOC_ID, F.col("r.n_segments").alias("n_segments"),
                               F.size("r.appeals").alias("n_mentions"), F.col("r.error").alias("error"))
    return AppealsResult(mentions, errors, documents, results)


def distinct_mentions(mentions: DataFrame) -> DataFrame:
    """One row per mention key: ``mention_key``, ``mention`` (its most frequent span), ``count``."""
    spans = mentions.groupBy("mention_key", F.trim("span").alias("mention")).agg(F.count(F.lit(1)).alias("n"))
    # the most frequent span of a key, ties to the alphabetically first: deterministic
    return spans.groupBy("mention_key").agg(
        F.min_by("mention", F.struct((-F.col("n")).alias("neg_n"), F.col("mention"))).alias("mention"),
        F.sum("n").cast("long").alias("count"))


def embed_mentions(mentions: DataFrame, config=None, *, bundle: ModelBundle | None = None) -> DataFrame:
    """Embed each distinct mention once: ``mention_key``, ``mention``, ``count``, ``embedding``."""
    config = _config(config)
    bundle = ship_models(mentions.sparkSession, bundle or ModelBundle.resolve(config), config.models.ship)
    embed = make_embed_udf(bundle)
    return distinct_mentions(mentions).select("mention_key", "mention", "count",
                                              embed(F.col("mention_key")).alias("embedding"))


def cluster_mentions(embeddings: DataFrame, config=None, *, progress=None) -> ClusterResult:
    """k search and k-means over the distinct mentions' embeddings, weighted by count.

    On the driver (scikit-learn, the reference's numbers) by default; with
    ``clustering.backend: spark``, or ``auto`` above ``clustering.spark_above`` distinct mentions,
    with Spark ML on the cluster.
    """
    config = _config(config)
    cfg = config.clustering
    if cfg.backend == "spark" or (cfg.backend == "auto" and embeddings.count() > cfg.spark_above):
        return _cluster_on_spark(embeddings, cfg, progress)
    return _cluster_on_driver(embeddings, cfg, progress)


def _k_range(cfg, n: int) -> tuple[int, int | None, str | None]:
    """``(best_k if fixed, k_max or None when no search, why the search was skipped)``."""
    if cfg.n_clusters is not None:
        return min(cfg.n_clusters, n), None, None
    k_max = min(cfg.k_max, n)
    if k_max < cfg.k_max:
        log.warning("k search: k_max %d lowered to %d, the number of unique mentions", cfg.k_max, k_max)
    if cfg.k_min > k_max:
        skipped = f"k_min {cfg.k_min} exceeds the {n} unique mentions"
        log.warning("k search skipped: %s; clustering with k=%d", skipped, k_max)
        return k_max, None, skipped
    return 0, k_max, None


def _empty_k_search(spark) -> DataFrame:
    return spark.createDataFrame([], "k int, metric string, score double, estimated boolean, "
                                     "n_points long, chosen boolean")


def _cluster_on_driver(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    from group_appeal_spark.lib.dictionary import CategoryMatcher, read_dictionary

    spark = embeddings.sparkSession
    pdf = embeddings.select("mention_key", "mention", "count", "embedding").toPandas()
    # a fixed row order, whatever the partitioning, so k-means sees the same input every time
    pdf = pdf.sort_values("mention_key", kind="stable").reset_index(drop=True)
    n = len(pdf)
    if n < 2:
        reason = f"only {n} unique mention(s); clustering needs at least 2"
        log.warning("clustering skipped: %s", reason)
        return ClusterResult(_clusters_frame(spark, pdf.assign(cluster_id=[], distance_to_centroid=[])
                                             if n == 0 else pdf.assign(cluster_id=0, distance_to_centroid=0.0)),
                             _empty_k_search(spark), None, reason)
    X = np.stack(pdf["embedding"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list())
    weights = pdf["count"].to_numpy(dtype=np.float64)
    best_k, k_max, skipped = _k_range(cfg, n)
    scores = _empty_k_search(spark)
    if k_max is not None:
        categories = None
        if cfg.metric == "nmi":
            categories = CategoryMatcher(read_dictionary(cfg.dictionary)).match_many(pdf["mention"].tolist())
        start = time.perf_counter()
        result = search_k(X, k_min=cfg.k_min, k_max=k_max, metric=cfg.metric, sample_weight=weights,
                          categories=categories, random_state=cfg.random_state,
                          silhouette_exact_max=cfg.silhouette_exact_max,
                          silhouette_sample_size=cfg.silhouette_sample_size,
                          progress=progress or _log_k_progress(k_max - cfg.k_min + 1, start))
        best_k = result.best_k
        table = result.scores.assign(chosen=result.scores["k"] == best_k)
        scores = spark.createDataFrame(table[["k", "metric", "score", "estimated", "n_points", "chosen"]])
    model = MentionKMeans(best_k, random_state=cfg.random_state).fit(X, sample_weight=weights)
    pdf = pdf.assign(cluster_id=model.labels_.astype("int32"), distance_to_centroid=model.distances_.astype(float))
    return ClusterResult(_clusters_frame(spark, pdf), scores, best_k, skipped)


SPARK_SILHOUETTE = "spark_silhouette_sqeuclidean"


def _cluster_on_spark(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    """Spark ML k-means (weighted by count) and its evaluator, for more mentions than a driver holds.

    Spark's ClusteringEvaluator computes the silhouette with squared Euclidean distances in
    O(n k); the k-search table names that score ``spark_silhouette_sqeuclidean`` since it is not
    the reference's Euclidean silhouette. NMI collects only labels and categories.
    """
    from pyspark.ml.clustering import KMeans as SparkKMeans
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.functions import array_to_vector, vector_to_array

    from group_appeal_spark.lib.dictionary import CategoryMatcher, read_dictionary

    spark = embeddings.sparkSession
    data = embeddings.select("mention_key", "mention", "count", array_to_vector("embedding").alias("features")) \
        .orderBy("mention_key").persist(StorageLevel.MEMORY_AND_DISK)
    n = data.count()
    if n < 2:
        data.unpersist()
        return _cluster_on_driver(embeddings, cfg, progress)
    best_k, k_max, skipped = _k_range(cfg, n)

    def fit(k):
        return SparkKMeans(k=k, seed=cfg.random_state, weightCol="count", featuresCol="features",
                           predictionCol="cluster_id").fit(data)

    scores, models = _empty_k_search(spark), {}
    if k_max is not None:
        matcher = CategoryMatcher(read_dictionary(cfg.dictionary)) if cfg.metric == "nmi" else None
        rows, start = [], time.perf_counter()
        report = progress or _log_k_progress(k_max - cfg.k_min + 1, start)
        for k in range(cfg.k_min, k_max + 1):
            t0 = time.perf_counter()
            models[k] = fit(k)
            pred = models[k].transform(data)
            if matcher is None:
                score = ClusteringEvaluator(metricName="silhouette", distanceMeasure="squaredEuclidean",
                                            predictionCol="cluster_id", weightCol="count").evaluate(pred)
                metric, points = SPARK_SILHOUETTE, None
            else:
                from sklearn.metrics import normalized_mutual_info_score

                labels = pred.select("mention", "count", "cluster_id").toPandas()
                cats = np.array(matcher.match_many(labels["mention"].tolist()), dtype=object)
                hit = np.array([c is not None for c in cats])
                reps = labels["count"].to_numpy()[hit]
                score = normalized_mutual_info_score(np.repeat(cats[hit].astype(str), reps),
                                                     np.repeat(labels["cluster_id"].to_numpy()[hit], reps))
                metric, points = "nmi", int(reps.sum())
            rows.append((k, metric, float(score), False, points if points is not None else -1))
            report(k, float(score), time.perf_counter() - t0)
        table = pd.DataFrame(rows, columns=["k", "metric", "score", "estimated", "n_points"])
        best_k = int(table.loc[table["score"].idxmax(), "k"])
        total = int(embeddings.agg(F.sum("count")).first()[0])
        table["n_points"] = table["n_points"].where(table["n_points"] >= 0, total).astype("int64")
        scores = spark.createDataFrame(table.assign(chosen=table["k"] == best_k))
    model = models.get(best_k) or fit(best_k)
    centers = np.stack(model.clusterCenters())

    @F.pandas_udf("double")
    def distance(vectors: pd.Series, labels: pd.Series) -> pd.Series:
        X = np.stack(vectors.to_numpy())
        return pd.Series(np.linalg.norm(X - centers[labels.to_numpy()], axis=1))

    pred = model.transform(data)
    clusters = pred.select("mention_key", "mention", F.col("count").cast("long"), F.col("cluster_id").cast("int"),
                           distance(vector_to_array("features"), F.col("cluster_id")).alias("distance_to_centroid"))
    return ClusterResult(clusters, scores, best_k, skipped)


def _clusters_frame(spark, pdf):
    cols = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid"]
    return spark.createDataFrame(pdf[cols], "mention_key string, mention string, count long, "
                                            "cluster_id int, distance_to_centroid double")


def _log_k_progress(total: int, start: float):
    done = []

    def report(k, score, seconds):
        done.append(k)
        log.info("k search: k=%d score=%.4f (%.1f s; %d/%d, %.0f s elapsed)", k, score, seconds, len(done), total,
                 time.perf_counter() - start)

    return report
