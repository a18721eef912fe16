"""DSL estimates: a hand-computed group, the sums path equal to the per-unit path, the nulls,
perfect predictions, and the coding-size formula."""

import math

import numpy as np
import pytest
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.dsl import (
    CROSS_PAIRS,
    MEASURES,
    PUBLISHED_MEASURES,
    CodedRow,
    GroupSums,
    coded_needed,
    dsl_from_arrays,
    estimate,
    estimate_from_sums,
)

Z = 1.959963984540054

# N = 5 segments; columns has_mention, mentions, positive, negative. Segments 1 and 2 are coded
# with pi = 0.4 (1 / pi = 2.5).
YHAT = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 2, 1, 1], [0, 0, 0, 0]], dtype=float)
Y_CODED = np.array([[1, 2, 1, 1], [1, 1, 0, 1]], dtype=float)
# Y~ = Yhat + 2.5 (Y - Yhat) on the coded rows:
#   has:      1, 2.5, 1, 1, 0      sum 5.5  mean 1.1  s^2 = (3*0.01 + 1.96 + 1.21) / 4 = 0.8
#   mentions: 3.5, 2.5, 1, 2, 0    sum 9    mean 1.8  s^2 = (2.89 + .49 + .64 + .04 + 3.24) / 4 = 1.825
#   positive: 1, 0, 0, 1, 0        sum 2    mean 0.4  s^2 = (2*0.36 + 3*0.16) / 4 = 0.3
#   negative: 2.5, 2.5, 0, 1, 0    sum 6    mean 1.2  s^2 = (2*1.69 + 2*1.44 + 0.04) / 4 = 1.575
# share_positive: r = 0.4 / 1.8 = 2/9; Y~_p - r Y~_m = 2/9, -5/9, -2/9, 5/9, 0 (mean 0),
#   s^2 = 58/81 / 4 = 29/162, Var(r) = 29/162 / (5 * 1.8^2) = 145/13122
EXPECTED = {
    "share_segments_with_mentions": (0.6, 1.1, math.sqrt(0.8 / 5)),  # se = sqrt(0.16) = 0.4
    "mentions_per_segment": (0.8, 1.8, math.sqrt(1.825 / 5)),
    "positive_per_segment": (0.4, 0.4, math.sqrt(0.3 / 5)),
    "negative_per_segment": (0.2, 1.2, math.sqrt(1.575 / 5)),
    "share_positive": (0.5, 2 / 9, math.sqrt(145 / 13122)),  # predicted 2 positive of 4 mentions
}


def _coded_rows(yhat, y, pi):
    return [CodedRow(dict(zip(MEASURES, h)), dict(zip(MEASURES, t)), p) for h, t, p in zip(yhat, y, pi)]


def _check_hand_computed(estimates):
    assert [e.measure for e in estimates] == list(PUBLISHED_MEASURES)
    for e in estimates:
        predicted, value, se = EXPECTED[e.measure]
        assert (e.estimate_predicted, e.estimate_dsl, e.se) == pytest.approx((predicted, value, se), rel=1e-12)
        # the normal interval, kept inside the measure's range (a share in [0, 1], a count >= 0)
        high = 1.0 if e.measure.startswith("share") else math.inf
        assert (e.ci_low, e.ci_high) == pytest.approx((max(value - Z * se, 0.0), min(value + Z * se, high)),
                                                      rel=1e-12)
        assert (e.n_segments, e.n_coded, e.reason) == (5, 2, None)


def test_hand_computed_group_through_the_sums():
    estimates = estimate(GroupSums.from_predictions(YHAT), _coded_rows(YHAT[:2], Y_CODED, [0.4, 0.4]), min_coded=2)
    _check_hand_computed(estimates)
    has = estimates[0]
    assert has.se == pytest.approx(0.4) and has.ci_low == pytest.approx(1.1 - 0.4 * 1.959964, abs=1e-6)


def test_hand_computed_group_per_unit():
    y = np.full_like(YHAT, np.nan)
    y[:2] = Y_CODED
    _check_hand_computed(dsl_from_arrays(YHAT, y, [True, True, False, False, False], [0.4, 0.4, 1, 1, 1], min_coded=2))


def test_group_sums_by_hand_and_cross_lookup_in_either_order():
    sums = GroupSums.from_predictions(YHAT)
    assert sums.n == 5 and sums.sums == {"has_mention": 3, "mentions": 4, "positive": 2, "negative": 1}
    assert set(sums.cross) == set(CROSS_PAIRS) and len(CROSS_PAIRS) == 10
    # mentions * negative: 1*0 + 0 + 1*0 + 2*1 + 0 = 2
    assert sums.cross_sum("negative", "mentions") == sums.cross_sum("mentions", "negative") == 2
    reversed_keys = GroupSums(sums.n, dict(sums.sums), {(b, a): v for (a, b), v in sums.cross.items()})
    rows = _coded_rows(YHAT[:2], Y_CODED, [0.4, 0.4])
    assert estimate(reversed_keys, rows, min_coded=2) == estimate(sums, rows, min_coded=2)


@pytest.mark.parametrize("seed", range(5))
def test_sums_path_equals_the_per_unit_path(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 3000))
    has = rng.random(n) < 0.3
    mentions = has * (1 + rng.poisson(0.5, n))
    pos = rng.binomial(mentions, 0.4)
    neg = rng.binomial(mentions - pos, 0.5)
    y = np.column_stack([has, mentions, pos, neg]).astype(float)
    flip = rng.random(n) < 0.15
    yhat = y.copy()
    yhat[flip] = np.column_stack([~has, (~has) * 1, (~has) * 1, 0 * has])[flip]
    strata = (yhat[:, 0] > 0).astype(int)
    pi_by_stratum = np.array([0.05, 0.3])
    coded = rng.random(n) < pi_by_stratum[strata]
    pi = pi_by_stratum[strata]
    y_masked = np.where(coded[:, None], y, np.nan)
    per_unit = dsl_from_arrays(yhat, y_masked, coded, pi, min_coded=1)
    sums_path = estimate(GroupSums.from_predictions(yhat), _coded_rows(yhat[coded], y[coded], pi[coded]), min_coded=1)
    for a, b in zip(per_unit, sums_path):
        assert a.measure == b.measure and a.reason is None and b.reason is None
        for field in ("estimate_predicted", "estimate_dsl", "se", "ci_low", "ci_high"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-12, abs=0), (a.measure, field)
        assert (a.n_segments, a.n_coded) == (b.n_segments, b.n_coded) == (n, int(coded.sum()))


def test_perfect_predictions_give_the_predicted_estimate():
    rng = np.random.default_rng(4)
    yhat = np.column_stack([rng.integers(0, 2, 500), rng.integers(0, 4, 500), rng.integers(0, 2, 500),
                            rng.integers(0, 2, 500)]).astype(float)
    coded = np.zeros(500, dtype=bool)
    coded[rng.choice(500, 60, replace=False)] = True
    rows = _coded_rows(yhat[coded], yhat[coded], np.full(60, 0.12))
    for e in estimate(GroupSums.from_predictions(yhat), rows):
        assert e.estimate_dsl == pytest.approx(e.estimate_predicted, rel=1e-12)
    # and the interval is the predictions' own: sqrt(s^2(Yhat) / N)
    has = estimate(GroupSums.from_predictions(yhat), rows)[0]
    assert has.se == pytest.approx(math.sqrt(yhat[:, 0].var(ddof=1) / 500), rel=1e-10)


def test_nulls_and_their_reasons():
    sums = GroupSums.from_predictions(YHAT)
    rows = _coded_rows(YHAT[:2], Y_CODED, [0.4, 0.4])
    few = estimate(sums, rows)  # min_coded=30
    assert {e.reason for e in few} == {"only 2 coded segment(s) in the group; at least 30 needed"}
    assert all(e.estimate_dsl is None and e.se is None and e.ci_low is None and e.ci_high is None for e in few)
    assert [e.estimate_predicted for e in few] == pytest.approx([0.6, 0.8, 0.4, 0.2, 0.5])
    one = estimate(GroupSums.from_predictions(YHAT[:1]), rows[:1], min_coded=1)
    assert {e.reason for e in one} == {"only 1 segment(s) in the group; at least 2 needed"}
    empty = estimate(GroupSums.from_predictions(np.zeros((0, 4))), [], min_coded=0)
    assert all(e.estimate_predicted is None and e.n_segments == 0 for e in empty)
    # no mention anywhere, predicted or coded: the ratio has no value, the means are 0
    zeros = np.zeros((10, 4))
    none = estimate(GroupSums.from_predictions(zeros), _coded_rows(zeros[:3], zeros[:3], [0.3] * 3), min_coded=3)
    assert [e.estimate_dsl for e in none[:4]] == [0.0, 0.0, 0.0, 0.0] and none[0].se == 0.0
    assert none[4].estimate_predicted is None and none[4].estimate_dsl is None
    assert none[4].reason == "the DSL mean of mentions is 0: no share of positive mentions"


def test_a_tiny_negative_variance_from_rounding_is_zero():
    # Q = S^2 / N less a rounding error: the variance is 0, not a math domain error
    s = np.array([0.3, 0.3, 0.1, 0.1])
    q = np.outer(s, s) / 3 - 1e-17
    (has, *_rest) = estimate_from_sums(3, s, q, np.empty((0, 4)), np.empty((0, 4)), [], min_coded=0)
    assert has.se == 0.0 and has.ci_low == has.ci_high == has.estimate_dsl == pytest.approx(0.1)


@pytest.mark.parametrize("call, match", [
    (lambda: estimate(GroupSums.from_predictions(YHAT[:1]), _coded_rows(YHAT[:2], Y_CODED, [0.4, 0.4])),
     r"^2 coded segments but the group has only 1 segments: inconsistent input$"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), _coded_rows(YHAT[:2], Y_CODED, [0.4, 0.0])),
     r"^every coded pi must be in \(0, 1\]; got \[0\.0\]$"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), _coded_rows(YHAT[:1], Y_CODED[:1], [1.5])),
     r"^every coded pi must be in \(0, 1\]; got \[1\.5\]$"),
    (lambda: estimate(GroupSums(5, {"has_mention": 1}, {}), []), r"^GroupSums.sums lacks the measure\(s\) mentions, positive, negative$"),
    (lambda: estimate(GroupSums(5, dict(zip(MEASURES, [1, 1, 1, 1])), {}), []),
     r"^GroupSums.cross lacks the pair \('has_mention', 'has_mention'\)"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), [CodedRow({"has_mention": 1}, {}, 0.5)]),
     r"^coded row 0: yhat lacks the measure\(s\) mentions, positive, negative$"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), [CodedRow(dict.fromkeys(MEASURES, 0), dict.fromkeys(MEASURES, "1"), 0.5)]),
     r"^coded row 0: y\['has_mention'\] must be a finite number; got '1'$"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), [CodedRow(dict.fromkeys(MEASURES, 0), dict.fromkeys(MEASURES, math.nan), 0.5)]),
     r"^coded row 0: y\['has_mention'\] must be a finite number; got nan$"),
    (lambda: estimate(GroupSums(-1, dict.fromkeys(MEASURES, 0), dict.fromkeys(CROSS_PAIRS, 0)), []),
     r"^n must be a non-negative integer; got -1$"),
    (lambda: dsl_from_arrays(YHAT, YHAT, [True] * 4, [1] * 5), r"^yhat, y, coded_mask and pi have 5, 5, 4 and 5 rows$"),
    (lambda: dsl_from_arrays(YHAT[:, :3], YHAT, [True] * 5, [1] * 5), r"^yhat must have shape \(n, 4\)"),
    (lambda: estimate(GroupSums.from_predictions(YHAT), [], level=95), r"^level must be in \(0, 1\); got 95$"),
])
def test_estimate_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()


@pytest.mark.parametrize("disagreement, half_width, level, expected", [
    (0.1, 0.05, 0.95, 154),    # 1.959964^2 * 0.1 / 0.0025 = 153.66
    (0.2, 0.02, 0.95, 1921),   # 3.841459 * 0.2 / 0.0004 = 1920.73
    (0.1, 0.05, 0.90, 109),    # 1.644854^2 * 0.1 / 0.0025 = 108.22
    (0.0, 0.05, 0.95, 0),
])
def test_coded_needed(disagreement, half_width, level, expected):
    assert coded_needed(disagreement, half_width, level) == expected


def test_coded_needed_gives_the_half_width_in_a_large_group():
    # a group 200 times the coded sample, simple random sampling, the model wrong on 10%
    rng = np.random.default_rng(0)
    n_coded = coded_needed(0.1, 0.02)  # 961
    big = 200 * n_coded
    y = (rng.random(big) < 0.3).astype(float)
    yhat = np.where(rng.random(big) < 0.1, 1 - y, y)
    coded = np.zeros(big, dtype=bool)
    coded[rng.choice(big, n_coded, replace=False)] = True
    ys = np.column_stack([y, y, y, y])
    has = dsl_from_arrays(np.column_stack([yhat] * 4), ys, coded, np.full(big, n_coded / big))[0]
    assert Z * has.se == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("args, match", [
    ((1.2, 0.05), r"^disagreement must be a share in \[0, 1\]; got 1\.2$"),
    ((0.1, 0.0), r"^half_width must be a positive number; got 0\.0$"),
    ((0.1, 0.05, 1.0), r"^level must be in \(0, 1\); got 1\.0$"),
])
def test_coded_needed_errors(args, match):
    with pytest.raises(InputError, match=match):
        coded_needed(*args)
