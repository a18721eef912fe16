"""The DataFrame transforms of the jobs, usable directly from a notebook.

>>> from group_appeal_spark import detect_appeals, embed_mentions, cluster_mentions
>>> appeals = detect_appeals(docs_df, config)            # mentions, errors, documents DataFrames
>>> embeddings = embed_mentions(appeals.mentions, config)
>>> clusters = cluster_mentions(embeddings, config)      # clusters + k_search DataFrames

Transforms do no I/O of their own: reading and writing are in ``jobs/storage/``.
"""

from __future__ import annotations

import dataclasses
import logging

from group_appeal_spark.jobs.devices import record_devices
from group_appeal_spark.jobs.executors import ship_models
from group_appeal_spark.jobs.profiles import check_profile, model_profile, wants_profile
from group_appeal_spark.jobs.session import is_connect
from group_appeal_spark.jobs.transforms.columns import DOC_ID, INPUT_ERROR, SEGMENT_COLUMNS, valid_utf8
from group_appeal_spark.jobs.transforms.deal import deal_by_length, small_input
from group_appeal_spark.jobs.transforms.documents import (
    sortable_columns,
    check_document_columns,
    check_streamable,
    check_unique_ids,
)
from group_appeal_spark.lib.choices import STANCES
from group_appeal_spark.lib.config import JobConfig, as_job_config
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.appeals import make_appeals_map, make_appeals_udf
from group_appeal_spark.udfs.arrow_map import with_result_schema
from group_appeal_spark.udfs.embed import make_embed_map, make_embed_udf
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import APPEAL_TYPE, DOCUMENT_RESULT_TYPE, EMBEDDING_TYPE
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

log = logging.getLogger("group_appeal_spark")

# Both follow lib's AppealRecord through udfs/schemas.py. The DDL string (nullability is not
# part of it) casts an empty array to the UDF's appeals type for rows withheld from the models.
APPEALS_ARRAY = DOCUMENT_RESULT_TYPE["appeals"].dataType.simpleString()
SEGMENTS_ARRAY = DOCUMENT_RESULT_TYPE["segments"].dataType.simpleString()
MENTION_COLUMNS = APPEAL_TYPE.fieldNames()


@dataclasses.dataclass
class AppealsResult:
    """What ``detect_appeals`` returns: lazily computed tables over one cached pass of the models."""

    # doc_id, carried columns, MENTION_COLUMNS (seg_idx ... mention_key, score, seg_start, seg_end),
    # then segment_text with output.segment_text
    mentions: DataFrame
    errors: DataFrame    # doc_id, carried columns, stage, error
    # doc_id, carried columns, n_segments, n_mentions, n_positive, n_negative, n_neutral, error,
    # n_segments_with_mentions: one row per input row (columns.DOCUMENT_COLUMNS)
    documents: DataFrame
    # doc_id, carried columns, columns.SEGMENT_COLUMNS, then segment_text with output.segment_text:
    # one row per segment handed to the models, mention or not (sum of documents.n_segments rows)
    segments: DataFrame | None = None
    cached: DataFrame | None = None  # the persisted model results behind the four

    def release(self) -> None:
        """Drop the cached model results once the tables are written."""
        if self.cached is not None:
            self.cached.unpersist()


def prepare_documents(df: DataFrame, config: JobConfig, *, ids_checked: bool = False) -> DataFrame:
    """Check the input columns and give each row its ``doc_id``; keeps text and carried columns.

    ``doc_id`` is the id column's value (its type kept). Without an id column it is made from
    the content: the first 16 hex digits of the text's SHA-256 and the row's rank among rows
    with the same text (ordered by all their columns), so it does not depend on partitioning,
    file order or retries. A row with a null id, or text that is not valid UTF-8, is withheld
    from the models and reported.

    Rows sharing an id follow ``input.duplicate_ids``: ``keep`` processes them all; ``error``
    raises InputError (one aggregation over the ids, before any model work; ``ids_checked``:
    the caller has run :func:`check_unique_ids` on ``df`` already); ``first`` keeps
    one row per id, the first by (has an input error, then every column), so the choice does
    not depend on partitioning, and reports the others with their id.

    Returns
    -------
    DataFrame
        ``doc_id``, ``__text`` (null where the row is already known bad), carried columns,
        ``__input_error`` (the reason, or null).
    """
    cfg = config.input
    check_document_columns(df, config)
    text = F.col(cfg.text_col)
    source_cols = [c for c in df.columns if c != INPUT_ERROR]
    error = F.col(INPUT_ERROR) if INPUT_ERROR in df.columns else F.lit(None).cast("string")
    has_id = cfg.id_col in df.columns
    if has_id:
        error = F.coalesce(error, F.when(F.col(cfg.id_col).isNull(), F.lit(f"missing document id ({cfg.id_col})")))
        doc_id = F.col(cfg.id_col)
    else:
        df = df.withColumn("__hash", F.substring(F.sha2(F.coalesce(text, F.lit("")), 256), 1, 16))
        order = Window.partitionBy("__hash").orderBy(*[F.col(c).asc_nulls_first() for c in source_cols])
        doc_id = F.concat(F.col("__hash"), F.lit("-"), F.row_number().over(order).cast("string"))
    error = F.coalesce(error, F.when(~valid_utf8(text), F.lit("invalid UTF-8 in text")))
    if has_id and cfg.duplicate_ids == "error" and not ids_checked:
        check_unique_ids(df, config)
    elif has_id and cfg.duplicate_ids == "first":
        # a row that can be processed wins over one already known bad; then every column decides
        first = Window.partitionBy(cfg.id_col).orderBy(
            error.isNotNull(), *[F.col(c).asc_nulls_first() for c in sortable_columns(df, source_cols)])
        df = df.withColumn("__copy", F.row_number().over(first))
        error = F.coalesce(error, F.when(F.col("__copy") > 1, F.lit(
            f"duplicate document id (input.duplicate_ids=first): kept another row with this id ({cfg.id_col})")))
    carried = [F.col(c) for c in cfg.carried]
    return df.withColumn("__error", error).select(
        doc_id.alias(DOC_ID), F.when(F.col("__error").isNull(), text).alias("__text"), *carried,
        F.col("__error").alias(INPUT_ERROR))


def model_partitions(spark, config: JobConfig, source: DataFrame | None = None) -> int | None:
    """How many tasks the model UDFs' rows are spread over (``inference.partitions``).

    Unset: the session's default parallelism (its task slots: cores of ``local[N]``, or of all
    executors), and never fewer than ``source``'s own partitions where they are known without
    running anything (a classic session's plan without a shuffle, e.g. a file scan). On Spark
    Connect only ``spark.default.parallelism``, where the client can read it; None there means:
    leave the partitioning as it is (docs/operations.md: set ``inference.partitions``).
    """
    if config.inference.partitions is not None:
        return config.inference.partitions
    if is_connect(spark):
        value = spark.conf.get("spark.default.parallelism", None)
        return int(value) if value else None
    slots = spark.sparkContext.defaultParallelism
    if source is not None and "Exchange" not in source._jdf.queryExecution().executedPlan().toString():
        # a plan with a shuffle would run its map stages to count (adaptive execution)
        slots = max(slots, source.rdd.getNumPartitions())
    return slots


def spread_for_models(df: DataFrame, n: int | None, key: str, *, ties: tuple[str, ...] = (),
                      sort_by: str | None = None, deal_by: str | None = None) -> DataFrame:
    """Hash-partition ``df`` by ``key`` into ``n`` tasks (None: as it is) and give each task's rows
    a fixed order: by the length of ``sort_by`` where given, then by the hashes of ``key`` and
    ``ties``. With ``deal_by`` (and ``n``), the rows are dealt to the tasks by that column's length
    instead of hashed (``deal.deal_by_length``: tasks of the same work, for a small input).

    A small input is one partition, which one Python worker with one torch thread would process
    while the other cores idle; and after a shuffle, adaptive execution coalesces a table of short
    rows (mention keys) into a few partitions. An explicit repartition is kept as it is. Hashing
    the key makes the split the same on a retry. The fixed order matters because the rows a shuffle
    delivers come in no fixed order, and the batch a row falls into can change its numbers in the
    last bit (a batch of a few rows takes another matrix kernel): ordered, a rerun or a resumed run
    with the same settings gives bit-identical results. Sorting by length
    as well fills each Arrow batch with texts of about the same length, so the batches carry less
    padding.
    """
    # hashes, not the values: an id column may be of a type Spark cannot order
    hashes = [F.xxhash64(c) for c in (key, *ties)]
    if n is not None:
        df = deal_by_length(df, n, deal_by, hashes) if deal_by is not None else df.repartition(n, key)
    order = [F.length(sort_by)] if sort_by is not None else []
    return df.sortWithinPartitions(*order, *hashes)


def detect_appeals(df: DataFrame, config=None, *, bundle: ModelBundle | None = None,
                   chunk: tuple[int, int] | None = None, hooks: UdfHooks | None = None,
                   ids_checked: bool = False) -> AppealsResult:
    """Find the group appeals of every document of ``df``.

    Parameters
    ----------
    df : DataFrame
        Documents with the text column (``input.text_col``), optionally the id column and the
        carried columns.
    config : JobConfig or dict of dotted overrides, optional
    bundle : ModelBundle, optional
        Already resolved models; resolved from ``config`` when omitted.
    chunk : (index, count), optional
        Only the documents whose id hashes to chunk ``index`` of ``count``.
    hooks : UdfHooks, optional
        Callables the UDF runs on the executors (before each batch, after a model load).
    ids_checked : bool
        The caller has checked ``df``'s ids already (``input.duplicate_ids: error``): once for
        every chunk instead of once per chunk.
    """
    config = as_job_config(config)
    spark = df.sparkSession
    streaming = df.isStreaming
    if streaming:
        check_streamable(df, config)
    docs = prepare_documents(df, config, ids_checked=ids_checked or streaming)
    if chunk is not None and chunk[1] > 1:
        docs = docs.where(F.pmod(F.xxhash64(DOC_ID), F.lit(chunk[1])) == chunk[0])
    if not streaming:  # a stream's rows are neither counted, shuffled nor sorted: each batch as it comes
        docs = spread_for_models(docs, model_partitions(spark, config, df), DOC_ID, ties=("__text",),
                                 sort_by="__text" if config.inference.sort_by_length else None,
                                 deal_by="__text" if small_input(df) else None)
    carried = config.input.carried
    bundle = ship_models(spark, bundle or ModelBundle.resolve(config), config.models.ship)
    hooks = record_devices(spark, hooks)  # summary.json's devices
    # A row already known bad reaches the UDF as null (Spark evaluates a Python UDF on every
    # row, even under when()), and its own reason replaces the UDF's.
    known_bad = F.struct(F.array().cast(APPEALS_ARRAY).alias("appeals"), F.lit(0).alias("n_segments"),
                         F.col(INPUT_ERROR).alias("error"), F.lit("input").alias("error_stage"),
                         F.array().cast(SEGMENTS_ARRAY).alias("segments"))
    with_text = config.output.segment_text
    if not wants_profile(config.inference):
        found = docs.select(DOC_ID, *carried, INPUT_ERROR, *(["__text"] if with_text else []),
                            make_appeals_udf(bundle, hooks)(F.col("__text")).alias("r0"))
    else:
        check_profile(spark, config.inference)  # a notebook's session too: one clear line, not Spark's
        rows = docs.select(DOC_ID, *carried, INPUT_ERROR, "__text")
        found = rows.mapInArrow(make_appeals_map(bundle, hooks, "__text", "r0"),
                                with_result_schema(rows.schema, "r0", DOCUMENT_RESULT_TYPE),
                                profile=model_profile(config.inference))  # its own resources: jobs/profiles.py
    results = found.select(
        DOC_ID, *carried, *(["__text"] if with_text else []),
        F.when(F.col(INPUT_ERROR).isNotNull(), known_bad).otherwise(F.col("r0")).alias("r"))
    if with_text:
        results = _with_segment_texts(results)
    # One pass of the models feeds mentions, errors and the documents table (a stream's tables are
    # each their own query: stream_appeals runs one pass per micro-batch instead).
    if not streaming:
        results = results.persist(StorageLevel.MEMORY_AND_DISK)
    extra = ["segment_text"] if with_text else []
    mentions = results.select(DOC_ID, *carried, F.explode("r.appeals").alias("a")) \
        .select(DOC_ID, *carried, *[F.col(f"a.{c}").alias(c) for c in MENTION_COLUMNS + extra])
    errors = results.where(F.col("r.error").isNotNull()) \
        .select(DOC_ID, *carried, F.col("r.error_stage").alias("stage"), F.col("r.error").alias("error"))
    documents = results.select(
        DOC_ID, *carried, F.col("r.n_segments").alias("n_segments"), F.size("r.appeals").alias("n_mentions"),
        *[_count_stance(s).alias(f"n_{s}") for s in STANCES], F.col("r.error").alias("error"),
        F.size(F.filter("r.segments", lambda g: g["n_mentions"] > 0)).alias("n_segments_with_mentions"))
    # a segment's text is cut as a mention's is: text[seg_start:seg_end] on the JVM side
    text = [F.col("__text").substr(F.col("g.seg_start") + 1, F.col("g.seg_end") - F.col("g.seg_start"))
            .alias("segment_text")] if with_text else []
    segments = results.select(DOC_ID, *carried, *(["__text"] if with_text else []),
                              F.explode("r.segments").alias("g")) \
        .select(DOC_ID, *carried, *[F.col(f"g.{c}").alias(c) for c in SEGMENT_COLUMNS], *text)
    return AppealsResult(mentions, errors, documents, segments, None if streaming else results)


def _count_stance(stance: str):
    """The number of a document's appeals with this stance, from its appeals array (no model pass)."""
    return F.size(F.filter("r.appeals", lambda a: a["stance"] == F.lit(stance)))


def _with_segment_texts(results: DataFrame) -> DataFrame:
    """Give each appeal ``segment_text``, cut from ``__text`` with its segment's offsets.

    Cut on the JVM side from the document text the UDF was given, so the UDF and runs without
    ``output.segment_text`` are unchanged. Spark's substring counts code points, as Python's
    str offsets do, so this is exactly ``text[seg_start:seg_end]``; rows withheld from the models
    have no appeals (and a null text).
    """
    def cut(a):
        return a.withField("segment_text", F.col("__text").substr(a["seg_start"] + 1, a["seg_end"] - a["seg_start"]))

    return results.withColumn("r", F.col("r").withField("appeals", F.transform("r.appeals", cut)))


def distinct_mentions(mentions: DataFrame) -> DataFrame:
    """One row per mention key: ``mention_key``, ``mention`` (its most frequent span), ``count``."""
    spans = mentions.groupBy("mention_key", F.trim("span").alias("mention")).agg(F.count(F.lit(1)).alias("n"))
    # the most frequent span of a key, ties to the alphabetically first: deterministic
    return spans.groupBy("mention_key").agg(
        F.min_by("mention", F.struct((-F.col("n")).alias("neg_n"), F.col("mention"))).alias("mention"),
        F.sum("n").cast("long").alias("count"))


def embed_mentions(mentions: DataFrame, config=None, *, bundle: ModelBundle | None = None,
                   hooks: UdfHooks | None = None) -> DataFrame:
    """Embed each distinct mention once: ``mention_key``, ``mention``, ``count``, ``embedding``.

    ``hooks``: callables the UDF runs on the executors (see ``detect_appeals``).
    """
    config = as_job_config(config)
    spark = mentions.sparkSession
    bundle = ship_models(spark, bundle or ModelBundle.resolve(config), config.models.ship)
    hooks = record_devices(spark, hooks)
    keys = spread_for_models(distinct_mentions(mentions), model_partitions(spark, config), "mention_key")
    if not wants_profile(config.inference):
        return keys.select("mention_key", "mention", "count",
                           make_embed_udf(bundle, hooks)(F.col("mention_key")).alias("embedding"))
    check_profile(spark, config.inference)
    keys = keys.select("mention_key", "mention", "count")
    return keys.mapInArrow(make_embed_map(bundle, hooks, "mention_key", "embedding"),
                           with_result_schema(keys.schema, "embedding", EMBEDDING_TYPE),
                           profile=model_profile(config.inference))
