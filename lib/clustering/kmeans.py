"""Count-weighted k-means over deduplicated mention embeddings.

The reference (``group-appeal-detector`` 0.3.0) clusters one embedding per mention
*occurrence*. Identical mentions have identical embeddings, so :class:`MentionKMeans` works on
the unique vectors with their occurrence counts as weights instead: k-means with
``sample_weight`` minimises the same objective as k-means on every occurrence. When every count
is 1 the k-means call is the reference's, bit for bit, on the same rows in the same order. The
search for k and its scores are in :mod:`group_appeal_spark.lib.clustering.search`.

Row order: k-means++ picks rows by index, so the clusters depend on the order of the rows, and
rows collected from Spark come in no fixed order. By default the fit therefore runs on the
rows in a canonical order (sorted by their bytes), which makes every result independent of
the order the caller passes; ``canonical_order=False`` keeps the caller's order instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from group_appeal_spark.lib.clustering.checks import (
    check_int,
    check_random_state,
    check_weights,
    check_X,
)
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.metrics.pairwise import euclidean_distances
from threadpoolctl import threadpool_limits

__all__ = [
    "DegenerateClusteringWarning",
    "MentionKMeans",
    "canonical_row_order",
    "nearest_centroid",
    "row_keys",
]


class DegenerateClusteringWarning(UserWarning):
    """A clustering or score that is defined but not meaningful (empty or duplicate clusters)."""


class MentionKMeans:
    """k-means over unique mention embeddings weighted by how often each mention occurs.

    Parameters
    ----------
    n_clusters : int
        Number of clusters k, between 1 and the number of rows of ``X``.
    random_state : int or None, default=42
        Seed of the k-means++ initialisation; 42 is the reference's.
    canonical_order : bool, default=True
        Fit on the rows sorted by their bytes (then by weight) instead of in the order given.
        k-means++ picks rows by index, so without this the clusters depend on row order, which
        in Spark depends on partitioning. The fitted attributes are always in the caller's row
        order. With ``False`` the fit is exactly the reference's call on the rows as given.

    Attributes
    ----------
    labels_ : numpy.ndarray of shape (n_rows,)
        Cluster index of each row.
    distances_ : numpy.ndarray of shape (n_rows,)
        Euclidean distance of each row to the centroid of its own cluster.
    cluster_centers_ : numpy.ndarray of shape (n_clusters, n_features)
        Centroids (weighted means of their rows).
    inertia_ : float
        Weighted sum of squared distances to the own centroid, i.e. the k-means objective over
        all occurrences.
    n_iter_ : int
        Lloyd iterations run.
    n_features_in_ : int
        Number of features of ``X``.

    Notes
    -----
    ``fit`` runs ``KMeans(n_clusters, random_state=random_state, n_init="auto")`` as the
    reference does. With ``sample_weight`` all ones (or ``None``) it passes no weights at all,
    so the result is bit-identical to the reference's unweighted call on the same rows in the
    same order (with ``canonical_order=True``: in canonical order).
    """

    def __init__(
        self, n_clusters: int, *, random_state: int | None = 42, canonical_order: bool = True
    ) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.canonical_order = canonical_order

    def fit(self, X: Any, sample_weight: Any = None) -> MentionKMeans:
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Finite float vectors, one per unique mention (float32 embeddings stay float32).
        sample_weight : array-like of shape (n_rows,), optional
            Positive weight of each row, normally its occurrence count. ``None`` means 1 each.

        Returns
        -------
        MentionKMeans
            ``self``, fitted.

        Raises
        ------
        TypeError
            If ``X`` does not hold floats, ``n_clusters`` or ``random_state`` is not an int.
        ValueError
            If ``X`` is not 2-D, is empty or has NaN/inf; if ``n_clusters`` is outside
            ``[1, n_rows]``; if ``sample_weight`` has the wrong length or a weight <= 0.

        Warns
        -----
        DegenerateClusteringWarning
            If ``X`` has fewer distinct rows than ``n_clusters`` or a cluster ends up empty.
        """
        X = check_X(X)
        n_rows = X.shape[0]
        n_clusters = check_int(
            "n_clusters", self.n_clusters, 1, n_rows, "the number of rows of X"
        )
        weights = check_weights(sample_weight, n_rows)
        check_random_state(self.random_state)

        keys = row_keys(X)
        order = canonical_row_order(keys, weights) if self.canonical_order else None
        if order is None:
            X_fit, w_fit = X, weights
        else:
            X_fit = X[order]
            w_fit = None if weights is None else weights[order]
        if w_fit is not None and np.all(w_fit == 1):
            # None is the reference's exact call; ones would only agree as long as
            # scikit-learn's weighted and unweighted paths do.
            w_fit = None

        kmeans = KMeans(n_clusters=n_clusters, random_state=self.random_state, n_init="auto")
        # k-means++ and transform() on float32 make thousands of skinny float64 matmuls; with
        # OpenBLAS starting its own threads beside scikit-learn's OpenMP ones they ran 10-15x
        # slower (2 cores, k=20 on 100k rows: 13 s against 0.9 s). Lloyd's loop limits BLAS to
        # one thread itself. Measured: the labels and centres are the same bits either way.
        with threadpool_limits(limits=1, user_api="blas"):
            kmeans.fit(X_fit, sample_weight=w_fit)
            labels = kmeans.labels_
            # transform() is how the reference measures distance_to_centroid: same bits.
            distances = kmeans.transform(X_fit)[np.arange(n_rows), labels]
        if order is not None:
            labels = _unpermute(labels, order)
            distances = _unpermute(distances, order)

        self.labels_ = labels
        self.distances_ = distances
        self.cluster_centers_ = kmeans.cluster_centers_
        self.inertia_ = float(kmeans.inertia_)
        self.n_iter_ = int(kmeans.n_iter_)
        self.n_features_in_ = X.shape[1]

        n_distinct = int(keys.max()) + 1
        n_used = np.unique(labels).size
        if n_distinct < n_clusters or n_used < n_clusters:
            warnings.warn(
                f"k-means with n_clusters={n_clusters} is degenerate: X has {n_distinct} "
                f"distinct rows and {n_used} of the {n_clusters} clusters are non-empty",
                DegenerateClusteringWarning,
                stacklevel=2,
            )
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distance of each row of ``X`` to every centroid.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Finite float vectors with the ``n_features_in_`` columns seen by ``fit``.

        Returns
        -------
        numpy.ndarray of shape (n_rows, n_clusters)

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``fit`` has not been called.
        TypeError, ValueError
            As ``fit`` for a bad ``X``; ValueError also for another number of columns.
        """
        return self._predict(X)[1]

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centroid (Euclidean) of each row of ``X``; ties go to the lowest index.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_rows,)
            Cluster index of each row (int64).

        Raises
        ------
        sklearn.exceptions.NotFittedError, TypeError, ValueError
            As :meth:`transform`.
        """
        return self._predict(X)[0]

    def predict_with_distance(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` and the distance of each row to that centroid.

        Returns
        -------
        labels : numpy.ndarray of shape (n_rows,)
        distances : numpy.ndarray of shape (n_rows,)
        """
        labels, all_distances = self._predict(X)
        return labels, all_distances[np.arange(labels.size), labels]

    def _predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and the (n_rows, n_clusters) distances, after the fitted and input checks."""
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"{self!r} is not fitted yet; call fit(X) before predict")
        return nearest_centroid(X, self.cluster_centers_)

    def __repr__(self) -> str:
        return (
            f"MentionKMeans(n_clusters={self.n_clusters!r}, random_state={self.random_state!r}, "
            f"canonical_order={self.canonical_order!r})"
        )


def nearest_centroid(X: Any, centers: Any) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row (Euclidean; ties: the lowest index) and all distances.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)
        Finite float vectors (checked as ``fit`` checks them).
    centers : array-like of shape (n_clusters, n_features)
        Finite float centroids.

    Returns
    -------
    labels : numpy.ndarray of shape (n_rows,)
        Index of the nearest centroid (int64).
    distances : numpy.ndarray of shape (n_rows, n_clusters)
        Euclidean distance of each row to each centroid, computed as scikit-learn's
        ``KMeans.transform`` computes ``distances_`` in ``fit`` (same dtype rules).

    Raises
    ------
    TypeError, ValueError
        For a bad ``X`` or ``centers``, or when their numbers of columns differ.
    """
    X = check_X(X)
    centers = check_X(centers)
    if X.shape[1] != centers.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features per row but the centroids have {centers.shape[1]}"
        )
    if centers.dtype != X.dtype:
        # scikit-learn's transform casts X to the centres' dtype the fit gave them (X's)
        centers = centers.astype(X.dtype)
    # one BLAS thread: see fit (thousands of skinny matmuls beside OpenMP threads)
    with threadpool_limits(limits=1, user_api="blas"):
        distances = euclidean_distances(X, centers)
    # argmin returns the first minimum: ties go to the lowest cluster index
    return np.argmin(distances, axis=1).astype(np.int64), distances


def row_keys(X: np.ndarray) -> np.ndarray:
    """Rank of each row among the distinct rows of ``X``, ordered by their bytes.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_rows, n_features)

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        Equal rows get equal keys; ``keys.max() + 1`` is the number of distinct rows.
    """
    as_bytes = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    return np.unique(as_bytes.ravel(), return_inverse=True)[1].ravel()


def canonical_row_order(keys: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Permutation that sorts rows by their bytes, then by weight (a total order on rows).

    Parameters
    ----------
    keys : numpy.ndarray of shape (n_rows,)
        :func:`row_keys` of the rows.
    weights : numpy.ndarray of shape (n_rows,) or None

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        Row indices; ``X[order]`` is the same whatever order the rows of ``X`` came in.
    """
    if weights is None:
        return np.argsort(keys, kind="stable")
    return np.lexsort((weights, keys))


def _unpermute(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Values computed on X[order], put back in the rows of X."""
    out = np.empty_like(values)
    out[order] = values
    return out
