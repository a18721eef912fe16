"""Stratified allocation: Hamilton rounding, ties by key, the floor of one, caps, and its errors."""

import numpy as np
import pytest
from group_appeal_spark.lib.choices import Allocation
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.sampling import (
    allocate,
    inclusion_probabilities,
    stratum_sort_key,
)


@pytest.mark.parametrize("population, n, allocation, expected", [
    # 10 * (50, 30, 20) / 100 = (5, 3, 2) exactly
    ({("a",): 50, ("b",): 30, ("c",): 20}, 10, "proportional", [5, 3, 2]),
    # quotas 5/3 each: floors 1, 1, 1; the 2 left go to the first two keys (equal remainders)
    ({("c",): 10, ("b",): 10, ("a",): 10}, 5, "proportional", [1, 2, 2]),
    # quotas 1.5 each: the one left goes to the key with None, which sorts first
    ({("x", "a"): 10, (None, "a"): 10}, 3, "proportional", [1, 2]),
    # quotas 4/3 each over mixed types: floors 1, the one left to None, then numbers, then text
    ({("1",): 10, (1,): 10, (None,): 10}, 4, "proportional", [1, 1, 2]),
    # quotas 7 * (6, 3, 1) / 10 = 4.2, 2.1, 0.7: c is raised to 1, then 6 * (6, 3) / 9 = 4, 2
    ({("a",): 6, ("b",): 3, ("c",): 1}, 7, "proportional", [4, 2, 1]),
    # 10 * 5 / 1000 = 0.05 < 1 for b and c: both get 1, the 8 left go to a
    ({("a",): 990, ("b",): 5, ("c",): 5}, 10, "proportional", [8, 1, 1]),
    # empty strata get 0 and count for nothing
    ({("a",): 0, ("b",): 10, ("c",): 30}, 4, "proportional", [0, 1, 3]),
    # the whole population
    ({("a",): 3, ("b",): 2}, 5, "proportional", [3, 2]),
    # equal: 7 = 3 * 2 + 1, the remainder to the first key
    ({("b",): 10, ("a",): 10, ("c",): 10}, 7, "equal", [2, 3, 2]),
    # equal with a cap: a has only 2; the 29 left split 15 / 14 (remainder to b, first by key)
    ({("a",): 2, ("b",): 100, ("c",): 100}, 31, "equal", [2, 15, 14]),
    ({("a",): 2, ("b",): 100, ("c",): 100}, 30, "equal", [2, 14, 14]),
    # two rounds of caps: 13 / 3 = 4.3 caps a at 1; 12 / 2 = 6 caps b at 5; c gets the other 7
    ({("a",): 1, ("b",): 5, ("c",): 100}, 13, "equal", [1, 5, 7]),
    ({("a",): 0, ("b",): 4, ("c",): 4}, 8, Allocation.EQUAL, [0, 4, 4]),
])
def test_hand_computed_allocations(population, n, allocation, expected):
    out = allocate(population, n, allocation)
    assert list(out) == list(population)  # the population's order
    assert list(out.values()) == expected
    assert sum(out.values()) == n


@pytest.mark.parametrize("allocation", ["proportional", "equal", " Equal "])
def test_random_populations_keep_every_rule(allocation):
    rng = np.random.default_rng(3)
    for _ in range(300):
        sizes = rng.integers(0, 60, size=rng.integers(1, 9))
        sizes[rng.integers(len(sizes))] += 1  # at least one non-empty stratum
        population = {(i % 3, None if i % 2 else "x", i): int(s) for i, s in enumerate(sizes)}
        nonempty = int((sizes > 0).sum())
        n = int(rng.integers(nonempty, sizes.sum() + 1))
        out = allocate(population, n, allocation)
        assert sum(out.values()) == n
        for key, size in population.items():
            assert (1 if size else 0) <= out[key] <= size


def test_proportional_is_within_one_of_the_quota_when_no_floor_binds():
    population = {(k,): size for k, size in enumerate([1234, 567, 890, 3456, 78])}
    out = allocate(population, 400, "proportional")
    total = sum(population.values())
    for key, size in population.items():
        assert abs(out[key] - 400 * size / total) < 1


def test_sort_key_orders_none_numbers_then_text():
    keys = [("b",), (2,), (None,), ("a",), (1.5,), (None, None)]
    assert sorted(keys, key=stratum_sort_key) == [(None,), (None, None), (1.5,), (2,), ("a",), ("b",)]


@pytest.mark.parametrize("population, n, allocation, match", [
    ({("a",): 5}, 0, "proportional", r"^n=0: the sample needs at least one segment$"),
    ({("a",): 60, ("b",): 40}, 101, "proportional", r"^n=101 is larger than the population of 100 segments$"),
    ({(k,): 10 for k in "abcde"} | {("f",): 0}, 3, "equal",
     (r"^n=3 is smaller than the 5 non-empty strata: every stratum needs at least one coded segment; "
      r"raise --n or use fewer --strata$")),
    ({("a",): 5}, 2, "random", r"^invalid allocation 'random'; expected one of: 'proportional', 'equal'$"),
    ({("a",): 5}, 2.0, "equal", r"^n must be an integer; got 2\.0$"),
    ({("a",): 5}, True, "equal", r"^n must be an integer; got True$"),
    ({("a",): -1, ("b",): 4}, 2, "equal", r"^stratum \('a',\): population count must be a non-negative integer; got -1$"),
    ({("a",): 2.5}, 2, "equal", r"population count must be a non-negative integer; got 2\.5$"),
    ({}, 2, "equal", r"^population must be a non-empty mapping"),
])
def test_allocation_errors(population, n, allocation, match):
    with pytest.raises(InputError, match=match):
        allocate(population, n, allocation)


def test_inclusion_probabilities():
    population = {("a",): 50, ("b",): 30, ("c",): 20, ("d",): 0}
    allocated = allocate(population, 10)
    # 5/50, 3/30, 2/20; the empty stratum has no units and no probability
    assert inclusion_probabilities(population, allocated) == {("a",): 0.1, ("b",): 0.1, ("c",): 0.1}
    equal = allocate(population, 9, "equal")
    assert inclusion_probabilities(population, equal) == {("a",): 3 / 50, ("b",): 3 / 30, ("c",): 3 / 20}


@pytest.mark.parametrize("allocated, match", [
    ({("a",): 5}, r"^allocated and population have different strata: missing \[\('b',\)\], extra \[\]$"),
    ({("a",): 5, ("b",): 4}, r"^stratum \('b',\): allocated 4 must be an integer in \[0, 3\]$"),
    ({("a",): 5, ("b",): 0}, r"^stratum \('b',\) has 3 segments but none allocated: every unit needs pi > 0$"),
])
def test_inclusion_probability_errors(allocated, match):
    with pytest.raises(InputError, match=match):
        inclusion_probabilities({("a",): 10, ("b",): 3}, allocated)
