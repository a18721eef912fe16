"""The aggregates table (mentions per group value and cluster, with stance counts and the
group's document count) and the driver-side frames of report.html. No I/O."""

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
                     documents: DataFrame | None, groups: list[str]) -> DataFrame:
    """One row per (group value(s), cluster_id): groups, cluster_id, label, mentions, positive,
    negative, neutral, documents.

    Every mention counts once (a left join on mention_key: a key missing from ``clusters`` gets
    a null cluster_id rather than vanishing), so ``mentions`` sums to the mentions row count.
    ``documents`` is the group's count of documents without an error, 0-mention ones included;
    null groups match null groups (null-safe join).
    """
    keyed = mentions.select(*groups, "mention_key", "stance") \
        .join(clusters.select("mention_key", "cluster_id"), "mention_key", "left")
    counts = keyed.groupBy(*groups, "cluster_id").agg(
        F.count(F.lit(1)).alias("mentions"),
        *[F.count(F.when(F.col("stance") == s, 1)).alias(s) for s in STANCES])
    counts = counts.join(summary.select("cluster_id", "label"), "cluster_id", "left")
    if documents is None:
        docs = None
    else:
        ok = documents.where(F.col("error").isNull()) if "error" in documents.columns else documents
        docs = ok.groupBy(*groups).agg(F.count(F.lit(1)).alias("documents"))
    if docs is None:
        out = counts.withColumn("documents", F.lit(None).cast("long"))
    elif groups:
        c, d = counts.alias("c"), docs.alias("d")
        cond = [F.col(f"c.{g}").eqNullSafe(F.col(f"d.{g}")) for g in groups]
        out = c.join(d, cond, "left").select("c.*", F.coalesce(F.col("d.documents"), F.lit(0)).alias("documents"))
    else:
        out = counts.crossJoin(docs)
    return out.select(*groups, F.col("cluster_id").cast("int"), "label", F.col("mentions").cast("long"),
                      *[F.col(s).cast("long") for s in STANCES], F.col("documents").cast("long")) \
        .orderBy(*groups, "cluster_id")


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
