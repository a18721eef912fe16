"""Memory of the Python workers of one executor while `run` holds the three real-size models.

Runs `group-appeal-spark run` (Spark local[2]: one executor with two task slots) on the benchmark
corpus once per setting and samples, every 0.25 s, the PSS (proportional set size: shared pages
divided among the processes that map them) of every Python worker of the job, activations,
tokenizers and interpreter included. The peak of their sum is set against one copy of the three
models' fp32 safetensors.

    python bench/build_models.py --cache /tmp/gas-bench/hub     # once
    python bench/worker_memory.py --out /tmp/gas-memory.md
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
from common import env
from run_e2e import write_corpus

SETTINGS = {
    "fp32, 2 tasks x 1 torch thread (default)": ["--precision", "fp32"],
    "fp32, 1 task x 2 torch threads (spark.task.cpus=2)": ["--precision", "fp32", "--set", "spark.task.cpus=2"],
    "bf16, 2 tasks x 1 thread": ["--precision", "bf16"],
    "bf16, 1 task x 2 threads": ["--precision", "bf16", "--set", "spark.task.cpus=2"],
    "int8, 2 tasks x 1 thread": ["--precision", "int8"],
}


def run_once(work: pathlib.Path, corpus: pathlib.Path, name: str, flags: list[str]) -> dict:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    script = pathlib.Path(sys.executable).parent / "group-appeal-spark"
    cmd = [str(script), "run", "--input", str(corpus), "--input-format", "json", "--output", str(out),
           "--segmentation", "none", "--offline", "--master", "local[2]", *flags]
    log = work / f"{name.split(',')[0]}-{len(list(work.glob('*.log')))}.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env())
        with common.MemoryPoller(proc.pid, every=0.25) as poller:
            code = proc.wait()
    if code != 0:
        raise SystemExit(f"{name}: run failed ({code}); see {log}")
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": time.perf_counter() - start, "peak": poller.peak, "detect_s": summary["stage_seconds"]["detect"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--work", default="/tmp/gas-memory")
    parser.add_argument("--sentences", type=int, default=150)
    args = parser.parse_args(argv)
    os.environ.update(env())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus(work, args.sentences)
    weights = common.weights_mib()
    rows = []
    for name, flags in SETTINGS.items():
        got = run_once(work, corpus, name, flags)
        pss = got["peak"]["workers_pss_kib"] / 1024
        rows.append([name, got["peak"]["workers"], f"{got['peak']['workers_rss_kib'] / 1024:,.0f}", f"{pss:,.0f}",
                     f"{pss / weights:.2f}", f"{got['detect_s']:.1f}", f"{got['wall']:.1f}"])
        print(common.row(rows[-1]), flush=True)
    facts = common.machine_facts(precision=True)
    common.write_report(args.out, "\n".join([
        f"Command: `{common.command('worker_memory.py', argv or sys.argv[1:])}`  ",
        f"Machine: {facts['cpu']}, {facts['cores']} cores; torch {facts['torch']} (`get_cpu_capability()` = "
        f"{facts['torch_cpu_capability']}), bf16 native: {facts['bf16_native']}.  ",
        f"`run` on {args.sentences} sentences, `--master local[2]`; weights of the three models (fp32 "
        f"safetensors): {weights:,.0f} MiB. Peaks over the run, summed over the job's Python worker "
        "processes (the daemon and the workers it forks).", "",
        *common.table(["setting", "worker processes", "RSS sum (MiB)", "PSS sum (MiB)", "PSS sum / weights",
                       "detect stage (s)", "wall (s)"], rows)]) + "\n")


if __name__ == "__main__":
    main()
