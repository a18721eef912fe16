"""One row per cluster: its size, most frequent and most central mentions, stance and category.

:func:`summarize_clusters` turns the per-mention ``clusters`` table (one row per distinct
mention key, with its cluster) and the per-key stance counts of ``mentions`` into the
``cluster_summary`` table. Everything here is per distinct mention key, so the caller only
hands over aggregates: the stance counts are one row per key, not one per occurrence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from group_appeal_spark.lib.choices import STANCES

__all__ = ["CLUSTER_COLUMNS", "STANCES", "SUMMARY_COLUMNS", "summarize_clusters"]

#: Columns of ``clusters`` that :func:`summarize_clusters` needs (``category`` is optional).
CLUSTER_COLUMNS = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid"]
#: Columns of the result, in order.
SUMMARY_COLUMNS = [
    "cluster_id", "n_occurrences", "n_unique", "top_mentions", "central_mentions",
    "share_positive", "share_negative", "share_neutral", "category", "category_share", "label",
]


def summarize_clusters(
    clusters: pd.DataFrame, stance_counts: pd.DataFrame | None = None, *, n_top: int = 10
) -> pd.DataFrame:
    """Summarise each cluster of the ``clusters`` table.

    Parameters
    ----------
    clusters : pandas.DataFrame
        Shape ``(n_keys, >=5)``: one row per distinct mention key with the columns
        ``mention_key`` (unique), ``mention``, ``count`` (occurrences, > 0), ``cluster_id`` and
        ``distance_to_centroid``; optionally ``category`` (the mention's dictionary category,
        ``None`` where it matches none). Without ``category`` no mention has one.
    stance_counts : pandas.DataFrame, optional
        Shape ``(n_stance_keys, 4)``: ``mention_key`` (unique) and one column per stance,
        ``positive``, ``negative``, ``neutral``, counting that key's occurrences with that
        stance. Keys missing here count 0 of each; keys not in ``clusters`` are ignored.
        ``None`` (no ``mentions`` table) makes every share missing.
    n_top : int, default=10
        Most mentions listed in ``top_mentions`` and ``central_mentions``.

    Returns
    -------
    pandas.DataFrame
        Shape ``(n_clusters, 11)``, one row per cluster in ``cluster_id`` order, columns
        :data:`SUMMARY_COLUMNS`:

        - ``cluster_id`` (int32);
        - ``n_occurrences`` (int64): sum of ``count``;
        - ``n_unique`` (int64): distinct mention keys;
        - ``top_mentions`` (list of str): highest ``count`` first, ties by mention then key;
        - ``central_mentions`` (list of str): smallest ``distance_to_centroid`` first, ties by
          mention then key;
        - ``share_positive``, ``share_negative``, ``share_neutral`` (float64): each stance's
          share of the cluster's occurrences in ``stance_counts``; they sum to 1, and are NaN
          without ``stance_counts`` or when none of the cluster's keys has a stance count;
        - ``category`` (str or None): the category with the most occurrences among the
          cluster's matched occurrences (ties: the first name in sort order); ``None`` when no
          mention of the cluster has a category;
        - ``category_share`` (float64): that category's share of the matched occurrences,
          NaN where ``category`` is ``None``;
        - ``label`` (str): ``category`` where ``category_share`` > 0.5, else the first of
          ``central_mentions``.

    Raises
    ------
    ValueError
        If a column is missing, ``mention_key`` is duplicated in either frame, or ``n_top``
        is not a positive int.

    Examples
    --------
    >>> clusters = pd.DataFrame({"mention_key": ["a", "b", "c"], "mention": ["A", "B", "C"],
    ...                          "count": [3, 1, 2], "cluster_id": [0, 0, 1],
    ...                          "distance_to_centroid": [0.2, 0.1, 0.0],
    ...                          "category": ["x", None, None]})
    >>> summarize_clusters(clusters)[["cluster_id", "top_mentions", "label"]]
       cluster_id top_mentions label
    0           0       [A, B]     x
    1           1          [C]     C
    """
    _check_frame(clusters, CLUSTER_COLUMNS, "clusters")
    if isinstance(n_top, bool) or not isinstance(n_top, (int, np.integer)) or n_top < 1:
        raise ValueError(f"n_top must be a positive int; got {n_top!r}")
    df = clusters[CLUSTER_COLUMNS].copy()
    df["category"] = clusters["category"].to_numpy() if "category" in clusters else None
    if stance_counts is not None:
        _check_frame(stance_counts, ["mention_key", *STANCES], "stance_counts")
        df = df.merge(stance_counts[["mention_key", *STANCES]], on="mention_key", how="left")
        df[list(STANCES)] = df[list(STANCES)].fillna(0).astype("int64")
    if df.empty:
        return _empty_summary()

    groups = df.groupby("cluster_id", sort=True)
    out = pd.DataFrame({
        "n_occurrences": groups["count"].sum().astype("int64"),
        "n_unique": groups["mention_key"].size().astype("int64"),
    })
    out["top_mentions"] = _first_mentions(df, ["count"], [False], n_top)
    out["central_mentions"] = _first_mentions(df, ["distance_to_centroid"], [True], n_top)
    for stance in STANCES:
        out[f"share_{stance}"] = np.nan
    if stance_counts is not None:
        sums = groups[list(STANCES)].sum()
        total = sums.sum(axis=1)
        shares = sums.div(total.where(total > 0), axis=0)  # no stance counted: NaN, not 0/0 noise
        for stance in STANCES:
            out[f"share_{stance}"] = shares[stance].astype("float64")
    out = out.join(_dominant_category(df))
    out["category"] = out["category"].astype(object).where(out["category"].notna(), None)
    out["category_share"] = out["category_share"].astype("float64")
    first_central = out["central_mentions"].map(lambda names: names[0])
    out["label"] = np.where(out["category_share"] > 0.5, out["category"], first_central)
    out = out.rename_axis("cluster_id").reset_index()
    out["cluster_id"] = out["cluster_id"].astype("int32")
    return out[SUMMARY_COLUMNS]


def _first_mentions(df: pd.DataFrame, by: list[str], ascending: list[bool], n_top: int) -> pd.Series:
    """Per cluster, the first ``n_top`` mentions in the order ``by``, ties by mention then key."""
    ordered = df.sort_values(["cluster_id", *by, "mention", "mention_key"],
                             ascending=[True, *ascending, True, True], kind="stable")
    return ordered.groupby("cluster_id", sort=True).head(n_top).groupby("cluster_id", sort=True)["mention"] \
        .agg(list)


def _dominant_category(df: pd.DataFrame) -> pd.DataFrame:
    """Per cluster with a matched mention: its most frequent category and that one's share."""
    matched = df[df["category"].notna()]
    if matched.empty:
        return pd.DataFrame({"category": pd.Series(dtype=object), "category_share": pd.Series(dtype="float64")},
                            index=pd.Index([], name="cluster_id"))
    per = matched.groupby(["cluster_id", "category"], sort=True)["count"].sum().reset_index()
    total = per.groupby("cluster_id")["count"].sum()
    top = per.sort_values(["cluster_id", "count", "category"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("cluster_id").set_index("cluster_id")
    return pd.DataFrame({"category": top["category"], "category_share": top["count"] / total[top.index]})


def _empty_summary() -> pd.DataFrame:
    """The summary of no clusters, with the column types of a non-empty one."""
    dtypes: dict[str, Any] = {"cluster_id": "int32", "n_occurrences": "int64", "n_unique": "int64",
                              "share_positive": "float64", "share_negative": "float64",
                              "share_neutral": "float64", "category_share": "float64"}
    return pd.DataFrame({name: pd.Series(dtype=dtypes.get(name, object)) for name in SUMMARY_COLUMNS})


def _check_frame(frame: Any, columns: list[str], name: str) -> None:
    """A DataFrame holding ``columns`` with unique ``mention_key`` values, else a ValueError."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")
    duplicated = frame["mention_key"][frame["mention_key"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{name}: mention_key must be unique; duplicated: {duplicated[:5]}")
