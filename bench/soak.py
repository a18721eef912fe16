"""Soak benchmark: a chunked ``run`` killed halfway, resumed, then every input row accounted for.

Writes N short documents as Parquet (``id``, ``party``, ``text``: sentences of the built-in
corpus mixed with sentences without any group word, plus a few rows with null, empty or
whitespace-only text), runs ``group-appeal-spark run --chunks C`` on tiny random models (built once, as
``--tiny-models`` builds them) as a subprocess
in its own session, SIGKILLs the whole process group (driver, JVM) once about C/2 chunk
``_DONE.json`` markers are under ``<output>/_work/``, then runs the same command with
``--resume`` to completion. A thread polls ``/proc`` every 0.5 s for the driver's RSS and the
summed RSS/PSS of the Spark Python workers. Then it checks that ``documents/`` holds every input
row exactly once, that the bad rows are in ``errors/`` and in ``documents/`` with an error, and
that ``mentions/`` has no duplicate ``(doc_id, start, end)``.

    python bench/soak.py --docs 100000 --chunks 8 --markdown BENCHMARKS.md
    python bench/soak.py --docs 5000 --chunks 8          # smoke run, prints the section only
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common

# Sentences with no word of the detector's group lists, so that some documents have no mention.
PLAIN = [
    "The committee will sit again on Tuesday at half past two.",
    "I beg to move that the question be now put.",
    "The minutes of the previous meeting were agreed without amendment.",
    "The clerk will circulate the papers before the recess.",
    "That is a matter for the Chair and not for me.",
    "The figures were published in the annual report last spring.",
    "We shall return to this point in the next session.",
    "The amendment was withdrawn after a short debate.",
    "The motion is carried and the sitting is suspended.",
    "Order, order, the honourable member will resume his seat.",
]
PARTIES = ["Labour", "Conservative", "Liberal Democrat", "SNP", "Green", None]
BAD_TEXTS = [None, "", "   \t", "\u200b\u200b"]  # each a documented input error
BAD_EVERY = 997  # one bad row in about a thousand


def make_documents(n_docs: int, seed: int = 7):
    """The benchmark's documents as a pyarrow table, and the ids of the rows with bad text."""
    import pyarrow as pa

    from group_appeal_spark.testing.tiny_models import corpus

    sentences = corpus()
    rng = random.Random(seed)
    ids, parties, texts, bad = [], [], [], []
    for i in range(n_docs):
        doc_id = f"doc-{i:07d}"
        if i % BAD_EVERY == 5:
            text = BAD_TEXTS[(i // BAD_EVERY) % len(BAD_TEXTS)]
            bad.append(doc_id)
        else:
            parts = [rng.choice(sentences) if rng.random() < 0.6 else rng.choice(PLAIN)
                     for _ in range(rng.randint(1, 3))]
            text = " ".join(parts)
        ids.append(doc_id)
        parties.append(rng.choice(PARTIES))
        texts.append(text)
    table = pa.table({"id": pa.array(ids, pa.string()), "party": pa.array(parties, pa.string()),
                      "text": pa.array(texts, pa.string())})
    return table, bad


def _done_chunks(output: pathlib.Path) -> int:
    return len(list((output / "_work").glob("chunk-*/_DONE.json")))


def run_job(cmd: list[str], log: pathlib.Path, *, kill_at_chunks: int | None = None,
            output: pathlib.Path | None = None, timeout: float = 3600) -> dict:
    """Run ``cmd`` in its own session; SIGKILL its process group once ``kill_at_chunks`` chunks are done."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        poller = common.MemoryPoller(proc.pid)
        poller.start()
        killed_at = None
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit(f"soak: {cmd[3:5]} ran past {timeout} s; log: {log}")
            if kill_at_chunks is not None and _done_chunks(output) >= kill_at_chunks:
                killed_at = _done_chunks(output)
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.25)
        code = proc.wait()
        wall = time.perf_counter() - t0
        poller.stop.set()
        poller.join()
    survivors = []
    if killed_at is not None:
        # Spark's Python daemon makes its own process group, so killpg does not reach it; it
        # should exit when the JVM's pipe closes. What is still alive after 10 s is reported
        # and then killed (only pids this job started, that still run the same command line).
        time.sleep(10)
        for pid, cmdline in poller.seen.items():
            if cmdline and common.cmdline(pid) == cmdline:
                survivors.append(f"{pid}: {cmdline[:100]}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    return {"wall_s": wall, "exit_code": code, "killed_at_chunks": killed_at, "survivors": survivors,
            **poller.peak}


def check_accounting(output: pathlib.Path, n_docs: int, bad_ids: list[str]) -> dict:
    """Every input row once in documents/, bad rows in errors/ and flagged there; no duplicate mention."""
    import pyarrow.parquet as pq

    summary = json.loads((output / "summary.json").read_text())
    docs = pq.read_table(output / "documents", columns=["doc_id", "party", "error", "n_mentions"]).to_pandas()
    errors = pq.read_table(output / "errors", columns=["doc_id", "stage", "error"]).to_pandas()
    mentions = pq.read_table(output / "mentions", columns=["doc_id", "start", "end"]).to_pandas()
    flagged = set(docs.loc[docs["error"].notna(), "doc_id"])
    expected_ids = {f"doc-{i:07d}" for i in range(n_docs)}
    checks = {
        "documents rows == docs": (len(docs), n_docs),
        "summary input_rows == docs": (summary.get("input_rows"), n_docs),
        "documents doc_id unique": (int(docs["doc_id"].nunique()), len(docs)),
        "documents ids == input ids": (set(docs["doc_id"]) == expected_ids, True),
        "errors/ doc_ids == bad rows": (sorted(errors["doc_id"]), sorted(bad_ids)),
        "documents with error == bad rows": (sorted(flagged), sorted(bad_ids)),
        "summary documents_with_errors": (summary.get("documents_with_errors"), len(bad_ids)),
        "mentions (doc_id,start,end) unique": (int(mentions.duplicated(["doc_id", "start", "end"]).sum()), 0),
        "sum n_mentions == mentions rows": (int(docs["n_mentions"].sum()), len(mentions)),
        "summary mentions == mentions rows": (summary.get("mentions"), len(mentions)),
    }
    failed = {name: (got, want) for name, (got, want) in checks.items() if got != want}
    for name, (got, want) in failed.items():
        if isinstance(got, list):  # show the difference, not two long lists
            failed[name] = {"missing": sorted(set(want) - set(got))[:10], "extra": sorted(set(got) - set(want))[:10],
                            "len": (len(got), len(want))}
    return {"checks": list(checks), "failed": failed, "mentions": len(mentions), "documents": len(docs),
            "errors": len(errors), "summary": summary}


def tiny_model_sets(folder: pathlib.Path) -> list[str]:
    """``--set models.<role>.local_dir=...`` for tiny models built once, what ``--tiny-models`` does per run.

    ``--tiny-models`` builds the models into a new temp folder on every run, and the resume
    fingerprint's model ids (``folder_id``: names, sizes, mtimes) differ between two builds, so
    ``--resume --tiny-models`` is refused with "models differ". Both runs here share one build.
    """
    from group_appeal_spark.lib.models.hub import MODEL_ROLES
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    repos = build_tiny_repos(str(folder), seed=0)
    return [a for role, repo in MODEL_ROLES.items() for a in ("--set", f"models.{role}.local_dir={repos[repo]}")]


def machine_facts() -> dict:
    """soak.json's ``facts``: :func:`common.machine_facts` under the soak's names, the CPUs this process
    may use and the load average at the start."""
    m = common.machine_facts(precision=True)
    return {"torch_cpu_capability": m["torch_cpu_capability"], "bf16_native": m["bf16_native"],
            "bf16_flags_seen": m["bf16_flags"], "nproc": len(os.sched_getaffinity(0)), "memory_gib": m["ram_gib"],
            "torch": m["torch"], "python": m["python"], "loadavg_start": os.getloadavg()}


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def markdown(args, facts, interrupted, resumed, reference, acc, argv) -> str:
    s = acc["summary"]
    lines = [f"## Soak: a chunked run killed halfway and resumed ({args.docs:,} documents)", ""]
    if args.docs != 100_000:
        lines += [f"**Size run: {args.docs:,} documents, not 100,000.** {args.size_note or ''}".rstrip(), ""]
    lines += [
        f"`bench/soak.py` writes {args.docs:,} short documents as Parquet (1-3 sentences each: the built-in "
        f"corpus of `group_appeal_spark.testing` mixed with sentences without a group word; a carried `party` "
        f"column; {acc['errors']} rows with null, empty or whitespace-only text), runs `run "
        f"--chunks {args.chunks}` on tiny random models as a subprocess, SIGKILLs its process group (driver and JVM) once "
        f"{interrupted['killed_at_chunks']} of {args.chunks} chunk `_DONE.json` markers are under `_work/`, "
        f"then runs the same command with `--resume` to the end. Tiny random models: the numbers measure "
        f"the Spark plumbing, checkpoints and accounting, not model throughput (see above for that).",
        "",
        "Reproduce:",
        "",
        "```",
        "python bench/soak.py " + " ".join(shlex.quote(a) for a in argv),
        "```",
        "",
        f"Machine: {facts['nproc']} cores, {facts['memory_gib']} GiB memory; "
        f"`torch.backends.cpu.get_cpu_capability()` = `{facts['torch_cpu_capability']}`; bf16 native: "
        f"**{'yes' if facts['bf16_native'] else 'no'}** (flags seen: {facts['bf16_flags_seen'] or 'none'}); "
        f"torch {facts['torch']}, python {facts['python']}; `local[2]`. Load average at the start "
        f"{facts['loadavg_start'][0]:.2f} (another job shared the machine, so wall times are indicative).",
        "",
        "| part | wall | exit | peak driver RSS | peak JVM RSS | peak workers RSS (sum) | peak workers PSS (sum) | workers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    parts = [("interrupted (SIGKILL)", interrupted), ("resumed (`--resume`)", resumed)]
    if reference:
        parts.append(("uninterrupted reference", reference))
    for name, r in parts:
        lines.append(f"| {name} | {r['wall_s']:.0f} s | {r['exit_code']} | {_mib(r['driver_rss_kib'])} | "
                     f"{_mib(r['jvm_rss_kib'])} | {_mib(r['workers_rss_kib'])} | {_mib(r['workers_pss_kib'])} | "
                     f"{r['workers']} |")
    total = interrupted["wall_s"] + resumed["wall_s"]
    lines += [
        "",
        f"* Interrupted + resumed: {total:.0f} s"
        + (f"; the uninterrupted reference took {reference['wall_s']:.0f} s." if reference
           else "; no uninterrupted reference run (optional, `--reference`; left out to keep within the time budget)."),
        f"* Resume: `chunks_resumed` = {s.get('chunks_resumed')} of {s.get('chunks')}, `embed_chunks_resumed` = "
        f"{s.get('embed_chunks_resumed')} (killed with {interrupted['killed_at_chunks']} chunk markers written).",
        f"* Processes left alive 10 s after the kill: {len(interrupted['survivors'])}"
        + (" (" + "; ".join(interrupted["survivors"]) + ")" if interrupted["survivors"] else "") + ".",
        f"* Output: {acc['documents']:,} rows in `documents/`, {acc['errors']} in `errors/`, "
        f"{acc['mentions']:,} mentions, {s.get('unique_mentions')} distinct, chosen k = {s.get('chosen_k')}.",
        "* Accounting: " + ("all checks pass: " if not acc["failed"] else "**FAILED**: "
                            + json.dumps(acc["failed"], default=str) + ". Checked: ")
        + "; ".join(acc["checks"]) + ".",
        "* Found on the way: `run --tiny-models --resume` is refused (`models differ`): `--tiny-models` builds "
        "the models into a new temp folder on each run, and the resume fingerprint's model ids "
        "(`lib/models/bundle.py` `folder_id`: names, sizes and *mtimes*) differ between two builds. The soak "
        "therefore builds the same tiny models once (`build_tiny_repos(..., seed=0)`, as `--tiny-models` does) "
        "and passes them as `--set models.<role>.local_dir=...` to both runs.",
        "* Memory: sampled every 0.5 s from `/proc` over the job's process tree; workers are the Python "
        "processes whose command line holds `pyspark.daemon` or `pyspark.worker`; PSS from "
        "`/proc/PID/smaps_rollup` (shared pages split between the processes that map them).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--out", help="working folder (default: a new temp folder)")
    parser.add_argument("--markdown", help="append the section to this file (e.g. BENCHMARKS.md)")
    parser.add_argument("--reference", action="store_true", help="also time an uninterrupted run")
    parser.add_argument("--size-note", help="why another size than 100,000 was run (goes into the section)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per job run")
    args = parser.parse_args(argv)

    work = pathlib.Path(args.out or tempfile.mkdtemp(prefix="gas-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    facts = machine_facts()
    table, bad_ids = make_documents(args.docs)
    pq.write_table(table, work / "docs.parquet")
    output = work / "out"
    job = [sys.executable, "-m", "group_appeal_spark.jobs.cli", "run", "--input", str(work / "docs.parquet"),
           "--output", str(output), "--carry-cols", "party", "--chunks", str(args.chunks),
           *tiny_model_sets(work / "models"), "--master", "local[2]", "--overwrite"]
    print(f"soak: {args.docs:,} documents, {len(bad_ids)} bad, in {work}", flush=True)

    reference = None
    if args.reference:
        reference = run_job(job + ["--output", str(work / "reference")], work / "reference.log", timeout=args.timeout)
        print(f"soak: reference {reference['wall_s']:.0f} s, exit {reference['exit_code']}", flush=True)
    interrupted = run_job(job, work / "interrupted.log", kill_at_chunks=max(1, args.chunks // 2), output=output,
                          timeout=args.timeout)
    print(f"soak: killed at {interrupted['killed_at_chunks']} chunks after {interrupted['wall_s']:.0f} s", flush=True)
    if interrupted["killed_at_chunks"] is None:
        raise SystemExit(f"soak: the job ended (exit {interrupted['exit_code']}) before it could be killed; "
                         f"log: {work / 'interrupted.log'}")
    resume = [a for a in job if a != "--overwrite"] + ["--resume"]
    resumed = run_job(resume, work / "resumed.log", timeout=args.timeout)
    print(f"soak: resumed {resumed['wall_s']:.0f} s, exit {resumed['exit_code']}", flush=True)
    if resumed["exit_code"] != 0:
        raise SystemExit(f"soak: --resume failed (exit {resumed['exit_code']}); log: {work / 'resumed.log'}")

    acc = check_accounting(output, args.docs, bad_ids)
    section = markdown(args, facts, interrupted, resumed, reference, acc, argv)
    print(section)
    (work / "soak.json").write_text(json.dumps({"facts": facts, "interrupted": interrupted, "resumed": resumed,
                                                "reference": reference, "accounting": acc}, indent=2, default=str))
    if args.markdown:
        common.append_section(args.markdown, section)
    return 1 if acc["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
