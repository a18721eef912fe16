"""The clustering transform: k search and k-means over the distinct mentions' embeddings.

>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from group_appeal_spark.jobs.transforms.appeals import _config
from group_appeal_spark.lib.clustering.kmeans import MentionKMeans, search_k
from pyspark.sql import DataFrame

log = logging.getLogger("group_appeal_spark")


@dataclasses.dataclass
class ClusterResult:
    clusters: DataFrame   # mention_key, mention, count, cluster_id, distance_to_centroid
    k_search: DataFrame   # k, metric, score, estimated, n_points, chosen
    best_k: int | None
    skipped: str | None = None  # why there is no clustering (too few unique mentions)


def cluster_mentions(embeddings: DataFrame, config=None, *, progress=None) -> ClusterResult:
    """k search and k-means over the distinct mentions' embeddings, weighted by count.

    On the driver (scikit-learn, the reference's numbers) by default; with
    ``clustering.backend: spark``, or ``auto`` above ``clustering.spark_above`` distinct mentions,
    with Spark ML on the cluster.
    """
    config = _config(config)
    cfg = config.clustering
    if cfg.backend == "spark" or (cfg.backend == "auto" and embeddings.count() > cfg.spark_above):
        from group_appeal_spark.jobs.transforms.spark_kmeans import cluster_on_spark

        return cluster_on_spark(embeddings, cfg, progress)
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
    from group_appeal_spark.lib.clustering.dictionary import (
        CategoryMatcher,
        read_dictionary,
    )

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
