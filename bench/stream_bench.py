"""`stream` against `run` over the same files: the fixed cost of a micro-batch and the throughput (issue 19).

    python bench/stream_bench.py --files 6 --docs-per-file 40 [--models tiny|bench] [--out section.md]

Writes ``--files`` JSON-lines files of parliamentary-style speeches (bench/corpus.py), fits a
cluster model with ``run`` over the first file, then, each in-process with one local[2] session
(the session start is outside every figure):

* ``stream --max-files-per-batch 1`` over all files: each batch's seconds (from its commit
  marker), the first (which loads the models) against the later ones, and how many times a
  Python worker loaded each stage's models (an ``on_load`` hook counts them);
* ``run --cluster-model`` over all files, against ``stream`` over all files in one batch: the
  documents per second of the models' work (run: its detect + embed + assign stages; stream:
  its batch).

``--models tiny`` (the test models: the figures are the fixed costs, model work is almost nil)
or ``bench`` (bench/build_models.py's base-size random models under GAS_BENCH_CACHE). Prints a
Markdown section for BENCHMARKS.md (``--out``: also written to that file).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import CACHE, machine_facts, table, write_report  # noqa: E402


def count_loads(folder: str):
    """An on_load hook that leaves one file per model load (it runs in the Python workers)."""
    def on_load(key):
        import uuid

        pathlib.Path(folder, f"{key.split(':')[0][:20]}-{uuid.uuid4().hex}").write_text(key)

    return on_load


def corpus_files(folder: pathlib.Path, n_files: int, per_file: int) -> None:
    from corpus import make_corpus

    texts = make_corpus(n_files * per_file, seed=3)
    folder.mkdir(parents=True)
    for k in range(n_files):
        rows = [{"id": f"d{k:02d}-{i:04d}", "party": "AB"[i % 2], "text": t}
                for i, t in enumerate(texts[k * per_file:(k + 1) * per_file])]
        (folder / f"f{k:02d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--docs-per-file", type=int, default=40)
    parser.add_argument("--models", choices=("tiny", "bench"), default="tiny")
    parser.add_argument("--out", help="also write the Markdown section here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from group_appeal_spark.jobs import run, stream
    from group_appeal_spark.lib import models
    from group_appeal_spark.udfs.hooks import UdfHooks
    from pyspark.sql import SparkSession

    with tempfile.TemporaryDirectory(prefix="gas-stream-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        if args.models == "tiny":
            from group_appeal_spark.testing.tiny_models import build_tiny_repos

            repos = build_tiny_repos(tmp / "models", seed=0, detector_o_share=0.9)
            sets = [f"--set=models.{role}.local_dir={repos[repo]}" for role, repo in models.MODEL_ROLES.items()]
        else:
            os.environ["HF_HUB_CACHE"] = CACHE
            sets = ["--offline"]
        corpus_files(tmp / "in", args.files, args.docs_per_file)
        (tmp / "first").mkdir()
        (tmp / "first" / "f00.jsonl").write_text((tmp / "in" / "f00.jsonl").read_text())
        spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
        common = ["--input-format", "json", "--carry-cols", "party", *sets, "--set", "output.plots=false"]
        assert run.main(["--input", str(tmp / "first"), "--output", str(tmp / "base"), "--n-clusters", "2",
                         *common]) == 0
        model = str(tmp / "base" / "cluster_model")
        loads = tmp / "loads"
        loads.mkdir()
        hooks = UdfHooks(on_load=count_loads(str(loads)))
        began = time.perf_counter()
        assert stream.main(["--input", str(tmp / "in"), "--output", str(tmp / "s1"), "--cluster-model", model,
                            "--max-files-per-batch", "1", "--refresh-every", "0", *common], hooks=hooks) == 0
        stream_wall = time.perf_counter() - began
        batches = [json.loads(p.read_text()) for p in sorted((tmp / "s1" / "_stream" / "batches").iterdir())]
        load_count = {}
        for p in loads.iterdir():
            stage = p.read_text().split(":")[0]
            load_count[stage] = load_count.get(stage, 0) + 1
        began = time.perf_counter()
        assert run.main(["--input", str(tmp / "in"), "--output", str(tmp / "r"), "--cluster-model", model,
                         *common]) == 0
        run_wall = time.perf_counter() - began
        run_summary = json.loads((tmp / "r" / "summary.json").read_text())
        began = time.perf_counter()
        assert stream.main(["--input", str(tmp / "in"), "--output", str(tmp / "s2"), "--cluster-model", model,
                            "--refresh-every", "0", *common]) == 0
        stream_one_wall = time.perf_counter() - began
        one = json.loads(next((tmp / "s2" / "_stream" / "batches").iterdir()).read_text())
        spark.stop()
    n_docs = args.files * args.docs_per_file
    model_seconds = sum(run_summary["stage_seconds"].get(s, 0.0) for s in ("detect", "embed", "assign"))
    later = [b["seconds"] for b in batches[1:]]
    m = machine_facts(precision=True)
    lines = [
        "## `stream` against `run` (issue 19)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch CPU capability {m.get('torch_cpu_capability')}, bf16 flags "
        f"{m.get('bf16_flags')}; models: {args.models}; {args.files} files of {args.docs_per_file} speeches "
        f"(bench/corpus.py), JSON lines; one local[2] session, in-process. Command: `python bench/stream_bench.py "
        f"--files {args.files} --docs-per-file {args.docs_per_file} --models {args.models}`.", "",
        *table(["micro-batch (1 file each)", "seconds", "documents", "of which (s)"],
               [[b["batch_id"], f"{b['seconds']:.1f}", b["input_rows"],
                 ", ".join(f"{k} {v:.1f}" for k, v in (b.get("step_seconds") or {}).items())] for b in batches]),
        "", (f"Model loads by the Python workers over the {len(batches)} batches: {load_count or 'none'} "
             "(the workers are reused across batches: a stage loads at most once per worker; none here means the "
             "workers still held the models of the run that made the cluster model in the same session)."),
        f"Batches after the first: {min(later):.1f}-{max(later):.1f} s each (mean {sum(later) / len(later):.1f} s)."
        if later else "", "",
        *table(["job over all files", "wall seconds", "seconds of the models' work", "documents/s of that work"],
               [["run --cluster-model", f"{run_wall:.1f}", f"{model_seconds:.1f} (detect + embed + assign)",
                 f"{n_docs / model_seconds:.2f}"],
                ["stream, one batch", f"{stream_one_wall:.1f}", f"{one['seconds']:.1f} (the batch)",
                 f"{n_docs / one['seconds']:.2f}"],
                ["stream, 1 file per batch", f"{stream_wall:.1f}", f"{sum(b['seconds'] for b in batches):.1f} "
                 f"(all batches)", f"{n_docs / sum(b['seconds'] for b in batches):.2f}"]]),
        "", f"Throughput of stream (one batch) against run: {model_seconds / one['seconds']:.2f}x.", ""]
    write_report(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
