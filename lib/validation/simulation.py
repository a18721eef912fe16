"""Coverage simulation of the DSL estimates (run by ``bench/dsl_coverage.py``, checked by a test).

A synthetic superpopulation of segments in groups, each group with a known share of segments
that mention a social group, a known number of mentions per such segment and a known stance
mix; a "model" with known, group-dependent errors (false positives, missed segments, dropped
mentions, stance flips), so that the estimates from its predictions alone are biased. Each
repetition draws a fresh population, draws a stratified sample (strata: group x predicted
has-mention) with :func:`~.sampling.allocate`, and computes the DSL estimates through the sums
path (:func:`~.dsl.estimate_from_sums`, as Spark feeds it), recording whether each 95%
interval covers the true superpopulation value. With ``finite=True`` one population is drawn
once and only the sample changes; the truth is then that population's own means.

Everything per repetition is vectorised numpy; 1,000 repetitions of 5,000 segments take a few
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from group_appeal_spark.lib.choices import Allocation
from group_appeal_spark.lib.errors import ConfigError, InputError
from group_appeal_spark.lib.validation.dsl import (
    MEASURES,
    PUBLISHED_MEASURES,
    estimate_from_sums,
)
from group_appeal_spark.lib.validation.sampling import allocate

__all__ = ["SimulationParams", "simulate", "true_values"]

_POS, _NEG, _NEU = 0, 1, 2
# a flipped stance: positive and negative become neutral, neutral becomes positive
_FLIP_TO = np.array([_NEU, _NEU, _POS])


@dataclass(frozen=True)
class SimulationParams:
    """The superpopulation and the model's errors, one entry per group.

    Attributes
    ----------
    groups : tuple of str
        Group names.
    share : tuple of float
        Each group's share of the segments (sums to 1).
    p_mention : tuple of float
        True share of the group's segments with at least one mention.
    extra_mention : tuple of float
        A segment with a mention has ``1 + Binomial(2, extra_mention)`` mentions.
    stance_mix : tuple of (float, float, float)
        True (positive, negative, neutral) shares of the group's mentions.
    false_positive : tuple of float
        Probability that the model finds one (spurious) mention in a segment with none.
    false_negative : tuple of float
        Probability that the model misses every mention of a segment that has some.
    drop_mention : float
        Probability that the model misses a mention other than a segment's first.
    stance_flip : tuple of float
        Probability that the model flips a found mention's stance (positive and negative to
        neutral, neutral to positive).
    spurious_mix : tuple of (float, float, float)
        Stance mix of the spurious mentions.
    """

    groups: tuple = ("A", "B", "C")
    share: tuple = (0.4, 0.35, 0.25)
    p_mention: tuple = (0.30, 0.45, 0.20)
    extra_mention: tuple = (0.25, 0.15, 0.30)
    stance_mix: tuple = ((0.5, 0.2, 0.3), (0.25, 0.45, 0.3), (0.3, 0.2, 0.5))
    false_positive: tuple = (0.10, 0.02, 0.05)
    false_negative: tuple = (0.05, 0.25, 0.10)
    drop_mention: float = 0.15
    stance_flip: tuple = (0.30, 0.10, 0.25)
    spurious_mix: tuple = (0.6, 0.1, 0.3)


def true_values(params: SimulationParams | None = None) -> dict:
    """The superpopulation values of the published measures.

    Parameters
    ----------
    params : SimulationParams, optional
        Defaults to ``SimulationParams()``.

    Returns
    -------
    dict
        group -> {published measure -> value}.
    """
    params = params or SimulationParams()
    out = {}
    for g, name in enumerate(params.groups):
        p = params.p_mention[g]
        mentions = p * (1 + 2 * params.extra_mention[g])
        pos, neg, _ = params.stance_mix[g]
        out[name] = {
            "share_segments_with_mentions": p,
            "mentions_per_segment": mentions,
            "positive_per_segment": mentions * pos,
            "negative_per_segment": mentions * neg,
            "share_positive": pos,
        }
    return out


def _stances(rng, mix: np.ndarray) -> np.ndarray:
    """One stance per row of ``mix`` ``(M, 3)``."""
    cum = np.cumsum(mix, axis=1)
    return (rng.random(len(mix))[:, None] >= cum[:, :2]).sum(axis=1)


def _population(rng, n: int, params: SimulationParams) -> tuple:
    """Groups ``(n,)``, true ``Y`` ``(n, 4)`` and predicted ``Yhat`` ``(n, 4)`` of a fresh population."""
    g = rng.choice(len(params.groups), size=n, p=np.asarray(params.share))
    has = rng.random(n) < np.asarray(params.p_mention)[g]
    count = has * (1 + rng.binomial(2, np.asarray(params.extra_mention)[g]))
    seg = np.repeat(np.arange(n), count)
    stance = _stances(rng, np.asarray(params.stance_mix)[g[seg]])
    y = np.column_stack([
        has, count,
        np.bincount(seg, weights=stance == _POS, minlength=n),
        np.bincount(seg, weights=stance == _NEG, minlength=n),
    ]).astype(float)
    # the model: whole segments missed, later mentions dropped, stances flipped, spurious finds
    detected = has & (rng.random(n) >= np.asarray(params.false_negative)[g])
    position = np.arange(len(seg)) - (np.cumsum(count) - count)[seg]
    keep = detected[seg] & ((position == 0) | (rng.random(len(seg)) >= params.drop_mention))
    flip = rng.random(len(seg)) < np.asarray(params.stance_flip)[g[seg]]
    predicted = np.where(flip, _FLIP_TO[stance], stance)
    spurious = ~has & (rng.random(n) < np.asarray(params.false_positive)[g])
    spurious_stance = _stances(rng, np.broadcast_to(np.asarray(params.spurious_mix), (n, 3)))
    kept = seg[keep]
    yhat = np.column_stack([
        detected | spurious,
        np.bincount(kept, minlength=n) + spurious,
        np.bincount(kept, weights=predicted[keep] == _POS, minlength=n) + (spurious & (spurious_stance == _POS)),
        np.bincount(kept, weights=predicted[keep] == _NEG, minlength=n) + (spurious & (spurious_stance == _NEG)),
    ]).astype(float)
    return g, y, yhat


def _sample(rng, strata: np.ndarray, n_strata: int, n_coded: int, allocation) -> tuple:
    """A stratified sample without replacement: the coded mask ``(n,)`` and each unit's ``pi`` ``(n,)``."""
    sizes = np.bincount(strata, minlength=n_strata)
    allocated = allocate({(h,): int(sizes[h]) for h in range(n_strata)}, n_coded, allocation)
    n_h = np.array([allocated[(h,)] for h in range(n_strata)])
    # a random order within each stratum; the first n_h of stratum h are coded
    order = np.lexsort((rng.random(len(strata)), strata))
    starts = np.cumsum(sizes) - sizes
    rank = np.arange(len(strata)) - starts[strata[order]]
    coded = np.zeros(len(strata), dtype=bool)
    coded[order] = rank < n_h[strata[order]]
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = (n_h / np.where(sizes > 0, sizes, 1))[strata]
    return coded, pi


def simulate(reps: int = 1000, *, n_segments: int = 20_000, n_coded: int = 600,
             allocations=("proportional", "equal"), finite: bool = False, seed: int = 0,
             min_coded: int = 30, level: float = 0.95, params: SimulationParams | None = None) -> dict:
    """Repeat population, stratified sample and DSL estimate; measure coverage, bias and width.

    Parameters
    ----------
    reps : int, default=1000
        Repetitions.
    n_segments : int, default=20000
        Segments per population (all groups together).
    n_coded : int, default=600
        Coded segments per sample (all groups together).
    allocations : sequence of str, default=("proportional", "equal")
        Allocations to compare; each repetition draws one sample per allocation from the same
        population.
    finite : bool, default=False
        ``False``: a fresh population per repetition, truth = the superpopulation values of
        :func:`true_values`. ``True``: one population for all repetitions, truth = its own
        means (and its ratio of totals for ``share_positive``).
    seed : int, default=0
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same figures.
    min_coded : int, default=30
        Passed to the estimator; estimates it leaves null are counted in ``n_null``.
    level : float, default=0.95
        Interval coverage.
    params : SimulationParams, optional
        The superpopulation and the model; defaults to ``SimulationParams()``.

    Returns
    -------
    dict
        ``config`` (the arguments), ``truth`` (group -> measure -> value; for ``finite`` the
        population's) and ``rows``: one dict per (allocation, group, measure) with
        ``coverage_dsl`` and ``coverage_predicted`` (share of repetitions whose interval covers
        the truth; the predicted-only interval is the naive one from the predictions' own
        variance), ``bias_dsl`` and ``bias_predicted`` (mean estimate minus truth),
        ``rmse_dsl``, ``rmse_predicted``, ``mean_width_dsl`` (mean interval width),
        ``mean_se_dsl``, ``sd_dsl`` (standard deviation of the estimates over repetitions),
        ``n_valid`` and ``n_null``.

    Raises
    ------
    InputError
        If ``reps`` or ``n_segments`` is below 1, an allocation is unknown, or the sample does
        not fit the population.
    """
    params = params or SimulationParams()
    if reps < 1 or n_segments < 1:
        raise InputError(f"reps and n_segments must be >= 1; got reps={reps}, n_segments={n_segments}")
    try:
        allocations = [Allocation.parse(a) for a in allocations]
    except ConfigError as err:
        raise InputError(str(err)) from None
    rng = np.random.default_rng(seed)
    n_groups = len(params.groups)
    n_strata = 2 * n_groups
    fixed = _population(rng, n_segments, params) if finite else None
    if finite:
        g, y, _ = fixed
        truth = {}
        for k, name in enumerate(params.groups):
            means = y[g == k].mean(axis=0)
            truth[name] = {
                "share_segments_with_mentions": means[0], "mentions_per_segment": means[1],
                "positive_per_segment": means[2], "negative_per_segment": means[3],
                "share_positive": means[2] / means[1],
            }
    else:
        truth = true_values(params)
    target = np.array([[truth[name][m] for m in PUBLISHED_MEASURES] for name in params.groups])
    n_alloc, n_meas = len(allocations), len(PUBLISHED_MEASURES)
    shape = (reps, n_alloc, n_groups, n_meas)
    est_dsl, se_dsl, low, high = (np.full(shape, np.nan) for _ in range(4))
    est_pred, low_pred, high_pred = (np.full(shape, np.nan) for _ in range(3))
    empty = np.empty((0, len(MEASURES)))
    for r in range(reps):
        g, y, yhat = fixed if finite else _population(rng, n_segments, params)
        strata = 2 * g + (yhat[:, 0] > 0)
        groups = [np.flatnonzero(g == k) for k in range(n_groups)]
        sums = [(yhat[idx].sum(axis=0), yhat[idx].T @ yhat[idx]) for idx in groups]
        for k, idx in enumerate(groups):
            # no coded rows: the predictions' own mean and naive interval
            naive = estimate_from_sums(len(idx), *sums[k], empty, empty, np.empty(0), min_coded=0, level=level)
            for j, e in enumerate(naive):
                if e.reason is None:
                    est_pred[r, :, k, j], low_pred[r, :, k, j], high_pred[r, :, k, j] = e.estimate_dsl, e.ci_low, e.ci_high
        for a, allocation in enumerate(allocations):
            coded, pi = _sample(rng, strata, n_strata, n_coded, allocation)
            for k, idx in enumerate(groups):
                c = idx[coded[idx]]
                for j, e in enumerate(estimate_from_sums(len(idx), *sums[k], yhat[c], y[c], pi[c],
                                                         min_coded=min_coded, level=level)):
                    if e.reason is None:
                        est_dsl[r, a, k, j], se_dsl[r, a, k, j] = e.estimate_dsl, e.se
                        low[r, a, k, j], high[r, a, k, j] = e.ci_low, e.ci_high
    rows = []
    for a, allocation in enumerate(allocations):
        for k, name in enumerate(params.groups):
            for j, measure in enumerate(PUBLISHED_MEASURES):
                t = target[k, j]
                valid = ~np.isnan(est_dsl[:, a, k, j])
                valid_pred = ~np.isnan(est_pred[:, a, k, j])
                dsl, pred = est_dsl[valid, a, k, j], est_pred[valid_pred, a, k, j]
                rows.append({
                    "allocation": allocation.value, "group": name, "measure": measure, "truth": float(t),
                    "coverage_dsl": _mean((low[valid, a, k, j] <= t) & (t <= high[valid, a, k, j])),
                    "coverage_predicted": _mean((low_pred[valid_pred, a, k, j] <= t) & (t <= high_pred[valid_pred, a, k, j])),
                    "bias_dsl": _mean(dsl - t), "bias_predicted": _mean(pred - t),
                    "rmse_dsl": _rms(dsl - t), "rmse_predicted": _rms(pred - t),
                    "mean_width_dsl": _mean(high[valid, a, k, j] - low[valid, a, k, j]),
                    "mean_se_dsl": _mean(se_dsl[valid, a, k, j]),
                    "sd_dsl": float(dsl.std(ddof=1)) if len(dsl) > 1 else None,
                    "n_valid": int(valid.sum()), "n_null": int((~valid).sum()),
                })
    config = {"reps": reps, "n_segments": n_segments, "n_coded": n_coded, "finite": finite, "seed": seed,
              "min_coded": min_coded, "level": level, "allocations": [a.value for a in allocations],
              "groups": list(params.groups)}
    truth = {name: {m: float(v) for m, v in values.items()} for name, values in truth.items()}
    return {"config": config, "truth": truth, "rows": rows}


def _mean(values) -> float | None:
    """The mean, or None of nothing."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if len(values) else None


def _rms(values) -> float | None:
    """The root mean square, or None of nothing."""
    values = np.asarray(values, dtype=float)
    return float(np.sqrt((values**2).mean())) if len(values) else None
