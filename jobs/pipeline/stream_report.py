"""The stream's summary tables, from all its batches: cluster_summary/, aggregates/, report.html."""

from __future__ import annotations

import pandas as pd
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.transforms import aggregates as agg
from group_appeal_spark.jobs.transforms import cluster_summary
from group_appeal_spark.lib.config import group_columns
from group_appeal_spark.lib.report import render_report
from group_appeal_spark.testing.smoke import uses_tiny_models

# every table a stream's output may hold (k_search/ only where a run made the folder)
TABLES = ("documents", "segments", "mentions", "errors", "mention_embeddings", "clusters", "cluster_summary",
          "aggregates", "k_search")


def write_report_tables(spark, config, model, bundle, timer) -> list[str]:
    """Write cluster_summary/, aggregates/ and report.html from the output's tables; returns the
    tables the output holds (for ``_SUCCESS.json``)."""
    out, fmt = config.output.path, config.output.format
    fs = filesystem(spark)
    tables = {t: read_table(spark, join_path(out, t), fmt) for t in TABLES if fs.exists(join_path(out, t))}
    mentions, clusters, documents = tables["mentions"], tables["clusters"], tables.get("documents")
    with timer.stage("report"):
        summary = cluster_summary(clusters, mentions)
        write_table(summary, join_path(out, "cluster_summary"), fmt, "overwrite")
        carried = [c for c in agg.carried_of(documents) if c in mentions.columns] if documents is not None else []
        groups = group_columns(config.output.group_by, carried)
        table = agg.group_aggregates(mentions, clusters, summary, documents, groups,
                                     complete_panel=config.output.complete_panel)
        write_table(table, join_path(out, "aggregates"), fmt, "overwrite")
        aggregates = read_table(spark, join_path(out, "aggregates"), fmt, schema=table.schema).toPandas()
        k_search = tables["k_search"].toPandas() if "k_search" in tables else \
            pd.DataFrame(columns=["k", "metric", "score", "estimated", "n_points", "chosen"])
        facts = {**agg.run_counts(documents, mentions, clusters), "chosen_k": model.k, "metric": None,
                 "source": config.input.table or config.input.path,
                 "smoke_test": bundle is not None and uses_tiny_models(bundle.folders)}
        page = render_report(facts, k_search, summary.toPandas(), aggregates, agg.examples_frame(clusters, mentions),
                             groups[0] if groups else None, title="group-appeal-spark stream report")
        fs.write_text(page, join_path(out, "report.html"))
    return sorted({*tables, "cluster_summary", "aggregates"})
