"""Accuracy on a coded sample and estimates corrected for the models' error (the ``validate`` job).

The coded sheet is read on the driver; the run's segments/ and mentions/ stay on the cluster:
only the coded segments' rows and one row of sums per group come back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import posixpath

import pandas as pd
from group_appeal_spark.jobs.pipeline.sample import RECORD, check_output, run_summary, source_tables
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.transforms import validation as tv
from group_appeal_spark.jobs.transforms.columns import DOC_ID, SEGMENT_COLUMNS
from group_appeal_spark.lib.config import group_columns
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.codes import Problem, read_codes
from group_appeal_spark.lib.validation.dsl import MEASURES, estimate_from_sums
from group_appeal_spark.lib.validation.metrics import EvalSegment, bootstrap_intervals, compute_metrics
from group_appeal_spark.lib.validation.sampling import stratum_sort_key
from group_appeal_spark.lib.validation.report import render_validation
from pyspark.sql import types as T

log = logging.getLogger("group_appeal_spark")

METRICS = "metrics.json"
CORRECTED = "corrected"
CORRECTED_COLUMNS = ("scope", "measure", "estimate_predicted", "estimate_dsl", "se", "ci_low", "ci_high",
                     "n_segments", "n_coded", "reason")


@dataclasses.dataclass(frozen=True)
class ValidateRequest:
    """What ``validate`` was asked: the run output, the coded sheet, where to write, the settings."""

    source: str
    codes: str
    output: str
    group_by: tuple[str, ...] | None = None
    min_coded: int = 30
    bootstrap: int = 1000
    seed: int = 7
    output_format: str = "parquet"
    overwrite: bool = False


def read_sheet(spark, path: str) -> pd.DataFrame:
    """The coded sheet as text cells (a byte order mark is dropped; nothing is read as NaN)."""
    fs = filesystem(spark)
    if not fs.exists(path):
        raise InputError(f"--codes: {path} does not exist")
    text = fs.read_text(path)
    try:
        return pd.read_csv(io.StringIO(text.lstrip("\ufeff")), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as exc:
        raise InputError(f"--codes: {path} is not a CSV sheet ({str(exc).strip().splitlines()[0]})") from None


def sheet_record(spark, codes: str) -> dict | None:
    """``sample.json`` beside the sheet, or None."""
    fs, path = filesystem(spark), posixpath.join(posixpath.dirname(codes.rstrip("/")) or ".", RECORD)
    return json.loads(fs.read_text(path)) if fs.exists(path) else None


def _groups(spark, req: ValidateRequest, segments) -> list[str]:
    """--group-by, else the run's output.group_by, else every carried column of segments/."""
    carried = [c for c in segments.columns if c not in (DOC_ID, *SEGMENT_COLUMNS, "segment_text", tv.HAS_MENTION)]
    asked = list(req.group_by) if req.group_by is not None else \
        ((run_summary(spark, req.source).get("config") or {}).get("output") or {}).get("group_by")
    return group_columns(asked, carried)


def _coded_rows(spark, req, fmt, segments, coded, groups):
    """The coded segments' rows of ``segments`` and their predicted mentions (segment-relative)."""
    keys = [(c.doc_id, c.seg_idx) for c in coded]
    rows = {(str(r[DOC_ID]), r["seg_idx"]): r for r in tv.rows_of(segments, keys).select(
        DOC_ID, "seg_idx", "seg_start", "seg_end", *groups, "n_mentions", "n_positive", "n_negative").collect()}
    predicted: dict = {}
    mentions = tv.rows_of(read_table(spark, join_path(req.source, "mentions"), fmt), keys)
    for m in mentions.select(DOC_ID, "seg_idx", "start", "end", "seg_start", "stance").collect():
        predicted.setdefault((str(m[DOC_ID]), m["seg_idx"]), []).append(
            (m["start"] - m["seg_start"], m["end"] - m["seg_start"], m["stance"]))
    return rows, predicted


def _usable(coded, rows, problems):
    """The coded segments found in segments/ with the text the run had; the others become problems."""
    usable = []
    for c in coded:
        row = rows.get((c.doc_id, c.seg_idx))
        if row is None:
            problems.append(Problem(c.sample_id, "doc_id", f"segment ({c.doc_id!r}, {c.seg_idx}) is not in the "
                                                           f"run's segments/: a sheet of another run?"))
        elif len(c.segment_text) != row["seg_end"] - row["seg_start"]:
            problems.append(Problem(c.sample_id, "segment_text", f"{len(c.segment_text)} characters, but the run's "
                                    f"segment has {row['seg_end'] - row['seg_start']}: the text was edited or the "
                                    f"spreadsheet changed it (line breaks?); restore it from the sheet as written"))
        else:
            usable.append(c)
    return usable


def _measures(mentions) -> list[float]:
    """One segment's values of lib's MEASURES from (start, end, stance) mentions."""
    stances = [s for *_, s in mentions]
    return [float(bool(mentions)), float(len(mentions)), float(stances.count("positive")),
            float(stances.count("negative"))]


def corrected_rows(sums: list[dict], coded, rows, groups, min_coded: int) -> list[dict]:
    """One row per group (and one for all segments) and published measure: predicted, DSL, interval."""
    by_group: dict = {}
    for c in coded:
        row = rows[(c.doc_id, c.seg_idx)]
        yhat = [float(row["n_mentions"] > 0), float(row["n_mentions"]), float(row["n_positive"]),
                float(row["n_negative"])]
        by_group.setdefault(tuple(row[g] for g in groups), []).append((yhat, _measures(c.mentions), c.pi))
    k = len(MEASURES)
    overall = {"n": sum(g["n"] for g in sums),
               "s": [sum(g["s"][i] for g in sums) for i in range(k)],
               "q": [[sum(g["q"][i][j] for g in sums) for j in range(k)] for i in range(k)]}
    out = []
    for scope, group, total, members in [("all", (None,) * len(groups), overall, [x for v in by_group.values() for x in v]),
                                         *[("group", g["group"], g, by_group.get(g["group"], []))
                                           for g in sorted(sums, key=lambda g: stratum_sort_key(g["group"]))]]:
        yhat_c = [m[0] for m in members]
        y_c = [m[1] for m in members]
        pi_c = [m[2] for m in members]
        for e in estimate_from_sums(total["n"], total["s"], total["q"], yhat_c, y_c, pi_c, min_coded=min_coded):
            out.append({**dict(zip(groups, group)), "scope": scope, **dataclasses.asdict(e)})
    return out


def corrected_frame(spark, rows: list[dict], groups, segments):
    schema = T.StructType([
        *[T.StructField(g, segments.schema[g].dataType) for g in groups],
        T.StructField("scope", T.StringType()), T.StructField("measure", T.StringType()),
        *[T.StructField(c, T.DoubleType()) for c in ("estimate_predicted", "estimate_dsl", "se", "ci_low", "ci_high")],
        T.StructField("n_segments", T.LongType()), T.StructField("n_coded", T.LongType()),
        T.StructField("reason", T.StringType())])
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def validate_job(spark, req: ValidateRequest) -> dict:
    """Read the coded sheet, write ``metrics.json``, ``corrected/`` and ``report.html``; returns the metrics."""
    _, fmt = source_tables(spark, req.source)
    check_output(spark, req, METRICS)
    record = sheet_record(spark, req.codes)
    if record is None:
        log.warning("validate: no %s beside %s: the sheet's pi column is trusted as it is", RECORD, req.codes)
    elif posixpath.normpath(str(record.get("source", "")).rstrip("/")) != posixpath.normpath(req.source.rstrip("/")):
        log.warning("validate: the sheet was drawn from %s, not from --input %s; every coded segment must be found "
                    "in the --input's segments/", record.get("source"), req.source)
    frame = read_sheet(spark, req.codes)
    codes = read_codes(frame)
    problems = list(codes.problems)
    segments = read_table(spark, join_path(req.source, "segments"), fmt)
    groups = _groups(spark, req, segments)
    rows, predicted = _coded_rows(spark, req, fmt, segments, codes.coded, groups)
    usable = _usable(codes.coded, rows, problems)
    for p in problems:
        log.warning("validate: sample_id %s, %s: %s", p.sample_id, p.column, p.message)
    if not usable:
        raise InputError(f"--codes: {req.codes} has no usable coded row ({len(frame)} rows: {codes.uncoded} not coded "
                         f"yet, {len(problems)} problems{': ' + problems[0].message if problems else ''})")
    evaluated = [EvalSegment(predicted.get((c.doc_id, c.seg_idx), []), c.mentions, c.pi, c.stratum) for c in usable]
    metrics = compute_metrics(evaluated)
    intervals = bootstrap_intervals(evaluated, B=req.bootstrap, seed=req.seed)
    sums = tv.predicted_sums(segments, groups)
    table = corrected_rows(sums, usable, rows, groups, req.min_coded)
    write_table(corrected_frame(spark, table, groups, segments), join_path(req.output, CORRECTED), req.output_format,
                "overwrite" if req.overwrite else "error")
    result = {
        "source": req.source, "codes": req.codes, "sample": record, "group_by": groups,
        "rows": len(frame), "coded": len(usable), "uncoded": codes.uncoded,
        "problems": [dataclasses.asdict(p) for p in problems],
        "weighted": len({c.pi for c in usable}) > 1, "metrics": metrics, "intervals": intervals,
        "min_coded": req.min_coded,
    }
    fs = filesystem(spark)
    fs.write_text(json.dumps(result, indent=2, default=str) + "\n", join_path(req.output, METRICS))
    fs.write_text(render_validation(result, pd.DataFrame(table), groups), join_path(req.output, "report.html"))
    log.info("validate: %d coded segments (%d not coded yet, %d problems): has-mention F1 %s, stance accuracy %s; "
             "results in %s", len(usable), codes.uncoded, len(problems), metrics["has_mention"]["f1"],
             metrics["stance"]["accuracy"], req.output)
    return result
