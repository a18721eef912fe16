"""The whole pipeline, as the ``run`` job does it: the models' half, then clusters (or a saved model's)."""

from __future__ import annotations

import logging

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.metadata import write_summary
from group_appeal_spark.jobs.pipeline import assign, cluster, detect
from group_appeal_spark.jobs.pipeline.cluster_model import bundle_embedder, load_checked_model, prefetch_normalizer
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.lib.config import group_columns
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.testing.smoke import uses_tiny_models
from group_appeal_spark.udfs.hooks import UdfHooks

log = logging.getLogger("group_appeal_spark")


def run_tables(cluster_model: str | None) -> tuple[str, ...]:
    """Every table a run may write (checked against the catalog with ``--output-table-prefix``)."""
    return (*detect.TABLES, *(cluster.TABLES if cluster_model is None else assign.TABLES))


def run_job(spark, config, bundle: ModelBundle, timer: StageTimer, *, cluster_model: str | None = None,
            resume: bool = False, hooks: UdfHooks | None = None) -> None:
    """The ``run`` job after its start-up checks; ``cluster_model``: assign to it instead of clustering."""
    if resume and detect.finished_output(spark, config, bundle, "run"):
        return
    group_columns(config.output.group_by, config.input.carried)  # run carries only what --carry-cols names
    # a bad or foreign cluster model stops the job here, before the models run
    model = None if cluster_model is None else load_checked_model(
        spark, cluster_model, bundle_embedder(config, bundle), "this run's embedder")
    if model is None:
        prefetch_normalizer(bundle)  # for the cluster model, read while the models run
    counts = detect.run_detect(spark, config, bundle, timer, resume=resume, hooks=hooks)
    mode = "overwrite" if resume else None
    tables = detect.work_tables(spark, config)  # typed, whatever output.format
    if model is None:
        counts.update(cluster.run_cluster(spark, config, config.output.path, tables, timer, mode=mode, bundle=bundle,
                                          corpus=config.input.table or config.input.path))
    else:
        counts.update(assign.run_assign(spark, config, tables["mention_embeddings"], model, timer, mode=mode))
    written = (*detect.TABLES, *counts.pop("tables"))  # the cluster half's: aggregates may be skipped
    # the folder's tables are complete: publish them before summary.json, which records them
    published = catalog.publish(spark, config, written, replace=catalog.replacing(config, resume), timer=timer,
                                others=run_tables(cluster_model))
    write_summary(spark, config, counts, timer, published=published, bundle=bundle, job="run")
    detect.finish_output(spark, config, bundle, "run", written, published)
    log.info("run: done: %s documents, %s mentions (%s distinct), %s clusters; results in %s: open report.html "
             "first, then summary.json and the tables (docs/outputs.md)%s", counts["input_rows"], counts["mentions"],
             counts["unique_mentions"], counts.get("chosen_k"), config.output.path,
             "; SMOKE TEST: tiny random models, meaningless numbers" if uses_tiny_models(bundle.folders) else "")
