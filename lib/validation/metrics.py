"""Accuracy of the models on the coded sample, weighted back to the population.

Each coded segment carries its predicted and its gold mentions, ``(start, end, stance)`` with
segment-relative offsets, and its inclusion probability ``pi``. Every count below is weighted
by ``w = 1 / pi``, so a stratum coded at twice the rate of another counts half per segment and
the figures estimate the models' accuracy on the whole population even when the allocation
was not proportional; with equal ``pi`` everywhere they are the plain, unweighted figures.

- ``has_mention``: the sentence-level decision (the model says "has a mention" when it
  predicts any), precision / recall / F1 over segments;
- ``mentions_strict``: mentions matched one-to-one on identical ``(start, end)``;
- ``mentions_relaxed``: mentions matched one-to-one on overlapping spans (the most matches,
  then the largest total overlap);
- ``stance``: accuracy and macro-F1 of the stance over the relaxed matches, and the 3x3
  confusion matrix (gold rows, predicted columns, in :data:`STANCES` order).

:func:`bootstrap_intervals` adds stratified bootstrap percentile intervals.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from group_appeal_spark.lib.choices import STANCES
from group_appeal_spark.lib.errors import InputError

__all__ = [
    "MATCH_MODES",
    "EvalSegment",
    "bootstrap_intervals",
    "compute_metrics",
    "match",
    "segment_counts",
]

#: The ways :func:`match` pairs predicted and gold mentions.
MATCH_MODES = ("strict", "relaxed")

# Columns of the per-segment count matrix.
_HM_TP, _HM_FP, _HM_FN, _STRICT_TP, _N_PRED, _N_GOLD, _RELAXED_TP = range(7)
_CONF = 7  # then the 9 cells of the stance confusion, row-major
_N_COUNTS = _CONF + len(STANCES) ** 2
_PRF = ("has_mention", "mentions_strict", "mentions_relaxed")


@dataclass(frozen=True)
class EvalSegment:
    """One coded segment as the metrics see it.

    Attributes
    ----------
    predicted : list of (int, int, str)
        Shape ``(n_pred,)``: the model's mentions, ``(start, end, stance)``.
    gold : list of (int, int, str)
        Shape ``(n_gold,)``: the coder's mentions.
    pi : float
        Inclusion probability, in ``(0, 1]``; the segment's weight is ``1 / pi``.
    stratum : hashable, default=None
        The sampling stratum, which the bootstrap resamples within.
    """

    predicted: Sequence = field(default_factory=list)
    gold: Sequence = field(default_factory=list)
    pi: float = 1.0
    stratum: object = None

    @property
    def weight(self) -> float:
        """``1 / pi``."""
        return 1.0 / self.pi


def _check_mentions(mentions, what: str) -> list:
    """Mentions as a list of (int, int, str), checked."""
    out = []
    for mention in mentions:
        try:
            start, end, stance = mention
        except (TypeError, ValueError):
            raise InputError(f"{what} mention {mention!r} is not (start, end, stance)") from None
        if not (0 <= start < end):
            raise InputError(f"{what} mention {mention!r}: need 0 <= start < end")
        if stance not in STANCES:
            raise InputError(f"{what} mention {mention!r}: unknown stance {stance!r}; expected one of: "
                             f"{', '.join(STANCES)}")
        out.append((int(start), int(end), stance))
    return out


def match(pred, gold, mode: str = "strict") -> list:
    """Pair predicted with gold mentions one-to-one.

    Parameters
    ----------
    pred : sequence of (int, int, ...)
        Shape ``(n_pred,)``: predicted spans; only ``start`` and ``end`` are used.
    gold : sequence of (int, int, ...)
        Shape ``(n_gold,)``: gold spans.
    mode : {"strict", "relaxed"}, default="strict"
        ``strict``: a pair has identical ``(start, end)``. ``relaxed``: a pair's spans overlap
        by at least one character; among all one-to-one matchings the one with the most pairs
        is taken, and among those the one with the largest total overlap
        (:func:`scipy.optimize.linear_sum_assignment`).

    Returns
    -------
    list of (int, int)
        ``(index into pred, index into gold)``, sorted by the predicted index.

    Raises
    ------
    InputError
        If ``mode`` is not one of :data:`MATCH_MODES`.

    Examples
    --------
    >>> match([(0, 5, "neutral"), (10, 20, "neutral")], [(0, 5, "neutral"), (12, 25, "neutral")], "strict")
    [(0, 0)]
    >>> match([(0, 5, "neutral"), (10, 20, "neutral")], [(0, 5, "neutral"), (12, 25, "neutral")], "relaxed")
    [(0, 0), (1, 1)]
    """
    if mode not in MATCH_MODES:
        raise InputError(f"invalid match mode {mode!r}; expected one of: {', '.join(map(repr, MATCH_MODES))}")
    if not len(pred) or not len(gold):
        return []
    if mode == "strict":
        free: dict = {}
        for j, g in enumerate(gold):
            free.setdefault((g[0], g[1]), []).append(j)
        pairs = []
        for i, p in enumerate(pred):
            js = free.get((p[0], p[1]))
            if js:
                pairs.append((i, js.pop(0)))
        return pairs
    from scipy.optimize import linear_sum_assignment

    ps = np.array([(p[0], p[1]) for p in pred], dtype=np.int64)
    gs = np.array([(g[0], g[1]) for g in gold], dtype=np.int64)
    overlap = np.minimum(ps[:, 1:2], gs[None, :, 1]) - np.maximum(ps[:, 0:1], gs[None, :, 0])
    overlap = np.clip(overlap, 0, None)
    if not overlap.any():
        return []
    # A bonus larger than any matching's total overlap makes each extra pair worth more than
    # all the overlap there is: the most pairs first, then the largest overlap.
    bonus = float(overlap.sum()) + 1.0
    score = np.where(overlap > 0, bonus + overlap, 0.0)
    rows, cols = linear_sum_assignment(score, maximize=True)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if overlap[i, j] > 0)


def segment_counts(pred, gold) -> np.ndarray:
    """The counts of one segment that every metric is built from.

    Parameters
    ----------
    pred, gold : sequence of (int, int, str)
        Shapes ``(n_pred,)`` and ``(n_gold,)``: predicted and gold mentions.

    Returns
    -------
    numpy.ndarray
        Shape ``(16,)``, float64: has-mention tp, fp, fn (0/1 each); strict tp; number of
        predicted mentions; number of gold mentions; relaxed tp; then the 3x3 stance confusion
        over the relaxed matches (gold rows x predicted columns, :data:`STANCES` order),
        row-major.
    """
    pred = _check_mentions(pred, "predicted")
    gold = _check_mentions(gold, "gold")
    out = np.zeros(_N_COUNTS)
    has_pred, has_gold = bool(pred), bool(gold)
    out[_HM_TP] = has_pred and has_gold
    out[_HM_FP] = has_pred and not has_gold
    out[_HM_FN] = has_gold and not has_pred
    out[_STRICT_TP] = len(match(pred, gold, "strict"))
    out[_N_PRED] = len(pred)
    out[_N_GOLD] = len(gold)
    relaxed = match(pred, gold, "relaxed")
    out[_RELAXED_TP] = len(relaxed)
    k = len(STANCES)
    for i, j in relaxed:
        out[_CONF + STANCES.index(gold[j][2]) * k + STANCES.index(pred[i][2])] += 1
    return out


def _prepare(segments) -> tuple:
    """Counts ``(n, 16)``, weights ``(n,)`` and strata ``(n,)`` of the segments."""
    segments = list(segments)
    if not segments:
        raise InputError("no coded segments to compute metrics on")
    counts = np.empty((len(segments), _N_COUNTS))
    weights = np.empty(len(segments))
    for i, seg in enumerate(segments):
        pi = seg.pi
        if isinstance(pi, bool) or not (isinstance(pi, numbers.Real) and math.isfinite(pi) and 0 < pi <= 1):
            raise InputError(f"segment {i}: pi must be a number in (0, 1]; got {pi!r}")
        counts[i] = segment_counts(seg.predicted, seg.gold)
        weights[i] = 1.0 / pi
    return counts, weights, [seg.stratum for seg in segments]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _metrics_from_sums(sums: np.ndarray) -> dict:
    """Every scalar metric from weighted count sums of shape ``(B, 16)``; each value ``(B,)``, NaN if undefined."""
    out = {}
    triples = {
        "has_mention": (sums[:, _HM_TP], sums[:, _HM_TP] + sums[:, _HM_FP], sums[:, _HM_TP] + sums[:, _HM_FN]),
        "mentions_strict": (sums[:, _STRICT_TP], sums[:, _N_PRED], sums[:, _N_GOLD]),
        "mentions_relaxed": (sums[:, _RELAXED_TP], sums[:, _N_PRED], sums[:, _N_GOLD]),
    }
    for name, (tp, n_pred, n_gold) in triples.items():
        # F1 = 2 tp / (n_pred + n_gold): defined whenever anything was predicted or coded,
        # 0 (not undefined) when the model predicts nothing but the coder found something
        out[name] = {"precision": _ratio(tp, n_pred), "recall": _ratio(tp, n_gold),
                     "f1": _ratio(2 * tp, n_pred + n_gold)}
    k = len(STANCES)
    conf = sums[:, _CONF:].reshape(-1, k, k)
    total = conf.sum(axis=(1, 2))
    diag = np.einsum("bii->bi", conf)
    present = conf.sum(axis=2) + conf.sum(axis=1)
    per_class = _ratio(2 * diag, present)
    n_present = (present > 0).sum(axis=1)
    macro = _ratio(np.nansum(per_class, axis=1), n_present.astype(float))
    out["stance"] = {"accuracy": _ratio(diag.sum(axis=1), total), "macro_f1": macro}
    return out


def _scalar(value) -> float | None:
    """A float, or None where undefined."""
    value = float(value)
    return None if math.isnan(value) else value


def compute_metrics(segments) -> dict:
    """Weighted accuracy of the models on the coded segments.

    Parameters
    ----------
    segments : iterable of EvalSegment
        Shape ``(n_segments,)``: every coded segment, with ``predicted``, ``gold`` and ``pi``.

    Returns
    -------
    dict
        - ``n_segments`` (int), ``sum_weights`` (float: the sum of ``1 / pi``, an estimate of
          the population size);
        - ``has_mention``, ``mentions_strict``, ``mentions_relaxed``: each
          ``{"precision", "recall", "f1"}`` with ``P = sum w*tp / sum w*(tp+fp)``,
          ``R = sum w*tp / sum w*(tp+fn)`` and ``F1 = 2 sum w*tp / (sum w*(2tp+fp+fn))``;
          ``None`` where the denominator is 0 (nothing predicted, nothing coded);
        - ``stance``: ``accuracy`` (weighted share of the relaxed matches whose stance agrees),
          ``macro_f1`` (mean of the per-class F1 over the classes that occur among the matches'
          gold or predicted stances), ``n_matched`` (relaxed matches, unweighted) and
          ``confusion``: ``{"labels": list(STANCES), "weighted": 3x3 list, "counts": 3x3 list}``
          (gold rows, predicted columns). ``accuracy`` and ``macro_f1`` are ``None`` without
          any match.

    Raises
    ------
    InputError
        If there are no segments, a ``pi`` is not in ``(0, 1]``, or a mention is malformed.
    """
    counts, weights, _ = _prepare(segments)
    return _summarise(counts, weights)


def _summarise(counts: np.ndarray, weights: np.ndarray) -> dict:
    """The :func:`compute_metrics` dict from counts ``(n, 16)`` and weights ``(n,)``."""
    values = _metrics_from_sums((weights @ counts)[None, :])
    out = {"n_segments": len(weights), "sum_weights": float(weights.sum())}
    for name, group in values.items():
        out[name] = {metric: _scalar(v[0]) for metric, v in group.items()}
    k = len(STANCES)
    out["stance"]["n_matched"] = int(counts[:, _RELAXED_TP].sum())
    out["stance"]["confusion"] = {
        "labels": list(STANCES),
        "weighted": (weights @ counts[:, _CONF:]).reshape(k, k).tolist(),
        "counts": counts[:, _CONF:].sum(axis=0).reshape(k, k).astype(int).tolist(),
    }
    return out


def bootstrap_intervals(segments, B: int = 1000, seed: int | None = 0, level: float = 0.95) -> dict:
    """Stratified bootstrap percentile intervals for every metric of :func:`compute_metrics`.

    Each replicate draws, within every stratum, as many segments as the stratum has, with
    replacement, and recomputes every metric on them with the same weights ``w = 1 / pi``:
    the weights correct for unequal allocations (a stratum coded at a higher rate counts less
    per segment), and where every ``pi`` is equal the figures are the unweighted ones.
    Keeping each stratum's size fixed reproduces the sampling design's fixed allocation.

    Parameters
    ----------
    segments : iterable of EvalSegment
        Shape ``(n_segments,)``: every coded segment, with its ``stratum``.
    B : int, default=1000
        Bootstrap replicates.
    seed : int or None, default=0
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same intervals.
    level : float, default=0.95
        Coverage of each interval, in ``(0, 1)``.

    Returns
    -------
    dict
        The keys of :func:`compute_metrics`' scalar metrics (``has_mention``,
        ``mentions_strict``, ``mentions_relaxed``: precision, recall, f1; ``stance``:
        accuracy, macro_f1), each ``{"estimate", "ci_low", "ci_high"}``: the estimate on the
        sample and the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the
        replicates where the metric is defined (``None`` where it is undefined on the sample
        or in every replicate); plus ``B``, ``level``, ``seed``.

    Raises
    ------
    InputError
        If ``B < 1``, ``level`` is not in ``(0, 1)``, or the segments are unusable
        (see :func:`compute_metrics`).
    """
    if isinstance(B, bool) or not isinstance(B, int) or B < 1:
        raise InputError(f"B must be a positive integer; got {B!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise InputError(f"level must be in (0, 1); got {level!r}")
    counts, weights, strata = _prepare(segments)
    n = len(weights)
    rng = np.random.default_rng(seed)
    # draws[b, i]: how often replicate b takes segment i; built per stratum, then one matrix
    # product gives every replicate's weighted sums at once
    groups: dict = {}
    for i, stratum in enumerate(strata):
        groups.setdefault(stratum, []).append(i)
    offsets = (np.arange(B) * n)[:, None]
    flat = []
    for members in groups.values():
        members = np.asarray(members)
        flat.append((offsets + members[rng.integers(0, len(members), size=(B, len(members)))]).ravel())
    draws = np.bincount(np.concatenate(flat), minlength=B * n).reshape(B, n).astype(float)
    replicates = _metrics_from_sums(draws @ (weights[:, None] * counts))
    point = _metrics_from_sums((weights @ counts)[None, :])
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out: dict = {}
    for name, group in replicates.items():
        out[name] = {}
        for metric, values in group.items():
            estimate = _scalar(point[name][metric][0])
            defined = values[~np.isnan(values)]
            if estimate is None or not len(defined):
                low = high = None
            else:
                low, high = (float(v) for v in np.percentile(defined, [lo_q, hi_q]))
            out[name][metric] = {"estimate": estimate, "ci_low": low, "ci_high": high}
    out.update(B=B, level=level, seed=seed)
    return out
