"""k-means over deduplicated mention embeddings, and the search for the number of clusters.

The reference (``group-appeal-detector`` 0.3.0) clusters one embedding per mention
*occurrence* and scores k with the silhouette of all occurrences, which is quadratic in the
corpus. Identical mentions have identical embeddings, so this module works on the unique
vectors with their occurrence counts as weights instead: k-means with ``sample_weight``
minimises the same objective as k-means on every occurrence, and the silhouette over
occurrences is computed from the unique vectors without expanding them. When every count is 1
the k-means calls are the reference's, bit for bit, on the same rows in the same order.

Row order: k-means++ picks rows by index, so the clusters depend on the order of the rows, and
rows collected from Spark come in no fixed order. By default the fit therefore runs on the
rows in a canonical order (sorted by their bytes), which makes every result independent of
the order the caller passes; ``canonical_order=False`` keeps the caller's order instead.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

__all__ = [
    "METRICS",
    "DegenerateClusteringWarning",
    "KSearchResult",
    "MentionKMeans",
    "search_k",
    "weighted_silhouette_score",
]

METRICS = ("silhouette", "nmi")

# Upper bound for one block of the pairwise distance matrix in the exact silhouette: with
# 10,000 unique rows a block is ~840 rows, so memory stays flat whatever the corpus size.
_BLOCK_BYTES = 64 * 2**20


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

    def fit(self, X: Any, sample_weight: Any = None) -> "MentionKMeans":
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
        X = _check_X(X)
        n_rows = X.shape[0]
        n_clusters = _check_int(
            "n_clusters", self.n_clusters, 1, n_rows, "the number of rows of X"
        )
        weights = _check_weights(sample_weight, n_rows)
        _check_random_state(self.random_state)

        row_keys = _row_keys(X)
        order = _canonical_order(row_keys, weights) if self.canonical_order else None
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

        n_distinct = int(row_keys.max()) + 1
        n_used = np.unique(labels).size
        if n_distinct < n_clusters or n_used < n_clusters:
            warnings.warn(
                f"k-means with n_clusters={n_clusters} is degenerate: X has {n_distinct} "
                f"distinct rows and {n_used} of the {n_clusters} clusters are non-empty",
                DegenerateClusteringWarning,
                stacklevel=2,
            )
        return self

    def __repr__(self) -> str:
        return (
            f"MentionKMeans(n_clusters={self.n_clusters!r}, random_state={self.random_state!r}, "
            f"canonical_order={self.canonical_order!r})"
        )


@dataclass(frozen=True)
class KSearchResult:
    """Scores of every k tried by :func:`search_k`.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per k, in increasing k, with columns ``k`` (int), ``metric`` (str),
        ``score`` (float, NaN where undefined), ``estimated`` (bool: the score comes from a
        sample) and ``n_points`` (int: occurrences the score was computed on).
    best_k : int
        The k with the highest score; the smallest such k on ties.
    """

    scores: pd.DataFrame
    best_k: int


def search_k(
    X: Any,
    *,
    k_min: int,
    k_max: int,
    metric: str = "silhouette",
    sample_weight: Any = None,
    categories: Sequence[str | None] | None = None,
    random_state: int | None = 42,
    silhouette_exact_max: int = 10_000,
    silhouette_sample_size: int = 10_000,
    progress: Callable[[int, float, float], Any] | None = None,
    canonical_order: bool = True,
) -> KSearchResult:
    """Fit :class:`MentionKMeans` for every k in ``[k_min, k_max]`` and score each fit.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)
        One finite float vector per unique mention.
    k_min, k_max : int
        Inclusive range of k; ``2 <= k_min <= k_max <= n_rows``.
    metric : {"silhouette", "nmi"}, default="silhouette"
        ``"silhouette"``: Euclidean silhouette over all occurrences. ``"nmi"``: normalised
        mutual information (arithmetic mean) between the dictionary categories and the cluster
        labels over the occurrences whose mention matches the dictionary.
    sample_weight : array-like of shape (n_rows,), optional
        Occurrence count of each row: positive whole numbers. ``None`` means 1 each.
    categories : sequence of (str or None) of shape (n_rows,), optional
        Dictionary category of each row, ``None`` (or NaN) where it matches none, e.g. from
        :meth:`CategoryMatcher.match_many`. Required for ``"nmi"``, unused otherwise.
    random_state : int or None, default=42
        Seed of k-means and of the silhouette sample.
    silhouette_exact_max : int, default=10_000
        Largest number of unique rows for which the silhouette is computed exactly.
    silhouette_sample_size : int, default=10_000
        Occurrences in the sample the silhouette is estimated on above that size.
    progress : callable, optional
        Called as ``progress(k, score, seconds)`` after each k, ``seconds`` being the time for
        fitting and scoring that k.
    canonical_order : bool, default=True
        See :class:`MentionKMeans`; with ``True`` the scores do not depend on row order.

    Returns
    -------
    KSearchResult
        The per-k score table and the best k.

    Raises
    ------
    TypeError
        If an int parameter is not an int, or ``X`` does not hold floats.
    ValueError
        If ``metric`` is not one of :data:`METRICS`, the k range is out of bounds, a count is
        not a positive whole number, ``categories`` is missing, has the wrong length or
        matches no row for ``"nmi"``, or no k gives a defined score.

    Warns
    -----
    DegenerateClusteringWarning
        For a degenerate fit, and for a k whose silhouette is undefined (fewer than 2 or more
        than ``n_points - 1`` clusters among the scored points); that k scores NaN.

    Notes
    -----
    What is exact and what is estimated:

    * ``"silhouette"`` with at most ``silhouette_exact_max`` unique rows is exact: it equals
      ``sklearn.metrics.silhouette_score(np.repeat(X, counts, 0), np.repeat(labels, counts))``
      (to floating-point rounding, ~1e-12) but costs O(n_rows**2) distance evaluations in
      memory-bounded blocks instead of O(n_occurrences**2), and ``n_points`` is the number of
      occurrences.
    * Above that, the silhouette is estimated (``estimated=True``) on
      ``silhouette_sample_size`` occurrences drawn without replacement, so each unique row is
      drawn with probability proportional to its count, with a seed fixed by
      ``random_state``. The same sample scores every k, so the k are compared on equal terms.
      This is what ``silhouette_score(..., sample_size=...)`` does on the expanded data; the
      estimate's error shrinks like ``1 / sqrt(silhouette_sample_size)``.
    * ``"nmi"`` is always exact: the integer label arrays of the matching rows are expanded by
      their counts, and the score equals the reference's on the expanded mentions.
    * k-means is always fitted on all unique rows with their counts.
    """
    metric = _check_metric(metric)
    X = _check_X(X)
    n_rows = X.shape[0]
    counts = _check_weights(sample_weight, n_rows, whole=True)
    counts = np.ones(n_rows, dtype=np.int64) if counts is None else counts.astype(np.int64)
    k_min, k_max = _check_k_range(k_min, k_max, n_rows)
    exact_max = _check_int("silhouette_exact_max", silhouette_exact_max, 1, None)
    sample_size = _check_int("silhouette_sample_size", silhouette_sample_size, 2, None)
    _check_random_state(random_state)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None; got {type(progress).__name__}")
    category_codes = None
    if metric == "nmi":
        category_codes = _category_codes(categories, n_rows)

    if canonical_order:
        # Sorted once here, so that the silhouette sample does not depend on row order either.
        order = _canonical_order(_row_keys(X), counts)
        X, counts = X[order], counts[order]
        if category_codes is not None:
            category_codes = category_codes[order]

    # The rows and occurrence counts each k is scored on.
    if metric == "nmi":
        scored_rows = np.flatnonzero(category_codes >= 0)
        scored_counts = counts[scored_rows]
        expanded_categories = np.repeat(category_codes[scored_rows], scored_counts)
        estimated = False
    else:
        scored_rows, scored_counts, estimated = np.arange(n_rows), counts, False
        if n_rows > exact_max:
            drawn = _sample_occurrences(counts, sample_size, random_state)
            scored_rows = np.flatnonzero(drawn)
            scored_counts = drawn[scored_rows]
            estimated = bool(scored_counts.sum() < counts.sum())
        X_scored = X[scored_rows].astype(np.float64)
    n_points = int(scored_counts.sum())

    records = []
    for k in range(k_min, k_max + 1):
        started = time.perf_counter()
        # canonical_order=False: X is already in canonical order when that was asked for.
        model = MentionKMeans(k, random_state=random_state, canonical_order=False)
        model.fit(X, sample_weight=counts)
        labels = model.labels_[scored_rows]
        if metric == "silhouette":
            score = _silhouette_or_nan(X_scored, labels, scored_counts, k)
        else:
            score = float(
                normalized_mutual_info_score(
                    expanded_categories, np.repeat(labels, scored_counts)
                )
            )
        seconds = time.perf_counter() - started
        records.append((k, metric, score, estimated, n_points))
        if progress is not None:
            progress(k, score, seconds)

    scores = pd.DataFrame.from_records(
        records, columns=["k", "metric", "score", "estimated", "n_points"]
    ).astype({"k": "int64", "metric": object, "score": "float64", "estimated": bool,
              "n_points": "int64"})
    if scores["score"].isna().all():
        raise ValueError(
            f"no k in [{k_min}, {k_max}] gives a defined {metric} score; "
            f"see the DegenerateClusteringWarning above"
        )
    # idxmax takes the first maximum, as the reference's max() over the k in order does.
    best_k = int(scores.loc[scores["score"].idxmax(), "k"])
    return KSearchResult(scores=scores, best_k=best_k)


def weighted_silhouette_score(X: Any, labels: Any, counts: Any = None) -> float:
    """Euclidean silhouette of all occurrences, computed from unique rows and their counts.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)
        One finite float vector per unique point.
    labels : array-like of shape (n_rows,)
        Cluster of each row.
    counts : array-like of shape (n_rows,), optional
        Occurrences of each row: positive whole numbers. ``None`` means 1 each.

    Returns
    -------
    float
        ``silhouette_score(np.repeat(X, counts, 0), np.repeat(labels, counts))`` without
        building the repeated arrays. For an occurrence of row i in cluster C, with
        ``W_C`` the occurrences in C and ``d`` the Euclidean distance,
        ``a = sum_{j in C} counts_j d_ij / (W_C - 1)``,
        ``b = min_{C' != C} sum_{j in C'} counts_j d_ij / W_C'``,
        ``s = (b - a) / max(a, b)``, and ``s = 0`` where ``W_C == 1`` (as in scikit-learn);
        the result is the count-weighted mean of ``s``. Memory is O(n_rows) beyond one
        64 MiB block of distances; time is O(n_rows**2 * n_features).

    Raises
    ------
    ValueError
        If the shapes disagree, a count is not a positive whole number, or the number of
        distinct labels is not between 2 and the number of occurrences - 1.
    """
    X = _check_X(X)
    n_rows = X.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (n_rows,):
        raise ValueError(
            f"labels must have shape ({n_rows},), one label per row of X; got {labels.shape}"
        )
    counts = _check_weights(counts, n_rows, whole=True, name="counts")
    counts = np.ones(n_rows, dtype=np.int64) if counts is None else counts.astype(np.int64)
    _, codes = np.unique(labels, return_inverse=True)
    n_labels = int(codes.max()) + 1
    n_points = int(counts.sum())
    if not 2 <= n_labels <= n_points - 1:
        raise ValueError(
            f"the silhouette needs between 2 and n_occurrences - 1 = {n_points - 1} distinct "
            f"labels; got {n_labels}"
        )
    return _silhouette(X.astype(np.float64), codes.ravel(), n_labels, counts)


def _silhouette(X: np.ndarray, codes: np.ndarray, n_labels: int, counts: np.ndarray) -> float:
    """Weighted silhouette of float64 X, labels 0..n_labels-1; see weighted_silhouette_score."""
    n_rows = X.shape[0]
    weights = counts.astype(np.float64)
    # membership[j, c] = count of row j if it is in cluster c: one matmul with a block of
    # distances gives every row's summed distance to every cluster.
    membership = np.zeros((n_rows, n_labels))
    membership[np.arange(n_rows), codes] = weights
    cluster_size = np.bincount(codes, weights=weights, minlength=n_labels)
    sq_norms = np.einsum("ij,ij->i", X, X)
    block_rows = max(1, _BLOCK_BYTES // (8 * n_rows))
    total = 0.0
    for start in range(0, n_rows, block_rows):
        stop = min(n_rows, start + block_rows)
        inner = np.arange(stop - start)
        # The dot-product form of the distance, in float64, as scikit-learn computes it.
        dist = X[start:stop] @ X.T
        dist *= -2.0
        dist += sq_norms[start:stop, None]
        dist += sq_norms[None, :]
        np.maximum(dist, 0.0, out=dist)
        dist[inner, start + inner] = 0.0
        np.sqrt(dist, out=dist)
        summed = dist @ membership
        own = codes[start:stop]
        own_size = cluster_size[own]
        with np.errstate(divide="ignore", invalid="ignore"):
            intra = summed[inner, own] / (own_size - 1.0)
            mean_to = summed / cluster_size
            mean_to[inner, own] = np.inf
            inter = mean_to.min(axis=1)
            sil = (inter - intra) / np.maximum(intra, inter)
        # NaN arises for singleton clusters (0/0) and for a == b == 0; both count as 0.
        sil = np.nan_to_num(sil, nan=0.0, posinf=0.0, neginf=0.0)
        total += float(weights[start:stop] @ sil)
    return total / float(weights.sum())


def _silhouette_or_nan(X: np.ndarray, labels: np.ndarray, counts: np.ndarray, k: int) -> float:
    """Silhouette of the scored rows, or NaN with a warning where it is undefined."""
    _, codes = np.unique(labels, return_inverse=True)
    n_labels = int(codes.max()) + 1
    n_points = int(counts.sum())
    if not 2 <= n_labels <= n_points - 1:
        warnings.warn(
            f"k={k}: silhouette undefined with {n_labels} distinct clusters among "
            f"{n_points} scored points; scored NaN",
            DegenerateClusteringWarning,
            stacklevel=3,
        )
        return float("nan")
    return _silhouette(X, codes.ravel(), n_labels, counts)


def _sample_occurrences(counts: np.ndarray, size: int, seed: int | None) -> np.ndarray:
    """Counts of each row in a uniform sample of `size` occurrences without replacement."""
    total = int(counts.sum())
    if size >= total:
        return counts.copy()
    rng = np.random.default_rng(seed)
    # Occurrence numbers 0..total-1; row i owns [cumsum[i-1], cumsum[i]). numpy's choice
    # without replacement stays O(size) in memory when size is small against total.
    drawn = rng.choice(total, size=size, replace=False)
    rows = np.searchsorted(np.cumsum(counts), drawn, side="right")
    return np.bincount(rows, minlength=counts.size).astype(np.int64)


def _row_keys(X: np.ndarray) -> np.ndarray:
    """Rank of each row among the distinct rows of X, ordered by their bytes."""
    as_bytes = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    return np.unique(as_bytes.ravel(), return_inverse=True)[1].ravel()


def _canonical_order(row_keys: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Permutation that sorts rows by their bytes, then by weight (a total order on rows)."""
    if weights is None:
        return np.argsort(row_keys, kind="stable")
    return np.lexsort((weights, row_keys))


def _unpermute(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Values computed on X[order], put back in the rows of X."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _category_codes(categories: Any, n_rows: int) -> np.ndarray:
    """Integer code per row, in sorted order of the category names, -1 for no match."""
    if categories is None:
        raise ValueError(
            "metric='nmi' needs categories: the dictionary category of each row "
            "(None where it matches none), e.g. CategoryMatcher.match_many(mentions)"
        )
    values = list(categories)
    if len(values) != n_rows:
        raise ValueError(
            f"categories must have one entry per row of X: expected {n_rows}, got {len(values)}"
        )
    names = [
        None if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else str(value)
        for value in values
    ]
    matched = [name for name in names if name is not None]
    if not matched:
        raise ValueError(
            f"no row matches the dictionary (all {n_rows} categories are None); NMI needs "
            f"matching mentions"
        )
    # Sorted codes, as np.unique sorts the category strings in the reference's NMI call.
    lookup = {name: code for code, name in enumerate(sorted(set(matched)))}
    return np.array([-1 if name is None else lookup[name] for name in names], dtype=np.int32)


def _check_metric(metric: Any) -> str:
    """The metric as one of METRICS, or a ValueError listing them."""
    normalised = metric.strip().lower() if isinstance(metric, str) else metric
    if normalised not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    return normalised


def _check_X(X: Any) -> np.ndarray:
    """X as a C-contiguous 2-D finite float array."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D of shape (n_rows, n_features); got {X.ndim}-D with shape {X.shape}"
        )
    if X.dtype.kind != "f":
        raise TypeError(f"X must hold floats (float32 or float64); got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column; got shape {X.shape}")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"X must be finite; got NaN or inf in {bad.size} rows, the first at row {bad[0]}"
        )
    return np.ascontiguousarray(X)


def _check_weights(
    weights: Any, n_rows: int, *, whole: bool = False, name: str = "sample_weight"
) -> np.ndarray | None:
    """Positive (whole, if asked) weights of shape (n_rows,), or None."""
    if weights is None:
        return None
    weights = np.asarray(weights)
    if weights.shape != (n_rows,):
        raise ValueError(
            f"{name} must have one entry per row of X: expected shape ({n_rows},), "
            f"got {weights.shape}"
        )
    if weights.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numeric; got dtype {weights.dtype}")
    as_float = weights.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(as_float) & (as_float > 0)))
    if bad.size:
        raise ValueError(
            f"{name} must be positive and finite; got {weights[bad[0]].item()!r} at row {bad[0]}"
        )
    if whole:
        fractional = np.flatnonzero(as_float != np.round(as_float))
        if fractional.size:
            raise ValueError(
                f"{name} must be whole occurrence counts; got {weights[fractional[0]].item()!r} "
                f"at row {fractional[0]}"
            )
    return as_float


def _check_int(name: str, value: Any, low: int, high: int | None, why: str = "") -> int:
    """value as an int in [low, high] (high None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        upper = "inf)" if high is None else f"{high}]"
        because = f" ({high} = {why})" if why and high is not None else ""
        raise ValueError(f"{name} must be in [{low}, {upper}{because}; got {value}")
    return int(value)


def _check_k_range(k_min: Any, k_max: Any, n_rows: int) -> tuple[int, int]:
    """The validated inclusive k range."""
    for name, value in (("k_min", k_min), ("k_max", k_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if k_min < 2:
        raise ValueError(f"k_min must be at least 2; got k_min={k_min}")
    if k_min > k_max:
        raise ValueError(f"k_min must not exceed k_max; got k_min={k_min} > k_max={k_max}")
    if k_max > n_rows:
        raise ValueError(
            f"k_max must not exceed the number of unique rows of X ({n_rows}); got k_max={k_max}"
        )
    return int(k_min), int(k_max)


def _check_random_state(random_state: Any) -> None:
    """random_state must be an int seed or None."""
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
    ):
        raise TypeError(
            f"random_state must be an int or None; got {type(random_state).__name__} "
            f"{random_state!r}"
        )
