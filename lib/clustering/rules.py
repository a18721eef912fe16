"""How many clusters to fit for the number of unique mentions a corpus has.

The rules both clustering backends (scikit-learn on the driver, Spark ML) apply before fitting:
no clustering below 2 unique mentions, a fixed k (``clustering.n_clusters``) clamped to the
number of unique mentions, otherwise a k search whose ``k_max`` is lowered to that number, and
no search when ``k_min`` then exceeds it. Pure: the caller logs :attr:`ClusteringPlan.warnings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from group_appeal_spark.lib.clustering.checks import check_int

__all__ = ["ClusteringPlan", "plan_clustering"]


@dataclass(frozen=True)
class ClusteringPlan:
    """What to fit, from :func:`plan_clustering`.

    Attributes
    ----------
    n_unique : int
        Number of unique mentions.
    n_clusters : int or None
        The k to fit without a search (the fixed k, or ``k_max`` when the search is skipped);
        None when k is searched or there is no clustering.
    k_min, k_max : int or None
        Inclusive range of the k search; None when there is no search.
    skipped : str or None
        Why there is no clustering (fewer than 2 unique mentions) or no k search.
    warnings : tuple of str
        The messages to log as warnings, in order.
    """

    n_unique: int
    n_clusters: int | None
    k_min: int | None
    k_max: int | None
    skipped: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def clusters(self) -> bool:
        """Whether there is a clustering at all (at least 2 unique mentions)."""
        return self.n_unique >= 2

    @property
    def searches(self) -> bool:
        """Whether k is searched in ``[k_min, k_max]``."""
        return self.k_max is not None


def plan_clustering(
    n_unique: int, *, k_min: int, k_max: int, n_clusters: int | None = None
) -> ClusteringPlan:
    """Decide between no clustering, a fixed k, and a k search (or its skip) for ``n_unique`` rows.

    Parameters
    ----------
    n_unique : int
        Number of unique mentions (rows to cluster), >= 0.
    k_min, k_max : int
        ``clustering.k_min`` and ``clustering.k_max``: ``2 <= k_min <= k_max``.
    n_clusters : int or None, default=None
        ``clustering.n_clusters``: a fixed k >= 1 that replaces the search.

    Returns
    -------
    ClusteringPlan
        Below 2 unique mentions: no clustering, ``skipped`` says why. With ``n_clusters``:
        that k, at most ``n_unique``, and no search. Otherwise a search over
        ``[k_min, min(k_max, n_unique)]`` (with a warning when ``k_max`` is lowered); when
        ``k_min`` exceeds ``n_unique`` the search is skipped (``skipped`` says why) and k is
        ``n_unique``.

    Raises
    ------
    TypeError
        If a count or k is not an int.
    ValueError
        If ``n_unique < 0``, ``k_min < 2``, ``k_max < k_min`` or ``n_clusters < 1``.
    """
    n = check_int("n_unique", n_unique, 0, None)
    k_min = check_int("k_min", k_min, 2, None)
    k_max = check_int("k_max", k_max, k_min, None)
    if n_clusters is not None:
        n_clusters = check_int("n_clusters", n_clusters, 1, None)
    if n < 2:
        reason = f"only {n} unique mention(s); clustering needs at least 2"
        return ClusteringPlan(n, None, None, None, reason, (f"clustering skipped: {reason}",))
    if n_clusters is not None:
        return ClusteringPlan(n, min(n_clusters, n), None, None)
    lowered = min(k_max, n)
    warnings = []
    if lowered < k_max:
        warnings.append(
            f"k search: k_max {k_max} lowered to {lowered}, the number of unique mentions"
        )
    if k_min > lowered:
        reason = f"k_min {k_min} exceeds the {n} unique mentions"
        warnings.append(f"k search skipped: {reason}; clustering with k={lowered}")
        return ClusteringPlan(n, lowered, None, None, reason, tuple(warnings))
    return ClusteringPlan(n, None, k_min, lowered, None, tuple(warnings))
