"""How many segments of each stratum to code, and the inclusion probability that follows.

:func:`allocate` spreads a sample of ``n`` segments over strata (tuples of stratum values, such
as ``(group, predicted_has_mention)``); :func:`inclusion_probabilities` gives each stratum's
``pi = n_h / N_h``, which the design-based estimates of :mod:`.dsl` and the weights of
:mod:`.metrics` need. Every non-empty stratum gets at least one segment, because DSL is
unbiased only where every unit has ``pi > 0``.

The arithmetic is exact (:class:`fractions.Fraction`), so ties are real ties and are broken by
the stratum key alone, the same way on every machine.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from fractions import Fraction

from group_appeal_spark.lib.choices import Allocation
from group_appeal_spark.lib.errors import ConfigError, InputError

__all__ = ["Allocation", "allocate", "inclusion_probabilities", "stratum_sort_key"]


def stratum_sort_key(key) -> tuple:
    """A sort key for stratum keys of mixed types: ``None`` first, then numbers, then the rest by text.

    Parameters
    ----------
    key : tuple or scalar
        A stratum key; a scalar sorts as a 1-tuple.

    Returns
    -------
    tuple
        Comparable with the sort key of any other stratum key.
    """
    values = key if isinstance(key, tuple) else (key,)
    out = []
    for value in values:
        if value is None:
            out.append((0, 0.0, ""))
        elif isinstance(value, numbers.Real) and not (isinstance(value, float) and math.isnan(value)):
            out.append((1, float(value), ""))
        else:
            out.append((2, 0.0, f"{type(value).__name__}:{value}"))
    return tuple(out)


def _check_population(population: Mapping) -> dict:
    """The population as ``{key: int}``, every count a non-negative integer."""
    if not isinstance(population, Mapping) or not population:
        raise InputError(f"population must be a non-empty mapping of stratum -> count; got {population!r}")
    out = {}
    for key, count in population.items():
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise InputError(f"stratum {key!r}: population count must be a non-negative integer; got {count!r}")
        out[key] = int(count)
    return out


def _hamilton(quotas: dict, total: int, order: list) -> dict:
    """Largest-remainder rounding of exact ``quotas`` that sum to ``total``; ties in ``order``."""
    floors = {key: math.floor(q) for key, q in quotas.items()}
    left = total - sum(floors.values())
    rank = {key: i for i, key in enumerate(order)}
    by_remainder = sorted(quotas, key=lambda key: (-(quotas[key] - floors[key]), rank[key]))
    for key in by_remainder[:left]:
        floors[key] += 1
    return floors


def _proportional(sizes: dict, n: int, order: list) -> dict:
    """Proportional allocation with a floor of 1 and a cap of N_h, freed units spread proportionally."""
    fixed: dict = {}
    while True:
        free = [key for key in order if key not in fixed]
        budget = n - sum(fixed.values())
        weight = sum(sizes[key] for key in free)
        quotas = {key: Fraction(budget * sizes[key], weight) for key in free}
        low = [key for key in free if quotas[key] < 1]
        high = [key for key in free if quotas[key] > sizes[key]]
        # A quota is N_h * (a common rate), so a free stratum can fall below 1 only when the
        # rate is < 1 and exceed N_h only when it is > 1: never both in one round.
        if not low and not high:
            break
        for key in low:
            fixed[key] = 1
        for key in high:
            fixed[key] = sizes[key]
    # quotas are in [1, N_h] and N_h is an integer, so rounding keeps both bounds
    return {**fixed, **_hamilton(quotas, budget, free)}


def _equal(sizes: dict, n: int, order: list) -> dict:
    """Equal allocation by water-filling: strata smaller than the even share are taken whole."""
    fixed: dict = {}
    while True:
        free = [key for key in order if key not in fixed]
        budget = n - sum(fixed.values())
        small = [key for key in free if sizes[key] * len(free) <= budget]
        if not small or len(small) == len(free):
            break
        for key in small:
            fixed[key] = sizes[key]
    if small and len(small) == len(free):  # n equals the whole population of the free strata
        return {**fixed, **{key: sizes[key] for key in free}}
    share, left = divmod(budget, len(free))
    # every free stratum has N_h > budget / len(free) >= share, so share + 1 still fits
    return {**fixed, **{key: share + (i < left) for i, key in enumerate(free)}}


def allocate(population: Mapping[Hashable, int], n: int, allocation: str = "proportional") -> dict:
    """Spread a sample of ``n`` segments over the strata.

    Parameters
    ----------
    population : Mapping[tuple, int]
        Shape ``(n_strata,)``: stratum key (a tuple of stratum values, which may contain
        ``None``) -> number of segments ``N_h`` in it (a non-negative int).
    n : int
        Segments to sample in all, ``1 <= n <= sum(N_h)``.
    allocation : {"proportional", "equal"} or Allocation, default="proportional"
        ``proportional``: largest-remainder (Hamilton) rounding of ``n * N_h / N``.
        ``equal``: ``n`` split evenly over the non-empty strata, the remainder to the first
        strata in key order. In both, every stratum with ``N_h > 0`` gets at least 1 and at most
        ``N_h``; what a floor takes or a cap frees is spread over the other strata the same way
        (proportionally or evenly).

    Returns
    -------
    dict
        Shape ``(n_strata,)``: stratum key -> ``n_h``, in the order of ``population``; the
        values sum to ``n``; strata with ``N_h = 0`` get 0. Ties (equal remainders, the
        remainder of an even split) go to the strata that sort first by
        :func:`stratum_sort_key` (``None`` first).

    Raises
    ------
    InputError
        If ``n`` is not an integer in ``[1, sum(N_h)]``, is smaller than the number of
        non-empty strata, a count is not a non-negative integer, or ``allocation`` is unknown.

    Examples
    --------
    >>> allocate({("a",): 50, ("b",): 30, ("c",): 20}, 10)
    {('a',): 5, ('b',): 3, ('c',): 2}
    >>> allocate({("a",): 2, ("b",): 100, ("c",): 100}, 31, "equal")
    {('a',): 2, ('b',): 15, ('c',): 14}
    """
    try:
        allocation = Allocation.parse(allocation)
    except ConfigError as err:
        raise InputError(str(err)) from None
    sizes = _check_population(population)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise InputError(f"n must be an integer; got {n!r}")
    n = int(n)
    total = sum(sizes.values())
    nonempty = [key for key, size in sizes.items() if size > 0]
    if n < 1:
        raise InputError(f"n={n}: the sample needs at least one segment")
    if n > total:
        raise InputError(f"n={n} is larger than the population of {total} segments")
    if n < len(nonempty):
        raise InputError(
            f"n={n} is smaller than the {len(nonempty)} non-empty strata: every stratum needs at least "
            "one coded segment; raise --n or use fewer --strata"
        )
    order = sorted(nonempty, key=stratum_sort_key)
    nonempty_sizes = {key: sizes[key] for key in nonempty}
    if allocation is Allocation.PROPORTIONAL:
        out = _proportional(nonempty_sizes, n, order)
    else:
        out = _equal(nonempty_sizes, n, order)
    return {key: int(out.get(key, 0)) for key in sizes}


def inclusion_probabilities(population: Mapping[Hashable, int], allocated: Mapping[Hashable, int]) -> dict:
    """Each stratum's inclusion probability ``pi_h = n_h / N_h``.

    Parameters
    ----------
    population : Mapping[tuple, int]
        Shape ``(n_strata,)``: stratum key -> ``N_h``.
    allocated : Mapping[tuple, int]
        Shape ``(n_strata,)``: stratum key -> ``n_h``, as :func:`allocate` returns it.

    Returns
    -------
    dict
        Stratum key -> ``pi_h`` (float in ``(0, 1]``) for every stratum with ``N_h > 0``; strata
        with no segments have no units to weight and are left out.

    Raises
    ------
    InputError
        If the two mappings have different keys, or some ``n_h`` is negative, above ``N_h``,
        or 0 for a non-empty stratum (DSL needs ``pi > 0`` for every unit).
    """
    sizes = _check_population(population)
    if set(allocated) != set(sizes):
        missing = [k for k in sizes if k not in allocated]
        extra = [k for k in allocated if k not in sizes]
        raise InputError(f"allocated and population have different strata: missing {missing}, extra {extra}")
    out = {}
    for key, size in sizes.items():
        n_h = allocated[key]
        if isinstance(n_h, bool) or not isinstance(n_h, numbers.Integral) or not 0 <= n_h <= size:
            raise InputError(f"stratum {key!r}: allocated {n_h!r} must be an integer in [0, {size}]")
        if size == 0:
            continue
        if n_h == 0:
            raise InputError(
                f"stratum {key!r} has {size} segments but none allocated: every unit needs pi > 0"
            )
        out[key] = n_h / size
    return out
