"""The Spark ML clustering backend: k-means and its evaluator on the cluster.

For more distinct mentions than the driver holds (``clustering.backend: spark``, or ``auto``
above ``clustering.spark_above``). The rules on k, the NMI and the choice of the best k are
lib's, the same the driver backend uses; so is the dictionary category of each mention,
matched on the executors.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from group_appeal_spark.jobs.transforms.cluster_tables import (
    ClusterResult,
    category_matcher,
    collect_mentions,
    empty_k_search,
    k_search_frame,
    log_k_progress,
    plan_k,
    skipped_result,
)
from group_appeal_spark.lib.clustering.kmeans import DegenerateClusteringWarning
from group_appeal_spark.lib.clustering.nmi import any_matched, category_codes, weighted_nmi
from group_appeal_spark.lib.clustering.search import select_best_k
from group_appeal_spark.udfs.clusters import make_category_udf, make_distance_udf
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SPARK_SILHOUETTE = "spark_silhouette_sqeuclidean"


def cluster_on_spark(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    """Spark ML k-means (weighted by count) and its evaluator, for more mentions than a driver holds.

    Spark's ClusteringEvaluator computes the silhouette with squared Euclidean distances in
    O(n k); the k-search table names that score ``spark_silhouette_sqeuclidean`` since it is not
    the reference's Euclidean silhouette. NMI collects only labels and categories.
    """
    from pyspark.ml.clustering import KMeans as SparkKMeans
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.functions import array_to_vector, vector_to_array

    spark = embeddings.sparkSession
    matcher = category_matcher(cfg)
    data = embeddings.select("mention_key", "mention", "count", array_to_vector("embedding").alias("features")) \
        .orderBy("mention_key").persist(StorageLevel.MEMORY_AND_DISK)
    n = data.count()
    if n < 2:
        data.unpersist()
        # at most one row: the driver's result, from the rows on the driver
        pdf = collect_mentions(embeddings)
        return skipped_result(spark, pdf, plan_k(cfg, len(pdf)), matcher)
    plan = plan_k(cfg, n)
    best_k = plan.n_clusters

    def fit(k):
        return SparkKMeans(k=k, seed=cfg.random_state, weightCol="count", featuresCol="features",
                           predictionCol="cluster_id").fit(data)

    scores, models = empty_k_search(spark), {}
    if plan.searches:
        nmi = cfg.metric == "nmi"
        rows, start = [], time.perf_counter()
        report = progress or log_k_progress(plan.k_max - plan.k_min + 1, start)
        for k in range(plan.k_min, plan.k_max + 1):
            t0 = time.perf_counter()
            models[k] = fit(k)
            pred = models[k].transform(data)
            if not nmi:
                score = ClusteringEvaluator(metricName="silhouette", distanceMeasure="squaredEuclidean",
                                            predictionCol="cluster_id", weightCol="count").evaluate(pred)
                metric, points = SPARK_SILHOUETTE, None
            else:
                labels = pred.select("mention", "count", "cluster_id").toPandas()
                categories, counts = matcher.match_many(labels["mention"].tolist()), labels["count"].to_numpy()
                metric, score, points = "nmi", float("nan"), 0
                if any_matched(categories):
                    codes = category_codes(categories, len(labels))
                    score = weighted_nmi(codes, labels["cluster_id"].to_numpy(), counts)
                    points = int(counts[codes >= 0].sum())
                else:  # as the driver backend: NaN for every k, then the smallest k is kept
                    warnings.warn(f"k search: no mention matches the dictionary, so NMI is undefined for k={k}; "
                                  f"scored NaN", DegenerateClusteringWarning, stacklevel=2)
            rows.append((k, metric, float(score), False, points if points is not None else -1))
            report(k, float(score), time.perf_counter() - t0)
        table = pd.DataFrame(rows, columns=["k", "metric", "score", "estimated", "n_points"])
        best_k = select_best_k(table)
        total = int(embeddings.agg(F.sum("count")).first()[0])
        table["n_points"] = table["n_points"].where(table["n_points"] >= 0, total).astype("int64")
        scores = k_search_frame(spark, table, best_k)
    model = models.get(best_k) or fit(best_k)
    centers = np.stack(model.clusterCenters())

    distance = make_distance_udf(centers)
    category = F.lit(None).cast("string") if matcher is None else make_category_udf(matcher)(F.col("mention"))

    pred = model.transform(data)
    clusters = pred.select("mention_key", "mention", F.col("count").cast("long"), F.col("cluster_id").cast("int"),
                           distance(vector_to_array("features"), F.col("cluster_id")).alias("distance_to_centroid"),
                           category.alias("category"))
    return ClusterResult(clusters, scores, best_k, plan.skipped)
