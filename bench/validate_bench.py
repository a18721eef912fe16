"""`sample` and `validate` over a large synthetic run output: seconds on this machine (issue 20).

    python bench/validate_bench.py --segments 1000000 --coded 1000 [--out section.md]

Writes a run-like output (segments/ with segment_text, mentions/, _SUCCESS.json, summary.json)
of ``--segments`` sentences in three parties, about 40% with a mention, draws a coding sheet of
``--coded`` rows with ``sample`` (strata party x has_mention), fills it as a coder who disagrees
with the models on 10% of the sentences, and times ``validate`` on it; each job in its own
process (`group-appeal-spark ...`, a fresh local[2] session), as a user runs them. Prints a
Markdown section for BENCHMARKS.md (``--out``: also written to that file).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import pathlib
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import env, machine_facts, table, write_report  # noqa: E402

SENTENCE = "The government must support {g} and their families in every region of the country."


def build_output(folder: pathlib.Path, n_segments: int) -> None:
    """A finished run's output of ``n_segments`` segments (three per document), made with Spark."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    groups = F.element_at(F.array(*[F.lit(g) for g in ("farmers", "young people", "nurses")]),
                          (F.col("id") % 3 + 1).cast("int"))
    base = spark.range(n_segments).select(
        F.concat(F.lit("d"), (F.col("id") / 3).cast("long").cast("string")).alias("doc_id"),
        F.element_at(F.array(F.lit("A"), F.lit("B"), F.lit("C")), ((F.col("id") / 3).cast("long") % 3 + 1)
                     .cast("int")).alias("party"),
        (F.col("id") % 3).cast("int").alias("seg_idx"), groups.alias("g"),
        (F.xxhash64("id") % 100).alias("r"))
    text = F.format_string(SENTENCE.replace("{g}", "%s"), F.col("g"))
    has = F.abs(F.col("r")) < 40
    seg = base.select(
        "doc_id", "party", "seg_idx", (F.col("seg_idx") * 100).alias("seg_start"),
        (F.col("seg_idx") * 100 + F.length(text)).alias("seg_end"), F.lit(16).alias("n_tokens"),
        F.when(has, 1).otherwise(0).alias("n_mentions"),
        F.when(has & (F.abs(F.col("r")) < 25), 1).otherwise(0).alias("n_positive"),
        F.when(has & (F.abs(F.col("r")) >= 25), 1).otherwise(0).alias("n_negative"),
        F.lit(0).alias("n_neutral"), text.alias("segment_text"), "g")
    start = F.col("seg_start") + F.lit(len("The government must support ")).cast("int")
    seg.drop("g").write.mode("overwrite").parquet(str(folder / "segments"))
    seg.where("n_mentions > 0").select(
        "doc_id", "party", "seg_idx", F.col("g").alias("span"), start.alias("start"),
        (start + F.length("g")).alias("end"),
        F.when(F.col("n_positive") > 0, "positive").otherwise("negative").alias("stance"),
        F.col("g").alias("mention_key"), "seg_start", "seg_end").write.mode("overwrite").parquet(
        str(folder / "mentions"))
    spark.stop()
    (folder / "summary.json").write_text(json.dumps({"config": {"output": {"group_by": ["party"]}}}))
    (folder / "_SUCCESS.json").write_text(json.dumps({"complete": True, "job": "run", "format": "parquet",
                                                      "tables": ["segments", "mentions"]}))


def code_sheet(sheet: pathlib.Path, coded: pathlib.Path, disagree: float = 0.1) -> None:
    """Fill the sheet as a coder who disagrees with the models' has-mention on ``disagree`` of the rows."""
    rng = random.Random(1)
    text = sheet.read_text(encoding="utf-8").lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        gold = row["predicted"]
        if rng.random() < disagree:
            gold = "" if gold else f"{row['segment_text'].split()[4]}|neutral"
        row["gold_has_mention"], row["gold_mentions"] = ("1" if gold else "0"), gold
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    coded.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")


def timed(argv: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "group_appeal_spark.jobs.cli", *argv], env=env(),
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--coded", type=int, default=1000)
    parser.add_argument("--out", help="also write the Markdown section here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gas-validate-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        began = time.perf_counter()
        build_output(tmp / "run", args.segments)
        built = time.perf_counter() - began
        t_sample = timed(["sample", "--input", str(tmp / "run"), "--n", str(args.coded), "--strata",
                          "party,has_mention", "--output", str(tmp / "sheet"), "--master", "local[2]"])
        code_sheet(tmp / "sheet" / "sheet.csv", tmp / "coded.csv")
        t_validate = timed(["validate", "--input", str(tmp / "run"), "--codes", str(tmp / "coded.csv"),
                            "--output", str(tmp / "validation"), "--master", "local[2]"])
        metrics = json.loads((tmp / "validation" / "metrics.json").read_text())
    m = machine_facts(precision=True)
    lines = ["## Validation: `sample` and `validate` over a large run (issue 20)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; torch CPU capability {m.get('torch_cpu_capability')}, "
             f"bf16 flags {m.get('bf16_flags')} (no model runs here). A synthetic run output of "
             f"{args.segments:,} segments (built in {built:.0f} s), a sheet of {args.coded:,} rows coded with 10% "
             "disagreement; each job a fresh process with its own local[2] session (JVM start included). "
             f"Command: `python bench/validate_bench.py --segments {args.segments} --coded {args.coded}`.", "",
             *table(["job", "seconds", "target"],
                    [["sample --n %d --strata party,has_mention" % args.coded, f"{t_sample:.1f}", ""],
                     ["validate (metrics, 1,000 bootstrap replicates, DSL per party)", f"{t_validate:.1f}",
                      "< 120 s over 1M segments with 1,000 coded rows"]]),
             "", f"has-mention F1 on the simulated coding: {metrics['metrics']['has_mention']['f1']:.3f}.", ""]
    write_report(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
