"""The speed levers of issue 12, each measured on the stance model (90% of the model time) at
one torch thread, as one Spark task runs it: fp32, bf16, int8 dynamic quantisation,
torch.compile, ONNX Runtime (when installed), and the padding left by each way of batching.

    python bench/build_models.py --cache /tmp/gas-bench/hub     # once
    python bench/levers.py --out /tmp/gas-levers.md

Every row runs the same length-sorted batches (``inference.max_tokens_per_batch: 1024``) of the
three NLI rows of (sentence, mention) pairs from the benchmark corpus, after one warm-up pass,
and compares the entailment probabilities with fp32's.
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common

os.environ.update(common.env())  # before anything imports huggingface_hub


def stance_rows(n_sentences: int, n_pairs: int):
    from corpus import make_corpus
    from run_bench import ours_stages

    texts = make_corpus(n_sentences)
    finder, _ = ours_stages("fp32", 1024)
    found = finder.detector.detect(texts)
    pairs = list(dict.fromkeys((s, m.span) for s, ms in zip(texts, found) for m in ms))[:n_pairs]
    rows, _ = finder.stance.preprocess(pairs)
    return finder.stance, rows, texts, finder


def timed_pass(forward, stance, rows, batches):
    """Seconds for one pass over ``batches`` and the entailment probabilities, in row order."""
    import numpy as np
    import torch
    from group_appeal_spark.lib.inference.batching import pad_rows

    probs = np.zeros(len(rows), dtype=np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            ids, mask = pad_rows([rows[i] for i in batch], stance.tokenizer.pad_token_id)
            logits = torch.as_tensor(forward(ids, mask)).float()
            probs[batch] = torch.softmax(logits, dim=-1)[:, stance.entailment].numpy()
    return time.perf_counter() - start, probs


def torch_forward(model):
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


def ort_forward(model, ids, mask, folder):
    """An ONNX Runtime session of ``model`` exported with the TorchScript exporter; None without onnxruntime."""
    try:
        import onnxruntime as ort
        import torch
    except ImportError:
        return None, "onnxruntime not installed"

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    path = pathlib.Path(folder) / "stance.onnx"
    try:
        torch.onnx.export(Logits(model), (ids, mask), str(path), input_names=["ids", "mask"], output_names=["logits"],
                          dynamic_axes={"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}, "logits": {0: "b"}},
                          opset_version=17, dynamo=False)
    except Exception as exc:  # the exporter needs the onnx package, and may refuse the model
        return None, f"export failed: {str(exc).splitlines()[0][:120]}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (lambda i, m: session.run(None, {"ids": i.numpy(), "mask": m.numpy()})[0]), "ok"


def padding(rows, arrow_batch: int, max_tokens: int, docs_sorted: bool, rows_per_doc: list[int]):
    """Padded / real tokens of the stance rows batched as the UDF batches them.

    Rows come per document; documents reach the UDF in Arrow batches of ``arrow_batch``
    documents, in input order or (``docs_sorted``) ordered by length within the task.
    """
    import numpy as np
    from group_appeal_spark.lib.inference.batching import length_sorted_batches

    starts = np.cumsum([0, *rows_per_doc])
    doc_len = [sum(len(rows[i]) for i in range(starts[d], starts[d + 1])) / max(1, rows_per_doc[d])
               for d in range(len(rows_per_doc))]
    order = sorted(range(len(rows_per_doc)), key=lambda d: doc_len[d]) if docs_sorted else list(range(len(rows_per_doc)))
    padded = real = 0
    for b in range(0, len(order), arrow_batch):
        idx = [i for d in order[b:b + arrow_batch] for i in range(starts[d], starts[d + 1])]
        lengths = [len(rows[i]) for i in idx]
        for batch in length_sorted_batches(lengths, 96, max_tokens):
            longest = max(lengths[i] for i in batch)
            padded += longest * len(batch)
            real += sum(lengths[i] for i in batch)
    return padded / real - 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (about a minute to compile)")
    args = parser.parse_args(argv)
    import tempfile

    import numpy as np
    import torch
    from group_appeal_spark.lib.inference.batching import length_sorted_batches, pad_rows
    from group_appeal_spark.lib.models.devices import finish_precision

    torch.set_num_threads(1)
    stance, rows, texts, finder = stance_rows(args.sentences, args.pairs)
    batches = length_sorted_batches([len(r) for r in rows], 96, 1024)
    base = stance.model
    results = []

    def measure(name, forward, note="", setup_seconds=None):
        timed_pass(forward, stance, rows, batches)  # warm-up (and, for torch.compile, compilation)
        seconds, probs = timed_pass(forward, stance, rows, batches)
        results.append((name, seconds, probs, note, setup_seconds))
        print(f"{name}: {seconds:.2f} s {note}", flush=True)

    measure("fp32 (eager)", torch_forward(base))
    measure("bf16 (eager)", torch_forward(copy.deepcopy(base).to(torch.bfloat16)))
    measure("int8 dynamic (`precision: int8`)", torch_forward(finish_precision(copy.deepcopy(base), "int8", "cpu")))
    if not args.no_compile:
        for name, model in (("fp32 torch.compile", copy.deepcopy(base)),
                            ("bf16 torch.compile", copy.deepcopy(base).to(torch.bfloat16))):
            compiled = torch.compile(model, dynamic=True)
            t = time.perf_counter()
            timed_pass(torch_forward(compiled), stance, rows, batches)
            measure(name, torch_forward(compiled), setup_seconds=time.perf_counter() - t)
    ids, mask = pad_rows([rows[i] for i in batches[0]], stance.tokenizer.pad_token_id)
    with tempfile.TemporaryDirectory() as folder:
        forward, status = ort_forward(base, ids, mask, folder)
        if forward is not None:
            measure("fp32 ONNX Runtime (TorchScript export)", forward)
        else:
            print(f"ONNX Runtime: {status}")

    fp32_seconds, fp32_probs = results[0][1], results[0][2]
    found = finder.detector.detect(texts)
    per_doc = [len(ms) * 3 for ms in found]
    all_rows, _ = stance.preprocess([(s, m.span) for s, ms in zip(texts, found) for m in ms])
    facts = common.machine_facts(precision=True)
    lines = [f"Command: `{common.command('levers.py', argv or sys.argv[1:])}`  ",
             f"Machine: {facts['cpu']}; torch {facts['torch']} (`get_cpu_capability()` = "
             f"{facts['torch_cpu_capability']}), bf16 native: {facts['bf16_native']} "
             f"({', '.join(facts['bf16_flags']) or 'no bf16 flags'}); one torch thread.  ",
             f"Stance model (deberta-v3-base size), {len(rows)} NLI rows of {args.pairs} (sentence, mention) pairs, "
             f"{sum(map(len, rows))} tokens.", ""]
    lines += common.table(["lever", "seconds", "speed-up over fp32", "max abs. prob. difference from fp32", "note"],
                          ([name, f"{seconds:.2f}", f"{fp32_seconds / seconds:.2f}x",
                            f"{float(np.abs(probs - fp32_probs).max()):.4f}", f"compile {setup:.0f} s" if setup else note]
                           for name, seconds, probs, note, setup in results))
    lines += ["", f"Padding left by batching (padded tokens over real ones, stance rows of {args.sentences} "
              "sentences):", ""]
    lines += common.table(["documents reach the UDF", "Arrow batch", "padding"],
                          (["sorted by length in the task" if docs_sorted else "in input order", arrow,
                            f"{padding(all_rows, arrow, 1024, docs_sorted, per_doc):.1%}"]
                           for arrow in (256, 16) for docs_sorted in (False, True)))
    common.write_report(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
