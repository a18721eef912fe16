"""The cluster half as a Spark ML Estimator: ``MentionClusterer`` fits a ``MentionClusterModel``.

``fit`` runs the notebook API's :func:`cluster_mentions` (the k search and count-weighted
k-means of the jobs) and keeps lib's :class:`ClusterModel`, as ``run`` and ``cluster`` write it to
``cluster_model/``; the fitted model assigns like :func:`assign_clusters`. Saved, the model is
its Params' metadata plus a ``cluster_model/`` folder of the same two JSON files (never a pickle),
which ``assign --cluster-model`` and :func:`assign_clusters` read as they are.
"""

from __future__ import annotations

import logging

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame

import group_appeal_spark
from group_appeal_spark.jobs.pipeline.cluster_model import (
    bundle_embedder,
    bundle_normalizer,
    read_cluster_model,
)
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.transforms.clusters import (
    assign_clusters,
    cluster_mentions,
    cluster_summary,
    fitted_cluster_model,
)
from group_appeal_spark.lib.clustering.model import ClusterModel, key_normalisation
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.ml.params import ConfigParam, HasConfig, with_config_params
from group_appeal_spark.ml.stages import MODEL_PARAMS

log = logging.getLogger("group_appeal_spark")

# the folder inside a saved MentionClusterModel: what `run` writes as <output>/cluster_model/
MODEL_FOLDER = "cluster_model"


def fit_selection(cfg, best_k: int) -> dict:
    """How k was chosen, as ``cluster_model/model.json`` records it."""
    if cfg.n_clusters:
        return {"n_clusters": cfg.n_clusters}
    return {"metric": cfg.metric, "k_min": cfg.k_min, "k_max": cfg.k_max, "chosen_k": best_k}


def _embedder_facts(config):
    """(embedder identity, tokenizer normalizer) of the config's embedder, as ``run`` records them; a
    warning and (None, None) where it cannot be resolved here."""
    from group_appeal_spark.lib.models.bundle import ModelBundle
    from group_appeal_spark.lib.models.hub import resolve_model_dir

    try:
        sources = config.model_sources()
        local_only = True if config.models.offline else None
        folders = {role: str(resolve_model_dir(sources[role], cache_dir=config.models.cache_dir,
                                               local_files_only=local_only))
                   for role in ("embedder", "embedder_config")}
        bundle = ModelBundle(folders=folders, ids={})
        return bundle_embedder(config, bundle), bundle_normalizer(bundle)
    except Exception as exc:  # a record for `assign`'s check, not needed to fit
        log.warning("MentionClusterer: the embedder could not be resolved to record its identity (%s); "
                    "`assign` will refuse this model", exc)
        return None, None


CLUSTER_PARAMS = (
    MODEL_PARAMS[0],  # modelsDir: whose embedder the model records
    ConfigParam("kMin", "clustering.k_min", "smallest k of the search"),
    ConfigParam("kMax", "clustering.k_max", "largest k of the search, inclusive"),
    ConfigParam("nClusters", "clustering.n_clusters", "a fixed k: skips the search"),
    ConfigParam("metric", "clustering.metric", "silhouette | nmi (needs dictionary)"),
    ConfigParam("dictionary", "clustering.dictionary", "category dictionary CSV"),
    ConfigParam("randomState", "clustering.random_state", "seed of k-means and of the silhouette sample"),
    ConfigParam("silhouetteExactMax", "clustering.silhouette_exact_max", "up to this many mentions exact"),
    ConfigParam("silhouetteSampleSize", "clustering.silhouette_sample_size", "the sample above it"),
    ConfigParam("backend", "clustering.backend", "driver | spark | auto"),
    ConfigParam("sparkAbove", "clustering.spark_above", "distinct mentions above which auto uses Spark ML"),
)


@with_config_params(*CLUSTER_PARAMS)
class MentionClusterer(Estimator, HasConfig, DefaultParamsReadable, DefaultParamsWritable):
    """Embeddings in (``mention_key``, ``mention``, ``count``, ``embedding``: MentionEmbedder's
    output or a ``mention_embeddings`` table); ``fit`` gives a :class:`MentionClusterModel`."""

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs):
        """Set any of the Params by name (checked together)."""
        return self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> MentionClusterModel:
        config = self.job_config()
        result = cluster_mentions(dataset, config)
        if not result.best_k:
            raise InputError(f"MentionClusterer: nothing to fit: {result.skipped}")
        # labels as run's cluster_summary gives them (they do not depend on the stance shares)
        summary = cluster_summary(result.clusters)
        embedder, normalizer = _embedder_facts(config)
        selection = fit_selection(config.clustering, result.best_k)
        fitted = fitted_cluster_model(result, dataset, summary, selection=selection, embedder=embedder,
                                      key_normalisation=key_normalisation(normalizer),
                                      created_by={"group_appeal_spark": group_appeal_spark.__version__,
                                                  "source": "group_appeal_spark.ml.MentionClusterer"})
        model = self._copyValues(MentionClusterModel(fitted))
        model.k_search = result.k_search
        model.fit_clusters = result.clusters
        return model


@with_config_params(*CLUSTER_PARAMS)  # the estimator's Params, copied to the model as Spark's models do
class MentionClusterModel(Model, HasConfig, MLReadable, MLWritable):
    """A fitted cluster model: assigns as :func:`assign_clusters` does (``mention_key``,
    ``mention``, ``count``, ``cluster_id``, ``distance_to_centroid``, ``label``).

    ``cluster_model`` is lib's :class:`ClusterModel`; after ``fit`` (not after a load) also
    ``k_search`` and ``fit_clusters``, the fit's k_search and clusters tables.
    """

    def __init__(self, cluster_model: ClusterModel | None = None):
        super().__init__()
        self.cluster_model = cluster_model
        self.k_search = None
        self.fit_clusters = None

    @classmethod
    def from_folder(cls, spark, folder: str) -> MentionClusterModel:
        """The model of a ``cluster_model/`` folder written by ``run`` or ``cluster`` (any filesystem)."""
        return cls(read_cluster_model(spark, folder))

    @property
    def k(self) -> int:
        return self.cluster_model.k

    @property
    def labels(self) -> tuple:
        return self.cluster_model.labels

    def clusterCenters(self):
        """(k, n_features) float32 centroids, row i is cluster id i."""
        return self.cluster_model.centroids

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return assign_clusters(dataset, self.cluster_model)

    def write(self) -> MLWriter:
        return _ClusterModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _ClusterModelReader(cls)


class _ClusterModelWriter(MLWriter):
    """Params metadata, then ``cluster_model/`` (keys.json, then model.json, as ``run`` writes them)."""

    def __init__(self, instance: MentionClusterModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession,
                                         extraMetadata={"clusterModel": MODEL_FOLDER})
        fs = filesystem(self.sparkSession)
        for name, text in self.instance.cluster_model.to_texts().items():
            fs.write_text(text, join_path(path, MODEL_FOLDER, name))


class _ClusterModelReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> MentionClusterModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        model = self.cls(read_cluster_model(self.sparkSession, join_path(path, metadata.get("clusterModel",
                                                                                              MODEL_FOLDER))))
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model
