"""A validation sample of a run's segments and its coding sheet (the ``sample`` job).

The sheet is small (hundreds to a few thousand rows): it is built on the driver from the drawn
rows and written as one CSV file with ``sample.json`` beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import logging

from group_appeal_spark import __version__
from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.readers import read_documents
from group_appeal_spark.jobs.storage.tables import read_table
from group_appeal_spark.jobs.transforms import validation as tv
from group_appeal_spark.jobs.transforms.appeals import prepare_documents
from group_appeal_spark.jobs.transforms.columns import DOC_ID
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.sampling import allocate, inclusion_probabilities, stratum_sort_key
from pyspark.sql import functions as F

log = logging.getLogger("group_appeal_spark")

SHEET = "sheet.csv"
RECORD = "sample.json"
# the columns of the coding sheet, in order (predicted is left out with --blind)
SHEET_COLUMNS = ("sample_id", "doc_id", "seg_idx", "stratum", "pi", "segment_text", "predicted",
                 "gold_has_mention", "gold_mentions")


@dataclasses.dataclass(frozen=True)
class SampleRequest:
    """What ``sample`` was asked: the run output, the sheet folder and the design."""

    source: str
    output: str
    n: int
    strata: tuple[str, ...] = ()
    allocation: str = "proportional"
    seed: int = 7
    blind: bool = False
    overwrite: bool = False


def source_tables(spark, source: str) -> tuple[dict, str]:
    """A finished run's marker and the format of its tables; it must hold segments/."""
    info = run_state.check_complete(spark, source, needs=("segments", "mentions")) or {}
    return info, info.get("format") or "parquet"


def run_summary(spark, source: str) -> dict:
    """``<source>/summary.json``, or {} where there is none."""
    fs, path = filesystem(spark), join_path(source, "summary.json")
    return json.loads(fs.read_text(path)) if fs.exists(path) else {}


def stratum_label(strata, key) -> str:
    """A stratum as the sheet shows it: ``party=A|has_mention=1``; ``all`` without strata."""
    return "|".join(f"{c}={'' if v is None else v}" for c, v in zip(strata, key)) or "all"


def check_output(spark, req, marker: str) -> None:
    """``req.output`` is new or empty, or (``--overwrite``) an earlier output of the same job, which
    holds ``marker``; never the run's folder."""
    fs = filesystem(spark)
    if req.output.rstrip("/") == req.source.rstrip("/"):
        raise InputError("output: --output must not be the run's folder (--input)")
    if fs.is_used(req.output):
        if not req.overwrite:
            raise InputError(f"output: {req.output} already exists; choose another --output or pass --overwrite")
        if not fs.exists(join_path(req.output, marker)):
            raise InputError(f"output: {req.output} holds files but no {marker}: --overwrite replaces only an "
                             f"earlier output of this job; choose a new or empty --output")


def _texts(spark, source: str, summary: dict, segments, drawn):
    """segment_text of the drawn segments: from segments/ where the run kept it, else cut from the
    run's input documents (read again with the run's input settings from summary.json)."""
    if "segment_text" in segments.columns:
        return {(str(r[DOC_ID]), r["seg_idx"]): r["segment_text"] for r in drawn}
    settings = (summary.get("config") or {}).get("input") or {}
    if not settings.get("path") and not settings.get("table"):
        raise InputError(f"{source}: segments/ has no segment_text and summary.json names no input to cut the "
                         f"sentences from; run again with --set output.segment_text=true")
    config = load_config(overrides={f"input.{k}": v for k, v in settings.items()})
    try:
        docs = prepare_documents(read_documents(spark, config.input), config)
        ids = spark.createDataFrame([(str(r[DOC_ID]),) for r in drawn], "_doc string").distinct()
        texts = {str(r[DOC_ID]): r["__text"] for r in docs.join(
            ids, docs[DOC_ID].cast("string") == ids["_doc"], "left_semi").select(DOC_ID, "__text").collect()}
    except InputError as exc:
        raise InputError(f"{source}: segments/ has no segment_text, and the run's input cannot be read again to cut "
                         f"the sentences ({exc}); run again with --set output.segment_text=true") from None
    out = {}
    for r in drawn:
        text = texts.get(str(r[DOC_ID]))
        if text is None or len(text) < r["seg_end"]:
            raise InputError(f"{source}: document {r[DOC_ID]!r} is not in the run's input as it is now (changed since "
                             f"the run?); run again with --set output.segment_text=true")
        out[(str(r[DOC_ID]), r["seg_idx"])] = text[r["seg_start"]:r["seg_end"]]
    return out


def _predicted(spark, source: str, fmt: str, keys, texts) -> dict:
    """``span|stance; ...`` of each drawn segment's mentions, in text order."""
    mentions = tv.rows_of(read_table(spark, join_path(source, "mentions"), fmt), list(keys))
    found: dict = {}
    for m in mentions.select(DOC_ID, "seg_idx", "start", "end", "seg_start", "stance").collect():
        key = (str(m[DOC_ID]), m["seg_idx"])
        span = texts[key][m["start"] - m["seg_start"]:m["end"] - m["seg_start"]].strip()
        found.setdefault(key, []).append((m["start"], m["end"], f"{span}|{m['stance']}"))
    return {k: "; ".join(item for *_, item in sorted(v)) for k, v in found.items()}


def sheet_csv(rows: list[dict], blind: bool) -> str:
    """The coding sheet: UTF-8 with a byte order mark (Excel then reads it as UTF-8), CRLF lines."""
    columns = [c for c in SHEET_COLUMNS if not (blind and c == "predicted")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return "\ufeff" + buffer.getvalue()


def _check_no_coding_lost(spark, req: SampleRequest) -> None:
    """--overwrite never replaces a sheet in which a coder has filled a gold cell."""
    fs, path = filesystem(spark), join_path(req.output, SHEET)
    if not (req.overwrite and fs.exists(path)):
        return
    text = fs.read_text(path).lstrip("\ufeff")
    filled = [row for row in csv.DictReader(io.StringIO(text))
              if (row.get("gold_has_mention") or "").strip() or (row.get("gold_mentions") or "").strip()]
    if filled:
        raise InputError(f"output: {path} has {len(filled)} coded rows; --overwrite would lose them: move the sheet "
                         f"away or choose another --output")


def sample_job(spark, req: SampleRequest) -> dict:
    """Draw the sample, write ``sheet.csv`` and ``sample.json`` into ``req.output``; returns the record."""
    info, fmt = source_tables(spark, req.source)
    check_output(spark, req, RECORD)
    _check_no_coding_lost(spark, req)
    segments = tv.with_has_mention(read_table(spark, join_path(req.source, "segments"), fmt))
    strata = list(req.strata)
    tv.check_strata(segments, strata)
    tv.check_unique_segments(segments)
    population = tv.stratum_sizes(segments, strata)
    allocated = allocate(population, req.n, req.allocation)
    pi = inclusion_probabilities(population, allocated)
    keep = [DOC_ID, "seg_idx", "seg_start", "seg_end", *strata,
            *(["segment_text"] if "segment_text" in segments.columns else [])]
    drawn = tv.draw(segments.select(*dict.fromkeys(keep)), strata, allocated, pi, req.seed) \
        .orderBy("u", F.col(DOC_ID).cast("string"), "seg_idx").collect()
    summary = run_summary(spark, req.source)
    texts = _texts(spark, req.source, summary, segments, drawn)
    predicted = {} if req.blind else _predicted(spark, req.source, fmt, texts.keys(), texts)
    rows = []
    for i, r in enumerate(drawn, start=1):
        key = (str(r[DOC_ID]), r["seg_idx"])
        rows.append({"sample_id": i, "doc_id": key[0], "seg_idx": r["seg_idx"],
                     "stratum": stratum_label(strata, tuple(r[c] for c in strata)), "pi": repr(float(r["pi"])),
                     "segment_text": texts[key], "predicted": predicted.get(key, ""), "gold_has_mention": "",
                     "gold_mentions": ""})
    order = sorted(population, key=stratum_sort_key)
    record = {
        "source": req.source, "source_finished_at": info.get("finished_at"), "seed": req.seed,
        "allocation": req.allocation, "strata": strata, "n": len(rows), "blind": req.blind,
        "population": sum(population.values()),
        "by_stratum": [{"stratum": stratum_label(strata, k), "values": list(k), "population": population[k],
                        "n": allocated[k], "pi": pi[k]} for k in order],
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
    }
    fs = filesystem(spark)
    fs.write_text(sheet_csv(rows, req.blind), join_path(req.output, SHEET))
    fs.write_text(json.dumps(record, indent=2, default=str) + "\n", join_path(req.output, RECORD))
    log.info("sample: %d segments of %s drawn in %d strata (seed %d) into %s; fill gold_has_mention and "
             "gold_mentions, then run validate", len(rows), f"{record['population']:,}", len(population), req.seed,
             join_path(req.output, SHEET))
    return record

