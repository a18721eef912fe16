"""Direct tests of lib/inference/batching.py: length-sorted batches, padding, the one-result check.

Every expected batch below is worked out by hand from the rule in ``length_sorted_batches``:
positions sorted by length, longest first (stable: ties keep input order), then cut into runs of
at most ``batch_size`` positions and, with ``max_tokens``, at most ``max_tokens // longest``
positions (the first one of a run being its longest), never fewer than one.
"""

import re

import numpy as np
import pytest
import torch
from group_appeal_spark.lib.errors import GroupAppealSparkError, OutputMismatchError
from group_appeal_spark.lib.inference.batching import (
    check_one_per_input,
    length_sorted_batches,
    pad_rows,
)


def _lists(batches):
    return [b.tolist() for b in batches]


# ---------------------------------------------------------------------------------------------
# length_sorted_batches
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("lengths", "batch_size", "expected"),
    [
        # sorted 5(1) 5(3) 3(0) 2(4) 1(2), cut every 2
        ([3, 5, 1, 5, 2], 2, [[1, 3], [0, 4], [2]]),
        # equal lengths keep their input order
        ([4, 4, 4, 4], 3, [[0, 1, 2], [3]]),
        # a batch size above the input count gives one batch, still longest first
        ([2, 7, 4], 10, [[1, 2, 0]]),
        ([2, 7, 4], 3, [[1, 2, 0]]),
        # batch size 1: one position per batch, longest first
        ([2, 7, 4], 1, [[1], [2], [0]]),
        # a single input
        ([9], 4, [[0]]),
        # zero lengths sort last and are batched like any other
        ([0, 3, 0, 3], 2, [[1, 3], [0, 2]]),
    ],
)
def test_batches_by_count(lengths, batch_size, expected):
    assert _lists(length_sorted_batches(lengths, batch_size)) == expected


@pytest.mark.parametrize(
    ("lengths", "batch_size", "max_tokens", "expected"),
    [
        # 20 // 10 = 2 rows, then 20 // 3 = 6 rows capped by batch_size 4, then the last one
        ([10, 8, 3, 3, 3, 3, 3], 4, 20, [[0, 1], [2, 3, 4, 5], [6]]),
        # an input longer than the budget gets a batch of its own; the rest 16 // 5 = 3 rows
        ([5, 50, 5], 8, 16, [[1], [0, 2]]),
        # every input longer than the budget: one batch each
        ([30, 40, 20], 8, 10, [[1], [0], [2]]),
        # rows x longest may equal the budget exactly ...
        ([4, 4, 4], 8, 12, [[0, 1, 2]]),
        # ... but not exceed it: 11 // 4 = 2 rows, 8 // 4 = 2 rows
        ([4, 4, 4], 8, 11, [[0, 1], [2]]),
        ([4, 4, 4], 8, 8, [[0, 1], [2]]),
        # the budget counts the batch's longest row: 12 // 6 = 2, then 12 // 2 = 6 capped by the rest
        ([2, 6, 2, 5, 2], 8, 12, [[1, 3], [0, 2, 4]]),
        # a budget of 1 token: one row per batch
        ([2, 1, 3], 8, 1, [[2], [0], [1]]),
        # zero-length inputs count as length 1 for the budget: 2 // 1 = 2 rows
        ([0, 0, 0], 8, 2, [[0, 1], [2]]),
        # a budget far above every batch changes nothing
        ([3, 5, 1, 5, 2], 2, 10_000, [[1, 3], [0, 4], [2]]),
    ],
)
def test_batches_by_token_budget(lengths, batch_size, max_tokens, expected):
    assert _lists(length_sorted_batches(lengths, batch_size, max_tokens)) == expected


@pytest.mark.parametrize("max_tokens", [None, 1, 64])
def test_empty_input_gives_no_batch(max_tokens):
    assert length_sorted_batches([], 4, max_tokens) == []
    assert length_sorted_batches(np.zeros(0, dtype=np.int64), 1, max_tokens) == []


def test_batches_are_integer_position_arrays():
    batches = length_sorted_batches(np.array([3, 1, 2], dtype=np.int32), 2)
    assert [b.dtype.kind for b in batches] == ["i", "i"]
    assert _lists(batches) == [[0, 2], [1]]
    # a tuple and a numpy array of the same lengths give the same batches
    assert _lists(length_sorted_batches((3, 1, 2), 2)) == [[0, 2], [1]]


def test_results_scattered_back_by_batch_are_in_input_order():
    """The callers' pattern: out[batch] = f(inputs[batch]) restores input order exactly."""
    lengths = np.array([7, 2, 9, 2, 5, 0, 9, 1])
    out = np.full(len(lengths), -1)
    for batch in length_sorted_batches(lengths, 3, max_tokens=20):
        out[batch] = lengths[batch] * 10 + batch
    assert out.tolist() == [70, 21, 92, 23, 54, 5, 96, 17]


def test_seeded_random_batches_respect_both_limits():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        lengths = rng.integers(0, 60, size=n)
        batch_size = int(rng.integers(1, 9))
        max_tokens = int(rng.integers(1, 120)) if rng.random() < 0.7 else None
        batches = length_sorted_batches(lengths, batch_size, max_tokens)
        flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        # every position exactly once, in the stable longest-first order
        assert flat.tolist() == sorted(range(n), key=lambda i: (-lengths[i], i))
        assert all(1 <= len(b) <= batch_size for b in batches)
        if max_tokens is not None:
            for b in batches:
                longest = max(int(lengths[b].max()), 1)
                assert len(b) == 1 or len(b) * longest <= max_tokens
        # batches are greedy: each one but the last is as full as both limits allow
        for b in batches[:-1]:
            longest = max(int(lengths[b[0]]), 1)
            cap = batch_size if max_tokens is None else min(batch_size, max(1, max_tokens // longest))
            assert len(b) == cap


@pytest.mark.parametrize(
    ("batch_size", "message"),
    [
        (0, "batch_size must be >= 1, got 0"),
        (-1, "batch_size must be >= 1, got -1"),
        (-32, "batch_size must be >= 1, got -32"),
    ],
)
@pytest.mark.parametrize("lengths", [[], [3, 1]])
def test_invalid_batch_size_raises(lengths, batch_size, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        length_sorted_batches(lengths, batch_size)


# ---------------------------------------------------------------------------------------------
# pad_rows
# ---------------------------------------------------------------------------------------------

def test_pad_rows_right_pads_to_the_longest_row():
    ids, mask = pad_rows([[5, 6, 7], [8], []], pad_id=0)
    assert ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]


def test_pad_rows_mask_follows_lengths_not_ids():
    """RoBERTa pads with id 1; a real token with the pad id is still attended to."""
    ids, mask = pad_rows([[0, 1, 2], [0, 2]], pad_id=1)
    assert ids.tolist() == [[0, 1, 2], [0, 2, 1]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_pad_rows_takes_tuples_and_arrays_and_keeps_row_order():
    ids, mask = pad_rows([(3,), np.array([4, 5], dtype=np.int64), [6, 7, 8, 9]], pad_id=-1)
    assert ids.tolist() == [[3, -1, -1, -1], [4, 5, -1, -1], [6, 7, 8, 9]]
    assert mask.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def test_pad_rows_equal_rows_need_no_padding():
    ids, mask = pad_rows([[1, 2], [3, 4]], pad_id=0)
    assert ids.tolist() == [[1, 2], [3, 4]]
    assert mask.tolist() == [[1, 1], [1, 1]]


def test_pad_rows_large_ids_are_not_truncated():
    ids, _ = pad_rows([[2**40], [250_001, 7]], pad_id=0)
    assert ids.tolist() == [[2**40, 0], [250_001, 7]]


def test_pad_rows_only_empty_rows():
    ids, mask = pad_rows([[], []], pad_id=0)
    assert tuple(ids.shape) == tuple(mask.shape) == (2, 0)


def test_pad_rows_without_rows_raises():
    # The stages return early on an empty batch, so pad_rows is never called without rows.
    with pytest.raises(ValueError, match="empty"):
        pad_rows([], pad_id=0)


# ---------------------------------------------------------------------------------------------
# check_one_per_input
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 250])
def test_one_result_per_input_passes(n):
    assert check_one_per_input(n, n, "detection") is None


@pytest.mark.parametrize(
    ("n_inputs", "n_outputs", "stage", "message"),
    [
        (3, 2, "stance", "stance: expected one result per input (3), got 2"),
        (0, 1, "detection", "detection: expected one result per input (0), got 1"),
        (5, 10, "embedding", "embedding: expected one result per input (5), got 10"),
        (4, 0, "embedding (mask tokens per prompt)",
         "embedding (mask tokens per prompt): expected one result per input (4), got 0"),
    ],
)
def test_result_count_mismatch_raises(n_inputs, n_outputs, stage, message):
    with pytest.raises(OutputMismatchError, match=f"^{re.escape(message)}$") as info:
        check_one_per_input(n_inputs, n_outputs, stage)
    # a job turns it into one line (GroupAppealSparkError); callers may also catch RuntimeError
    assert isinstance(info.value, GroupAppealSparkError) and isinstance(info.value, RuntimeError)
