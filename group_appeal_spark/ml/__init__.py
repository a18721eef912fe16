"""Spark ML pipeline stages over the notebook API: the same values, as ``pyspark.ml`` stages.

>>> from pyspark.ml import Pipeline
>>> from group_appeal_spark.ml import AppealDetector, MentionEmbedder, MentionClusterer
>>> pipeline = Pipeline(stages=[AppealDetector(textCol="text"), MentionEmbedder(), MentionClusterer(kMax=20)])
>>> model = pipeline.fit(docs)            # detects, embeds, searches k and fits k-means
>>> model.write().overwrite().save("models/appeals")   # Params + cluster_model/ JSON, no pickle

Every setting is a typed Param checked by the job configuration (``lib/config.py``); keys
without a Param of their own go in ``settings`` (dotted keys, like ``--set``). The stages import
pyspark when first used: ``group_appeal_spark.ml.pyfunc`` (the MLflow model) loads without it.
"""

_STAGES = {
    "AppealDetector": "group_appeal_spark.ml.stages",
    "MentionEmbedder": "group_appeal_spark.ml.stages",
    "MentionClusterer": "group_appeal_spark.ml.clustering",
    "MentionClusterModel": "group_appeal_spark.ml.clustering",
}
__all__ = list(_STAGES)


def __getattr__(name):
    if name in _STAGES:
        import importlib

        return getattr(importlib.import_module(_STAGES[name]), name)
    raise AttributeError(f"module 'group_appeal_spark.ml' has no attribute {name!r}")
