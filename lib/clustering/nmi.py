"""NMI between dictionary categories and clusters, over the occurrences of matching mentions.

The reference scores k by ``normalized_mutual_info_score`` between the category and the
cluster of every mention occurrence that matches the dictionary. Here the integer codes of
the unique mentions are expanded by their counts, which gives the same score without
expanding the mentions themselves. Both the driver's k search and the Spark ML backend score
with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

__all__ = ["category_codes", "weighted_nmi"]


def weighted_nmi(codes: Any, labels: Any, counts: Any) -> float:
    """NMI between the dictionary categories and the clusters over the matching occurrences.

    Parameters
    ----------
    codes : array-like of int, shape (n_rows,)
        Category code of each row, -1 where it matches no category (see
        :func:`category_codes`).
    labels : array-like of shape (n_rows,)
        Cluster of each row.
    counts : array-like of int, shape (n_rows,)
        Occurrences of each row.

    Returns
    -------
    float
        ``normalized_mutual_info_score`` (arithmetic mean) of the category and cluster of
        every occurrence of a matching row: the reference's score on the expanded mentions.

    Raises
    ------
    ValueError
        If the three arrays are not 1-D of the same length.
    """
    codes, labels, counts = np.asarray(codes), np.asarray(labels), np.asarray(counts)
    if not codes.shape == labels.shape == counts.shape == (codes.size,):
        raise ValueError(
            f"codes, labels and counts must have one entry per row; got shapes {codes.shape}, "
            f"{labels.shape} and {counts.shape}"
        )
    hit = codes >= 0
    reps = counts[hit]
    return float(
        normalized_mutual_info_score(np.repeat(codes[hit], reps), np.repeat(labels[hit], reps))
    )


def any_matched(categories: Sequence[str | None]) -> bool:
    """Whether any row has a dictionary category (not None or NaN)."""
    return any(not (value is None or (pd.api.types.is_scalar(value) and pd.isna(value))) for value in categories)


def category_codes(categories: Sequence[str | None] | None, n_rows: int) -> np.ndarray:
    """Integer code of each row's dictionary category, -1 where it matches none.

    Parameters
    ----------
    categories : sequence of (str or None) of shape (n_rows,)
        Category of each row, ``None`` (or NaN) for no match, e.g. from
        :meth:`CategoryMatcher.match_many`.
    n_rows : int
        Number of rows expected.

    Returns
    -------
    numpy.ndarray of int32, shape (n_rows,)
        Codes numbered in sorted order of the category names.

    Raises
    ------
    ValueError
        If ``categories`` is None, has the wrong length or matches no row.
    """
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
