"""Input checks shared by the clustering modules: vectors, weights, ints, the k range, seeds.

Each returns the value in the form the caller computes on, or raises with what was expected
and what came, with the real values.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_X", "check_int", "check_k_range", "check_random_state", "check_weights"]


def check_X(X: Any) -> np.ndarray:
    """``X`` as a C-contiguous 2-D finite float array.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)
        Float vectors, one per row; float32 stays float32.

    Returns
    -------
    numpy.ndarray of shape (n_rows, n_features)

    Raises
    ------
    TypeError
        If ``X`` does not hold floats.
    ValueError
        If ``X`` is not 2-D, has no row or no column, or holds NaN or inf.
    """
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


def check_weights(
    weights: Any, n_rows: int, *, whole: bool = False, name: str = "sample_weight"
) -> np.ndarray | None:
    """Positive (whole, if asked) weights of shape (n_rows,) as float64, or ``None``.

    Parameters
    ----------
    weights : array-like of shape (n_rows,) or None
        One weight per row of ``X``; ``None`` means 1 each and is returned as is.
    n_rows : int
        Number of rows of ``X``.
    whole : bool, default=False
        Require whole numbers (occurrence counts).
    name : str, default="sample_weight"
        Parameter name used in the error messages.

    Returns
    -------
    numpy.ndarray of shape (n_rows,) or None

    Raises
    ------
    TypeError
        If the weights are not numeric.
    ValueError
        If the shape is wrong or a weight is not positive and finite (or not whole).
    """
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


def check_int(name: str, value: Any, low: int, high: int | None, why: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (``high`` None: no upper bound).

    ``why`` names what ``high`` is, for the error message. Raises TypeError for a non-int
    (``bool`` included) and ValueError outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        upper = "inf)" if high is None else f"{high}]"
        because = f" ({high} = {why})" if why and high is not None else ""
        raise ValueError(f"{name} must be in [{low}, {upper}{because}; got {value}")
    return int(value)


def check_k_range(k_min: Any, k_max: Any, n_rows: int) -> tuple[int, int]:
    """The inclusive k range ``(k_min, k_max)`` with ``2 <= k_min <= k_max <= n_rows``.

    Raises TypeError for a non-int bound and ValueError for a range out of those bounds.
    """
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


def check_random_state(random_state: Any) -> None:
    """Raise TypeError unless ``random_state`` is an int seed or ``None``."""
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
    ):
        raise TypeError(
            f"random_state must be an int or None; got {type(random_state).__name__} "
            f"{random_state!r}"
        )
