"""cluster: distinct mentions' embeddings -> k search, clusters and plots (no models needed).

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/cluster.py \\
        --input out/ --output out-k5/ --k-min 2 --k-max 40 [--metric nmi --dictionary dict.csv]

Reads ``<input>/mention_embeddings`` and ``<input>/mentions`` (written by ``detect`` or ``run``)
and writes ``<output>/k_search``, ``<output>/clusters``, ``<output>/cluster_summary``,
``<output>/plots`` and ``<output>/summary.json``.
"""

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    try:
        import _bootstrap  # noqa: F401 - a job file of a checkout: use the checkout's package
    except ModuleNotFoundError:
        pass  # the job file alone (cluster deploy mode): the package is the wheel on --py-files

from group_appeal_spark.jobs import common, storage
from group_appeal_spark.jobs.transforms import cluster_mentions, cluster_summary

log = common.log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="group-appeal-spark cluster", description=__doc__.split("\n\n")[0],
        epilog="Output tables and columns: see README.md, section 'Outputs'.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", help="output folder of `detect` or `run` (holds mention_embeddings/)")
    parser.add_argument("--output", help="output folder (may be the same as --input with --overwrite)")
    common.add_cluster_args(parser)
    common.add_common_args(parser)
    return parser


def run_cluster(spark, config, source: str, timer: common.StageTimer, *, mode: str | None = None) -> dict:
    """The driver-side half: k search, k-means, cluster summary, plots; returns the counts for summary.json.

    The summary's stance shares come from ``<source>/mentions``; an older output without that
    table (or without its stance column) gets null shares and a warning, not a failure.
    """
    out, fmt, mode = config.output.path, config.output.format, mode or config.output.mode
    embeddings = storage.read_table(spark, storage.join_path(source, "mention_embeddings"), fmt)
    mentions = _read_mentions(spark, storage.join_path(source, "mentions"), fmt)
    with timer.stage("cluster"):
        result = cluster_mentions(embeddings, config)
        storage.write_table(result.k_search, storage.join_path(out, "k_search"), fmt, mode)
        storage.write_table(result.clusters, storage.join_path(out, "clusters"), fmt, mode)
        storage.write_table(cluster_summary(result.clusters, mentions), storage.join_path(out, "cluster_summary"),
                            fmt, mode)
    plots = write_plots(spark, config, result) if config.output.plots and result.best_k else []
    return {"chosen_k": result.best_k, "clustering_skipped": result.skipped, "plots": plots,
            "metric": None if config.clustering.n_clusters else config.clustering.metric}


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
                storage.put_file(spark, path, dest)
                written.append(dest)
    return written


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        if args.input:
            args.set.append(f"input.path={args.input}")
        config = common.config_from_args(args)
        spark = common.build_session(config, "group-appeal-spark cluster", args.master)
        if not config.input.path:
            from group_appeal_spark.lib.errors import InputError

            raise InputError("input: give --input, the output folder of `detect` or `run`")
        same = config.input.path.rstrip("/") == (config.output.path or "").rstrip("/")
        if not same:
            storage.check_output_free(spark, config.output.path, config.output.mode)
        timer = common.StageTimer()
        counts = run_cluster(spark, config, config.input.path, timer)
        storage.put_text(spark, common.summary_json({**counts, "source": config.input.path,
                                                 "stage_seconds": timer.seconds, "config": config.to_dict(),
                                                 **common.run_metadata(spark, config)}),
                    storage.join_path(config.output.path, "cluster_summary.json" if same else "summary.json"))
        log.info("cluster: done: chosen k = %s", counts["chosen_k"])

    return common.run_main("cluster", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
