"""Assigning distinct mentions to the clusters of a saved cluster model: no refit, no models needed.

Used by the ``assign`` job and by ``run --cluster-model``.
"""

from __future__ import annotations

import logging

from group_appeal_spark.jobs.pipeline import derived
from group_appeal_spark.jobs.pipeline.cluster_model import input_embedder, load_checked_model
from group_appeal_spark.jobs.storage.filesystem import join_path
from group_appeal_spark.jobs.storage.tables import read_table, write_table
from group_appeal_spark.jobs.timing import StageTimer
from group_appeal_spark.jobs.transforms import assign_clusters
from group_appeal_spark.lib.clustering.model import ClusterModel, ClusterModelError
from group_appeal_spark.lib.errors import InputError

log = logging.getLogger("group_appeal_spark")

TABLES = ("clusters",)


def run_assign(spark, config, embeddings, model: ClusterModel, timer: StageTimer, *,
               mode: str | None = None) -> dict:
    """Assign ``embeddings`` (a mention_embeddings table) to the model's clusters and write clusters/;
    returns summary.json counts.

    The counts' ``tables`` lists the tables written; the callers take it out for the marker and the catalog.
    """
    out, fmt, mode = config.output.path, config.output.format, mode or config.output.mode
    with timer.stage("assign"):
        write_table(assign_clusters(embeddings, model, config), join_path(out, "clusters"), fmt, mode)
    n = read_table(spark, join_path(out, "clusters"), fmt).count()
    log.info("assign: %s distinct mentions put in the model's %d clusters", f"{n:,}", model.k)
    return {"chosen_k": model.k, "clustering_skipped": None, "plots": [], "metric": None,
            "assigned_unique_mentions": n, "cluster_model_selection": model.selection, "tables": ["clusters"]}



def check_given(cluster_model: str | None) -> None:
    if not cluster_model:
        raise ClusterModelError("--cluster-model: give the cluster_model/ folder written by `run` or `cluster`")


def assign_job(spark, config, cluster_model: str) -> None:
    """The ``assign`` job: ``--input``'s mentions into the clusters of ``cluster_model``, into ``--output``."""
    source = config.input.path
    fmt = derived.check_source(spark, config)
    model = load_checked_model(spark, cluster_model, input_embedder(spark, source), f"the input {source}")
    if derived.into_input(config) and config.output.mode == "error":
        raise InputError(f"output: --output is --input ({source}); pass --overwrite to replace its clusters/")
    derived.open_output(spark, config, TABLES)
    timer = StageTimer()
    embeddings = read_table(spark, join_path(source, "mention_embeddings"), fmt)
    counts = run_assign(spark, config, embeddings, model, timer)
    derived.close_output(spark, config, "assign", counts, timer, cluster_model=cluster_model)
    log.info("assign: done")
