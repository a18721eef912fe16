"""Per-group estimates corrected for the models' error: design-based supervised learning (DSL).

Egami, Hinck, Stewart & Wei (2023), "Using imperfect surrogates for downstream inference". For
every segment ``i`` of a group the models give ``Yhat_i`` (one value per measure of
:data:`MEASURES`); a random stratified sample of segments is hand-coded, giving ``Y_i`` where
``R_i = 1``, each segment with inclusion probability ``pi_i > 0``. The pseudo-outcome

    Y~_i = Yhat_i + (R_i / pi_i) * (Y_i - Yhat_i)

has the same expectation as ``Y_i`` whatever the models' error, so its mean over the group's
``N`` segments is an unbiased estimate of the mean of ``Y``, with standard error
``sqrt(s^2(Y~) / N)`` (``s^2`` the sample variance over the ``N`` segments, divisor ``N - 1``:
the M-estimation sandwich variance DSL uses) and the normal interval ``est +- z * se``. The
ratio ``share_positive = mean(positive) / mean(mentions)`` takes the delta method on the two
DSL means: ``Var(r) ~ s^2(Y~_p - r * Y~_m) / (N * mu_m^2)``.

A group may have 100M segments, so nothing here needs them one by one: Spark hands over
:class:`GroupSums` (``N``, the sums ``S_a`` of each ``Yhat_a`` and the sums ``Q_ab`` of every
pairwise product) and the few coded segments as :class:`CodedRow`; the coded rows' correction
is applied on top of the sums::

    sum Y~_a     = S_a + sum_coded (Y_a - Yhat_a) / pi
    sum Y~_a Y~_b = Q_ab - sum_coded Yhat_a Yhat_b + sum_coded Y~_a Y~_b

:func:`dsl_from_arrays` computes the same numbers from per-segment arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from group_appeal_spark.lib.errors import InputError

__all__ = [
    "CROSS_PAIRS",
    "MEASURES",
    "PUBLISHED_MEASURES",
    "CodedRow",
    "Estimate",
    "GroupSums",
    "coded_needed",
    "dsl_from_arrays",
    "estimate",
    "estimate_from_sums",
]

#: The per-segment measures, a public contract with the Spark side: ``has_mention`` (0/1),
#: ``mentions`` (count), ``positive`` and ``negative`` (counts of mentions with that stance).
MEASURES = ("has_mention", "mentions", "positive", "negative")
#: The published per-group measures, a public contract: four means and one ratio of means.
PUBLISHED_MEASURES = (
    "share_segments_with_mentions", "mentions_per_segment", "positive_per_segment",
    "negative_per_segment", "share_positive",
)
#: The pairs ``(a, b)``, ``a`` before or equal to ``b`` in :data:`MEASURES`, whose product
#: sums ``Q_ab`` Spark aggregates.
CROSS_PAIRS = tuple((a, b) for i, a in enumerate(MEASURES) for b in MEASURES[i:])

_MEAN_OF = {
    "share_segments_with_mentions": "has_mention",
    "mentions_per_segment": "mentions",
    "positive_per_segment": "positive",
    "negative_per_segment": "negative",
}
_RATIO_OF = {"share_positive": ("positive", "mentions")}
_INDEX = {a: i for i, a in enumerate(MEASURES)}
# the range of each published measure: (lowest, highest or None)
_RANGE = {"share_segments_with_mentions": (0.0, 1.0), "mentions_per_segment": (0.0, None),
          "positive_per_segment": (0.0, None), "negative_per_segment": (0.0, None), "share_positive": (0.0, 1.0)}


@dataclass
class GroupSums:
    """Spark's aggregate of one group's predictions.

    Attributes
    ----------
    n : int
        Segments in the group, ``N``.
    sums : Mapping[str, float]
        Shape ``(4,)``: measure -> ``S_a = sum_i Yhat_a,i`` for every measure of :data:`MEASURES`.
    cross : Mapping[tuple of (str, str), float]
        Measure pair -> ``Q_ab = sum_i Yhat_a,i * Yhat_b,i``, for every pair including
        ``a == b``; either order of a pair may be given (:data:`CROSS_PAIRS` lists one).
    """

    n: int
    sums: Mapping = field(default_factory=dict)
    cross: Mapping = field(default_factory=dict)

    def cross_sum(self, a: str, b: str) -> float:
        """``Q_ab``, whichever order the pair was stored in."""
        if (a, b) in self.cross:
            return self.cross[(a, b)]
        if (b, a) in self.cross:
            return self.cross[(b, a)]
        raise InputError(f"GroupSums.cross lacks the pair ({a!r}, {b!r}); it needs every pair of {MEASURES}")

    def arrays(self) -> tuple:
        """``(S, Q)``: shapes ``(4,)`` and ``(4, 4)``, in :data:`MEASURES` order, checked."""
        missing = [a for a in MEASURES if a not in self.sums]
        if missing:
            raise InputError(f"GroupSums.sums lacks the measure(s) {', '.join(missing)}")
        s = np.array([_number(self.sums[a], f"sums[{a!r}]") for a in MEASURES])
        q = np.empty((len(MEASURES), len(MEASURES)))
        for a, b in CROSS_PAIRS:
            q[_INDEX[a], _INDEX[b]] = q[_INDEX[b], _INDEX[a]] = _number(self.cross_sum(a, b), f"cross[{a!r}, {b!r}]")
        return s, q

    @classmethod
    def from_predictions(cls, yhat) -> GroupSums:
        """The sums of per-segment predictions, as Spark computes them.

        Parameters
        ----------
        yhat : array-like or Mapping[str, array-like]
            Shape ``(N, 4)`` with columns in :data:`MEASURES` order, or measure -> ``(N,)``.

        Returns
        -------
        GroupSums
        """
        yhat = _matrix(yhat, "yhat")
        q = yhat.T @ yhat
        return cls(
            n=int(yhat.shape[0]),
            sums={a: float(yhat[:, i].sum()) for i, a in enumerate(MEASURES)},
            cross={(a, b): float(q[_INDEX[a], _INDEX[b]]) for a, b in CROSS_PAIRS},
        )


@dataclass
class CodedRow:
    """One coded segment of a group: its predictions ``yhat``, its gold ``y`` (measure -> value,
    for every measure of :data:`MEASURES`) and its inclusion probability ``pi`` in ``(0, 1]``."""

    yhat: Mapping
    y: Mapping
    pi: float


@dataclass(frozen=True)
class Estimate:
    """One published measure of one group.

    Attributes
    ----------
    measure : str
        One of :data:`PUBLISHED_MEASURES`.
    estimate_predicted : float or None
        From the predictions alone: ``S_a / N``, or the ratio of the two sums; ``None`` without
        segments (or, for the ratio, without predicted mentions).
    estimate_dsl, se, ci_low, ci_high : float or None
        The DSL estimate, its standard error and normal interval; all ``None`` when ``reason``
        is set.
    n_segments, n_coded : int
        ``N`` and the number of coded segments of the group.
    reason : str or None
        Why the DSL figures are ``None``.
    """

    measure: str
    estimate_predicted: float | None
    estimate_dsl: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    n_segments: int
    n_coded: int
    reason: str | None = None


def _number(value, what: str) -> float:
    """A finite float, or InputError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number; got {value!r}")
    return float(value)


def _matrix(values, what: str) -> np.ndarray:
    """Per-unit values as a float matrix ``(N, 4)`` in MEASURES order."""
    if isinstance(values, Mapping):
        missing = [a for a in MEASURES if a not in values]
        if missing:
            raise InputError(f"{what} lacks the measure(s) {', '.join(missing)}")
        values = np.column_stack([np.asarray(values[a], dtype=float) for a in MEASURES])
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(MEASURES):
        raise InputError(f"{what} must have shape (n, {len(MEASURES)}) (columns {MEASURES}); got {values.shape}")
    return values


def _z(level: float) -> float:
    """The two-sided normal quantile of ``level``."""
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise InputError(f"level must be in (0, 1); got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def _check_coded(yhat_c: np.ndarray, y_c: np.ndarray, pi_c: np.ndarray, n: int) -> None:
    """The coded rows' checks shared by both paths."""
    if len(pi_c) > n:
        raise InputError(f"{len(pi_c)} coded segments but the group has only {n} segments: inconsistent input")
    if not np.all(np.isfinite(pi_c) & (pi_c > 0) & (pi_c <= 1)):
        bad = pi_c[~(np.isfinite(pi_c) & (pi_c > 0) & (pi_c <= 1))]
        raise InputError(f"every coded pi must be in (0, 1]; got {bad[:5].tolist()}")
    if not (np.all(np.isfinite(yhat_c)) and np.all(np.isfinite(y_c))):
        raise InputError("the coded segments' yhat and y must be finite numbers")


def _finish(n: int, n_coded: int, mu: np.ndarray, cov: np.ndarray, s: np.ndarray, *,
            min_coded: int, level: float) -> list:
    """The published estimates from the DSL means ``(4,)``, their covariance ``(4, 4)`` and the sums ``S``."""
    z = _z(level)
    base = None
    if n < 2:
        base = f"only {n} segment(s) in the group; at least 2 needed"
    elif n_coded < min_coded:
        base = f"only {n_coded} coded segment(s) in the group; at least {min_coded} needed"
    out = []
    for measure in PUBLISHED_MEASURES:
        reason, value, var = base, None, None
        if measure in _MEAN_OF:
            i = _INDEX[_MEAN_OF[measure]]
            predicted = s[i] / n if n > 0 else None
            if reason is None:
                value, var = mu[i], cov[i, i] / n
        else:
            p, m = (_INDEX[a] for a in _RATIO_OF[measure])
            predicted = s[p] / s[m] if s[m] > 0 else None
            if reason is None and not mu[m] > 0:
                reason = f"the DSL mean of mentions is {mu[m]:.6g}: no share of positive mentions"
            if reason is None:
                value = mu[p] / mu[m]
                var = (cov[p, p] - 2 * value * cov[p, m] + value**2 * cov[m, m]) / (n * mu[m] ** 2)
        if reason is None:
            # rounding in Q - N mu^2 can leave a tiny negative variance where the true one is 0
            se = math.sqrt(max(float(var), 0.0))
            value = float(value)
            # the interval never leaves the measure's range (a share in [0, 1], a count >= 0): the
            # true value is inside it, so coverage is unchanged; the estimate itself stays unbiased
            low, high = _RANGE[measure]
            ci_low, ci_high = max(value - z * se, low), value + z * se if high is None else min(value + z * se, high)
            out.append(Estimate(measure, None if predicted is None else float(predicted), value, se,
                                ci_low, ci_high, n, n_coded))
        else:
            out.append(Estimate(measure, None if predicted is None else float(predicted), None, None, None,
                                None, n, n_coded, reason))
    return out


def estimate_from_sums(n: int, s, q, yhat_coded, y_coded, pi_coded, *, min_coded: int = 30,
                       level: float = 0.95) -> list:
    """The DSL estimates from Spark's sums and the coded segments, as arrays.

    Parameters
    ----------
    n : int
        Segments in the group, ``N``.
    s : array-like
        Shape ``(4,)``: ``S_a``, in :data:`MEASURES` order.
    q : array-like
        Shape ``(4, 4)``: ``Q_ab``, symmetric.
    yhat_coded, y_coded : array-like
        Shape ``(n_coded, 4)``: the coded segments' predictions and gold values.
    pi_coded : array-like
        Shape ``(n_coded,)``: their inclusion probabilities, in ``(0, 1]``.
    min_coded : int, default=30
        Fewest coded segments for which the DSL figures are given.
    level : float, default=0.95
        Coverage of the intervals.

    Returns
    -------
    list of Estimate
        Shape ``(5,)``: one per measure of :data:`PUBLISHED_MEASURES`, in that order.

    Raises
    ------
    InputError
        If there are more coded segments than ``n``, a ``pi`` is not in ``(0, 1]``, or a value
        is not finite.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise InputError(f"n must be a non-negative integer; got {n!r}")
    n = int(n)
    s = np.asarray(s, dtype=float).reshape(len(MEASURES))
    q = np.asarray(q, dtype=float).reshape(len(MEASURES), len(MEASURES))
    yhat_c = _matrix(np.asarray(yhat_coded, dtype=float).reshape(-1, len(MEASURES)), "yhat_coded")
    y_c = _matrix(np.asarray(y_coded, dtype=float).reshape(-1, len(MEASURES)), "y_coded")
    pi_c = np.asarray(pi_coded, dtype=float).reshape(-1)
    if not (len(yhat_c) == len(y_c) == len(pi_c)):
        raise InputError(f"yhat_coded, y_coded and pi_coded have {len(yhat_c)}, {len(y_c)} and {len(pi_c)} rows")
    _check_coded(yhat_c, y_c, pi_c, n)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(q))):
        raise InputError("the group's sums must be finite numbers")
    correction = (y_c - yhat_c) / pi_c[:, None]
    tilde_c = yhat_c + correction
    total = s + correction.sum(axis=0)
    products = q - yhat_c.T @ yhat_c + tilde_c.T @ tilde_c
    if n >= 1:
        mu = total / n
        cov = (products - n * np.outer(mu, mu)) / (n - 1) if n >= 2 else np.zeros_like(q)
    else:
        mu, cov = np.zeros(len(MEASURES)), np.zeros_like(q)
    return _finish(n, len(pi_c), mu, cov, s, min_coded=min_coded, level=level)


def estimate(group_sums: GroupSums, coded_rows: Sequence, *, min_coded: int = 30, level: float = 0.95) -> list:
    """The DSL estimates of one group, from Spark's sums and the group's coded segments.

    Parameters
    ----------
    group_sums : GroupSums
        ``N``, ``S_a`` and ``Q_ab`` of the group's predictions, over all its segments (the coded
        ones included).
    coded_rows : sequence of CodedRow
        Shape ``(n_coded,)``: the group's coded segments, each with ``yhat``, ``y`` and ``pi``.
    min_coded : int, default=30
        Fewest coded segments for which the DSL figures are given; below it they are ``None``
        with a ``reason`` (the normal interval needs a fair number of coded segments).
    level : float, default=0.95
        Coverage of the intervals (``z = 1.959964`` at 0.95).

    Returns
    -------
    list of Estimate
        Shape ``(5,)``: one per measure of :data:`PUBLISHED_MEASURES`, in that order. The DSL
        figures are ``None`` with a ``reason`` when there are fewer than ``min_coded`` coded
        segments, ``N < 2``, or (``share_positive``) the DSL mean of mentions is not positive.

    Raises
    ------
    InputError
        If there are more coded rows than ``N`` (inconsistent input), a measure is missing, a
        ``pi`` is not in ``(0, 1]`` or a value is not a finite number.

    Examples
    --------
    >>> sums = GroupSums.from_predictions([[1, 2, 1, 0], [0, 0, 0, 0], [1, 1, 0, 1]])
    >>> row = CodedRow(yhat=dict(zip(MEASURES, [0, 0, 0, 0])), y=dict(zip(MEASURES, [1, 1, 1, 0])), pi=1.0)
    >>> [round(e.estimate_dsl, 4) for e in estimate(sums, [row], min_coded=1)]
    [1.0, 1.3333, 0.6667, 0.3333, 0.5]
    """
    s, q = group_sums.arrays()
    rows = list(coded_rows)
    yhat_c = np.empty((len(rows), len(MEASURES)))
    y_c = np.empty((len(rows), len(MEASURES)))
    pi_c = np.empty(len(rows))
    for k, row in enumerate(rows):
        for what, target, values in (("yhat", yhat_c, row.yhat), ("y", y_c, row.y)):
            missing = [a for a in MEASURES if a not in values]
            if missing:
                raise InputError(f"coded row {k}: {what} lacks the measure(s) {', '.join(missing)}")
            target[k] = [_number(values[a], f"coded row {k}: {what}[{a!r}]") for a in MEASURES]
        pi_c[k] = _number(row.pi, f"coded row {k}: pi")
    return estimate_from_sums(group_sums.n, s, q, yhat_c, y_c, pi_c, min_coded=min_coded, level=level)


def dsl_from_arrays(yhat, y, coded_mask, pi, *, min_coded: int = 30, level: float = 0.95) -> list:
    """The DSL estimates computed segment by segment (the reference for the sums path).

    Parameters
    ----------
    yhat : array-like or Mapping[str, array-like]
        Shape ``(N, 4)``, columns in :data:`MEASURES` order (or measure -> ``(N,)``): predictions.
    y : array-like or Mapping[str, array-like]
        Shape ``(N, 4)``: gold values; only the coded rows are read (others may be NaN).
    coded_mask : array-like of bool
        Shape ``(N,)``: ``R``, which segments were coded.
    pi : array-like
        Shape ``(N,)``: inclusion probabilities; only the coded rows' are read.
    min_coded, level
        As in :func:`estimate`.

    Returns
    -------
    list of Estimate
        Shape ``(5,)``: as :func:`estimate` gives them for the same data.
    """
    yhat = _matrix(yhat, "yhat")
    y = _matrix(y, "y")
    mask = np.asarray(coded_mask, dtype=bool).reshape(-1)
    pi = np.asarray(pi, dtype=float).reshape(-1)
    n = yhat.shape[0]
    if not (y.shape[0] == len(mask) == len(pi) == n):
        raise InputError(f"yhat, y, coded_mask and pi have {n}, {y.shape[0]}, {len(mask)} and {len(pi)} rows")
    _check_coded(yhat[mask], y[mask], pi[mask], n)
    tilde = yhat.copy()
    tilde[mask] += (y[mask] - yhat[mask]) / pi[mask, None]
    mu = tilde.mean(axis=0) if n else np.zeros(len(MEASURES))
    cov = np.cov(tilde, rowvar=False, ddof=1) if n >= 2 else np.zeros((len(MEASURES), len(MEASURES)))
    return _finish(n, int(mask.sum()), mu, cov, yhat.sum(axis=0), min_coded=min_coded, level=level)


def coded_needed(disagreement: float, half_width: float, level: float = 0.95) -> int:
    """How many coded segments give a DSL interval of a given half-width for a binary measure.

    Derivation. Write ``e = Y - Yhat``. With ``R`` independent of ``(Y, Yhat)``,
    ``E[R / pi] = 1`` and ``E[(R / pi)^2] = 1 / pi``, so for one segment

        Var(Y~) = Var(Y) + E[(1 - pi) / pi * e^2].

    The mean of ``N`` such terms has variance ``Var(Y) / N + (1 - pi) / (N * pi) * E[e^2]``,
    and with ``pi = n / N`` that is ``Var(Y) / N + (1 / n - 1 / N) * E[e^2]``. For a group
    far larger than its coded sample (``N >> n``, a small sampling fraction) the ``1 / N``
    terms vanish and ``Var(mean Y~) ~ E[e^2] / n``. For a binary measure ``e^2`` is 1 exactly
    where the model and the truth disagree, so ``E[e^2]`` is the disagreement rate ``d``, and
    the half-width ``h = z * sqrt(d / n)`` gives

        n = z^2 * d / h^2   (rounded up).

    It is the number for one group (or one stratum-free population): the model's agreement
    with the truth, not the size of the corpus, drives how much coding a precise estimate
    needs. A finite group only needs fewer.

    Parameters
    ----------
    disagreement : float
        Share of segments on which the model's 0/1 differs from the truth, in ``[0, 1]``.
    half_width : float
        The wanted interval half-width, > 0 (0.02 for +- 2 percentage points).
    level : float, default=0.95
        Coverage of the interval.

    Returns
    -------
    int
        Coded segments needed (0 when the model never errs).

    Raises
    ------
    InputError
        If ``disagreement`` is not in ``[0, 1]``, ``half_width`` is not positive, or ``level``
        is not in ``(0, 1)``.

    Examples
    --------
    >>> coded_needed(0.1, 0.05)   # 1.959964^2 * 0.1 / 0.05^2 = 153.7
    154
    """
    if not (isinstance(disagreement, (int, float)) and 0 <= disagreement <= 1):
        raise InputError(f"disagreement must be a share in [0, 1]; got {disagreement!r}")
    if not (isinstance(half_width, (int, float)) and math.isfinite(half_width) and half_width > 0):
        raise InputError(f"half_width must be a positive number; got {half_width!r}")
    z = _z(level)
    # the tiny slack keeps an exact product from rounding up by float noise
    return math.ceil(z * z * disagreement / half_width**2 - 1e-9)
