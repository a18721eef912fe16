"""The driver-side half of the pipeline: k search, k-means, cluster summary, aggregates, report, plots.

Used by the ``cluster`` job (from an earlier run's folder) and by ``run``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from group_appeal_spark.jobs.pipeline import derived
from group_appeal_spark.jobs.pipeline.cluster_model import write_cluster_model
from group_appeal_spark.jobs.storage.filesystem import ConnectUnsupported, filesystem, join_path
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.jobs.transforms import aggregates as agg
from group_appeal_spark.jobs.transforms import cluster_mentions, cluster_summary
from group_appeal_spark.lib.config import group_columns
from group_appeal_spark.lib.report import render_report
from group_appeal_spark.testing.smoke import uses_tiny_models

log = logging.getLogger("group_appeal_spark")

# the tables cluster may write (plots/, cluster_model/ and the summary aside); aggregates only when it clusters
TABLES = ("k_search", "clusters", "cluster_summary", "aggregates")


def read_source(spark, source: str, fmt: str) -> dict:
    """An earlier run's ``mention_embeddings``, ``mentions`` and ``documents`` (the last two None
    where an older output lacks them, with a warning), read in ``fmt``."""
    documents_path = join_path(source, "documents")
    return {"mention_embeddings": read_table(spark, join_path(source, "mention_embeddings"), fmt),
            "mentions": _read_mentions(spark, join_path(source, "mentions"), fmt),
            "documents": read_table(spark, documents_path, fmt) if filesystem(spark).exists(documents_path) else None}


def run_cluster(spark, config, source: str, tables: dict, timer: StageTimer, *, mode: str | None = None,
                bundle=None, corpus: str | None = None) -> dict:
    """The driver-side half: k search, k-means, cluster summary, plots; returns the counts for summary.json.

    ``tables``: the mention_embeddings, mentions and documents of ``source`` (:func:`read_source`,
    or ``run``'s own checkpoints). The counts' ``tables`` lists the tables written
    (``aggregates`` only when it clustered); the callers take it out for the marker and the catalog.

    The summary's stance shares come from the mentions; an older output without that table
    (or without its stance column) gets null shares and a warning, not a failure. Whenever it
    clusters it also writes ``cluster_model/`` (lib's ``ClusterModel``, JSON) for ``assign``;
    the embedder it records is ``bundle``'s (``run``), else the one in ``<source>/summary.json``
    (``cluster``). ``corpus``: what report.html names as its source (``run``: the input documents).
    """
    out, fmt, mode = config.output.path, config.output.format, mode or config.output.mode
    embeddings, mentions, documents = tables["mention_embeddings"], tables["mentions"], tables["documents"]
    # checked before any work: `cluster` knows the carried columns only from its input's tables
    carried = [c for c in (agg.carried_of(documents) if documents is not None else config.input.carried)
               if mentions is None or c in mentions.columns]
    groups = group_columns(config.output.group_by, carried)
    with timer.stage("cluster"):
        result = cluster_mentions(embeddings, config)
        write_table(result.k_search, join_path(out, "k_search"), fmt, mode)
        write_table(result.clusters, join_path(out, "clusters"), fmt, mode)
        summary = cluster_summary(result.clusters, mentions)
        write_table(summary, join_path(out, "cluster_summary"), fmt, mode)
        model_path = write_cluster_model(spark, config, source, result, embeddings, summary, bundle) \
            if result.best_k else None
    # drawn in a thread while the report's Spark jobs run (matplotlib and plotly: about 1.5 s)
    plots = start_plots(spark, config, result) if config.output.plots and result.best_k else None
    counts = {"chosen_k": result.best_k, "clustering_skipped": result.skipped, "plots": [],
              "metric": None if config.clustering.n_clusters else config.clustering.metric,
              "cluster_model": model_path}
    written = ["k_search", "clusters", "cluster_summary"]
    with timer.stage("report"):
        aggregates = None
        if result.best_k and mentions is not None:
            table = agg.group_aggregates(mentions, result.clusters, summary, documents, groups,
                                         complete_panel=config.output.complete_panel)
            write_table(table, join_path(out, "aggregates"), fmt, mode)
            written.append("aggregates")
            aggregates = read_table(spark, join_path(out, "aggregates"), fmt, schema=table.schema).toPandas()
        # the corpus the numbers are about (run); for `cluster`, the earlier run's folder it read
        facts = {**agg.run_counts(documents, mentions, result.clusters), **counts, "source": corpus or source,
                 "smoke_test": bundle is not None and uses_tiny_models(bundle.folders)}
        examples = agg.examples_frame(result.clusters, mentions) if result.best_k else None
        page = render_report(facts, result.k_search.toPandas(), summary.toPandas(), aggregates, examples,
                             groups[0] if groups and aggregates is not None else None)
        filesystem(spark).write_text(page, join_path(out, "report.html"))
    counts["plots"] = plots.result() if plots is not None else []
    return {**counts, "tables": written}


def _read_mentions(spark, path: str, fmt: str):
    """The mentions table for the stance shares, or None (with a warning) where there is none."""
    if not filesystem(spark).exists(path):
        log.warning("cluster: no mentions table at %s: cluster_summary's stance shares are null", path)
        return None
    mentions = read_table(spark, path, fmt)
    if not {"mention_key", "stance"} <= set(mentions.columns):
        log.warning("cluster: %s has no mention_key and stance columns (it has %s): cluster_summary's stance "
                    "shares are null", path, mentions.columns)
        return None
    return mentions


def start_plots(spark, config, result):
    """Draw and write the plots in a background thread; returns its future (of the paths written).

    The two tables are read here, on the caller's thread; the drawing and the uploads run in
    the thread, off the critical path. An exception in the thread reaches the caller from
    ``result()``, as it would have from a plain call.
    """
    import concurrent.futures

    scores, clusters = result.k_search.toPandas(), result.clusters.toPandas()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gas-plots")
    future = pool.submit(write_plots, spark, config, scores, clusters, result.best_k)
    pool.shutdown(wait=False)
    return future


def write_plots(spark, config, scores, clusters, best_k) -> list[str]:
    """Draw the k-score plot and the cluster box plot from the two tables and write them under plots/."""
    from group_appeal_spark.lib.clustering.plots import (
        plot_cluster_boxplot,
        plot_k_scores,
    )

    written = []
    with tempfile.TemporaryDirectory(prefix="gas-plots-") as tmp:
        made = []
        if len(scores):
            made.append(("k_scores.png", plot_k_scores(scores, best_k, Path(tmp) / "k_scores.png")))
        made.append(("clusters.html", plot_cluster_boxplot(clusters, Path(tmp) / "clusters.html")))
        for name, path in made:
            if path is not None:
                dest = join_path(config.output.path, "plots", name)
                try:
                    filesystem(spark).put_file(path, dest)
                except ConnectUnsupported as exc:  # a Connect client cannot upload there
                    log.warning("plot %s not written: %s", name, exc)
                    continue
                written.append(dest)
    return written


def cluster_job(spark, config) -> None:
    """The ``cluster`` job: the driver-side half over ``--input``, into ``--output`` (or into ``--input``)."""
    fmt = derived.check_source(spark, config)
    derived.open_output(spark, config, TABLES)
    timer = StageTimer()
    counts = run_cluster(spark, config, config.input.path, read_source(spark, config.input.path, fmt), timer)
    derived.close_output(spark, config, "cluster", counts, timer, others=TABLES)
    log.info("cluster: done: chosen k = %s", counts["chosen_k"])
