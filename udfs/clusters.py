"""Executor-side clustering functions: distance to a centroid, dictionary category, assignment.

Each closes over what it needs (centroids, a compiled matcher), which travels to the executors
in the function's pickle; they are small: k x n_features floats, a pattern and names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import functions as F


def make_distance_udf(centers: np.ndarray):
    """A pandas UDF (features array, cluster id) -> Euclidean distance to that cluster's centre."""
    centers = np.asarray(centers)

    @F.pandas_udf("double")
    def distance(vectors: pd.Series, labels: pd.Series) -> pd.Series:
        X = np.stack(vectors.to_numpy())
        return pd.Series(np.linalg.norm(X - centers[labels.to_numpy()], axis=1))

    return distance


def make_category_udf(matcher):
    """A pandas UDF mention -> its dictionary category (lib's ``CategoryMatcher``), or null."""

    @F.pandas_udf("string")
    def match(mentions: pd.Series) -> pd.Series:
        return pd.Series(matcher.match_many(mentions.tolist()), dtype=object)

    return match


def make_assign_batches(centroids: np.ndarray, labels: list):
    """The mapInPandas function of ``assign_clusters``, closing over the (small) centroids and labels."""
    centroids = np.asarray(centroids)
    columns = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "label"]

    def assign(batches):
        from group_appeal_spark.lib.clustering.kmeans import nearest_centroid

        for pdf in batches:
            if len(pdf) == 0:
                yield pd.DataFrame({c: [] for c in columns})
                continue
            # float32, as the fit saw them: distances of fit-time keys repeat clusters/'s bits
            X = np.stack(pdf["embedding"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list())
            nearest, distances = nearest_centroid(X, centroids)
            fit_id = pdf["__fit_id"]
            chosen = np.where(fit_id.isna().to_numpy(), nearest, fit_id.fillna(-1).to_numpy(dtype=np.int64))
            if len(chosen) != len(pdf):
                raise RuntimeError(f"cluster assignment gave {len(chosen)} results for {len(pdf)} rows")
            yield pd.DataFrame({
                "mention_key": pdf["mention_key"], "mention": pdf["mention"], "count": pdf["count"],
                "cluster_id": chosen.astype(np.int32),
                "distance_to_centroid": distances[np.arange(len(chosen)), chosen].astype(np.float64),
                "label": [labels[i] for i in chosen]})

    return assign

