"""Benchmark group-appeal-spark against group-appeal-detector 0.3.0 on real-size random models.

    python bench/run_bench.py --out BENCHMARKS.md            # full run (~30-40 min on 2 cores)
    python bench/run_bench.py --out /tmp/b.md --quick         # smoke run (~5 min)

What it does, all on this machine and offline:
1. builds random-init models of the real architectures and sizes as a hub cache under the real
   repo ids (``bench/build_models.py``; the detector's bias is set for ~1.25 mentions/sentence);
2. makes a corpus of 2,000 parliamentary-style sentences (``bench/corpus.py``);
3. per stage (detection, stance, embedding) and end to end: marginal throughput
   (rate = delta rows / delta seconds between two corpus sizes, model loading excluded) of this
   project (fp32 and bf16) and of the reference (fp32; on fewer rows, it is slow), and the raw
   forward rate of each model over length-sorted batches (the hardware limit);
4. bf16 agreement with fp32; levers (stance tokens per batch, torch threads, tokenizer cost);
5. memory of two processes loading the weights (from_pretrained vs memory-mapped) and of the
   Spark Python workers with ``local[2]`` running ``jobs.transforms.detect_appeals``;
6. k search (``lib.cluster.search_k``, k=2..30) for 10k and 100k unique mentions.
Raw results go to ``<out>.json`` beside the Markdown file.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
from corpus import length_stats, make_corpus

CACHE = common.CACHE
os.environ.update(common.env())  # huggingface_hub reads it once, at its first import: before anything imports it

SIZES = {  # (n1, n2) sentences for the marginal rates
    "full": {"ours": (80, 240), "bf16": (80, 240), "ref": (24, 72), "spark": (30, 90), "raw": 80,
             "k": (10_000, 100_000), "lever_pairs": 36},
    "quick": {"ours": (10, 30), "bf16": (10, 30), "ref": (5, 15), "spark": (8, 24), "raw": 20,
              "k": (2_000, 10_000), "lever_pairs": 12},
}
LOG = []


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    LOG.append(line)
    print(line, flush=True)


def load_avg():
    return os.getloadavg()


def _dir(rid):
    from group_appeal_spark.lib import models

    return models.resolve_model_dir(models.ModelSource("bench", rid), local_files_only=True)


class Timed:
    """Wraps an object's method and adds up the seconds spent in it."""

    def __init__(self, obj, name):
        self.seconds = 0.0
        fn = getattr(obj, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        setattr(obj, name, wrapper)


# ----------------------------------------------------------------------------------------------
# this project, in-process (lib level: what each UDF runs per Arrow batch)
# ----------------------------------------------------------------------------------------------
def ours_stages(precision, max_tokens=None):
    from group_appeal_spark.lib import models
    from group_appeal_spark.lib.inference.appeals import AppealFinder
    from group_appeal_spark.lib.inference.detect import MentionDetector
    from group_appeal_spark.lib.inference.embed import MentionEmbedder, MentionKeyer
    from group_appeal_spark.lib.inference.stance import StanceClassifier

    # the defaults of conf/defaults.yaml (batch sizes 32/32/128); max_tokens = inference.max_tokens_per_batch
    det = MentionDetector.from_dirs(_dir(models.DETECTOR_ID), _dir(models.DETECTOR_TOKENIZER_ID), precision=precision,
                                    max_tokens=max_tokens)
    st = StanceClassifier.from_dir(_dir(models.STANCE_ID), precision=precision, max_tokens=max_tokens)
    emb = MentionEmbedder.from_dirs(_dir(models.EMBEDDER_ID), _dir(models.EMBEDDER_BASE_ID), precision=precision)
    keyer = MentionKeyer.from_dir(_dir(models.EMBEDDER_ID))
    return AppealFinder(det, st, keyer, segmentation="sentence"), emb


def run_ours(texts, finder, emb):
    """Appeals + embeddings of the unique mention keys; seconds per stage and the outputs."""
    t_det, t_st = Timed(finder.detector, "detect"), Timed(finder.stance, "classify")
    # the model calls alone (padding + forward + softmax), for the share of time spent in the models
    f_det, f_st, f_emb = Timed(finder.detector, "forward"), Timed(finder.stance, "forward"), Timed(emb, "forward")
    t0 = time.perf_counter()
    results = finder.process(texts)
    keys = sorted({a.mention_key for r in results for a in r.appeals})
    t1 = time.perf_counter()
    vectors = emb.embed(keys) if keys else None
    t2 = time.perf_counter()
    del finder.detector.detect, finder.stance.classify  # drop the instance wrappers
    del finder.detector.forward, finder.stance.forward, emb.forward
    appeals = [(i, a.span, a.start, a.end, a.stance, (a.prob_positive, a.prob_negative, a.prob_neutral))
               for i, r in enumerate(results) for a in r.appeals]
    fwd = {"detect": f_det.seconds, "stance": f_st.seconds, "embed": f_emb.seconds}
    fwd["e2e"] = sum(fwd.values())
    return {"detect": t_det.seconds, "stance": t_st.seconds, "embed": t2 - t1, "e2e": t2 - t0, "forward": fwd,
            "rows": {"detect": len(texts), "stance": len(appeals), "embed": len(keys), "e2e": len(texts)},
            "appeals": appeals, "keys": keys, "vectors": vectors}


def marginal(small, large):
    out = {}
    for stage in ("detect", "stance", "embed", "e2e"):
        dr = large["rows"][stage] - small["rows"][stage]
        ds = large[stage] - small[stage]
        dfwd = large["forward"][stage] - small["forward"][stage] if "forward" in large else float("nan")
        out[stage] = {"rows": dr, "seconds": ds, "rate": dr / ds if ds > 0 else float("nan"),
                      "forward_seconds": dfwd, "forward_share": dfwd / ds if ds > 0 else float("nan"),
                      "rate_large_only": large["rows"][stage] / large[stage] if large[stage] else float("nan")}
    return out


def bench_ours(texts, sizes, precision, max_tokens=None):
    finder, emb = ours_stages(precision, max_tokens)
    runs = {}
    for n in sizes:
        log(f"ours {precision}: {n} sentences (load {load_avg()[0]:.2f})")
        runs[n] = run_ours(texts[:n], finder, emb)
    return finder, emb, runs, marginal(runs[sizes[0]], runs[sizes[1]])


# ----------------------------------------------------------------------------------------------
# raw forward rate: only the model calls, over the same length-sorted batches the stages use
# ----------------------------------------------------------------------------------------------
def raw_forward(finder, emb, texts, max_tokens=None):
    import torch
    from group_appeal_spark.lib.inference.batching import (
        length_sorted_batches,
        pad_rows,
    )
    from group_appeal_spark.lib.inference.stance import HYPOTHESES

    det, st = finder.detector, finder.stance
    out = {}
    tok = det.preprocess(texts)
    cls_ids, sep_ids = det._special_ids()
    rows = [cls_ids + t.ids[s:e] + sep_ids for t in tok for s, e in t.windows]
    mentions = det.detect(texts)
    pairs = list(dict.fromkeys((s, m.span) for s, ms in zip(texts, mentions) for m in ms))
    keys = sorted(set(finder.keyer.keys([p[1] for p in pairs])))

    def timed(model, rows, batch, pad_id, max_tokens=None, types=None):
        secs = 0.0
        batches = [(pad_rows([rows[i] for i in b], pad_id), b) for b in length_sorted_batches(
            [len(r) for r in rows], batch, max_tokens)]
        with torch.inference_mode():
            for (ids, mask), b in batches:
                extra = {}
                if types is not None:
                    extra["token_type_ids"] = pad_rows([types[i] for i in b], 0)[0]
                t = time.perf_counter()
                model(input_ids=ids, attention_mask=mask, **extra)
                secs += time.perf_counter() - t
        return secs

    out["detect"] = {"rows": len(texts), "seconds": timed(det.model, rows, det.batch_size, det.tokenizer.pad_token_id),
                     "tokens": sum(len(r) for r in rows)}
    srows, stypes = st.preprocess(pairs)
    out["stance"] = {"rows": len(pairs), "seconds": timed(st.model, srows, st.batch_size * len(HYPOTHESES),
                                                          st.tokenizer.pad_token_id, max_tokens or st.max_tokens,
                                                          stypes),
                     "tokens": sum(len(r) for r in srows)}
    erows = emb.preprocess(keys).rows
    out["embed"] = {"rows": len(keys), "seconds": timed(emb.module.encoder, erows, emb.batch_size,
                                                        emb.tokenizer.pad_token_id),
                    "tokens": sum(len(r) for r in erows)}
    for v in out.values():
        v["rate"] = v["rows"] / v["seconds"]
    # one sentence end to end costs its detection, its share of stance pairs and of unique mentions
    return out


def raw_e2e(raw, ours):
    """The raw forward rate of a sentence end to end, with this project's mix of rows per sentence."""
    per_sentence = sum(ours[s]["rows"] / ours["e2e"]["rows"] / raw[s]["rate"] for s in ("detect", "stance", "embed"))
    return {"rate": 1.0 / per_sentence}


# ----------------------------------------------------------------------------------------------
# the reference
# ----------------------------------------------------------------------------------------------
def bench_reference(texts, sizes):
    import group_appeal_detector as gad
    from group_appeal_detector.clustering import GroupMentionClusterer

    ref = gad.GroupAppealDetector(device="cpu")
    runs = {}
    for n in sizes:
        log(f"reference: {n} sentences (load {load_avg()[0]:.2f})")
        sub = texts[:n]
        t0 = time.perf_counter()
        mentions = ref.detect_mentions_batch(sub, batch_size=32)
        t1 = time.perf_counter()
        pairs = [(s, m["span"]) for s, ms in zip(sub, mentions) for m in ms]
        stances = ref.classify_stance_batch(pairs, batch_size=32) if pairs else []
        t2 = time.perf_counter()
        spans = [p[1] for p in pairs]
        if spans:
            GroupMentionClusterer(spans, device="cpu").embed()  # loads the model: subtract below
        t3 = time.perf_counter()
        if spans:
            load = time.perf_counter()
            GroupMentionClusterer(spans[:1], device="cpu")
            t3 -= time.perf_counter() - load
        runs[n] = {"detect": t1 - t0, "stance": t2 - t1, "embed": t3 - t2, "e2e": t3 - t0,
                   "rows": {"detect": n, "stance": len(pairs), "embed": len(spans), "e2e": n},
                   "stances": stances, "pairs": pairs}
    return runs, marginal(runs[sizes[0]], runs[sizes[1]])


# ----------------------------------------------------------------------------------------------
# agreement of bf16 with fp32
# ----------------------------------------------------------------------------------------------
def detection_agreement(fp32_run, bf16_run):
    """Mentions found in fp32 and bf16, and the (sentence, start, end) spans found by only one."""
    spans32 = {(a[0], a[2], a[3]) for a in fp32_run["appeals"]}
    spans16 = {(a[0], a[2], a[3]) for a in bf16_run["appeals"]}
    return {"mentions_fp32": len(spans32), "mentions_bf16": len(spans16),
            "mention_spans_differing": len(spans32 ^ spans16)}


def stance_agreement(texts, appeals, st32, st16, emb32, emb16, keys):
    import numpy as np

    pairs = [(texts[a[0]], a[1]) for a in appeals]
    p32 = st32.classify(pairs)
    p16 = st16.classify(pairs)
    a = np.array([[s.prob_positive, s.prob_negative, s.prob_neutral] for s in p32])
    b = np.array([[s.prob_positive, s.prob_negative, s.prob_neutral] for s in p16])
    v32, v16 = emb32.embed(keys), emb16.embed(keys)
    cos = (v32 * v16).sum(axis=1)
    return {"pairs": len(pairs), "max_prob_diff": float(np.abs(a - b).max()) if len(a) else 0.0,
            "label_agreement": float(np.mean([x.stance == y.stance for x, y in zip(p32, p16)])) if p32 else 1.0,
            "embed_cos_min": float(cos.min()) if len(cos) else 1.0,
            "embed_cos_mean": float(cos.mean()) if len(cos) else 1.0}


# ----------------------------------------------------------------------------------------------
# levers
# ----------------------------------------------------------------------------------------------
def levers(finder, texts, n_pairs):
    import torch

    out = {}
    det, st = finder.detector, finder.stance
    mentions = det.detect(texts[:200])
    pairs = [(s, m.span) for s, ms in zip(texts, mentions) for m in ms][:n_pairs]
    old = (st.max_tokens, st.batch_size)
    for label, max_tokens, batch in [("32 pairs/batch (default)", None, 32), ("8 pairs/batch", None, 8),
                                     ("max_tokens 1024", 1024, 64), ("max_tokens 2048", 2048, 64),
                                     ("max_tokens 4096", 4096, 64)]:
        st.max_tokens, st.batch_size = max_tokens, batch
        t = time.perf_counter()
        st.classify(pairs)
        out[f"stance: {label}"] = len(pairs) / (time.perf_counter() - t)
        log(f"lever stance {label}: {out[f'stance: {label}']:.2f} pairs/s (load {load_avg()[0]:.2f})")
    st.max_tokens, st.batch_size = old
    threads = torch.get_num_threads()
    for n in (1, 2):
        torch.set_num_threads(n)
        t = time.perf_counter()
        det.detect(texts[:60])
        out[f"detect: torch threads {n}"] = 60 / (time.perf_counter() - t)
    torch.set_num_threads(threads)
    t = time.perf_counter()
    det.preprocess(texts[:1000])
    out["tokenize detector (sentences/s)"] = 1000 / (time.perf_counter() - t)
    t = time.perf_counter()
    st.preprocess(pairs * max(1, 600 // max(len(pairs), 1)))
    out["tokenize stance (pairs/s)"] = len(pairs) * max(1, 600 // max(len(pairs), 1)) / (time.perf_counter() - t)
    return out


# ----------------------------------------------------------------------------------------------
# Spark: local[2], memory of the Python workers and marginal end-to-end rate of detect_appeals
# ----------------------------------------------------------------------------------------------
def bench_spark(texts, sizes, arrow_batch, max_tokens=None):
    from group_appeal_spark.jobs.transforms import detect_appeals
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("gas-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch))
             .config("spark.python.worker.reuse", "true")
             .config("spark.executorEnv.HF_HUB_OFFLINE", "1")
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    config = {"models.offline": True, "models.cache_dir": CACHE, "segmentation.mode": "sentence",
              "inference.max_tokens_per_batch": max_tokens}
    peak = {"sum_rss": 0.0, "sum_pss": 0.0, "sum_uss": 0.0, "workers": 0, "max_rss_one": 0.0,
            "weights_pss": 0.0, "weights_private": 0.0, "weights_rss": 0.0}

    def sample():  # the Python workers holding models (RSS > 300 MiB) among this process's descendants
        heavy = [common.memory_mib(pid, weights=True) for pid, m in common.tree_memory(os.getpid()).items()
                 if pid != os.getpid() and "pyspark" in m["cmdline"] and "java" not in m["cmdline"]
                 and m["rss"] > 300 * common.MIB]
        if heavy:
            common.keep_max(peak, workers=len(heavy), max_rss_one=max(m["rss"] for m in heavy),
                            **{f"sum_{k}": sum(m[k] for m in heavy) for k in ("rss", "pss", "uss")},
                            **{k: sum(m[k] for m in heavy) for k in ("weights_pss", "weights_private", "weights_rss")})

    times = {}
    try:
        with common.Sampler(sample, every=1.0):
            warm = spark.createDataFrame([(f"w{i}", t) for i, t in enumerate(texts[-8:])], "id string, text string")
            t = time.perf_counter()
            detect_appeals(warm.repartition(2), config).documents.count()  # loads the models in both workers
            times["warmup_with_load"] = time.perf_counter() - t
            for n in sizes:
                log(f"spark local[2]: {n} documents (load {load_avg()[0]:.2f})")
                df = spark.createDataFrame([(f"d{i}", t) for i, t in enumerate(texts[:n])], "id string, text string")
                t = time.perf_counter()
                n_m = detect_appeals(df.repartition(2), config).mentions.count()
                times[n] = {"seconds": time.perf_counter() - t, "mentions": n_m}
    finally:
        spark.stop()
    n1, n2 = sizes
    ds = times[n2]["seconds"] - times[n1]["seconds"]
    return {"times": {str(k): v for k, v in times.items()}, "peak": peak,
            "marginal_docs_per_s": (n2 - n1) / ds if ds > 0 else float("nan"), "arrow_batch": arrow_batch}


# ----------------------------------------------------------------------------------------------
# k search
# ----------------------------------------------------------------------------------------------
def bench_k(n, k_max=30, seed=0):
    import numpy as np
    from group_appeal_spark.lib.clustering.search import search_k

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, 128))
    X = centers[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, 128))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    counts = rng.zipf(1.8, n).clip(1, 1000).astype(np.float64)
    t = time.perf_counter()
    res = search_k(X, k_min=2, k_max=k_max, sample_weight=counts, random_state=42)
    secs = time.perf_counter() - t
    return {"n": n, "seconds": secs, "best_k": int(res.best_k),
            "estimated": bool(res.scores["estimated"].any())}


def main(argv=None):
    parser = argparse.ArgumentParser(description="group-appeal-spark benchmark against the reference")
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--render-only", metavar="JSON", help="rewrite the Markdown from an earlier run's JSON")
    parser.add_argument("--skip-build", action="store_true", help="reuse the model cache from an earlier run")
    parser.add_argument("--arrow-batch", type=int, default=256)
    parser.add_argument("--max-tokens-per-batch", type=int, default=None,
                        help="inference.max_tokens_per_batch for this project's runs (default: the config's null)")
    args = parser.parse_args(argv)
    if args.render_only:
        R = json.loads(pathlib.Path(args.render_only).read_text())
        common.write_keeping_other_sections(pathlib.Path(args.out), common.render_benchmarks(R, R["command"]))
        return
    mode = "quick" if args.quick else "full"
    sz = SIZES[mode]
    cmd = common.command("run_bench.py", argv if argv is not None else sys.argv[1:])
    start = time.time()
    R = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "sizes": sz,
         "max_tokens_per_batch": args.max_tokens_per_batch}
    loads = []
    partial = pathlib.Path(args.out).with_suffix(".partial.json")

    def step(msg):
        loads.append(load_avg()[0])
        log(msg)
        partial.write_text(json.dumps(R, indent=2, default=str))  # what is measured so far survives a crash

    texts = make_corpus(2000)
    R["corpus"] = length_stats(texts)
    R["machine"] = common.machine_facts()
    if not (args.skip_build and (pathlib.Path(CACHE) / "bench_models.json").is_file()):
        step("building real-size random models")
        import build_models

        build_models.build(CACHE, texts)
    R["calibration"] = common.bench_models(CACHE)["detector_mentions_per_sentence_calibration"]
    R["weights_mib"] = common.weights_mib(CACHE)
    R["weights_det_stance_mib"] = common.weights_mib(CACHE, ("maxwlnd/roberta_group_mention_detector",
                                                             "maxwlnd/socialgroup_stance_classification_nli"))

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    step("memory: 2 processes, from_pretrained vs mmap")
    import memory

    R["memory"] = memory.run(CACHE, 2)

    step("this project fp32")
    f32, e32, runs32, R["ours_fp32"] = bench_ours(texts, sz["ours"], "fp32", args.max_tokens_per_batch)
    R["ours_runs_rows"] = runs32[sz["ours"][1]]["rows"]
    R["tokens_per_sentence"] = sum(len(t.ids) for t in f32.detector.preprocess(texts)) / len(texts)
    step("raw forward fp32")
    raw_texts = texts[sz["ours"][1]: sz["ours"][1] + sz["raw"]]
    R["raw_fp32"] = raw_forward(f32, e32, raw_texts)
    R["raw_fp32"]["e2e"] = raw_e2e(R["raw_fp32"], R["ours_fp32"])
    step("levers")
    R["levers"] = levers(f32, texts, sz["lever_pairs"])

    step("this project bf16")
    f16, e16, runs16, R["ours_bf16"] = bench_ours(texts, sz["bf16"], "bf16", args.max_tokens_per_batch)
    step("raw forward bf16")
    R["raw_bf16"] = raw_forward(f16, e16, raw_texts)
    R["raw_bf16"]["e2e"] = raw_e2e(R["raw_bf16"], R["ours_bf16"])
    n2 = sz["ours"][1]
    big32, big16 = runs32[n2], runs16[n2]
    R["bf16_detect"] = detection_agreement(big32, big16)
    sub = big32["appeals"][: 100 if mode == "full" else 30]
    keys = big32["keys"][:300]
    R["agreement_keys"] = len(keys)
    step("bf16 agreement")
    R["agreement"] = stance_agreement(texts, sub, f32.stance, f16.stance, e32, e16, keys)
    del f16, e16, runs16

    step("reference")
    ref_runs, R["ref"] = bench_reference(texts, sz["ref"])
    R["ref_runs_rows"] = ref_runs[sz["ref"][1]]["rows"]
    # parity check on the shared rows: same mentions and stances (fp32)
    nref = sz["ref"][1]
    ref_pairs = ref_runs[nref]["pairs"]
    ours_pairs = [(texts[a[0]], a[1]) for a in big32["appeals"] if a[0] < nref]
    # sentence segmentation splits a text with an inner '?' (the reference runs it whole): compare the
    # texts that are one segment
    from group_appeal_spark.lib.inference.segment import segment_document

    whole = {t for t in texts[:nref] if len(segment_document(t, "sentence")) == 1}
    R["parity_texts"] = {"compared": len(whole), "multi_segment": nref - len(whole)}
    R["parity_pairs_equal"] = [p for p in ref_pairs if p[0] in whole] == [p for p in ours_pairs if p[0] in whole]
    ref_probs = [tuple(s["stance_probs"].values()) for p, s in zip(ref_pairs, ref_runs[nref]["stances"]) if p[0] in whole]
    ours_probs = [a[5] for a in big32["appeals"] if a[0] < nref and texts[a[0]] in whole]
    if R["parity_pairs_equal"] and ref_probs:
        import numpy as np

        R["parity_max_prob_diff"] = float(np.abs(np.array(ref_probs) - np.array(ours_probs)).max())
    del f32, e32, runs32, ref_runs

    step("spark local[2]")
    R["spark"] = bench_spark(texts, sz["spark"], args.arrow_batch, args.max_tokens_per_batch)

    if mode == "full":
        step("spark local[2], arrow.maxRecordsPerBatch 16")
        R["spark_arrow16"] = bench_spark(texts, sz["spark"], 16, args.max_tokens_per_batch)

    step("k search")
    R["k_search"] = [bench_k(n) for n in sz["k"]]
    step("done")

    R["targets"] = common.benchmark_targets(R)
    R["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    R["minutes"] = (time.time() - start) / 60
    R["load_min"], R["load_max"] = min(loads), max(loads)
    R["log"] = LOG
    R["command"] = cmd
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(R, indent=2, default=str))
    partial.unlink(missing_ok=True)
    common.write_keeping_other_sections(out, common.render_benchmarks(R, cmd))
    print(out.read_text())


if __name__ == "__main__":
    main()
