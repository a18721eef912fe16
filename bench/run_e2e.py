"""End to end: the `run` console script (Spark local) against the reference and its peers, marginal rates.

Each size of the corpus goes through the peers and through this project's `group-appeal-spark run`
(one process tree: driver, JVM, Python workers) once per variant, back to back. The peers are the
reference (group-appeal-detector: detection, stance, embedding, k search over the same k range,
clustering; one Python process) and two ways of spreading the reference over two processes
without this project: Spark's `predict_batch_udf` (`local[2]`) and Ray Data's `map_batches` (two
actors); both then embed, search k and cluster on the driver as the reference does. Every peer runs
in its own child process, timed from outside. The marginal rate (Δsentences / Δwall seconds between
consecutive sizes) removes what all pay once: interpreter, Spark or Ray start, model loading, k
search, plots.

    python bench/build_models.py --cache /tmp/gas-bench/hub     # real-size random models, once
    python bench/run_e2e.py --out /tmp/gas-e2e/e2e.md            # 150 and 450 synthetic sentences
    python bench/run_e2e.py --corpus sentences --sizes 60,150,180,450 --pairs 60:180,150:450 \
        --peers reference,predict_batch_udf,ray --peer-max-size 180 --variant "fp32=--precision fp32" \
        --out /tmp/gas-e2e/peers.md                               # issue 23's sizes, about 35 minutes

Corpora (bench/corpus.py): `synthetic` (10-60 words), `sentences` (the character lengths of real
manifesto sentences), `speeches` (documents of such sentences, median 1,200 characters; `run` and
the peers get their sentences, as `--segmentation sentence` cuts them). Variants
are `name=flags` (default: fp32, bf16 and auto precision). Besides walls and rates the report gives
each run's stage seconds (summary.json's for `run`, timed inside the child for a peer) and the
agreement of each run's stances with fp32 on the same mentions. `--tiny-models FOLDER` runs all of
it on the tests' tiny random models: a smoke test of this script, whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
from common import env

DEFAULT_VARIANTS = ["fp32=--precision fp32", "bf16=--precision bf16", "auto=--precision auto"]
PEERS = ("reference", "predict_batch_udf", "ray")
# predict_batch_udf's local[2] task slots and Ray's actors: the two processes `run` spreads over
WORKERS = 2
BATCH = 32  # texts per model batch, the reference's default
# What one model input is, as `run --segmentation` names it: the reference crashes on a text of
# more than 512 tokens, so speeches go to every peer and to `run` as sentences.
SEGMENTATION = {"synthetic": "none", "sentences": "none", "speeches": "sentence"}


def write_corpus(folder: pathlib.Path, n: int, kind: str = "synthetic") -> pathlib.Path:
    import corpus

    make = {"synthetic": corpus.make_corpus, "sentences": corpus.make_sentences, "speeches": corpus.make_speeches}
    path = folder / (f"corpus-{n}.jsonl" if kind == "synthetic" else f"corpus-{kind}-{n}.jsonl")
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(make[kind](n)):
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


def use_tiny_models(folder: pathlib.Path) -> None:
    """Build the tests' tiny random models into ``folder`` (once) and point every child at them."""
    if not (folder / "tiny_models.json").is_file():
        from group_appeal_spark.testing.tiny_models import build_tiny_hub_cache

        snapshots = build_tiny_hub_cache(folder, seed=0)
        (folder / "tiny_models.json").write_text(json.dumps({k: str(v) for k, v in snapshots.items()}, indent=1))
    common.CACHE = str(folder)  # common.env() reads it at each call


# ----------------------------------------------------------------------------------------------
# the peers, each in a child process: what a user of the single-machine package runs
# ----------------------------------------------------------------------------------------------
def read_texts(corpus: str) -> list[str]:
    with open(corpus, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def read_units(corpus: str, segmentation: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The model inputs of a corpus and each one's (document, offset in it): the texts, or their
    sentences as `run --segmentation sentence` finds them (``split_sentences``)."""
    from group_appeal_spark.lib.inference.segment import split_sentences

    units, where = [], []
    for doc, text in enumerate(read_texts(corpus)):
        for start, end in split_sentences(text) if segmentation == "sentence" else [(0, len(text))]:
            units.append(text[start:end])
            where.append((doc, start))
    return units, where


def mention_rows(results: list[list[dict]], where: list[tuple[int, int]]) -> list[dict]:
    """The reference's detect_batch results as (doc, start, end, stance, probs) rows, offsets in the document."""
    return [{"doc": doc, "start": offset + m["start"], "end": offset + m["end"], "stance": m["stance"],
             "probs": [float(p) for p in m["stance_probs"].values()] if isinstance(m["stance_probs"], dict)
             else [float(p) for p in m["stance_probs"]]}
            for (doc, offset), ms in zip(where, results, strict=True) for m in ms]


def finish_child(out: str, results: list[list[dict]], where: list, seconds: dict, k_max: int) -> None:
    """The reference's driver-side end: embed every mention, search k, cluster; write ``out``."""
    from group_appeal_detector.clustering import GroupMentionClusterer

    t = time.perf_counter()
    spans = [m["span"] for ms in results for m in ms]
    best_k = None
    k_hi = min(k_max, len(set(spans)) - 1)
    if k_hi >= 2:  # a tiny smoke corpus can have fewer than three distinct mentions
        clusterer = GroupMentionClusterer(spans, device="cpu")
        clusterer.embed()
        t_embed = time.perf_counter()
        best_k, _ = clusterer.find_optimal_k(k_range=(2, k_hi), metric="silhouette", visualize=False)
        clusterer.cluster(best_k)
        seconds.update({"embed (incl. load)": t_embed - t, "k search+cluster": time.perf_counter() - t_embed})
    pathlib.Path(out).write_text(json.dumps({"seconds": seconds, "mentions": mention_rows(results, where),
                                             "best_k": best_k}))


def reference_child(corpus: str, out: str, k_max: int, segmentation: str) -> None:
    t0 = time.perf_counter()
    import group_appeal_detector as gad

    texts, where = read_units(corpus, segmentation)
    detector = gad.GroupAppealDetector(device="cpu")
    t_load = time.perf_counter()
    results = detector.detect_batch(texts, batch_size=BATCH)
    finish_child(out, results, where, {"import+load": t_load - t0, "detect+stance": time.perf_counter() - t_load},
                 k_max)


def make_detect_fn():
    """Load the reference's detector in this worker; return texts -> one JSON list of mentions per text.

    Each of the two worker processes gets half the cores: torch's default of one thread per core
    in both would oversubscribe them (`run` does the same, one thread per task slot).
    """
    import group_appeal_detector as gad
    import numpy as np
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))
    detector = gad.GroupAppealDetector(device="cpu")

    def predict(texts):
        results = detector.detect_batch([str(t) for t in texts], batch_size=BATCH)
        return np.array([json.dumps(ms, default=lambda x: x.item()) for ms in results], dtype=object)

    return predict


def predict_batch_udf_child(corpus: str, out: str, k_max: int, segmentation: str) -> None:
    t0 = time.perf_counter()
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StringType

    spark = SparkSession.builder.master(f"local[{WORKERS}]").appName("run_e2e predict_batch_udf").getOrCreate()
    t_start = time.perf_counter()
    # predict_batch_udf returns scalars, arrays or structs of them: a text's mentions go back as JSON
    detect = predict_batch_udf(make_detect_fn, return_type=StringType(), batch_size=BATCH)
    texts, where = read_units(corpus, segmentation)
    units = spark.createDataFrame(list(enumerate(texts)), "id long, text string").repartition(WORKERS)
    rows = sorted(units.select("id", detect("text").alias("mentions")).collect(), key=lambda r: r.id)
    t_detect = time.perf_counter()
    spark.stop()
    results = [json.loads(r.mentions) for r in rows]
    finish_child(out, results, where,
                 {"spark start": t_start - t0, "detect+stance (UDF, incl. load)": t_detect - t_start}, k_max)


class RayDetect:
    """Ray Data's callable class: loads the reference's detector once per actor."""

    def __init__(self):
        self.predict = make_detect_fn()

    def __call__(self, batch: dict) -> dict:
        return {"id": batch["id"], "mentions": self.predict(batch["text"])}


def ray_child(corpus: str, out: str, k_max: int, segmentation: str) -> None:
    t0 = time.perf_counter()
    import ray
    import ray.data

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="warning")
    t_start = time.perf_counter()
    texts, where = read_units(corpus, segmentation)
    units = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts)])
    rows = units.map_batches(RayDetect, compute=ray.data.ActorPoolStrategy(size=WORKERS), batch_size=BATCH).take_all()
    t_detect = time.perf_counter()
    ray.shutdown()
    results = [json.loads(r["mentions"]) for r in sorted(rows, key=lambda r: r["id"])]
    finish_child(out, results, where,
                 {"ray start": t_start - t0, "detect+stance (map_batches, incl. load)": t_detect - t_start}, k_max)


CHILDREN = {"reference": reference_child, "predict_batch_udf": predict_batch_udf_child, "ray": ray_child}


# ----------------------------------------------------------------------------------------------
# one run of a child, timed from outside
# ----------------------------------------------------------------------------------------------
def timed(cmd: list[str], log: pathlib.Path) -> float:
    t = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env(), check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return wall


def run_peer(work: pathlib.Path, corpus: pathlib.Path, n: int, peer: str, k_max: int, kind: str) -> dict:
    out = work / f"{peer}-{n}.json"
    wall = timed([sys.executable, __file__, "--peer-child", peer, str(corpus), str(out), "--k-max", str(k_max),
                  "--corpus", kind], work / f"{peer}-{n}.log")
    data = json.loads(out.read_text())
    return {"wall": wall, "seconds": data["seconds"], "mentions": data["mentions"]}


def run_ours(work: pathlib.Path, corpus: pathlib.Path, n: int, name: str, flags: list[str], k_max: int,
             kind: str) -> dict:
    import pandas as pd

    out = work / f"ours-{name}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    script = pathlib.Path(sys.executable).parent / "group-appeal-spark"
    cmd = [str(script), "run", "--input", str(corpus), "--input-format", "json", "--output", str(out),
           "--segmentation", SEGMENTATION[kind], "--k-max", str(k_max), "--offline", *flags]
    wall = timed(cmd, work / f"ours-{name}-{n}.log")
    summary = json.loads((out / "summary.json").read_text())
    m = pd.read_parquet(out / "mentions")
    mentions = [{"doc": int(r.doc_id), "start": int(r.start), "end": int(r.end), "stance": r.stance,
                 "probs": [float(r.prob_positive), float(r.prob_negative), float(r.prob_neutral)]}
                for r in m.itertuples()]
    return {"wall": wall, "seconds": summary.get("stage_seconds", {}), "mentions": mentions,
            "precision": summary.get("precision"), "cpu": summary.get("cpu")}


def agreement(a: list[dict], b: list[dict]) -> dict:
    """Stance agreement of b with a on the mentions both found (same document and offsets)."""
    ka = {(m["doc"], m["start"], m["end"]): m for m in a}
    kb = {(m["doc"], m["start"], m["end"]): m for m in b}
    import numpy as np

    shared = sorted(set(ka) & set(kb))
    same = sum(ka[k]["stance"] == kb[k]["stance"] for k in shared)
    dprob = max((abs(x - y) for k in shared for x, y in zip(ka[k]["probs"], kb[k]["probs"])), default=0.0)

    def margin(m):  # how far a's winning class is ahead of its runner-up
        top = sorted(m["probs"], reverse=True)
        return top[0] - top[1]

    margins = [margin(ka[k]) for k in shared]
    flipped = [margin(ka[k]) for k in shared if ka[k]["stance"] != kb[k]["stance"]]
    return {"shared": len(shared), "only_a": len(set(ka) - set(kb)), "only_b": len(set(kb) - set(ka)),
            "label_agreement": same / len(shared) if shared else float("nan"), "max_dprob": dprob,
            "median_margin": float(np.median(margins)) if margins else float("nan"),
            "max_flipped_margin": max(flipped, default=0.0)}


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------
def label(name: str) -> str:
    return name if name in PEERS else f"run {name}"


def marginal(runs: dict, n1: int, n2: int) -> float:
    """Δsentences / Δwall seconds from size ``n1`` to ``n2``; nan where the wall did not grow or a size is missing."""
    if n1 not in runs or n2 not in runs:
        return float("nan")
    dwall = runs[n2]["wall"] - runs[n1]["wall"]
    return (n2 - n1) / dwall if dwall > 0 else float("nan")


def cell(x: float, of: float | None = None, digits: int = 2) -> str:
    """``x``, and in brackets ``x / of`` when ``of`` is given; "n/a" for nan (the wall did not grow)."""
    if math.isnan(x):
        return "n/a"
    text = f"{x:.{digits}f}"
    return text if of is None or math.isnan(of) else f"{text} ({x / of:.2f}x)"


def wall(runs: dict, n: int) -> float:
    return runs[n]["wall"] if n in runs else float("nan")


def markdown(facts, sizes, results, loads, argv, meta=None, extra_pairs=()) -> str:
    meta = meta or {}
    sizes = sorted(sizes)
    pairs = list(itertools.pairwise(sizes))
    pairs += [p for p in extra_pairs if p not in pairs]
    ref = results.get("reference")
    lines = [
        f"Command: `{common.command('run_e2e.py', argv)}`  ",
        f"Machine: {facts['cpu']}, {facts['cores']} cores; torch {facts['torch']} "
        f"(`get_cpu_capability()` = {facts['torch_cpu_capability']}), bf16 native: {facts['bf16_native']} "
        f"(flags {', '.join(facts['bf16_flags']) or 'none'}); transformers {facts['transformers']}, "
        f"Python {facts['python']}.  ",
        f"Load average (1 min) at each run: {min(loads):.2f}-{max(loads):.2f}.  ",
    ]
    if "corpus" in meta:
        s = meta["chars"]
        lines.append(f"Corpus: `{meta['corpus']}`, model inputs: `run --segmentation {SEGMENTATION[meta['corpus']]}` "
                     f"(the peers get the same); the {s['texts']:,} texts of the largest size have "
                     f"{s['mean']:.0f} characters on average, {s['p10']:.0f} / {s['p50']:.0f} / {s['p90']:.0f} / "
                     f"{s['p99']:.0f} at p10 / p50 / p90 / p99.  ")
    if meta.get("skipped"):
        lines.append("Skipped: " + "; ".join(meta["skipped"]) + ".  ")
    if meta.get("tiny_models"):
        lines.append("**Tiny random test models (`--tiny-models`): a smoke test, the numbers mean nothing.**  ")
    lines[-1] = lines[-1].rstrip()
    lines += ["", "Walls (seconds; in brackets: / the reference's at the same size):", ""]
    lines += common.table(["run", *(f"{n}" for n in sizes)], (
        [label(name), *(cell(wall(runs, n), ref and wall(ref, n), 1) for n in sizes)]
        for name, runs in results.items()))
    if pairs:
        lines += ["", "Marginal texts/s (Δtexts / Δwall seconds) between consecutive sizes, then `--pairs` "
                  "(in brackets: / the reference's; n/a: a size not run):", ""]
        lines += common.table(["run", *(f"{n1} -> {n2}" for n1, n2 in pairs)], (
            [label(name), *(cell(marginal(runs, n1, n2), ref and marginal(ref, n1, n2)) for n1, n2 in pairs)]
            for name, runs in results.items()))
    lines += ["", f"Stage seconds at {' / '.join(map(str, sizes))} texts (`run`: summary.json's stage_seconds; a "
              "peer: timed inside its process):", ""]
    lines += common.table(["run", "stages"], ([label(name), "; ".join(
        f"{stage} " + " / ".join(f"{runs[n]['seconds'].get(stage, float('nan')):.1f}" if n in runs else "-"
                                 for n in sizes)
        for stage in runs[max(runs)]["seconds"])] for name, runs in results.items()))
    n2 = sizes[-1]
    if "fp32" in results and len(results) > 1:
        lines += ["", f"Stances against `run` fp32 on the mentions both found (the largest size each ran; "
                  f"{n2} texts unless a peer stopped earlier):", ""]
        rows = []
        for name, runs in results.items():
            if name != "fp32":
                n2 = max(runs)
                ag = agreement(results["fp32"][n2]["mentions"], runs[n2]["mentions"])
                rows.append([label(name), ag["shared"], ag["only_a"], ag["only_b"], f"{ag['label_agreement']:.2%}",
                             f"{ag['max_dprob']:.4f}", f"{ag['median_margin']:.4f} / {ag['max_flipped_margin']:.4f}"])
        lines += common.table(["run", "shared mentions", "only in fp32", "only in this run", "label agreement",
                               "max abs. prob. difference", "fp32 margin: median / largest where the label differs"],
                              rows)
        lines += ["", "The margin is how far fp32's winning class's entailment probability is ahead of the "
                  "runner-up's: a label can only differ where it is below the probability difference."]
    for name, runs in results.items():
        if name not in PEERS and runs[max(runs)].get("precision"):
            lines.append(f"\n`run {name}`: summary.json precision = `{json.dumps(runs[max(runs)]['precision'])}`")
    return "\n".join(lines) + "\n"


def report_only(args, argv) -> None:
    work = pathlib.Path(args.work)
    saved = json.loads((work / "results.json").read_text())
    results = {name: {int(n): run for n, run in runs.items()} for name, runs in saved.items()}
    sizes = sorted({n for runs in results.values() for n in runs})
    loads = json.loads((work / "loads.json").read_text()) if (work / "loads.json").is_file() else [float("nan")]
    meta = json.loads((work / "meta.json").read_text()) if (work / "meta.json").is_file() else {}
    common.write_report(args.out, markdown(common.machine_facts(precision=True), sizes, results, loads, argv, meta,
                                           parse_pairs(args.pairs)))


def parse_pairs(text: str | None) -> list[tuple[int, int]]:
    """``--pairs`` "60:180,150:450" as [(60, 180), (150, 450)]."""
    pairs = []
    for item in filter(None, (text or "").split(",")):
        try:
            n1, n2 = (int(x) for x in item.split(":"))
        except ValueError:
            raise SystemExit(f"--pairs: {item!r} is not SMALLER:LARGER (e.g. 60:180)") from None
        if not 0 < n1 < n2:
            raise SystemExit(f"--pairs: {item!r}: the first size must be positive and below the second")
        pairs.append((n1, n2))
    return pairs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=False, help="markdown file for the results")
    parser.add_argument("--work", default="/tmp/gas-e2e")
    parser.add_argument("--sizes", default="150,450", help="corpus sizes, comma-separated (any number)")
    parser.add_argument("--corpus", choices=("synthetic", "sentences", "speeches"), default="synthetic")
    parser.add_argument("--peers", default="reference", help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--k-max", type=int, default=30)
    parser.add_argument("--variant", action="append", help="name=flags of `run` (repeatable)")
    parser.add_argument("--no-reference", action="store_true", help="leave the reference out of --peers")
    parser.add_argument("--pairs", help="marginal rates between these sizes too, e.g. 60:180,150:450")
    parser.add_argument("--peer-max-size", type=int,
                        help="run predict_batch_udf and ray only at sizes up to this (the reference runs at all)")
    parser.add_argument("--report-only", action="store_true", help="render --work's results.json again, run nothing")
    parser.add_argument("--tiny-models", metavar="FOLDER",
                        help="build the tests' tiny random models into FOLDER once and use them (smoke test)")
    parser.add_argument("--peer-child", nargs=3, metavar=("PEER", "CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_child:
        peer, corpus, out = args.peer_child
        return CHILDREN[peer](corpus, out, args.k_max, SEGMENTATION[args.corpus])
    if args.report_only:
        return report_only(args, argv)
    peers = [p for p in args.peers.split(",") if p and not (args.no_reference and p == "reference")]
    if unknown := set(peers) - set(PEERS):
        parser.error(f"--peers: unknown {', '.join(sorted(unknown))}; valid: {', '.join(PEERS)}")
    variants = [v.split("=", 1) for v in (args.variant or DEFAULT_VARIANTS)]
    if clash := {name for name, _ in variants} & set(PEERS):
        parser.error(f"--variant: {', '.join(sorted(clash))} is a peer's name")
    skipped = []
    if "ray" in peers and importlib.util.find_spec("ray") is None:
        skipped.append("ray (not installed: pip install -e '.[ray]')")
        peers.remove("ray")
        print(f"skipping {skipped[-1]}", flush=True)
    if args.tiny_models:
        use_tiny_models(pathlib.Path(args.tiny_models))
    elif not (pathlib.Path(common.CACHE) / "bench_models.json").is_file():
        raise SystemExit(f"no benchmark models in {common.CACHE}: run python bench/build_models.py --cache "
                         f"{common.CACHE} (or pass --tiny-models FOLDER for a smoke test)")
    os.environ.update(env())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    pairs = parse_pairs(args.pairs)
    if missing := {n for p in pairs for n in p} - set(sizes):
        parser.error(f"--pairs: sizes {sorted(missing)} are not in --sizes")
    corpora = {n: write_corpus(work, n, args.corpus) for n in sizes}
    from corpus import char_stats

    meta = {"corpus": args.corpus, "chars": char_stats(read_texts(str(corpora[sizes[-1]]))), "skipped": skipped,
            "tiny_models": bool(args.tiny_models)}
    results: dict = {}
    loads = []
    for n in sizes:  # back to back per size: the machine's load drifts less within one size
        for peer in peers:
            if peer != "reference" and args.peer_max_size is not None and n > args.peer_max_size:
                continue
            loads.append(os.getloadavg()[0])
            results.setdefault(peer, {})[n] = run_peer(work, corpora[n], n, peer, args.k_max, args.corpus)
            print(f"{peer} {n}: {results[peer][n]['wall']:.1f} s", flush=True)
            save(work, results, loads, meta)
        for name, flags in variants:
            loads.append(os.getloadavg()[0])
            results.setdefault(name, {})[n] = run_ours(work, corpora[n], n, name, flags.split(), args.k_max,
                                                      args.corpus)
            print(f"run {name} {n}: {results[name][n]['wall']:.1f} s", flush=True)
            save(work, results, loads, meta)
    common.write_report(args.out, markdown(common.machine_facts(precision=True), sizes, results, loads, argv, meta,
                                           pairs))


def save(work: pathlib.Path, results: dict, loads: list, meta: dict) -> None:
    """After every run: a stopped benchmark keeps what it measured (``--report-only`` renders it)."""
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (work / "loads.json").write_text(json.dumps(loads))
    (work / "meta.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
