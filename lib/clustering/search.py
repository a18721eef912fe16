"""The search for the number of clusters, and the scores it ranks each k by.

The reference (``group-appeal-detector`` 0.3.0) scores k with the silhouette of all mention
occurrences, which is quadratic in the corpus. Here the silhouette over occurrences is computed
from the unique vectors and their counts without expanding them (exactly up to
``silhouette_exact_max`` unique rows, estimated on a sample of occurrences above), and the NMI
against the dictionary categories is computed on the occurrences of the matching mentions.
:func:`select_best_k` and :mod:`~group_appeal_spark.lib.clustering.nmi` are also what the Spark
ML backend chooses and scores k with.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from group_appeal_spark.lib.choices import Metric
from group_appeal_spark.lib.clustering.checks import (
    check_int,
    check_k_range,
    check_random_state,
    check_weights,
    check_X,
)
from group_appeal_spark.lib.clustering.kmeans import (
    DegenerateClusteringWarning,
    MentionKMeans,
    canonical_row_order,
    row_keys,
)
from group_appeal_spark.lib.clustering.nmi import any_matched, category_codes, weighted_nmi

__all__ = ["METRICS", "KSearchResult", "search_k", "select_best_k", "weighted_silhouette_score"]

METRICS = Metric.values()  # the k-search metrics; defined once in lib/choices.py

# Upper bound for one block of the pairwise distance matrix in the exact silhouette: with
# 10,000 unique rows a block is ~840 rows, so memory stays flat whatever the corpus size.
_BLOCK_BYTES = 64 * 2**20


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
        not a positive whole number, or ``categories`` is missing or has the wrong length
        for ``"nmi"``.

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
    X = check_X(X)
    n_rows = X.shape[0]
    counts = check_weights(sample_weight, n_rows, whole=True)
    counts = np.ones(n_rows, dtype=np.int64) if counts is None else counts.astype(np.int64)
    k_min, k_max = check_k_range(k_min, k_max, n_rows)
    exact_max = check_int("silhouette_exact_max", silhouette_exact_max, 1, None)
    sample_size = check_int("silhouette_sample_size", silhouette_sample_size, 2, None)
    check_random_state(random_state)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None; got {type(progress).__name__}")
    codes = None
    if metric == "nmi" and categories is not None and len(categories) == n_rows and not any_matched(categories):
        warnings.warn(f"k search: no mention matches the dictionary, so NMI is undefined for every k in "
                      f"[{k_min}, {k_max}]; scored NaN", DegenerateClusteringWarning, stacklevel=2)
        codes = np.full(n_rows, -1, dtype=np.int64)
    elif metric == "nmi":
        codes = category_codes(categories, n_rows)

    if canonical_order:
        # Sorted once here, so that the silhouette sample does not depend on row order either.
        order = canonical_row_order(row_keys(X), counts)
        X, counts = X[order], counts[order]
        if codes is not None:
            codes = codes[order]

    # The occurrences each k is scored on.
    if metric == "nmi":
        n_points, estimated = int(counts[codes >= 0].sum()), False
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
        if metric == "silhouette":
            score = _silhouette_or_nan(X_scored, model.labels_[scored_rows], scored_counts, k)
        else:
            score = weighted_nmi(codes, model.labels_, counts) if n_points else float("nan")
        seconds = time.perf_counter() - started
        records.append((k, metric, score, estimated, n_points))
        if progress is not None:
            progress(k, score, seconds)

    scores = pd.DataFrame.from_records(
        records, columns=["k", "metric", "score", "estimated", "n_points"]
    ).astype({"k": "int64", "metric": object, "score": "float64", "estimated": bool,
              "n_points": "int64"})
    return KSearchResult(scores=scores, best_k=select_best_k(scores))


def select_best_k(scores: pd.DataFrame) -> int:
    """The k with the highest score; the smallest such k on ties.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per k tried, in increasing k, with columns ``k``, ``metric`` and ``score``
        (NaN where undefined), as in :attr:`KSearchResult.scores`.

    Returns
    -------
    int

    Warns
    -----
    DegenerateClusteringWarning
        If no k has a defined score (two distinct mentions seen once each, identical
        embeddings, no mention in the dictionary): then the smallest k is kept.
    """
    if scores["score"].isna().all():
        ks = scores["k"]
        metric = scores["metric"].iloc[0] if len(scores) else "any"
        warnings.warn(
            f"no k in [{ks.min()}, {ks.max()}] gives a defined {metric} score (see the warnings "
            f"above); keeping the smallest, k={ks.min()}", DegenerateClusteringWarning, stacklevel=2)
        return int(ks.min())
    # idxmax takes the first maximum, as the reference's max() over the k in order does.
    return int(scores.loc[scores["score"].idxmax(), "k"])


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
    X = check_X(X)
    n_rows = X.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (n_rows,):
        raise ValueError(
            f"labels must have shape ({n_rows},), one label per row of X; got {labels.shape}"
        )
    counts = check_weights(counts, n_rows, whole=True, name="counts")
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


def _check_metric(metric: Any) -> str:
    """The metric as one of METRICS, or a ValueError listing them."""
    normalised = metric.strip().lower() if isinstance(metric, str) else metric
    if normalised not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    return normalised
