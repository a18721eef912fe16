"""The clustering tables both backends build (k_search, clusters), the k plan and the dictionary matcher.

Shared by the driver backend (``clusters.py``) and the Spark ML backend (``spark_kmeans.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd
from group_appeal_spark.lib.clustering.rules import ClusteringPlan, plan_clustering
from pyspark.sql import DataFrame

log = logging.getLogger("group_appeal_spark")

K_SEARCH_COLUMNS = ["k", "metric", "score", "estimated", "n_points", "chosen"]


@dataclasses.dataclass
class ClusterResult:
    clusters: DataFrame   # mention_key, mention, count, cluster_id, distance_to_centroid, category
    k_search: DataFrame   # k, metric, score, estimated, n_points, chosen
    best_k: int | None
    skipped: str | None = None  # why there is no clustering (too few unique mentions)
    # (best_k, n_features) centroids of the driver backend; None: derive them from the clusters
    centroids: np.ndarray | None = None


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


def skipped_result(spark, pdf: pd.DataFrame, plan: ClusteringPlan, matcher=None) -> ClusterResult:
    """The result below 2 unique mentions: the one mention (if any) alone in cluster 0, no k search."""
    if len(pdf) == 0:
        pdf = pdf.assign(cluster_id=[], distance_to_centroid=[])
    else:
        pdf = pdf.assign(cluster_id=0, distance_to_centroid=0.0)
    pdf["category"] = mention_categories(matcher, pdf["mention"])
    return ClusterResult(clusters_frame(spark, pdf), empty_k_search(spark), None, plan.skipped)


def category_matcher(cfg):
    """lib's matcher of ``clustering.dictionary``, or None without a dictionary."""
    from group_appeal_spark.lib.clustering.dictionary import (
        CategoryMatcher,
        read_dictionary,
    )

    return CategoryMatcher(read_dictionary(cfg.dictionary)) if cfg.dictionary else None


def mention_categories(matcher, mentions: pd.Series) -> list:
    """The dictionary category of each mention (None where none matches, or no matcher)."""
    if matcher is None:
        return [None] * len(mentions)
    return matcher.match_many(mentions.tolist())


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


def clusters_frame(spark, pdf):
    cols = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "category"]
    return spark.createDataFrame(pdf[cols], "mention_key string, mention string, count long, "
                                            "cluster_id int, distance_to_centroid double, category string")

