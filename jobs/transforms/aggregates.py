"""The aggregates table (mentions per group value and cluster, with stance counts, the group's
document and segment counts and the per-sentence shares) and the driver-side frames of
report.html. No I/O."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from group_appeal_spark.jobs.transforms.columns import DOC_ID, DOCUMENT_COLUMNS
from group_appeal_spark.lib.choices import STANCES
N_EXAMPLES = 3


def carried_of(documents: DataFrame) -> list[str]:
    """The carried columns of a documents/ table, in its order."""
    return [c for c in documents.columns if c not in (DOC_ID, *DOCUMENT_COLUMNS)]


def group_aggregates(mentions: DataFrame, clusters: DataFrame, summary: DataFrame,
                     documents: DataFrame | None, groups: list[str], *, complete_panel: bool = False) -> DataFrame:
    """One row per (group value(s), cluster_id): groups, cluster_id, label, mentions, positive,
    negative, neutral, documents, segments, segments_with_mentions, share_segments_with_mentions,
    segments_with_any_mention, share_segments_with_any_mention, net_stance.

    Every mention counts once (a left join on mention_key: a key missing from ``clusters`` gets
    a null cluster_id rather than vanishing), so ``mentions`` sums to the mentions row count.
    ``documents`` and ``segments`` are the group's documents without an error (0-mention ones
    included) and their segments: the denominators. ``segments_with_mentions`` counts the
    group's segments with at least one mention in this cluster, ``segments_with_any_mention``
    those with a mention in any cluster (the same on every row of the group: a sentence with
    mentions in two clusters counts once there, in each cluster here). ``net_stance`` is
    (positive - negative) / mentions, null without a mention. ``complete_panel``: every group
    value x cluster of ``summary`` is present, with zeros where the group has no mention of it.
    Null groups match null groups (null-safe join). Older outputs without the segment columns get
    nulls in the columns that need them.
    """
    per_segment = {DOC_ID, "seg_idx"} <= set(mentions.columns)
    keyed = mentions.select(*groups, "mention_key", "stance", *([DOC_ID, "seg_idx"] if per_segment else [])) \
        .join(clusters.select("mention_key", "cluster_id"), "mention_key", "left")
    with_segments = F.count_distinct(DOC_ID, "seg_idx") if per_segment else F.lit(None).cast("long")
    counts = keyed.groupBy(*groups, "cluster_id").agg(
        F.count(F.lit(1)).alias("mentions"),
        *[F.count(F.when(F.col("stance") == s, 1)).alias(s) for s in STANCES],
        with_segments.alias("segments_with_mentions"))
    docs = None if documents is None else _group_denominators(documents, groups)
    if complete_panel:
        counts = _complete(counts, summary, docs, groups)
    counts = counts.join(summary.select("cluster_id", "label"), "cluster_id", "left")
    if docs is None:
        out = counts.select("*", *[F.lit(None).cast("long").alias(c) for c in _DENOMINATORS])
    elif groups:
        c, d = counts.alias("c"), docs.alias("d")
        cond = [F.col(f"c.{g}").eqNullSafe(F.col(f"d.{g}")) for g in groups]
        out = c.join(d, cond, "left").select("c.*", *[F.coalesce(F.col(f"d.{n}"), F.lit(0)).alias(n)
                                                      if n != "segments_with_any_mention" else F.col(f"d.{n}")
                                                      for n in _DENOMINATORS])
    else:
        out = counts.crossJoin(docs)
    longs = ["mentions", *STANCES, "documents", "segments", "segments_with_mentions"]
    return out.select(*groups, F.col("cluster_id").cast("int"), "label", *[F.col(c).cast("long") for c in longs],
                      _share("segments_with_mentions", "segments").alias("share_segments_with_mentions"),
                      F.col("segments_with_any_mention").cast("long"),
                      _share("segments_with_any_mention", "segments").alias("share_segments_with_any_mention"),
                      F.when(F.col("mentions") > 0, (F.col("positive") - F.col("negative")) / F.col("mentions"))
                      .cast("double").alias("net_stance")) \
        .orderBy(*groups, "cluster_id")


# the group-level columns of aggregates/, from documents/
_DENOMINATORS = ("documents", "segments", "segments_with_any_mention")


def _share(part: str, whole: str):
    """part / whole as a double, null where whole is 0 or unknown."""
    return F.when(F.col(whole) > 0, F.col(part) / F.col(whole)).cast("double")


def _group_denominators(documents: DataFrame, groups: list[str]) -> DataFrame:
    """Per group value: documents without an error, their segments and those with a mention."""
    ok = documents.where(F.col("error").isNull()) if "error" in documents.columns else documents
    segments = F.sum("n_segments") if "n_segments" in documents.columns else F.lit(None)
    with_any = F.sum("n_segments_with_mentions") if "n_segments_with_mentions" in documents.columns else F.lit(None)
    return ok.groupBy(*groups).agg(F.count(F.lit(1)).alias("documents"), segments.cast("long").alias("segments"),
                                   with_any.cast("long").alias("segments_with_any_mention"))


def _complete(counts: DataFrame, summary: DataFrame, docs: DataFrame | None, groups: list[str]) -> DataFrame:
    """``counts`` with a zero row for every group value x cluster it lacks (a panel for regressions).

    Group values are those of the documents (and of the mentions); clusters those of
    ``summary``. Rows of mentions without a cluster (null cluster_id) are kept as they are.
    """
    values = counts.select(*groups)
    if docs is not None:
        values = values.unionByName(docs.select(*groups))
    cells = values.distinct().crossJoin(summary.select("cluster_id").distinct()) if groups \
        else summary.select("cluster_id").distinct()
    c, k = counts.where(F.col("cluster_id").isNotNull()).alias("c"), cells.alias("k")
    cond = [F.col(f"c.{g}").eqNullSafe(F.col(f"k.{g}")) for g in groups] + [F.col("c.cluster_id") == F.col("k.cluster_id")]
    zero = F.lit(0).cast("long")
    filled = k.join(c, cond, "left").select(
        *[F.col(f"k.{g}").alias(g) for g in groups], F.col("k.cluster_id").alias("cluster_id"),
        *[F.coalesce(F.col(f"c.{n}"), zero).alias(n) for n in ("mentions", *STANCES, "segments_with_mentions")])
    return filled.unionByName(counts.where(F.col("cluster_id").isNull()))


def run_counts(documents: DataFrame | None, mentions: DataFrame | None, clusters: DataFrame) -> dict:
    """The report's counts: input rows, documents ok and with errors, mentions, unique mentions."""
    out = {"unique_mentions": clusters.count()}
    if documents is not None:
        has_error = F.col("error").isNotNull() if "error" in documents.columns else F.lit(False)
        row = documents.agg(F.count(F.lit(1)).alias("n"), F.count(F.when(has_error, 1)).alias("bad")).first()
        out.update(input_rows=row["n"], documents_ok=row["n"] - row["bad"], documents_errors=row["bad"])
    if mentions is not None:
        out["mentions"] = mentions.count()
    return out


def examples_frame(clusters: DataFrame, mentions: DataFrame | None, n: int = N_EXAMPLES):
    """Per cluster, its ``n`` mentions nearest the centroid with one sentence (``segment_text``
    where mentions/ has it) and doc_id, as pandas: cluster_id, mention, text, doc_id."""
    order = Window.partitionBy("cluster_id").orderBy("distance_to_centroid", "mention_key")
    near = clusters.where(F.col("cluster_id").isNotNull()) \
        .withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= n) \
        .select("cluster_id", "mention_key", "mention", "distance_to_centroid")
    if mentions is not None and "mention_key" in mentions.columns:
        text = F.first("segment_text", ignorenulls=True) if "segment_text" in mentions.columns else F.lit(None)
        doc = F.first(F.col("doc_id").cast("string"), ignorenulls=True) if "doc_id" in mentions.columns \
            else F.lit(None)
        one = mentions.join(near.select("mention_key"), "mention_key", "left_semi") \
            .groupBy("mention_key").agg(text.cast("string").alias("text"), doc.alias("doc_id"))
        near = near.join(one, "mention_key", "left")
    else:
        near = near.withColumn("text", F.lit(None).cast("string")).withColumn("doc_id", F.lit(None).cast("string"))
    return near.select("cluster_id", "mention", "text", "doc_id", "distance_to_centroid").toPandas() \
        .sort_values(["cluster_id", "distance_to_centroid", "mention"]).reset_index(drop=True)
