"""End to end: the `run` console script (Spark local) against the reference, marginal rates.

Each size of the corpus goes through the reference (group-appeal-detector: detection, stance,
embedding, k search over the same k range, clustering; one Python process) and through this
project's `group-appeal-spark run` (one process tree: driver, JVM, Python workers) once per
variant, back to back. The marginal rate (Δsentences / Δwall seconds between the two sizes)
removes what both pay once: interpreter and Spark start, model loading, k search, plots.

    python bench/build_models.py --cache /tmp/gas-bench/hub     # real-size random models, once
    python bench/run_e2e.py --out /tmp/gas-e2e/e2e.md            # 150 and 450 sentences

Variants are `name=flags` (default: fp32, bf16 and auto precision). Besides the rates the report
gives each run's stage seconds from summary.json, the seconds before the first model batch
(the fixed cost), and the agreement of each variant's stances with fp32 on the same mentions.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
from common import CACHE, env

DEFAULT_VARIANTS = ["fp32=--precision fp32", "bf16=--precision bf16", "auto=--precision auto"]


def write_corpus(folder: pathlib.Path, n: int) -> pathlib.Path:
    from corpus import make_corpus

    path = folder / f"corpus-{n}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(make_corpus(n)):
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# the reference, in a child process (what a user of the single-machine package runs)
# ----------------------------------------------------------------------------------------------
def reference_child(corpus: str, out: str, k_max: int) -> None:
    t0 = time.perf_counter()
    import group_appeal_detector as gad
    from group_appeal_detector.clustering import GroupMentionClusterer

    texts = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
    detector = gad.GroupAppealDetector(device="cpu")
    t_load = time.perf_counter()
    results = detector.detect_batch(texts, batch_size=32)
    t_detect = time.perf_counter()
    spans = [m["span"] for ms in results for m in ms]
    clusterer = GroupMentionClusterer(spans, device="cpu")
    clusterer.embed()
    t_embed = time.perf_counter()
    k_hi = min(k_max, len(set(spans)) - 1)
    best_k, _ = clusterer.find_optimal_k(k_range=(2, k_hi), metric="silhouette", visualize=False)
    clusterer.cluster(best_k)
    t_end = time.perf_counter()
    mentions = [{"doc": i, "start": m["start"], "end": m["end"], "stance": m["stance"],
                 "probs": [float(p) for p in m["stance_probs"].values()] if isinstance(m["stance_probs"], dict)
                 else [float(p) for p in m["stance_probs"]]}
                for i, ms in enumerate(results) for m in ms]
    pathlib.Path(out).write_text(json.dumps({
        "seconds": {"import+load": t_load - t0, "detect+stance": t_detect - t_load, "embed (incl. load)": t_embed - t_detect,
                    "k search+cluster": t_end - t_embed},
        "mentions": mentions, "best_k": best_k}))


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


def run_reference(work: pathlib.Path, corpus: pathlib.Path, n: int, k_max: int) -> dict:
    out = work / f"ref-{n}.json"
    wall = timed([sys.executable, __file__, "--reference-child", str(corpus), str(out), "--k-max", str(k_max)],
                 work / f"ref-{n}.log")
    data = json.loads(out.read_text())
    return {"wall": wall, "seconds": data["seconds"], "mentions": data["mentions"]}


def run_ours(work: pathlib.Path, corpus: pathlib.Path, n: int, name: str, flags: list[str], k_max: int) -> dict:
    import pandas as pd

    out = work / f"ours-{name}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    script = pathlib.Path(sys.executable).parent / "group-appeal-spark"
    cmd = [str(script), "run", "--input", str(corpus), "--input-format", "json", "--output", str(out),
           "--segmentation", "none", "--k-max", str(k_max), "--offline", *flags]
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


def markdown(facts, sizes, results, loads, argv) -> str:
    n1, n2 = sizes
    ref = results["reference"]
    ref_rate = (n2 - n1) / (ref[n2]["wall"] - ref[n1]["wall"])
    lines = [
        f"Command: `{common.command('run_e2e.py', argv)}`  ",
        f"Machine: {facts['cpu']}, {facts['cores']} cores; torch {facts['torch']} "
        f"(`get_cpu_capability()` = {facts['torch_cpu_capability']}), bf16 native: {facts['bf16_native']} "
        f"(flags {', '.join(facts['bf16_flags']) or 'none'}); transformers {facts['transformers']}, "
        f"Python {facts['python']}.  ",
        f"Load average (1 min) at each run: {min(loads):.2f}-{max(loads):.2f}.",
        "",
    ]
    rows = [["reference fp32", f"{ref[n1]['wall']:.1f}", f"{ref[n2]['wall']:.1f}", f"{ref_rate:.2f}", "1.00x", "1.00"]]
    for name, runs in results.items():
        if name != "reference":
            rate = (n2 - n1) / (runs[n2]["wall"] - runs[n1]["wall"])
            rows.append([f"run {name}", f"{runs[n1]['wall']:.1f}", f"{runs[n2]['wall']:.1f}", f"{rate:.2f}",
                         f"{rate / ref_rate:.2f}x", f"{runs[n1]['wall'] / ref[n1]['wall']:.2f}"])
    lines += common.table(["run", f"wall {n1} (s)", f"wall {n2} (s)", "marginal sentences/s", "/ reference",
                           f"{n1} wall / reference's"], rows)
    lines += ["", f"Stage seconds ({n1} / {n2} sentences; `run`: summary.json's stage_seconds, the reference: "
              "timed inside its process):", ""]
    lines += common.table(["run", "stages"], ([name, "; ".join(
        f"{stage} {secs:.1f} / {runs[n2]['seconds'].get(stage, float('nan')):.1f}"
        for stage, secs in runs[n1]["seconds"].items())] for name, runs in results.items()))
    if "fp32" in results:
        lines += ["", f"Stances against `run` fp32 on the mentions both found ({n2} sentences):", ""]
        rows = []
        for name, runs in results.items():
            if name != "fp32":
                ag = agreement(results["fp32"][n2]["mentions"], runs[n2]["mentions"])
                rows.append([name, ag["shared"], ag["only_a"], ag["only_b"], f"{ag['label_agreement']:.2%}",
                             f"{ag['max_dprob']:.4f}", f"{ag['median_margin']:.4f} / {ag['max_flipped_margin']:.4f}"])
        lines += common.table(["run", "shared mentions", "only in fp32", "only in this run", "label agreement",
                               "max abs. prob. difference", "fp32 margin: median / largest where the label differs"],
                              rows)
        lines += ["", "The margin is how far fp32's winning class's entailment probability is ahead of the "
                  "runner-up's: a label can only differ where it is below the probability difference."]
        for name, runs in results.items():
            if name != "reference" and runs[n2].get("precision"):
                lines.append(f"\n`run {name}`: summary.json precision = `{json.dumps(runs[n2]['precision'])}`")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=False, help="markdown file for the results")
    parser.add_argument("--work", default="/tmp/gas-e2e")
    parser.add_argument("--sizes", default="150,450")
    parser.add_argument("--k-max", type=int, default=30)
    parser.add_argument("--variant", action="append", help="name=flags of `run` (repeatable)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="render --work's results.json again, run nothing")
    parser.add_argument("--reference-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_child:
        return reference_child(*args.reference_child, args.k_max)
    if args.report_only:
        saved = json.loads((pathlib.Path(args.work) / "results.json").read_text())
        results = {name: {int(n): run for n, run in runs.items()} for name, runs in saved.items()}
        sizes = tuple(sorted(next(iter(results.values()))))
        loads_file = pathlib.Path(args.work) / "loads.json"
        loads = json.loads(loads_file.read_text()) if loads_file.is_file() else [float("nan")]
        common.write_report(args.out, markdown(common.machine_facts(precision=True), sizes, results, loads, argv))
        return None
    if not (pathlib.Path(CACHE) / "bench_models.json").is_file():
        raise SystemExit(f"no benchmark models in {CACHE}: run python bench/build_models.py --cache {CACHE}")
    os.environ.update(env())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    variants = [v.split("=", 1) for v in (args.variant or DEFAULT_VARIANTS)]
    corpora = {n: write_corpus(work, n) for n in sizes}
    results: dict = {} if args.no_reference else {"reference": {}}
    loads = []
    for n in sizes:  # back to back per size: the machine's load drifts less within one size
        if not args.no_reference:
            loads.append(os.getloadavg()[0])
            results["reference"][n] = run_reference(work, corpora[n], n, args.k_max)
            print(f"reference {n}: {results['reference'][n]['wall']:.1f} s", flush=True)
        for name, flags in variants:
            loads.append(os.getloadavg()[0])
            results.setdefault(name, {})[n] = run_ours(work, corpora[n], n, name, flags.split(), args.k_max)
            print(f"run {name} {n}: {results[name][n]['wall']:.1f} s", flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (work / "loads.json").write_text(json.dumps(loads))
    common.write_report(args.out, markdown(common.machine_facts(precision=True), sizes, results, loads, argv)
                        if "reference" in results else json.dumps({k: {n: r["wall"] for n, r in v.items()}
                                                                   for k, v in results.items()}))


if __name__ == "__main__":
    main()
