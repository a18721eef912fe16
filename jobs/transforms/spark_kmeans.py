"""The Spark ML clustering backend: k-means and its evaluator on the cluster.

For more distinct mentions than the driver holds (``clustering.backend: spark``, or ``auto``
above ``clustering.spark_above``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from group_appeal_spark.jobs.transforms.clusters import (
    ClusterResult,
    _cluster_on_driver,
    _empty_k_search,
    _k_range,
    _log_k_progress,
)

SPARK_SILHOUETTE = "spark_silhouette_sqeuclidean"


def cluster_on_spark(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    """Spark ML k-means (weighted by count) and its evaluator, for more mentions than a driver holds.

    Spark's ClusteringEvaluator computes the silhouette with squared Euclidean distances in
    O(n k); the k-search table names that score ``spark_silhouette_sqeuclidean`` since it is not
    the reference's Euclidean silhouette. NMI collects only labels and categories.
    """
    from group_appeal_spark.lib.clustering.dictionary import (
        CategoryMatcher,
        read_dictionary,
    )
    from pyspark.ml.clustering import KMeans as SparkKMeans
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.functions import array_to_vector, vector_to_array

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
