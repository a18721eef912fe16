"""Length-sorted batching shared by the three model stages.

Sorting by length before batching means each batch is padded only to its own longest input,
which is where most of the speed over the reference comes from; the callers put results back
in input order and check that every input got exactly one result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from group_appeal_spark.lib.errors import OutputMismatchError


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Group input positions into batches of similar length.

    Parameters
    ----------
    lengths : sequence of int, shape (n,)
        Token count of each input.
    batch_size : int
        Most inputs in one batch.
    max_tokens : int, optional
        Most padded tokens (rows x longest row) in one batch; a single longer input still
        gets a batch of its own.

    Returns
    -------
    list of ndarray
        Input positions per batch, longest batches first (a stable sort, so equal lengths keep
        their input order and the batches do not depend on anything but the lengths).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        if max_tokens is not None:
            # The first row of a batch is its longest, so the padded size is rows x that length.
            rows = max(1, max_tokens // max(int(lengths[order[start]]), 1))
            end = min(end, start + rows)
        batches.append(order[start:end])
        start = end
    return batches


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int):
    """Right-pad token id rows to the longest one.

    Returns
    -------
    input_ids, attention_mask : torch.LongTensor, shape (n_rows, longest)
    """
    import torch

    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def to_device(tensor, device):
    """``tensor`` (made on the CPU) on ``device``; to a CUDA device through pinned memory, copied
    without blocking the host (the copy is queued on the stream before the model's kernels, which
    wait for it; the host goes on to the next call instead of waiting for the transfer).

    Parameters
    ----------
    tensor : torch.Tensor
    device : torch.device

    Returns
    -------
    torch.Tensor
        ``tensor`` itself where ``device`` is the CPU.
    """
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def check_one_per_input(n_inputs: int, n_outputs: int, stage: str) -> None:
    """Raise when a stage did not return exactly one result per input."""
    if n_inputs != n_outputs:
        raise OutputMismatchError(f"{stage}: expected one result per input ({n_inputs}), got {n_outputs}")
