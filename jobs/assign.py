"""assign: distinct mentions' embeddings -> the clusters of a saved cluster model (no refit, no models needed).

    spark-submit --py-files dist/group_appeal_spark-0.1.0-py3-none-any.whl jobs/assign.py \\
        --input out-2024/ --cluster-model out-2023/cluster_model --output out-2024-assigned/

Reads ``<input>/mention_embeddings`` and ``<input>/summary.json`` (written by ``detect`` or
``run``) and the ``cluster_model/`` folder written by ``run`` or ``cluster``; refuses a model made
with another embedder than the input, then writes ``<output>/clusters`` (each mention's cluster
among the model's, by the nearest saved centroid; a mention key the model was fitted on keeps
its cluster id) and ``<output>/summary.json``; ``--output-table-prefix P`` also publishes
``clusters`` as the catalog table ``P`` + ``clusters``.
"""

import argparse
import contextlib
import json
import sys

if __package__ in (None, ""):  # run as a file: a checkout's own package, else the wheel on --py-files
    with contextlib.suppress(ModuleNotFoundError):
        import _bootstrap  # noqa: F401 - absent when the job file runs alone (cluster deploy mode)

from group_appeal_spark.jobs import catalog, common, storage
from group_appeal_spark.jobs.transforms import assign_clusters
from group_appeal_spark.lib.clustering.model import (
    KEYS_FILE,
    MODEL_FILE,
    ClusterModel,
    ClusterModelError,
    check_same_embedder,
    embedder_record,
)
from group_appeal_spark.lib.errors import InputError

log = common.log


def build_parser() -> argparse.ArgumentParser:
    def add_cluster_model(parser):
        parser.add_argument("--cluster-model", help="cluster_model/ folder written by `run` or `cluster`")

    return common.job_parser("assign", __doc__, common.add_input_output_of_a_run, add_cluster_model,
                             common.add_common_args)


def read_cluster_model(spark, folder: str) -> ClusterModel:
    """The validated cluster model in ``folder`` (any filesystem Spark reaches), or ClusterModelError."""
    if not folder:
        raise ClusterModelError("--cluster-model: give the cluster_model/ folder written by `run` or `cluster`")
    if not storage.path_exists(spark, folder):
        raise ClusterModelError(f"cluster model {folder} does not exist; give the cluster_model/ folder written "
                                f"by `run` or `cluster`")
    texts = {}
    for name in (MODEL_FILE, KEYS_FILE):
        path = storage.join_path(folder, name)
        texts[name] = storage.get_text(spark, path) if storage.path_exists(spark, path) else None
    return ClusterModel.from_texts(texts, folder)


def input_embedder(spark, source: str) -> dict | None:
    """The embedder identities in ``<source>/summary.json`` (``models.embedder``), or None."""
    path = storage.join_path(source, "summary.json")
    if not storage.path_exists(spark, path):
        return None
    try:
        data = json.loads(storage.get_text(spark, path))
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); give the output of `detect` or `run`") from None
    return embedder_record(data.get("models") if isinstance(data, dict) else None)


def bundle_embedder(config, bundle) -> dict | None:
    """The embedder identities of this run's resolved models (as summary.json records them)."""
    from group_appeal_spark.lib.models.bundle import model_provenance

    sources = config.model_sources()
    return embedder_record({role: model_provenance(sources[role], bundle.folders[role])
                            for role in ("embedder", "embedder_config") if role in bundle.folders})


def bundle_normalizer(bundle):
    """The embedder tokenizer's normalizer as JSON data (what MentionKeyer applies), or None."""
    try:
        from group_appeal_spark.lib.models.loaders import load_tokenizer

        tokenizer = load_tokenizer(bundle.folders["embedder"], "embedder tokenizer")
        return json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer")
    except Exception as exc:  # a record, not a requirement: the embedder identity decides
        log.warning("cluster model: could not record the embedder tokenizer's normalizer: %s", exc)
        return None


def load_checked_model(spark, folder: str, embedder: dict | None, input_where: str) -> ClusterModel:
    """The cluster model in ``folder``, refused unless it was made with the embedder ``embedder``."""
    model = read_cluster_model(spark, folder)
    check_same_embedder(model.embedder, embedder, model_where=f"cluster model {folder}", input_where=input_where)
    return model


def run_assign(spark, config, source: str, model: ClusterModel, timer: common.StageTimer, *,
               mode: str | None = None) -> dict:
    """Assign ``<source>/mention_embeddings`` to the model's clusters and write clusters/; returns summary.json counts.

    The counts' ``tables`` lists the tables written; the callers take it out for the marker and the catalog.
    """
    out, fmt, mode = config.output.path, config.output.format, mode or config.output.mode
    embeddings = storage.read_table(spark, storage.join_path(source, "mention_embeddings"), fmt)
    with timer.stage("assign"):
        storage.write_table(assign_clusters(embeddings, model, config), storage.join_path(out, "clusters"), fmt, mode)
    n = storage.read_table(spark, storage.join_path(out, "clusters"), fmt).count()
    log.info("assign: %s distinct mentions put in the model's %d clusters", f"{n:,}", model.k)
    return {"chosen_k": model.k, "clustering_skipped": None, "plots": [], "metric": None,
            "assigned_unique_mentions": n, "cluster_model_selection": model.selection, "tables": ["clusters"]}


def main(argv=None) -> int:
    parser = build_parser()

    def body(args):
        config = common.config_from_run_output(args)
        if not args.cluster_model:
            raise ClusterModelError("--cluster-model: give the cluster_model/ folder written by `run` or `cluster`")
        spark = common.build_session(config, "group-appeal-spark assign", args.master)
        source = config.input.path
        # an interrupted or running detect/run must not be assigned as if it were whole
        storage.check_complete(spark, source, needs=("mention_embeddings",))
        model = load_checked_model(spark, args.cluster_model, input_embedder(spark, source),
                                   f"the input {source}")
        same = source.rstrip("/") == (config.output.path or "").rstrip("/")
        replace = catalog.replacing(config)
        catalog.check_targets(spark, config, ("clusters",), replace=replace)
        if not same:
            storage.check_output_free(spark, config.output.path, config.output.mode)
            storage.mark_started(spark, config.output.path)
        elif config.output.mode == "error":
            raise InputError(f"output: --output is --input ({source}); pass --overwrite to replace its clusters/")
        else:
            # the input's marker stops vouching for clusters/ while it is replaced
            storage.update_marker(spark, source, remove=("clusters",))
        timer = common.StageTimer()
        counts = run_assign(spark, config, source, model, timer)
        written = counts.pop("tables")
        published = catalog.publish(spark, config, written, replace=replace, timer=timer)
        storage.put_text(spark, common.summary_json({**counts, "source": source, "cluster_model": args.cluster_model,
                                                     "catalog_tables": published,
                                                     "stage_seconds": timer.seconds, "config": config.to_dict(),
                                                     **common.run_metadata(spark, config)}),
                         storage.join_path(config.output.path, "assign_summary.json" if same else "summary.json"))
        if same:
            storage.update_marker(spark, source, add=written, catalog_tables=published)
        else:
            storage.mark_complete(spark, config.output.path, "assign", written, source=source,
                                  catalog_tables=published)
        log.info("assign: done")

    return common.run_main("assign", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
