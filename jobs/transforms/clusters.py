"""The clustering transform: k search and k-means over the distinct mentions' embeddings.

>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames
>>> summary = cluster_summary(clusters.clusters, mentions)  # one row per cluster

The rules on k (no clustering below 2 unique mentions, fixed k, k_max lowered to the number
of unique mentions) are lib's :func:`plan_clustering`; this module holds the driver backend;
the tables both backends build are ``cluster_tables.py``'s. With a
``clustering.dictionary`` both backends give each mention its dictionary category, whatever the
metric. :func:`cluster_summary` condenses the clusters into lib's per-cluster summary.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from group_appeal_spark.jobs.transforms.cluster_tables import (
    ClusterResult,
    category_matcher,
    clusters_frame,
    collect_mentions,
    empty_k_search,
    k_search_frame,
    log_k_progress,
    mention_categories,
    plan_k,
    skipped_result,
)
from group_appeal_spark.jobs.transforms.spark_kmeans import cluster_on_spark
from group_appeal_spark.lib.choices import STANCES
from group_appeal_spark.lib.clustering.kmeans import MentionKMeans
from group_appeal_spark.lib.clustering.search import search_k
from group_appeal_spark.lib.clustering.summary import CLUSTER_COLUMNS, summarize_clusters
from group_appeal_spark.lib.config import as_job_config
from group_appeal_spark.udfs.clusters import make_assign_batches
from group_appeal_spark.lib.errors import InputError
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger("group_appeal_spark")

SUMMARY_SCHEMA = ("cluster_id int, n_occurrences long, n_unique long, top_mentions array<string>, "
                  "central_mentions array<string>, share_positive double, share_negative double, "
                  "share_neutral double, category string, category_share double, label string")


def cluster_mentions(embeddings: DataFrame, config=None, *, progress=None) -> ClusterResult:
    """k search and k-means over the distinct mentions' embeddings, weighted by count.

    On the driver (scikit-learn, the reference's numbers) by default; with
    ``clustering.backend: spark``, or ``auto`` above ``clustering.spark_above`` distinct mentions,
    with Spark ML on the cluster.
    """
    config = as_job_config(config)
    cfg = config.clustering
    if cfg.backend == "spark" or (cfg.backend == "auto" and embeddings.count() > cfg.spark_above):
        return cluster_on_spark(embeddings, cfg, progress)
    return _cluster_on_driver(embeddings, cfg, progress)


def cluster_summary(clusters: DataFrame, mentions: DataFrame | None = None, *, n_top: int = 10) -> DataFrame:
    """The cluster_summary table: one row per cluster, lib's :func:`summarize_clusters`.

    ``clusters`` is :func:`cluster_mentions`' table (one row per distinct mention key; its
    ``category`` column, where present, gives the categories). ``mentions`` is the mentions
    table: only its stance counts per mention_key, a Spark aggregation, reach the driver, with
    the clusters table less its embeddings. Without ``mentions`` the stance shares are null.
    """
    spark = clusters.sparkSession
    columns = CLUSTER_COLUMNS + (["category"] if "category" in clusters.columns else [])
    pdf = clusters.select(*columns).toPandas()
    stance_counts = None
    if mentions is not None:
        missing = [c for c in ("mention_key", "stance") if c not in mentions.columns]
        if missing:
            raise InputError(f"mentions lacks column(s) {missing} for the stance shares; it has {mentions.columns}")
        stance_counts = mentions.groupBy("mention_key").agg(
            *[F.count(F.when(F.col("stance") == stance, 1)).alias(stance) for stance in STANCES]).toPandas()
    return _summary_frame(spark, summarize_clusters(pdf, stance_counts, n_top=n_top))


def _cluster_on_driver(embeddings: DataFrame, cfg, progress) -> ClusterResult:
    spark = embeddings.sparkSession
    matcher = category_matcher(cfg)
    pdf = collect_mentions(embeddings)
    plan = plan_k(cfg, len(pdf))
    if not plan.clusters:
        return skipped_result(spark, pdf, plan, matcher)
    pdf["category"] = mention_categories(matcher, pdf["mention"])
    X = np.stack(pdf["embedding"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list())
    weights = pdf["count"].to_numpy(dtype=np.float64)
    best_k = plan.n_clusters
    scores = empty_k_search(spark)
    if plan.searches:
        categories = pdf["category"].tolist() if cfg.metric == "nmi" else None
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
    return ClusterResult(clusters_frame(spark, pdf), scores, best_k, plan.skipped, model.cluster_centers_)


ASSIGNED_SCHEMA = ("mention_key string, mention string, count long, cluster_id int, distance_to_centroid double, "
                   "label string")


def fitted_cluster_model(result: ClusterResult, embeddings: DataFrame, summary: DataFrame, *, selection: dict,
                         embedder: dict | None, key_normalisation: dict, created_by: dict | None = None):
    """lib's :class:`ClusterModel` of a clustering ``result`` (which must have clustered: ``best_k`` set).

    The centroids are the driver backend's own; for the Spark ML backend, the count-weighted
    mean embedding of each cluster (what its centres converge to), aggregated on the cluster.
    ``summary`` is :func:`cluster_summary`'s table (k rows; its ``label`` column gives the
    labels). The fit-time keys and ids reach the driver: one short row per distinct mention.
    """
    from group_appeal_spark.lib.clustering.model import ClusterModel

    k = int(result.best_k)
    centroids = result.centroids if result.centroids is not None else _mean_centroids(result.clusters, embeddings, k)
    labels = dict(summary.select("cluster_id", "label").toPandas().itertuples(index=False, name=None))
    fitted = result.clusters.select("mention_key", "cluster_id").toPandas().sort_values("mention_key", kind="stable")
    return ClusterModel(centroids=np.asarray(centroids), labels=tuple(labels.get(i) for i in range(k)),
                        mention_keys=tuple(fitted["mention_key"].tolist()),
                        key_cluster_ids=fitted["cluster_id"].to_numpy(dtype=np.int32), selection=selection,
                        embedder=embedder, key_normalisation=key_normalisation, created_by=created_by or {})


def _mean_centroids(clusters: DataFrame, embeddings: DataFrame, k: int) -> np.ndarray:
    """(k, n_features) count-weighted mean embedding per cluster id (a Spark aggregation; k x n_features rows back)."""
    parts = clusters.select("mention_key", "cluster_id", "count").join(
        embeddings.select("mention_key", "embedding"), "mention_key")
    sums = parts.select("cluster_id", "count", F.posexplode("embedding").alias("pos", "value")) \
        .groupBy("cluster_id", "pos").agg((F.sum(F.col("value") * F.col("count")) / F.sum("count")).alias("mean")) \
        .toPandas()
    dim = int(sums["pos"].max()) + 1 if len(sums) else 0
    centroids = np.zeros((k, dim), dtype=np.float32)
    centroids[sums["cluster_id"].to_numpy(), sums["pos"].to_numpy()] = sums["mean"].to_numpy()
    empty = sorted(set(range(k)) - set(sums["cluster_id"].tolist()))
    if empty:
        log.warning("cluster model: clusters %s have no mention; their centroids are saved as zero vectors", empty)
    return centroids


def assign_clusters(embeddings: DataFrame, cluster_model, config=None) -> DataFrame:
    """Put distinct mentions in the clusters of a saved cluster model, without refitting.

    Parameters
    ----------
    embeddings : DataFrame
        ``mention_key``, ``mention``, ``count``, ``embedding`` (the ``mention_embeddings``
        table of ``detect`` or ``run``), made with the model's embedder: the caller checks
        that (the job compares summary.json's ``models.embedder``).
    cluster_model : ClusterModel or str or Path
        lib's :class:`~group_appeal_spark.lib.clustering.model.ClusterModel`, or a local
        ``cluster_model/`` folder to load.
    config : JobConfig, optional
        Validated like the other transforms' (nothing in it changes the assignment).

    Returns
    -------
    DataFrame
        ``clusters``: ``mention_key``, ``mention``, ``count``, ``cluster_id`` (the nearest
        centroid, ties to the lowest id; a key the model was fitted on keeps its fit-time id),
        ``distance_to_centroid`` (Euclidean, to that cluster's centroid) and ``label`` (the
        cluster's label in the model). Lazy: computed on the executors by a pandas UDF with the
        centroids captured in its closure; only the fit-time keys travel as a joined table.
    """
    from group_appeal_spark.lib.clustering.model import ClusterModel, load_cluster_model

    as_job_config(config)
    model = cluster_model if isinstance(cluster_model, ClusterModel) else load_cluster_model(cluster_model)
    missing = [c for c in ("mention_key", "mention", "count", "embedding") if c not in embeddings.columns]
    if missing:
        raise InputError(f"embeddings lack column(s) {missing}; they have {embeddings.columns}")
    spark = embeddings.sparkSession
    for row in embeddings.select(F.size("embedding").alias("n")).distinct().limit(3).collect():
        model.check_dimension(row["n"], "the input's embeddings")
    fitted = spark.createDataFrame(
        pd.DataFrame({"mention_key": list(model.mention_keys), "__fit_id": model.key_cluster_ids.astype("int32")}),
        "mention_key string, __fit_id int")
    rows = embeddings.select("mention_key", "mention", F.col("count").cast("long").alias("count"), "embedding") \
        .join(fitted, "mention_key", "left")
    return rows.mapInPandas(make_assign_batches(model.centroids, list(model.labels)), ASSIGNED_SCHEMA)


def _summary_frame(spark, summary: pd.DataFrame) -> DataFrame:
    """lib's summary as a DataFrame of SUMMARY_SCHEMA, its NaNs as nulls (one row per cluster).

    Made from pandas, not from a list of rows: with Arrow on (conf/spark.yaml) the rows go to the
    JVM as one Arrow batch, so writing the table starts no Python tasks.
    """
    pdf = summary.copy()
    for column in ("top_mentions", "central_mentions"):
        pdf[column] = pdf[column].map(lambda values: [str(v) for v in values])
    pdf = pdf.astype(object).where(pdf.notna(), None)  # NaN -> null, with or without Arrow
    return spark.createDataFrame(pdf, SUMMARY_SCHEMA)
