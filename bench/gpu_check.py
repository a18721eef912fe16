"""The prepared GPU check (issue 21): the model UDFs on one GPU in fp16 and bf16, under 5 minutes.

    python bench/gpu_check.py                      # builds the base-size models first if needed
    python bench/gpu_check.py --tiny --device cpu --sentences 40 --cpu-sentences 20   # a dry run, no GPU

On real-length sentences of the benchmark corpus it measures, for each precision:

* through the UDFs (Spark ``local[1]``, ``detect_appeals`` + ``embed_mentions`` with
  ``inference.device: cuda``): the marginal rate in sentences/s between two corpus sizes, and the
  devices the tasks recorded (summary.json's ``devices``);
* in-process, the same stages on the GPU: peak GPU memory (``torch.cuda.max_memory_allocated``)
  and the agreement with CPU fp32 on ``--cpu-sentences`` sentences (spans, stance labels,
  probabilities, embedding cosines).

It writes ``bench/results/gpu_check.json`` and replaces the section between the
``<!-- gpu-check -->`` markers of BENCHMARKS.md (``--out``) with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

os.environ.update(common.env())  # before anything imports huggingface_hub
START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"


def overrides(args, precision: str, device: str) -> dict:
    out = {"inference.device": device, "inference.precision": precision, "models.offline": True,
           "segmentation.mode": "none", "inference.partitions": 1}
    if args.tiny:
        from group_appeal_spark.testing.smoke import tiny_model_overrides

        out.update(tiny_model_overrides())
    return out


def outputs(finder, embedder, texts):
    results = finder.process(texts)
    appeals = {(i, a.start, a.end): a for i, r in enumerate(results) for a in r.appeals}
    keys = sorted({a.mention_key for a in appeals.values()})
    return appeals, dict(zip(keys, embedder.embed(keys))) if keys else {}


def in_process(args, precision: str, device: str, texts, reference) -> dict:
    """Peak GPU memory and agreement with CPU fp32 of the stages built as an executor builds them."""
    import numpy as np
    import torch
    from group_appeal_spark.lib.config import load_config
    from group_appeal_spark.lib.models.bundle import ModelBundle

    bundle = ModelBundle.resolve(load_config(overrides=overrides(args, precision, device)))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    finder, embedder = bundle.appeal_finder(device=device), bundle.embedder(device=device)
    start = time.perf_counter()
    appeals, vectors = outputs(finder, embedder, texts)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ref_appeals, ref_vectors = reference
    common_spans = sorted(set(appeals) & set(ref_appeals))
    prob = lambda a: np.array([a.prob_positive, a.prob_negative, a.prob_neutral])  # noqa: E731
    keys = sorted(set(vectors) & set(ref_vectors))
    return {"precision_used": bundle.precision(device), "in_process_sent_per_s": len(texts) / seconds,
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "mentions": len(appeals), "mentions_cpu_fp32": len(ref_appeals),
            "spans_only_one": len(set(appeals) ^ set(ref_appeals)),
            "stance_label_agreement": float(np.mean([appeals[s].stance == ref_appeals[s].stance for s in common_spans]))
            if common_spans else None,
            "max_prob_diff": float(max(np.abs(prob(appeals[s]) - prob(ref_appeals[s])).max() for s in common_spans))
            if common_spans else None,
            "embedding_min_cosine": float(min(np.dot(vectors[k], ref_vectors[k]) for k in keys)) if keys else None}


def through_udfs(spark, args, precision: str, device: str, corpus: list[str]) -> dict:
    """Marginal sentences/s of detect_appeals + embed_mentions between two corpus sizes."""
    from group_appeal_spark.jobs.devices import devices_used
    from group_appeal_spark.jobs.transforms.appeals import detect_appeals, embed_mentions
    from group_appeal_spark.lib.config import load_config

    config = load_config(overrides=overrides(args, precision, device))
    warm = spark.createDataFrame(list(enumerate(corpus[:32])), "id long, text string")
    warm_result = detect_appeals(warm, config)  # loads the models into the worker's cache: not timed
    embed_mentions(warm_result.mentions, config).select("embedding").collect()
    warm_result.release()
    walls = {}
    for n in (len(corpus) // 4, len(corpus)):
        docs = spark.createDataFrame(list(enumerate(corpus[:n])), "id long, text string")
        start = time.perf_counter()
        result = detect_appeals(docs, config)
        mentions = result.mentions.count()
        embedded = len(embed_mentions(result.mentions, config).select("embedding").collect())
        walls[n] = time.perf_counter() - start
        result.release()
    (small, ws), (large, wl) = sorted(walls.items())
    return {"udf_marginal_sent_per_s": (large - small) / max(wl - ws, 1e-9), "udf_seconds": walls,
            "udf_mentions": mentions, "udf_embedded": embedded, "devices": devices_used(spark)}


def markdown(facts, rows, argv) -> str:
    lines = [START, "## GPU check (issue 21)", "",
             f"`{common.command('gpu_check.py', argv)}`: GPU {facts.get('gpu')}, torch {facts['torch']}, CPU "
             f"{facts['cpu']} ({facts['cores']} cores). Agreement is with CPU fp32 on the first sentences.", "",
             "| precision | UDFs: marginal sent/s | in-process sent/s | peak GPU MiB | spans in one only | "
             "stance label agreement | max prob diff | min embedding cosine | devices |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f=".3g": "n/a" if v is None else format(v, f)  # noqa: E731
    for name, r in rows.items():
        lines.append(f"| {name} ({r['precision_used']}) | {fmt(r['udf_marginal_sent_per_s'], '.1f')} | "
                     f"{fmt(r['in_process_sent_per_s'], '.1f')} | {fmt(r['peak_gpu_mib'], '.0f')} | "
                     f"{r['spans_only_one']} of {r['mentions_cpu_fp32']} | {fmt(r['stance_label_agreement'], '.4f')} | "
                     f"{fmt(r['max_prob_diff'], '.2e')} | {fmt(r['embedding_min_cosine'], '.5f')} | "
                     f"{r['devices'].get('by_stage')} |")
    return "\n".join(lines) + "\n" + END + "\n"


def replace_section(out: pathlib.Path, text: str) -> None:
    old = out.read_text(encoding="utf-8") if out.is_file() else ""
    if START in old and END in old:
        new = old[:old.index(START)] + text.rstrip("\n") + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    out.write_text(new, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    parser.add_argument("--json", default=str(HERE / "results" / "gpu_check.json"))
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--cpu-sentences", type=int, default=150)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", default="fp16,bf16")
    parser.add_argument("--tiny", action="store_true", help="the tiny random models (a dry run of the script)")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if not args.tiny and not (pathlib.Path(common.CACHE) / "bench_models.json").is_file():
        import build_models

        build_models.main(["--cache", common.CACHE])
    import torch
    from corpus import make_corpus
    from group_appeal_spark.lib.config import load_config
    from group_appeal_spark.lib.models.bundle import ModelBundle
    from pyspark.sql import SparkSession

    corpus = make_corpus(args.sentences)
    cpu = ModelBundle.resolve(load_config(overrides=overrides(args, "fp32", "cpu")))
    reference = outputs(cpu.appeal_finder(), cpu.embedder(), corpus[:args.cpu_sentences])
    spark = (SparkSession.builder.master("local[1]").appName("gas-gpu-check").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").config("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
             .config("spark.local.dir", tempfile.mkdtemp(prefix="gas-gpu-check-")).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    rows = {}
    for precision in args.precisions.split(","):
        row = in_process(args, precision, args.device, corpus[:args.cpu_sentences], reference)
        row.update(through_udfs(spark, args, precision, args.device, corpus))
        rows[precision] = row
        print(precision, json.dumps(row, default=str), flush=True)
    spark.stop()
    facts = common.machine_facts()
    facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (dry run)"
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps({"machine": facts, "rows": rows, "argv": argv}, indent=2,
                                                  default=str), encoding="utf-8")
    replace_section(pathlib.Path(args.out), markdown(facts, rows, argv))


if __name__ == "__main__":
    main()
