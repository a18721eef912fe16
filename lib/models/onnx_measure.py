"""Measure torch against ONNX Runtime on this CPU, per stage, for ``inference.backend: auto``.

Each stage is built both ways from the same folders and runs the same texts at one thread (as
one Spark task with ``spark.task.cpus=1`` runs it), after one warm-up pass; the rate is rows per
second of a second pass. ``torch_bf16`` is measured only where the CPU computes bf16 natively
(``auto`` would pick it there). The rates go to each export's ``measurements.json``
(:func:`lib.models.onnx.record_measurement`), keyed by :func:`lib.models.onnx.cpu_id`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


def _rate(run, n_rows: int) -> float:
    run()  # warm-up: first-call allocations, ONNX Runtime's kernel choice
    start = time.perf_counter()
    run()
    return n_rows / max(time.perf_counter() - start, 1e-9)


def measure_backends(folders: dict, exports: dict, texts: Sequence[str], *, threads: int = 1,
                     record: bool = True) -> dict:
    """Rows per second of each stage on torch fp32 (and bf16 where native) and on ONNX Runtime.

    Parameters
    ----------
    folders : dict of role to path
        The model folders (``detector``, ``detector_tokenizer``, ``stance``, ``embedder``, ``embedder_config``).
    exports : dict of ONNX role to folder
        From :func:`lib.models.onnx.ensure_exports`.
    texts : sequence of str
        Sentences to run (a few dozen real-length ones are enough for a stable ratio).
    threads : int
        Torch and ONNX Runtime threads.
    record : bool
        Write the rates into each export's ``measurements.json``.

    Returns
    -------
    dict of stage to dict of str to float
        ``{"detector": {"torch_fp32": ..., "torch_bf16": ..., "onnx": ...}, ...}``.
    """
    import torch

    from group_appeal_spark.lib.inference.detect import MentionDetector
    from group_appeal_spark.lib.inference.embed import MentionEmbedder
    from group_appeal_spark.lib.inference.stance import StanceClassifier
    from group_appeal_spark.lib.models.devices import bf16_native
    from group_appeal_spark.lib.models.onnx import ONNX_ROLES, record_measurement

    torch.set_num_threads(threads)
    texts = list(texts)
    precisions = ["fp32"] + (["bf16"] if bf16_native("cpu") else [])
    kinds = [(f"torch_{p}", p, None) for p in precisions] + [("onnx", "fp32", "onnx")]
    det = {k: MentionDetector.from_dirs(folders["detector"], folders["detector_tokenizer"], precision=p,
                                        onnx_dir=exports["detector_onnx"] if o else None) for k, p, o in kinds}
    found = det["torch_fp32"].detect(texts)
    pairs = [(t, m.span) for t, ms in zip(texts, found) for m in ms] or [(t, t.split()[0]) for t in texts]
    mentions = sorted({span for _, span in pairs})
    rates: dict = {"detector": {}, "stance": {}, "embedder": {}}
    for kind, precision, onnx in kinds:
        rates["detector"][kind] = _rate(lambda: det[kind].detect(texts), len(texts))
        stance = StanceClassifier.from_dir(folders["stance"], precision=precision,
                                           onnx_dir=exports["stance_onnx"] if onnx else None)
        rates["stance"][kind] = _rate(lambda: stance.classify(pairs), len(pairs))
        embedder = MentionEmbedder.from_dirs(folders["embedder"], folders["embedder_config"], precision=precision,
                                             onnx_dir=exports["embedder_onnx"] if onnx else None)
        rates["embedder"][kind] = _rate(lambda: embedder.embed(mentions), len(mentions))
    if record:
        for stage, role in ONNX_ROLES.items():
            record_measurement(exports[role], rates[stage])
    return rates
