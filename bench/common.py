"""What the bench scripts share: the environment, machine facts, process-tree memory, Markdown.

* :data:`CACHE` and :func:`env`: the offline hub cache of the benchmark models and the environment
  every benchmark process (and child) runs with; :func:`bench_models` and :func:`weights_mib`: what
  ``build_models.py`` recorded of them;
* :func:`machine_facts`: the machine a run measured (BENCHMARKS.json's ``machine``);
* :func:`tree_memory`, :func:`memory_mib`, :class:`Sampler`, :class:`MemoryPoller`: RSS, PSS and USS
  of a process and its descendants, with ``psutil`` (a bench-only dependency: the ``bench`` extra);
* :func:`table`, :func:`write_keeping_other_sections`, :func:`append_section`, :func:`write_report`
  and :func:`render_benchmarks`: the Markdown of BENCHMARKS.md. ``run_bench.py`` rewrites the part
  above :data:`OTHER_SECTIONS`; the other scripts' sections go below it.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
import threading

import psutil

MIB = 2**20
CACHE = os.environ.get("GAS_BENCH_CACHE", "/tmp/gas-bench/hub")


def env() -> dict:
    """The environment of every benchmark process: offline hub cache, Spark workers on this interpreter.

    huggingface_hub reads its variables once, at its first import: a script that loads models
    in-process applies this to ``os.environ`` before anything imports it.
    """
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": CACHE, "TOKENIZERS_PARALLELISM": "false",
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def bench_models(cache: str = CACHE) -> dict:
    """What ``bench/build_models.py`` recorded of the models it built (``bench_models.json``)."""
    return json.loads((pathlib.Path(cache) / "bench_models.json").read_text())


def weights_mib(cache: str = CACHE, repos=None) -> float:
    """MiB of the benchmark models' fp32 safetensors: all of them, or those of the repo ids ``repos``."""
    sizes = bench_models(cache)["weight_bytes"]
    return sum(size for repo, size in sizes.items() if repos is None or repo in repos) / MIB


# ----------------------------------------------------------------------------------------------
# machine facts
# ----------------------------------------------------------------------------------------------
def machine_facts(*, precision: bool = False) -> dict:
    """The machine: ``cpu`` (model name), ``cores``, ``ram_gib``, ``python``, ``torch``, ``transformers``
    and ``bf16_cpu`` (``avx512_bf16`` in /proc/cpuinfo), the keys of BENCHMARKS.json's ``machine``.

    With ``precision``, also what decides the CPU precision, as
    :func:`group_appeal_spark.lib.models.devices.cpu_capability` reads it: ``torch_cpu_capability``
    (``torch.backends.cpu.get_cpu_capability()``), ``bf16_native`` and ``bf16_flags`` (those of
    avx512_bf16, amx_bf16, ... the CPU has).
    """
    import torch
    import transformers

    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               "unknown")
    facts = {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
             "python": platform.python_version(), "torch": torch.__version__,
             "transformers": transformers.__version__, "bf16_cpu": "avx512_bf16" in cpuinfo}
    if precision:
        from group_appeal_spark.lib.models.devices import cpu_capability

        cap = cpu_capability()
        facts.update(torch_cpu_capability=cap["torch_cpu_capability"], bf16_native=cap["bf16_native"],
                     bf16_flags=cap["bf16_flags_seen"])
    return facts


# ----------------------------------------------------------------------------------------------
# process-tree memory
# ----------------------------------------------------------------------------------------------
def _process(proc: int | psutil.Process) -> psutil.Process:
    return proc if isinstance(proc, psutil.Process) else psutil.Process(proc)


def process_tree(root: int) -> list[psutil.Process]:
    """``root`` and all its descendants, ``root`` first; empty once ``root`` is gone."""
    try:
        proc = psutil.Process(root)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def cmdline(proc: int | psutil.Process) -> str:
    """The command line of a process, arguments joined by spaces; ``""`` once it is gone."""
    try:
        return " ".join(_process(proc).cmdline())
    except psutil.Error:
        return ""


def process_memory(proc: int | psutil.Process) -> dict:
    """``rss``, ``pss`` and ``uss`` (private pages) of a process in bytes; zeros once it is gone.

    PSS divides each shared page among the processes that map it. Where the platform (or the
    permissions) give no PSS or USS, they are the RSS.
    """
    try:
        proc = _process(proc)
        try:
            info = proc.memory_full_info()
        except psutil.AccessDenied:
            info = proc.memory_info()
    except psutil.Error:
        return {"rss": 0, "pss": 0, "uss": 0}
    return {"rss": info.rss, "pss": getattr(info, "pss", info.rss), "uss": getattr(info, "uss", info.rss)}


def tree_memory(root: int) -> dict[int, dict]:
    """pid -> ``cmdline`` and :func:`process_memory` (bytes) of ``root`` (first) and each of its descendants."""
    return {proc.pid: {"cmdline": cmdline(proc), **process_memory(proc)} for proc in process_tree(root)}


def weight_mappings(proc: int | psutil.Process, suffix: str = ".safetensors") -> dict:
    """``rss``, ``pss`` and ``private`` bytes of a process's mappings of files ending in ``suffix``."""
    out = {"rss": 0, "pss": 0, "private": 0}
    try:
        maps = _process(proc).memory_maps(grouped=True)
    except psutil.Error:
        return out
    for m in maps:
        if m.path.endswith(suffix):
            out["rss"] += m.rss
            out["pss"] += getattr(m, "pss", m.rss)
            out["private"] += getattr(m, "private_clean", 0) + getattr(m, "private_dirty", 0)
    return out


def memory_mib(proc: int | psutil.Process, *, weights: bool = False) -> dict:
    """:func:`process_memory` in MiB; with ``weights``, also ``weights_rss``, ``weights_pss`` and
    ``weights_private``: the part of it that maps the models' ``*.safetensors`` files."""
    out = {k: v / MIB for k, v in process_memory(proc).items()}
    if weights:
        out.update({f"weights_{k}": v / MIB for k, v in weight_mappings(proc).items()})
    return out


def keep_max(peak: dict, **values) -> None:
    """``peak[k] = max(peak[k], v)`` for each value."""
    for key, value in values.items():
        peak[key] = max(peak[key], value)


class Sampler(threading.Thread):
    """Calls :meth:`sample` (or ``sample``, when given) every ``every`` seconds, in a daemon thread,
    until :attr:`stop` is set; as a context manager, from ``with`` to its end."""

    def __init__(self, sample=None, every: float = 1.0):
        super().__init__(daemon=True)
        self.every = every
        self.stop = threading.Event()
        if sample is not None:
            self.sample = sample

    def sample(self):
        raise NotImplementedError

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()


class MemoryPoller(Sampler):
    """Peak memory (KiB) of one Spark job's process tree: the driver ``root``, its JVM and the
    Python workers (command line with ``pyspark.daemon`` or ``pyspark.worker``), summed."""

    def __init__(self, root: int, every: float = 0.5):
        super().__init__(every=every)
        self.root = root
        self.seen: dict[int, str] = {}  # every pid of the tree, for the orphan check after a kill
        self.peak = {"driver_rss_kib": 0, "jvm_rss_kib": 0, "workers_rss_kib": 0, "workers_pss_kib": 0,
                     "workers": 0, "samples": 0}

    def sample(self):
        tree = tree_memory(self.root)
        driver_rss = tree.pop(self.root, {"rss": 0})["rss"]
        jvm_rss = w_rss = w_pss = workers = 0
        for pid, m in tree.items():
            # read every time: the JVM's pid runs spark-submit's shell before it execs java
            cmd = self.seen[pid] = m["cmdline"]
            if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
                w_rss, w_pss, workers = w_rss + m["rss"], w_pss + m["pss"], workers + 1
            elif "java" in cmd.split(" ", 1)[0]:
                jvm_rss += m["rss"]
        keep_max(self.peak, driver_rss_kib=driver_rss // 1024, jvm_rss_kib=jvm_rss // 1024,
                 workers_rss_kib=w_rss // 1024, workers_pss_kib=w_pss // 1024, workers=workers)
        self.peak["samples"] += 1


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------
# Sections after this line (the soak, `run` end to end, levers, worker memory: other bench
# scripts' results, pasted by hand) survive a rewrite of the file by run_bench.py.
OTHER_SECTIONS = "<!-- sections below: other bench scripts (kept when run_bench.py rewrites this file) -->"


def table(header, rows) -> list[str]:
    """The lines of a Markdown table: ``header``, the ``|---|`` line, one line per row of cells."""
    return [row(header), "|" + "---|" * len(header), *(row(cells) for cells in rows)]


def row(cells) -> str:
    """One line of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def command(script: str, argv) -> str:
    """How to run ``bench/<script>`` with ``argv`` again."""
    return f"python bench/{script} {' '.join(argv)}"


def write_keeping_other_sections(out: pathlib.Path, text: str) -> None:
    """Write run_bench.py's Markdown to ``out``, keeping what follows :data:`OTHER_SECTIONS` there."""
    old = out.read_text(encoding="utf-8") if out.is_file() else ""
    tail = old[old.index(OTHER_SECTIONS):] if OTHER_SECTIONS in old else OTHER_SECTIONS + "\n"
    out.write_text(text.rstrip("\n") + "\n\n" + tail, encoding="utf-8")


def append_section(path, section: str) -> None:
    """Append a section (another script's, below :data:`OTHER_SECTIONS`) to a Markdown file."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n" + section)


def write_report(out, text: str) -> None:
    """Print a script's Markdown and write it to ``out`` when given (to paste into BENCHMARKS.md)."""
    print(text)
    if out:
        pathlib.Path(out).write_text(text, encoding="utf-8")


def benchmark_targets(R: dict) -> list:
    """run_bench.py's targets: (target, what was measured, met) from its results ``R``."""
    e2e_ref = R["ref"]["e2e"]["rate"]
    fp32, bf16, mem = R["ours_fp32"]["e2e"], R["ours_bf16"]["e2e"], R["memory"]
    return [
        ("fp32 end to end >= 2x the reference", f"{fp32['rate'] / e2e_ref:.2f}x", fp32["rate"] >= 2 * e2e_ref),
        ("fp32 end to end >= 90% of the raw forward rate",
         f"{100 * fp32['forward_share']:.0f}% of the time in model calls (same run); "
         f"{100 * fp32['rate'] / R['raw_fp32']['e2e']['rate']:.0f}% of the separate raw run",
         fp32["forward_share"] >= 0.9),
        ("bf16 end to end >= 5x the reference", f"{bf16['rate'] / e2e_ref:.2f}x", bf16["rate"] >= 5 * e2e_ref),
        ("2 Python workers <= 1.3x one copy of the weights",
         f"{mem['mmap']['weight_copies_pss']:.2f}x (2 loader processes, PSS); Spark workers PSS/weights "
         f"{R['spark']['peak']['sum_pss'] / R['weights_det_stance_mib']:.2f}x",
         mem["mmap"]["weight_copies_pss"] <= 1.3),
        ("k search, 100k unique mentions, k=2..30 < 5 min",
         "; ".join(f"{k['n']:,}: {k['seconds']:.0f} s" for k in R["k_search"]),
         any(k["n"] >= 100_000 and k["seconds"] < 300 for k in R["k_search"])),
        ("same mentions and stances as the reference (fp32, shared rows)",
         f"mentions equal: {R['parity_pairs_equal']} on {R['parity_texts']['compared']} one-segment texts "
         f"({R['parity_texts']['multi_segment']} texts with an inner '?' are split by sentence segmentation and "
         f"left out); max |Δ stance prob| {R.get('parity_max_prob_diff', float('nan')):.1e}",
         R["parity_pairs_equal"]),
    ]


def render_benchmarks(R: dict, cmd: str) -> str:
    """run_bench.py's part of BENCHMARKS.md (above :data:`OTHER_SECTIONS`) from its results ``R``."""
    m, c, s = R["machine"], R["corpus"], R["sizes"]
    L = ["# Benchmarks", "",
         "Random-init models of the real architectures and sizes (roberta-base token classification, "
         "deberta-v3-base NLI with vocab 128,100, bert-base + 768->128 projection; "
         f"{R['weights_mib']:.0f} MiB of fp32 safetensors), so every forward pass costs what the real models' "
         "do. Tokenizers are the tiny test ones (`group_appeal_spark/testing/`); the detector's classifier bias is set "
         f"so that it finds {R['calibration']:.2f} mentions per sentence on the corpus. Corpus: "
         f"{c['sentences']:,} parliamentary-style sentences, {c['words_p10']:.0f}/{c['words_p50']:.0f}/"
         f"{c['words_p90']:.0f} words at p10/p50/p90 (mean {c['words_mean']:.1f}); "
         f"{R.get('tokens_per_sentence', 0):.1f} detector tokens per sentence.",
         "", f"Command: `{cmd}`  ", f"Run: {R['started']} -> {R['finished']} ({R['minutes']:.1f} min).  ",
         f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, no GPU (avx512_bf16: {m['bf16_cpu']}); "
         f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}.  ",
         f"Load average during the run (1 min, sampled at each step): {R['load_min']:.2f}-{R['load_max']:.2f}. "
         "Other jobs shared this 2-core machine, so every rate is noisy (±20% or worse between repeats); "
         "the ratios measured back to back are more trustworthy than absolute numbers.", "",
         "## Throughput (marginal: Δrows/Δseconds between two corpus sizes, model loading excluded)", "",
         f"Rows: detection = sentences, stance = (sentence, mention) pairs (3 NLI rows each), "
         f"embedding = mentions embedded (the reference embeds every occurrence, this project each unique "
         f"mention key once), end to end = sentences through all three stages. This project: "
         f"{s['ours'][0]} and {s['ours'][1]} sentences; the reference: {s['ref'][0]} and {s['ref'][1]} "
         f"sentences (it is ~3x slower; fewer rows keep the run short). Raw forward = only the model calls over "
         f"the length-sorted batches of {s['raw']} sentences (the hardware limit of this batching). This "
         f"project ran with the default batch sizes (32 texts, 32 pairs, 128 mentions) and "
         f"`inference.max_tokens_per_batch: {R['max_tokens_per_batch']}`; torch threads = 2 (all cores) "
         f"in-process, 1 per worker in Spark.", ""]
    rows = []
    for stage, unit in (("detect", "sent/s"), ("stance", "pairs/s"), ("embed", "mentions/s"), ("e2e", "sent/s")):
        ref, o32, o16 = R["ref"][stage]["rate"], R["ours_fp32"][stage]["rate"], R["ours_bf16"][stage]["rate"]
        r32, r16 = R["raw_fp32"][stage]["rate"], R["raw_bf16"][stage]["rate"]
        rows.append([f"{stage} ({unit})", f"{ref:.2f}", f"{o32:.2f}", f"{o16:.2f}", f"{r32:.2f}", f"{r16:.2f}",
                     f"{o32 / ref:.2f}x", f"{o16 / ref:.2f}x", f"{100 * o32 / r32:.0f}%",
                     f"{100 * R['ours_fp32'][stage]['forward_share']:.0f}%",
                     f"{100 * R['ours_bf16'][stage]['forward_share']:.0f}%"])
    L += table(["stage", "reference fp32", "ours fp32", "ours bf16", "raw forward fp32", "raw forward bf16",
                "ours fp32 / ref", "ours bf16 / ref", "ours fp32 / raw fp32", "fp32 time in model calls (same run)",
                "bf16 time in model calls"], rows)
    L += ["", "'Time in model calls' is the share of this project's marginal seconds spent inside the stages' "
          "`forward` (padding + model + softmax), measured in the same run: the rest is tokenizing, sorting, "
          "aggregation and Python. It is the noise-free form of 'ours / raw forward' (the raw column is a separate "
          "run, on another load of this shared machine). Raw end to end = one sentence's detection plus this project's "
          "stance pairs and unique mentions per sentence at the raw rates.",
          "", "Raw forward, tokens per second: " + ", ".join(
              f"{k} fp32 {R['raw_fp32'][k]['tokens'] / R['raw_fp32'][k]['seconds']:,.0f} / bf16 "
              f"{R['raw_bf16'][k]['tokens'] / R['raw_bf16'][k]['seconds']:,.0f}" for k in ("detect", "stance", "embed"))
          + ".",
          "", "Mentions per sentence: reference {:.2f}, ours fp32 {:.2f} (same detector, same rows).".format(
              R["ref_runs_rows"]["stance"] / max(R["ref_runs_rows"]["e2e"], 1),
              R["ours_runs_rows"]["stance"] / max(R["ours_runs_rows"]["e2e"], 1)), ""]
    a, d = R["agreement"], R["bf16_detect"]
    L += ["## bf16 against fp32", "",
          f"On {a['pairs']} (sentence, mention) pairs of the fp32 detector: max |Δ stance probability| "
          f"{a['max_prob_diff']:.4f}, stance label agreement {100 * a['label_agreement']:.1f}%; embeddings of "
          f"{R['agreement_keys']} unique mentions: cosine min {a['embed_cos_min']:.4f}, mean {a['embed_cos_mean']:.4f}. "
          f"Detection: {d['mentions_fp32']} mentions fp32, {d['mentions_bf16']} bf16, "
          f"{d['mention_spans_differing']} (sentence, start, end) spans in one but not the other. "
          "(Random weights: real fine-tuned models have larger margins, so agreement there is expected to be higher.)", ""]
    L += ["## Levers (fp32, measured one after another)", ""]
    L += table(["lever", "rate"], ([k, f"{v:.2f}"] for k, v in R["levers"].items()))
    mem = R["memory"]
    L += ["", "## Memory: one copy of the weights per node", "",
          f"Two processes each load all three models ({mem['weights_mib']:.0f} MiB of weights) and run one forward "
          "pass; sums over both of RSS, PSS and USS (Private_Clean + Private_Dirty from /proc/<pid>/smaps_rollup), "
          "in MiB. 'Weight copies' = (PSS sum - baseline PSS sum) / weights.", ""]
    names = {"baseline": "imports only (baseline)", "from_pretrained": "from_pretrained + copying load_state_dict (reference)",
             "previous": "from_pretrained + load_file/assign (this project before)", "mmap": "lib/models/weights.py mmap (now)"}
    L += table(["loader", "RSS sum", "PSS sum", "USS sum", "weight copies (PSS)", "weight-file mappings: PSS / private",
                "load seconds (2 at once)"],
               ([names[k], f"{x['sum_rss']:,.0f}", f"{x['sum_pss']:,.0f}", f"{x['sum_uss']:,.0f}",
                 f"{x.get('weight_copies_pss', 0):.2f}", f"{x['sum_weights_pss']:,.0f} / {x['sum_weights_private']:,.0f}",
                 ", ".join(f"{v:.1f}" for v in x["load_seconds"])] for k, x in ((k, mem[k]) for k in names)))
    sp, w = R["spark"], R["weights_det_stance_mib"]
    pk = sp["peak"]
    L += ["", f"Spark `local[2]`, `jobs.transforms.detect_appeals` (detection + stance models in each Python worker; "
          f"arrow.maxRecordsPerBatch {sp['arrow_batch']}): peak over the run of the sums over {pk['workers']} "
          f"model-holding Python workers: RSS {pk['sum_rss']:,.0f} MiB, PSS {pk['sum_pss']:,.0f} MiB, "
          f"USS {pk['sum_uss']:,.0f} MiB (largest single worker RSS {pk['max_rss_one']:,.0f} MiB); "
          f"the two models' weights are {w:.0f} MiB. PSS sum / weights = {pk['sum_pss'] / w:.2f}. Of that, the "
          f"mappings of the *.safetensors files (peak sums over the workers): RSS {pk['weights_rss']:,.0f} MiB, PSS "
          f"{pk['weights_pss']:,.0f} MiB, private {pk['weights_private']:,.0f} MiB: the rest is activations, "
          "tokenizers and the interpreter.", "",
          "Spark end to end (detection + stance, 2 workers x 1 torch thread): "
          + ", ".join(f"{k} docs {v['seconds']:.1f} s" if isinstance(v, dict) else f"{k} {v:.1f} s"
                      for k, v in sp["times"].items())
          + f"; marginal {sp['marginal_docs_per_s']:.2f} documents/s"
          + (f"; with arrow.maxRecordsPerBatch 16 instead: marginal {R['spark_arrow16']['marginal_docs_per_s']:.2f} "
             f"documents/s, peak worker PSS sum {R['spark_arrow16']['peak']['sum_pss']:,.0f} MiB"
             if "spark_arrow16" in R else "") + ".", ""]
    L += ["## k search (`lib.cluster.search_k`, k=2..30, silhouette, count-weighted)", ""]
    L += table(["unique mentions", "seconds", "best k", "silhouette"],
               ([f"{k['n']:,}", f"{k['seconds']:.1f}", k["best_k"], "estimated (sample)" if k["estimated"] else "exact"]
                for k in R["k_search"]))
    L += ["", "## Targets", "", "The stages in-process, one Python process (the targets through the `run` job, Spark "
          "included, are in '`run` end to end' below: `bench/run_e2e.py`).", ""]
    L += table(["target", "measured", "met"], ([t[0], t[1], "yes" if t[2] else "no"] for t in R["targets"]))
    L += ["", "## Log", "", "```", *R["log"], "```", ""]
    return "\n".join(L)
