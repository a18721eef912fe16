"""cluster: distinct mentions' embeddings -> k search, clusters and plots (no models needed).

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/cluster.py \\
        --input out/ --output out-k5/ --k-min 2 --k-max 40 [--metric nmi --dictionary dict.csv]

Reads ``<input>/mention_embeddings`` and ``<input>/mentions`` (written by ``detect`` or ``run``)
and writes ``<output>/k_search``, ``<output>/clusters``, ``<output>/cluster_summary``,
``<output>/aggregates``, ``<output>/cluster_model``, ``<output>/plots`` and ``<output>/summary.json``;
``--output-table-prefix P`` also publishes each table written as the catalog table ``P<name>``.
"""

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import catalog, common, storage
from group_appeal_spark.jobs.transforms import cluster_mentions, cluster_summary
from group_appeal_spark.lib.report import render_report

log = common.log


def build_parser() -> argparse.ArgumentParser:
    return common.job_parser("cluster", __doc__, common.add_input_output_of_a_run, common.add_cluster_args,
                             common.add_common_args)


def run_cluster(spark, config, source: str, timer: common.StageTimer, *, mode: str | None = None,
                bundle=None) -> dict:
    """The driver-side half: k search, k-means, cluster summary, plots; returns the counts for summary.json.

    The counts' ``tables`` lists the tables written (``aggregates`` only when it clustered); the
    callers take it out for the marker and the catalog.

    The summary's stance shares come from ``<source>/mentions``; an older output without that
    table (or without its stance column) gets null shares and a warning, not a failure.
    Whenever it clusters it also writes ``cluster_model/`` (lib's ``ClusterModel``, JSON) for
    ``assign``; the embedder it records is ``bundle``'s (``run``), else the one in
    ``<source>/summary.json`` (``cluster``).
    """
    from group_appeal_spark.jobs.transforms import aggregates as agg
    from group_appeal_spark.jobs.transforms.appeals import carried_columns

    out, fmt, mode = config.output.path, config.output.format, mode or config.output.mode
    embeddings = storage.read_table(spark, storage.join_path(source, "mention_embeddings"), fmt)
    mentions = _read_mentions(spark, storage.join_path(source, "mentions"), fmt)
    documents_path = storage.join_path(source, "documents")
    documents = storage.read_table(spark, documents_path, fmt) if storage.path_exists(spark, documents_path) else None
    # checked before any work: `cluster` knows the carried columns only from its input's tables
    carried = [c for c in (agg.carried_of(documents) if documents is not None else carried_columns(config))
               if mentions is None or c in mentions.columns]
    groups = agg.group_columns(config.output.group_by, carried)
    with timer.stage("cluster"):
        result = cluster_mentions(embeddings, config)
        storage.write_table(result.k_search, storage.join_path(out, "k_search"), fmt, mode)
        storage.write_table(result.clusters, storage.join_path(out, "clusters"), fmt, mode)
        summary = cluster_summary(result.clusters, mentions)
        storage.write_table(summary, storage.join_path(out, "cluster_summary"), fmt, mode)
        model_path = _write_cluster_model(spark, config, source, result, embeddings, summary, bundle) \
            if result.best_k else None
    plots = write_plots(spark, config, result) if config.output.plots and result.best_k else []
    counts = {"chosen_k": result.best_k, "clustering_skipped": result.skipped, "plots": plots,
              "metric": None if config.clustering.n_clusters else config.clustering.metric,
              "cluster_model": model_path}
    written = ["k_search", "clusters", "cluster_summary"]
    with timer.stage("report"):
        aggregates = None
        if result.best_k and mentions is not None:
            table = agg.group_aggregates(mentions, result.clusters, summary, documents, groups)
            storage.write_table(table, storage.join_path(out, "aggregates"), fmt, mode)
            written.append("aggregates")
            aggregates = storage.read_table(spark, storage.join_path(out, "aggregates"), fmt).toPandas()
        facts = {**agg.run_counts(documents, mentions, result.clusters), **counts, "source": source}
        examples = agg.examples_frame(result.clusters, mentions) if result.best_k else None
        page = render_report(facts, result.k_search.toPandas(), summary.toPandas(), aggregates, examples,
                             groups[0] if groups and aggregates is not None else None)
        storage.put_text(spark, page, storage.join_path(out, "report.html"))
    return {**counts, "tables": written}


def _write_cluster_model(spark, config, source, result, embeddings, summary, bundle) -> str:
    """Write ``<output>/cluster_model/`` (keys.json, then model.json) and return its path."""
    import group_appeal_spark
    from group_appeal_spark.jobs.assign import bundle_embedder, bundle_normalizer, input_embedder
    from group_appeal_spark.jobs.transforms.clusters import fitted_cluster_model
    from group_appeal_spark.lib.clustering.model import key_normalisation

    cfg = config.clustering
    selection = {"n_clusters": cfg.n_clusters} if cfg.n_clusters else \
        {"metric": cfg.metric, "k_min": cfg.k_min, "k_max": cfg.k_max, "chosen_k": result.best_k}
    if bundle is not None:
        embedder, normalizer = bundle_embedder(config, bundle), bundle_normalizer(bundle)
    else:
        embedder, normalizer = input_embedder(spark, source), None
    if embedder is None:
        log.warning("cluster model: %s/summary.json records no models.embedder; `assign` will refuse this model",
                    source)
    model = fitted_cluster_model(result, embeddings, summary, selection=selection, embedder=embedder,
                                 key_normalisation=key_normalisation(normalizer),
                                 created_by={"group_appeal_spark": group_appeal_spark.__version__,
                                             "source": source})
    folder = storage.join_path(config.output.path, "cluster_model")
    for name, text in model.to_texts().items():  # model.json last: a half-written folder fails to load
        storage.put_text(spark, text, storage.join_path(folder, name))
    return folder


def _read_mentions(spark, path: str, fmt: str):
    """The mentions table for the stance shares, or None (with a warning) where there is none."""
    if not storage.path_exists(spark, path):
        log.warning("cluster: no mentions table at %s: cluster_summary's stance shares are null", path)
        return None
    mentions = storage.read_table(spark, path, fmt)
    if not {"mention_key", "stance"} <= set(mentions.columns):
        log.warning("cluster: %s has no mention_key and stance columns (it has %s): cluster_summary's stance "
                    "shares are null", path, mentions.columns)
        return None
    return mentions


def write_plots(spark, config, result) -> list[str]:
    from group_appeal_spark.lib.clustering.plots import (
        plot_cluster_boxplot,
        plot_k_scores,
    )

    written = []
    with tempfile.TemporaryDirectory(prefix="gas-plots-") as tmp:
        scores = result.k_search.toPandas()
        made = []
        if len(scores):
            made.append(("k_scores.png", plot_k_scores(scores, result.best_k, Path(tmp) / "k_scores.png")))
        made.append(("clusters.html", plot_cluster_boxplot(result.clusters.toPandas(), Path(tmp) / "clusters.html")))
        for name, path in made:
            if path is not None:
                dest = storage.join_path(config.output.path, "plots", name)
                try:
                    storage.put_file(spark, path, dest)
                except storage.ConnectUnsupported as exc:  # a Connect client cannot upload there
                    log.warning("plot %s not written: %s", name, exc)
                    continue
                written.append(dest)
    return written


# the tables cluster may write (plots/, cluster_model/ and the summary aside); aggregates only when it clusters
TABLES = ("k_search", "clusters", "cluster_summary", "aggregates")


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        config = common.config_from_run_output(args)
        spark = common.build_session(config, "group-appeal-spark cluster", args.master)
        # an interrupted or running detect/run must not be clustered as if it were whole
        storage.check_complete(spark, config.input.path, needs=("mention_embeddings",))
        same = config.input.path.rstrip("/") == (config.output.path or "").rstrip("/")
        replace = catalog.replacing(config)
        catalog.check_targets(spark, config, TABLES, replace=replace)
        if not same:
            storage.check_output_free(spark, config.output.path, config.output.mode)
            storage.mark_started(spark, config.output.path)
        else:
            # the input's marker stops vouching for the cluster tables while they are replaced
            storage.update_marker(spark, config.input.path, remove=TABLES)
        timer = common.StageTimer()
        counts = run_cluster(spark, config, config.input.path, timer)
        written = counts.pop("tables")
        published = catalog.publish(spark, config, written, replace=replace, timer=timer, others=TABLES)
        storage.put_text(spark, common.summary_json({**counts, "source": config.input.path, "catalog_tables": published,
                                                 "stage_seconds": timer.seconds, "config": config.to_dict(),
                                                 **common.run_metadata(spark, config)}),
                    storage.join_path(config.output.path, "cluster_summary.json" if same else "summary.json"))
        if same:
            storage.update_marker(spark, config.output.path, add=written, catalog_tables=published)
        else:
            storage.mark_complete(spark, config.output.path, "cluster", written, source=config.input.path,
                                  catalog_tables=published)
        log.info("cluster: done: chosen k = %s", counts["chosen_k"])

    return common.run_main("cluster", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
