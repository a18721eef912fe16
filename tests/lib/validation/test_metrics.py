"""Accuracy on the coded sample: matching, weighted P/R/F1, the stance confusion, the bootstrap."""

import time

import numpy as np
import pytest
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.metrics import (
    EvalSegment,
    bootstrap_intervals,
    compute_metrics,
    match,
    segment_counts,
)

# Four segments, two of them coded at half the rate (weight 2):
#   s1 (w=1): pred (0,5,pos) (10,20,neg); gold (0,5,pos) (12,25,neu)
#       has: tp; strict: 1 of 2 (only (0,5)); relaxed: 2 ((10,20) overlaps (12,25) by 8)
#       stance over the relaxed matches: pos->pos, neu->neg
#   s2 (w=2): pred (3,8,neu); gold none            has: fp; 1 predicted, 0 gold
#   s3 (w=2): pred none; gold (0,4,neg)            has: fn; 0 predicted, 1 gold
#   s4 (w=1): pred (0,10,neg); gold (0,10,neg)     has: tp; strict 1, relaxed 1; neg->neg
SEGMENTS = [
    EvalSegment([(0, 5, "positive"), (10, 20, "negative")], [(0, 5, "positive"), (12, 25, "neutral")], 1.0, "x"),
    EvalSegment([(3, 8, "neutral")], [], 0.5, "y"),
    EvalSegment([], [(0, 4, "negative")], 0.5, "y"),
    EvalSegment([(0, 10, "negative")], [(0, 10, "negative")], 1.0, "x"),
]


def test_hand_computed_weighted_metrics():
    out = compute_metrics(SEGMENTS)
    assert out["n_segments"] == 4 and out["sum_weights"] == 6.0
    # has: sum w*tp = 1 + 1 = 2, sum w*fp = 2, sum w*fn = 2 -> P = R = 2/4, F1 = 4/8
    assert out["has_mention"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    # strict: sum w*tp = 1 + 1 = 2; predicted 1*2 + 2*1 + 1*1 = 5; gold 1*2 + 2*1 + 1*1 = 5 -> 0.4
    assert out["mentions_strict"] == pytest.approx({"precision": 0.4, "recall": 0.4, "f1": 0.4})
    # relaxed: sum w*tp = 2 + 1 = 3 of 5 and 5 -> 0.6
    assert out["mentions_relaxed"] == pytest.approx({"precision": 0.6, "recall": 0.6, "f1": 0.6})
    stance = out["stance"]
    # three matches (weight 1 each), two agree; confusion rows gold pos/neg/neu, columns predicted
    assert stance["n_matched"] == 3
    assert stance["accuracy"] == pytest.approx(2 / 3)
    assert stance["confusion"] == {
        "labels": ["positive", "negative", "neutral"],
        "weighted": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
        "counts": [[1, 0, 0], [0, 1, 0], [0, 1, 0]],
    }
    # per class F1 = 2 C_cc / (row_c + col_c): pos 2/2 = 1, neg 2/(1+2) = 2/3, neu 0/(1+0) = 0
    assert stance["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_unweighted_figures_and_equal_pi_reduce_to_them():
    plain = [EvalSegment(s.predicted, s.gold, 1.0, s.stratum) for s in SEGMENTS]
    out = compute_metrics(plain)
    # has: tp 2, fp 1, fn 1 -> 2/3; strict 2 of 4 and 4; relaxed 3 of 4 and 4
    assert out["has_mention"]["precision"] == pytest.approx(2 / 3)
    assert out["mentions_strict"]["f1"] == pytest.approx(0.5)
    assert out["mentions_relaxed"]["recall"] == pytest.approx(0.75)
    halved = compute_metrics([EvalSegment(s.predicted, s.gold, 0.5, s.stratum) for s in SEGMENTS])
    for name in ("has_mention", "mentions_strict", "mentions_relaxed"):
        assert halved[name] == pytest.approx(out[name])
    assert halved["stance"]["accuracy"] == pytest.approx(out["stance"]["accuracy"])


def test_strict_and_relaxed_matching_on_overlapping_spans():
    pred = [(0, 5, "neutral"), (10, 20, "neutral")]
    gold = [(0, 5, "neutral"), (12, 25, "neutral")]
    assert match(pred, gold, "strict") == [(0, 0)]
    assert match(pred, gold, "relaxed") == [(0, 0), (1, 1)]
    # touching spans share no character
    assert match([(0, 5)], [(5, 9)], "relaxed") == []
    # one predicted span over two gold ones: the larger overlap (5 > 3) wins
    assert match([(0, 10)], [(0, 3), (5, 10)], "relaxed") == [(0, 1)]
    # the most pairs before the largest overlap: pairing (0,10) with (0,10) (overlap 10) would
    # leave both others alone; (0,10)-(8,12) and (0,2)-(0,10) make two pairs
    assert match([(0, 10), (0, 2)], [(0, 10), (8, 12)], "relaxed") == [(0, 1), (1, 0)]
    # one-to-one in strict mode too
    assert match([(0, 5), (0, 5)], [(0, 5)], "strict") == [(0, 0)]
    assert match([], gold, "relaxed") == [] and match(pred, [], "strict") == []


def test_segment_counts_layout():
    counts = segment_counts(SEGMENTS[0].predicted, SEGMENTS[0].gold)
    # has tp, fp, fn, strict tp, n_pred, n_gold, relaxed tp, then the confusion row-major
    assert counts.tolist() == [1, 0, 0, 1, 2, 2, 2] + [1, 0, 0, 0, 0, 0, 0, 1, 0]


def test_undefined_metrics_are_none_not_errors():
    out = compute_metrics([EvalSegment([], [], 1.0)])
    for name in ("has_mention", "mentions_strict", "mentions_relaxed"):
        assert out[name] == {"precision": None, "recall": None, "f1": None}
    assert out["stance"]["accuracy"] is None and out["stance"]["macro_f1"] is None
    # the model predicts nothing while the coder found a mention: precision undefined, F1 0
    missed = compute_metrics([EvalSegment([], [(0, 3, "neutral")], 1.0)])
    assert missed["mentions_relaxed"] == {"precision": None, "recall": 0.0, "f1": 0.0}


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    segments = _random_segments(rng, 200)
    a = bootstrap_intervals(segments, B=300, seed=7)
    b = bootstrap_intervals(segments, B=300, seed=7)
    c = bootstrap_intervals(segments, B=300, seed=8)
    assert a == b and a != c
    point = compute_metrics(segments)
    for name in ("has_mention", "mentions_strict", "mentions_relaxed"):
        for metric in ("precision", "recall", "f1"):
            cell = a[name][metric]
            assert cell["estimate"] == pytest.approx(point[name][metric])
            assert cell["ci_low"] < cell["estimate"] < cell["ci_high"]
    assert a["stance"]["accuracy"]["estimate"] == pytest.approx(point["stance"]["accuracy"])
    assert (a["B"], a["level"], a["seed"]) == (300, 0.95, 7)


def test_bootstrap_resamples_within_strata():
    # one segment per stratum: every replicate is the sample itself, so the interval is a point
    out = bootstrap_intervals([EvalSegment(s.predicted, s.gold, s.pi, i) for i, s in enumerate(SEGMENTS)], B=50)
    for metric in ("precision", "recall", "f1"):
        cell = out["mentions_relaxed"][metric]
        assert cell["ci_low"] == pytest.approx(cell["estimate"]) and cell["ci_high"] == pytest.approx(cell["estimate"])
    # pooled in one stratum, the same segments give a real interval
    pooled = bootstrap_intervals([EvalSegment(s.predicted, s.gold, s.pi, 0) for s in SEGMENTS], B=200)
    assert pooled["mentions_relaxed"]["precision"]["ci_low"] < pooled["mentions_relaxed"]["precision"]["ci_high"]


def test_bootstrap_of_1000_segments_is_fast():
    segments = _random_segments(np.random.default_rng(1), 1000)
    start = time.perf_counter()
    out = bootstrap_intervals(segments, B=1000, seed=0)
    assert time.perf_counter() - start < 5
    assert out["stance"]["macro_f1"]["ci_low"] is not None


def _random_segments(rng, n):
    stances = ["positive", "negative", "neutral"]
    segments = []
    for i in range(n):
        gold = [(10 * k, 10 * k + 5, stances[rng.integers(3)]) for k in range(rng.integers(0, 3))]
        pred = [(s + int(rng.integers(-1, 2)) + 1, e, st if rng.random() < 0.8 else stances[rng.integers(3)])
                for s, e, st in gold if rng.random() < 0.8]
        if rng.random() < 0.2:
            pred.append((40, 45, "neutral"))
        segments.append(EvalSegment(pred, gold, [0.2, 0.5, 1.0][i % 3], i % 3))
    return segments


@pytest.mark.parametrize("call, match_", [
    (lambda: match([(0, 1)], [(0, 1)], "fuzzy"), r"^invalid match mode 'fuzzy'; expected one of: 'strict', 'relaxed'$"),
    (lambda: compute_metrics([]), r"^no coded segments to compute metrics on$"),
    (lambda: compute_metrics([EvalSegment([], [], 0.0)]), r"^segment 0: pi must be a number in \(0, 1\]; got 0\.0$"),
    (lambda: compute_metrics([EvalSegment([], [], 1.5)]), r"^segment 0: pi must be a number in \(0, 1\]; got 1\.5$"),
    (lambda: compute_metrics([EvalSegment([(0, 3, "happy")], [], 1.0)]),
     r"^predicted mention \(0, 3, 'happy'\): unknown stance 'happy'; expected one of: positive, negative, neutral$"),
    (lambda: compute_metrics([EvalSegment([], [(3, 3, "neutral")], 1.0)]),
     r"^gold mention \(3, 3, 'neutral'\): need 0 <= start < end$"),
    (lambda: compute_metrics([EvalSegment([], [(3, 4)], 1.0)]), r"^gold mention \(3, 4\) is not \(start, end, stance\)$"),
    (lambda: bootstrap_intervals(SEGMENTS, B=0), r"^B must be a positive integer; got 0$"),
    (lambda: bootstrap_intervals(SEGMENTS, level=1.0), r"^level must be in \(0, 1\); got 1\.0$"),
])
def test_metric_errors(call, match_):
    with pytest.raises(InputError, match=match_):
        call()
