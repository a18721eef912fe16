"""The coverage simulation: DSL intervals cover the truth, predictions alone are biased."""

import numpy as np
import pytest
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.dsl import PUBLISHED_MEASURES
from group_appeal_spark.lib.validation.simulation import (
    SimulationParams,
    simulate,
    true_values,
)


@pytest.fixture(scope="module")
def superpopulation():
    # 1,000 fresh populations of 5,000 segments, 1,000 coded each (both allocations). With 600
    # coded the rarest measure (negative mentions in the smallest group, ~4 coded segments
    # where the model errs) under-covers at ~0.91, a small-sample limit of the normal interval,
    # not of the estimator; bench/dsl_coverage.py shows it.
    return simulate(1000, n_segments=5000, n_coded=1000, seed=0)


def test_dsl_intervals_cover_the_superpopulation_value(superpopulation):
    rows = superpopulation["rows"]
    assert len(rows) == 2 * 3 * len(PUBLISHED_MEASURES)
    assert all(r["n_null"] == 0 and r["n_valid"] == 1000 for r in rows)
    for measure in PUBLISHED_MEASURES:
        pooled = np.mean([r["coverage_dsl"] for r in rows if r["measure"] == measure])
        assert 0.93 <= pooled <= 0.97, (measure, pooled)
    # each cell: 1,000 repetitions give a binomial sd of 0.007 around 0.95
    for r in rows:
        assert 0.91 <= r["coverage_dsl"] <= 0.985, r


def test_dsl_is_unbiased_and_the_predictions_are_not(superpopulation):
    rows = superpopulation["rows"]
    for r in rows:
        # mean of 1,000 estimates: within 4 standard errors of the truth
        assert abs(r["bias_dsl"]) < 4 * r["sd_dsl"] / np.sqrt(r["n_valid"]), r
    for measure in PUBLISHED_MEASURES:
        cells = [r for r in rows if r["measure"] == measure]
        assert min(r["coverage_predicted"] for r in cells) < 0.5, measure
        assert max(abs(r["bias_predicted"]) for r in cells) > 10 * max(abs(r["bias_dsl"]) for r in cells), measure


def test_truth_is_the_superpopulation_value():
    truth = true_values()
    # group A: 30% of segments with 1 + Binomial(2, 0.25) mentions = 1.5 each, half positive
    assert truth["A"] == pytest.approx({
        "share_segments_with_mentions": 0.3, "mentions_per_segment": 0.45, "positive_per_segment": 0.225,
        "negative_per_segment": 0.09, "share_positive": 0.5,
    })


def test_finite_population_variant_and_reproducibility():
    out = simulate(300, n_segments=4000, n_coded=800, finite=True, seed=3, allocations=("proportional",))
    assert out == simulate(300, n_segments=4000, n_coded=800, finite=True, seed=3, allocations=("proportional",))
    assert out["truth"] != true_values()  # the population's own means
    for measure in PUBLISHED_MEASURES:
        pooled = np.mean([r["coverage_dsl"] for r in out["rows"] if r["measure"] == measure])
        assert 0.9 <= pooled <= 0.99, (measure, pooled)


def test_with_perfect_predictions_dsl_equals_predicted():
    perfect = SimulationParams(false_positive=(0, 0, 0), false_negative=(0, 0, 0), drop_mention=0.0,
                               stance_flip=(0, 0, 0))
    out = simulate(50, n_segments=3000, n_coded=300, seed=1, params=perfect)
    for r in out["rows"]:
        assert r["bias_dsl"] == pytest.approx(r["bias_predicted"], abs=1e-12)
        assert r["coverage_dsl"] == r["coverage_predicted"]


@pytest.mark.parametrize("kwargs, match", [
    ({"reps": 0}, r"^reps and n_segments must be >= 1; got reps=0, n_segments=5000$"),
    ({"allocations": ("random",)}, r"^invalid allocation 'random'; expected one of: 'proportional', 'equal'$"),
    ({"n_coded": 3}, r"^n=3 is smaller than the 6 non-empty strata"),
])
def test_simulation_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate(**({"reps": 1, "n_segments": 5000} | kwargs))
