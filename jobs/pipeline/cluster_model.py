"""The saved cluster model (``cluster_model/``): read and checked against an embedder, or written.

``run`` and ``cluster`` write it whenever they cluster; ``assign`` and ``run --cluster-model``
read it, refusing a model made with another embedder than the mentions'.
"""

from __future__ import annotations

import json
import logging

from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.lib.clustering.model import (
    KEYS_FILE,
    MODEL_FILE,
    ClusterModel,
    ClusterModelError,
    check_same_embedder,
    embedder_record,
)
from group_appeal_spark.lib.errors import InputError

log = logging.getLogger("group_appeal_spark")

# MLflow model URIs --cluster-model also takes: a registered version, or a run's logged model
MODEL_URIS = ("models:/", "runs:/")


def logged_cluster_model(uri: str) -> ClusterModel:
    """The cluster model of an MLflow pyfunc model (``models:/name/3``), read from its JSON files."""
    import os

    from group_appeal_spark.jobs.tracking import HTTP_ENV

    for key, value in HTTP_ENV.items():  # a registry that is down fails in seconds, not minutes
        os.environ.setdefault(key, value)
    try:
        from group_appeal_spark.ml.pyfunc import load_logged_cluster_model
    except ImportError as exc:
        raise ClusterModelError(f"--cluster-model {uri}: an MLflow model URI needs mlflow "
                                f"(pip install 'group-appeal-spark[mlflow]'): {exc}") from None
    try:
        return load_logged_cluster_model(uri)
    except ClusterModelError:
        raise
    except Exception as exc:  # MLflow's own errors: no such model or version, no server, no permission
        raise ClusterModelError(f"--cluster-model {uri}: {' '.join(str(exc).split())[:300]}") from None


def read_cluster_model(spark, folder: str) -> ClusterModel:
    """The validated cluster model in ``folder`` (any filesystem Spark reaches), or ClusterModelError."""
    if not folder:
        raise ClusterModelError("--cluster-model: give the cluster_model/ folder written by `run` or `cluster`")
    if folder.startswith(MODEL_URIS):
        return logged_cluster_model(folder)
    fs = filesystem(spark)
    if not fs.exists(folder):
        raise ClusterModelError(f"cluster model {folder} does not exist; give the cluster_model/ folder written "
                                f"by `run` or `cluster`")
    texts = {}
    for name in (MODEL_FILE, KEYS_FILE):
        path = join_path(folder, name)
        texts[name] = fs.read_text(path) if fs.exists(path) else None
    return ClusterModel.from_texts(texts, folder)


def input_embedder(spark, source: str) -> dict | None:
    """The embedder identities in ``<source>/summary.json`` (``models.embedder``), or None."""
    fs, path = filesystem(spark), join_path(source, "summary.json")
    if not fs.exists(path):
        return None
    try:
        data = json.loads(fs.read_text(path))
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); give the output of `detect` or `run`") from None
    return embedder_record(data.get("models") if isinstance(data, dict) else None)


def bundle_embedder(config, bundle) -> dict | None:
    """The embedder identities of this run's resolved models (as summary.json records them)."""
    from group_appeal_spark.lib.models.bundle import model_provenance

    sources = config.model_sources()
    return embedder_record({role: model_provenance(sources[role], bundle.folders[role])
                            for role in ("embedder", "embedder_config") if role in bundle.folders})


# embedder folder -> the normalizer read in a background thread (prefetch_normalizer)
_PREFETCHED: dict = {}


def prefetch_normalizer(bundle) -> None:
    """Start reading the embedder tokenizer's normalizer in a background thread.

    Loading a tokenizer on the driver imports transformers' tokenizer modules (about 3 s): `run`
    starts it when the job starts, so the cluster model does not wait for it at the end.
    """
    import concurrent.futures

    folder = bundle.folders.get("embedder")
    if folder is not None and folder not in _PREFETCHED:
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gas-normalizer")
        _PREFETCHED[folder] = pool.submit(_read_normalizer, bundle)
        pool.shutdown(wait=False)


def bundle_normalizer(bundle):
    """The embedder tokenizer's normalizer as JSON data (what MentionKeyer applies), or None."""
    future = _PREFETCHED.pop(bundle.folders.get("embedder"), None)
    return future.result() if future is not None else _read_normalizer(bundle)


def _read_normalizer(bundle):
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



def write_cluster_model(spark, config, source, result, embeddings, summary, bundle) -> str:
    """Write ``<output>/cluster_model/`` (keys.json, then model.json) and return its path."""
    import group_appeal_spark
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
    fs, folder = filesystem(spark), join_path(config.output.path, "cluster_model")
    for name, text in model.to_texts().items():  # model.json last: a half-written folder fails to load
        fs.write_text(text, join_path(folder, name))
    return folder

