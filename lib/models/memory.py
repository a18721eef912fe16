"""What one model-running Python worker needs in memory, from the weights and a measured overhead.

BENCHMARKS.md ('Worker memory'): the fp32 safetensors are memory-mapped and shared by every
worker of a node (page cache), a precision other than the stored one is a private cast copy per
worker, and each worker that runs a model task adds about 300 MiB of its own (interpreter, torch,
transformers, tokenizers, activations of a 1024-token batch).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

MIB = 1 << 20
# Measured (BENCHMARKS.md 'Worker memory', PSS per model-running worker beyond the weights).
WORKER_OVERHEAD = 300 * MIB
# Private copy per worker, as a share of the stored fp32 weights, by precision (cast at load).
_PRIVATE_SHARE = {"fp32": 0.0, "bf16": 0.5, "fp16": 0.5, "int8": 0.25}
WEIGHT_ROLES = ("detector", "stance", "embedder")


@dataclasses.dataclass(frozen=True)
class WorkerNeed:
    """Bytes: ``mapped`` (the weight files, shared by a node's workers), ``private`` (each worker's
    own copy at the precision) and ``overhead`` (each worker's measured rest)."""

    mapped: int
    private: int
    overhead: int = WORKER_OVERHEAD

    @property
    def one_worker(self) -> int:
        """A single worker with everything it touches (what a per-process limit counts)."""
        return self.mapped + self.private + self.overhead

    def workers(self, n: int) -> int:
        """``n`` workers of one executor: the mapping once, the rest per worker."""
        return self.mapped + max(1, n) * (self.private + self.overhead)


def weight_bytes(folder) -> int:
    """Bytes of a folder's ``*.safetensors`` (0 when it has none)."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def worker_need(folders: dict, precision: str, backend: str = "torch") -> WorkerNeed:
    """What a Python worker that holds the three models needs.

    Parameters
    ----------
    folders : dict of role to path
        The bundle's folders; ``detector``, ``stance`` and ``embedder`` hold the weights, ``*_onnx``
        the exports (an ONNX Runtime session reads its model into private memory).
    precision : str
        The precision the stages run at (``fp32``, ``bf16``, ``fp16``, ``int8``; ``auto`` counts as
        bf16, the larger of what it may become on a CPU).
    backend : str
        ``onnx`` counts the exports as private, not the weights.
    """
    weights = sum(weight_bytes(folders[r]) for r in WEIGHT_ROLES if r in folders)
    if backend == "onnx":
        exports = sum(p.stat().st_size for r in WEIGHT_ROLES if f"{r}_onnx" in folders
                      for p in Path(folders[f"{r}_onnx"]).glob("*.onnx"))
        return WorkerNeed(mapped=0, private=exports or weights)
    share = _PRIVATE_SHARE.get("bf16" if precision == "auto" else str(precision), 0.0)
    return WorkerNeed(mapped=weights, private=int(weights * share))


def mib(n: int) -> str:
    """Bytes as ``1,234 MiB``."""
    return f"{n / MIB:,.0f} MiB"
