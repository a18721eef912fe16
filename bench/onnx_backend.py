"""inference.backend onnx on this CPU (issue 21): exports, agreement with torch fp32, rates per stage.

    python bench/build_models.py --cache /tmp/gas-bench/hub     # real-size random models, once
    python bench/onnx_backend.py --out /tmp/gas-onnx.md           # in-process: agreement + per-stage rates

Exports the three base-size models (fp32 and int8) the way a job does (``lib/models/onnx.py``),
then on the benchmark corpus compares ONNX Runtime with torch fp32: the graphs at sequence lengths
1..512 (every ``--length-step``-th one; ``--length-step 1`` is every length), and the stages on
``--sentences`` sentences (spans, stance labels, probabilities, embeddings). The rates are rows
per second at one thread (one Spark task), recorded into each export's ``measurements.json``
for ``inference.backend: auto``. ``--tiny`` runs it all on the test suite's tiny models, to
check the script in seconds (its numbers mean nothing).

The rates through ``run`` (marginal, Spark) come from run_e2e.py with ONNX variants; the
exports are made above first, so no run pays for exporting:

    python bench/run_e2e.py --no-reference --out /tmp/gas-e2e/onnx.md \\
        --variant "fp32=--precision fp32" --variant "bf16=--precision bf16" \\
        --variant "onnx=--set inference.backend=onnx" --variant "onnx_int8=--set inference.backend=onnx --precision int8"
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

os.environ.update(common.env())  # before anything imports huggingface_hub


def folders(tiny: bool) -> dict:
    from group_appeal_spark.lib.models import hub

    if tiny:
        from group_appeal_spark.testing.tiny_models import build_tiny_hub_cache

        repos = build_tiny_hub_cache(tempfile.mkdtemp(prefix="gas-onnx-bench-"), seed=0)
        by_id = {k: pathlib.Path(v) for k, v in repos.items()}
    else:
        from run_bench import _dir

        by_id = {rid: pathlib.Path(_dir(rid)) for rid in (hub.DETECTOR_ID, hub.DETECTOR_TOKENIZER_ID, hub.STANCE_ID,
                                                          hub.EMBEDDER_ID, hub.EMBEDDER_BASE_ID)}
    return {"detector": by_id[hub.DETECTOR_ID], "detector_tokenizer": by_id[hub.DETECTOR_TOKENIZER_ID],
            "stance": by_id[hub.STANCE_ID], "embedder": by_id[hub.EMBEDDER_ID],
            "embedder_config": by_id[hub.EMBEDDER_BASE_ID]}


def graph_parity(f: dict, exports: dict, step: int) -> dict:
    """Max probability difference of each classifier graph from torch over lengths 1..max."""
    import numpy as np
    import torch
    from group_appeal_spark.lib.inference.detect import softmax
    from group_appeal_spark.lib.models import loaders
    from group_appeal_spark.lib.models.onnx import OnnxModel

    out = {}
    rng = np.random.default_rng(0)
    for stage, load in (("detector", loaders.load_token_classifier), ("stance", loaders.load_sequence_classifier)):
        model = load(f[stage])
        graph = OnnxModel(exports[f"{stage}_onnx"], model.config)
        top = int(model.config.max_position_embeddings) - (
            int(model.config.pad_token_id) + 1 if model.config.model_type == "roberta" else 0)
        lengths = sorted(set(range(1, top + 1, step)) | {top})
        worst = 0.0
        for n in lengths:
            ids = torch.from_numpy(rng.integers(5, int(model.config.vocab_size), size=(2, n)).astype(np.int64))
            mask = torch.ones_like(ids)
            mask[1, max(1, n // 2):] = 0
            with torch.inference_mode():
                ref = model(input_ids=ids, attention_mask=mask).logits.numpy()
            got = graph(input_ids=ids, attention_mask=mask).logits.numpy()
            keep = mask.numpy().astype(bool) if stage == "detector" else slice(None)
            worst = max(worst, float(np.abs(softmax(got) - softmax(ref))[keep].max()))
        out[stage] = {"lengths": f"1..{top} step {step} ({len(lengths)} lengths)", "max_prob_diff": worst}
    return out


def stage_agreement(f: dict, exports: dict, texts: list[str]) -> dict:
    """Spans, stance labels, probabilities and embeddings of the ONNX stages against torch fp32."""
    import numpy as np
    from group_appeal_spark.lib.inference.detect import MentionDetector
    from group_appeal_spark.lib.inference.embed import MentionEmbedder
    from group_appeal_spark.lib.inference.stance import StanceClassifier

    det_t = MentionDetector.from_dirs(f["detector"], f["detector_tokenizer"])
    det_o = MentionDetector.from_dirs(f["detector"], f["detector_tokenizer"], onnx_dir=exports["detector_onnx"])
    found_t, found_o = det_t.detect(texts), det_o.detect(texts)
    spans_t = {(i, m.start, m.end) for i, ms in enumerate(found_t) for m in ms}
    spans_o = {(i, m.start, m.end) for i, ms in enumerate(found_o) for m in ms}
    pairs = [(t, m.span) for t, ms in zip(texts, found_t) for m in ms]
    st_t = StanceClassifier.from_dir(f["stance"]).classify(pairs)
    st_o = StanceClassifier.from_dir(f["stance"], onnx_dir=exports["stance_onnx"]).classify(pairs)
    probs = lambda ss: np.array([[s.prob_positive, s.prob_negative, s.prob_neutral] for s in ss])  # noqa: E731
    keys = sorted({m.span.strip().lower() for ms in found_t for m in ms}) or ["farmers"]
    e_t = MentionEmbedder.from_dirs(f["embedder"], f["embedder_config"]).embed(keys)
    e_o = MentionEmbedder.from_dirs(f["embedder"], f["embedder_config"], onnx_dir=exports["embedder_onnx"]).embed(keys)
    return {"mentions_torch": len(spans_t), "spans_only_one": len(spans_t ^ spans_o),
            "stance_label_agreement": float(np.mean([a.stance == b.stance for a, b in zip(st_t, st_o)])) if pairs else 1.0,
            "stance_max_prob_diff": float(np.abs(probs(st_t) - probs(st_o)).max()) if pairs else 0.0,
            "embedding_min_cosine": float((e_t * e_o).sum(axis=1).min()), "pairs": len(pairs), "keys": len(keys)}


def markdown(facts, parity, agree, rates, argv) -> str:
    from group_appeal_spark.lib.models.onnx import cpu_id

    lines = ["## ONNX Runtime backend (issue 21)", "",
             f"`{common.command('onnx_backend.py', argv)}`. CPU: {cpu_id()}; {facts['cores']} cores; torch "
             f"{facts['torch']}. Rates: rows/s at one thread, second of two passes (recorded for `backend: auto`).", "",
             "| stage | torch fp32 | torch bf16 | ONNX fp32 | ONNX / torch fp32 |", "|---|---|---|---|---|"]
    for stage, r in rates.items():
        lines.append(f"| {stage} | {r['torch_fp32']:.2f} | {r.get('torch_bf16', float('nan')):.2f} | {r['onnx']:.2f} | "
                     f"{r['onnx'] / r['torch_fp32']:.2f}x |")
    lines += ["", "| check | fp32 export | int8 export |", "|---|---|---|"]
    for stage in parity["fp32"]:
        lines.append(f"| {stage} graph, {parity['fp32'][stage]['lengths']}: max prob diff | "
                     f"{parity['fp32'][stage]['max_prob_diff']:.2e} | {parity['int8'][stage]['max_prob_diff']:.2e} |")
    for key in ("mentions_torch", "spans_only_one", "stance_label_agreement", "stance_max_prob_diff",
                "embedding_min_cosine"):
        lines.append(f"| {key} | {agree['fp32'][key]:.4g} | {agree['int8'][key]:.4g} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="markdown file for the section")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--length-step", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="the tiny test models: checks the script, no figures")
    args = parser.parse_args(argv)
    from corpus import make_corpus
    from group_appeal_spark.lib.models.onnx import ensure_exports
    from group_appeal_spark.lib.models.onnx_measure import measure_backends

    f = folders(args.tiny)
    texts = make_corpus(args.sentences)
    exports = {p: ensure_exports(f, p) for p in ("fp32", "int8")}
    parity = {p: graph_parity(f, exports[p], args.length_step) for p in exports}
    agree = {p: stage_agreement(f, exports[p], texts) for p in exports}
    rates = measure_backends(f, exports["fp32"], texts[:48])
    common.write_report(args.out, markdown(common.machine_facts(), parity, agree, rates, sys.argv[1:] if argv is None
                                           else argv))


if __name__ == "__main__":
    main()
