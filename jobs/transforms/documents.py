"""The documents' columns and ids: the input columns checked, duplicate ids counted or refused,
and what a streaming DataFrame can take. No I/O."""

from __future__ import annotations

import dataclasses

from group_appeal_spark.lib.config import JobConfig
from group_appeal_spark.lib.errors import InputError
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclasses.dataclass(frozen=True)
class DuplicateIdCounts:
    """The rows of the input that share a document id (all zero without an id column)."""

    ids: int       # distinct ids that occur more than once
    rows: int      # rows carrying such an id (so rows - ids are the extra copies)
    examples: list  # a few of those ids, smallest first (as text)


def count_duplicate_ids(df: DataFrame, config: JobConfig, *, n_examples: int = 5) -> DuplicateIdCounts:
    """Count the rows whose (non-null) id occurs more than once; one aggregation over the ids."""
    id_col = config.input.id_col
    if id_col not in df.columns:
        return DuplicateIdCounts(0, 0, [])  # generated ids are unique by construction
    repeated = df.where(F.col(id_col).isNotNull()).groupBy(id_col).count().where(F.col("count") > 1)
    totals = repeated.agg(F.count(F.lit(1)).alias("ids"), F.coalesce(F.sum("count"), F.lit(0)).alias("rows")).first()
    examples = []
    if totals["ids"]:
        # a top-n sort, not a collect of every repeated id: archives may hold millions
        examples = [str(r[0]) for r in repeated.select(id_col).orderBy(id_col).limit(n_examples).collect()]
    return DuplicateIdCounts(int(totals["ids"]), int(totals["rows"]), examples)


def check_unique_ids(df: DataFrame, config: JobConfig) -> DuplicateIdCounts:
    """Raise InputError when ids repeat (``input.duplicate_ids: error``); returns the counts."""
    found = count_duplicate_ids(df, config)
    if found.ids:
        shown = ", ".join(map(repr, found.examples)) + (", ..." if found.ids > len(found.examples) else "")
        raise InputError(
            f"input: {found.ids} document id(s) occur more than once in column {config.input.id_col!r} "
            f"({found.rows} rows), e.g. {shown}; make the ids unique, or set input.duplicate_ids to "
            f"keep (process every row) or first (process one row per id, report the others)")
    return found


def sortable_columns(df: DataFrame, columns: list[str]) -> list[str]:
    """The columns Spark can order by (a map, even nested, cannot be compared)."""
    return [c for c in columns if "map<" not in df.schema[c].dataType.simpleString()]


def check_document_columns(df: DataFrame, config: JobConfig) -> None:
    """The text and carried columns are there, and the text is a string column (InputError if not)."""
    cfg = config.input
    missing = [c for c in [cfg.text_col, *cfg.carry_cols] if c not in df.columns]
    if missing:
        raise InputError(
            f"input: column(s) {', '.join(map(repr, missing))} not found; the input has: {', '.join(df.columns)}. "
            f"Set --text-col / --carry-cols (input.text_col / input.carry_cols)")
    text_type = df.schema[cfg.text_col].dataType.simpleString()
    if text_type != "string":
        raise InputError(f"input: column {cfg.text_col!r} has type {text_type}; expected text (string)")


def check_streamable(df: DataFrame, config: JobConfig) -> None:
    """A streaming DataFrame needs what works row by row: its own ids, and duplicates kept.

    Generated ids and ``duplicate_ids: first`` or ``error`` rank or count rows across the input,
    which a stream cannot do without state; ``stream_appeals`` (one micro-batch at a time, with the
    ids already written) does both.
    """
    cfg = config.input
    if cfg.id_col not in df.columns:
        raise InputError(f"input: a streaming DataFrame needs an id column ({cfg.id_col!r} not found; the input has: "
                         f"{', '.join(df.columns)}); or use stream_appeals, which gives ids batch by batch")
    if cfg.duplicate_ids != "keep":
        raise InputError(f"input.duplicate_ids: {cfg.duplicate_ids} needs all the ids at once; on a streaming "
                         f"DataFrame use keep, or stream_appeals, which applies it across micro-batches")
