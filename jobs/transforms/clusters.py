"""The clustering transform: k search and k-means over the distinct mentions' embeddings.

>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames

The rules on k (no clustering below 2 unique mentions, fixed k, k_max lowered to the number
of unique mentions) are lib's :func:`plan_clustering`; this module holds the driver backend
and the pieces the Spark ML backend (``spark_kmeans.py``) shares with it.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd
from group_appeal_spark.jobs.transforms.appeals import _config
from group_appeal_spark.lib.clustering.kmeans import MentionKMeans
from group_appeal_spark.lib.clustering.rules import ClusteringPlan, plan_clustering
from group_appeal_spark.lib.clustering.search import search_k
from pyspark.sql import DataFrame

log = logging.getLogger("group_appeal_spark")

K_SEARCH_COLUMNS = ["k", "metric", "score", "estimated", "n_points", "chosen"]


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
        # imported here: spark_kmeans imports the shared pieces below from this module
        from group_appeal_spark.jobs.transforms.spark_kmeans import cluster_on_spark

        return cluster_on_spark(embeddings, cfg, progress)
    return _cluster_on_driver(embeddings, cfg, progress)


def plan_k(cfg, n: int) -> ClusteringPlan:
    """lib's clustering rules for this ``clustering`` config and ``n`` unique mentions, warnings logged."""
    plan = plan_clustering(n, k_min=cfg.k_min, k_max=cfg.k_max, n_clusters=cfg.n_clusters)
    for message in plan.warnings:
        log.warning(message)
    return plan


def collect_mentions(embeddings: DataFrame) -> pd.DataFrame:
    """The embeddings on the driver, sorted by mention_key."""
    pdf = embeddings.select("mention_key", "mention", "count", "embedding").toPandas()
    # a fixed row order, whatever the partitioning, so k-means sees the same input every time
    return pdf.sort_values("mention_key", kind="stable").reset_index(drop=True)


def skipped_result(spark, pdf: pd.DataFrame, plan: ClusteringPlan) -> ClusterResult:
    """The result below 2 unique mentions: the one mention (if any) alone in cluster 0, no k search."""
    if len(pdf) == 0:
        pdf = pdf.assign(cluster_id=[], distance_to_centroid=[])
    else:
        pdf = pdf.assign(cluster_id=0, distance_to_centroid=0.0)
    return ClusterResult(_clusters_frame(spark, pdf), empty_k_search(spark), None, plan.skipped)


def empty_k_search(spark) -> DataFrame:
    return spark.createDataFrame([], "k int, metric string, score double, estimated boolean, "
                                     "n_points long, chosen boolean")


def k_search_frame(spark, table: pd.DataFrame, best_k: int) -> DataFrame:
    """The k_search table: lib's per-k scores with ``chosen`` marking ``best_k``."""
    return spark.createDataFrame(table.assign(chosen=table["k"] == best_k)[K_SEARCH_COLUMNS])


def log_k_progress(total: int, start: float):
    """A ``progress(k, score, seconds)`` callback that logs each k of a search of ``total``."""
    done = []

    def report(k, score, seconds):
        done.append(k)
        log.info("k search: k=%d score=%.4f (%.1f s; %d/%d, %.0f s elapsed)", k, score, seconds, len(done), total,
                 time.perf_counter() - start)

    return report


def _cluster_on_driver(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    from group_appeal_spark.lib.clustering.dictionary import (
        CategoryMatcher,
        read_dictionary,
    )

    spark = embeddings.sparkSession
    pdf = collect_mentions(embeddings)
    plan = plan_k(cfg, len(pdf))
    if not plan.clusters:
        return skipped_result(spark, pdf, plan)
    X = np.stack(pdf["embedding"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list())
    weights = pdf["count"].to_numpy(dtype=np.float64)
    best_k = plan.n_clusters
    scores = empty_k_search(spark)
    if plan.searches:
        categories = None
        if cfg.metric == "nmi":
            categories = CategoryMatcher(read_dictionary(cfg.dictionary)).match_many(pdf["mention"].tolist())
        start = time.perf_counter()
        result = search_k(X, k_min=plan.k_min, k_max=plan.k_max, metric=cfg.metric, sample_weight=weights,
                          categories=categories, random_state=cfg.random_state,
                          silhouette_exact_max=cfg.silhouette_exact_max,
                          silhouette_sample_size=cfg.silhouette_sample_size,
                          progress=progress or log_k_progress(plan.k_max - plan.k_min + 1, start))
        best_k = result.best_k
        scores = k_search_frame(spark, result.scores, best_k)
    model = MentionKMeans(best_k, random_state=cfg.random_state).fit(X, sample_weight=weights)
    pdf = pdf.assign(cluster_id=model.labels_.astype("int32"), distance_to_centroid=model.distances_.astype(float))
    return ClusterResult(_clusters_frame(spark, pdf), scores, best_k, plan.skipped)


def _clusters_frame(spark, pdf):
    cols = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid"]
    return spark.createDataFrame(pdf[cols], "mention_key string, mention string, count long, "
                                            "cluster_id int, distance_to_centroid double")
