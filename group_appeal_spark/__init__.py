"""group-appeal-spark: distributed detection, stance and clustering of social group appeals.

The code lives in the top-level folders ``lib/`` (Spark-free core), ``udfs/`` (pandas UDF
factories) and ``jobs/`` (entry points). An installed wheel maps them to the subpackages
``group_appeal_spark.lib``, ``group_appeal_spark.udfs`` and ``group_appeal_spark.jobs``; in a
source checkout the same names resolve through the package path extended below, so
``spark-submit jobs/run.py`` and the installed console script run the same code.
"""

import os as _os

__version__ = "0.1.0"

_checkout_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
# Only a source checkout has pyproject.toml beside this package and no subpackages inside it;
# an installed wheel carries lib/udfs/jobs inside this folder and never takes this branch.
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "lib")) and _os.path.isfile(
    _os.path.join(_checkout_root, "pyproject.toml")
):
    __path__.append(_checkout_root)  # noqa: F821 - __path__ is defined for packages

_API = {
    "detect_appeals": "group_appeal_spark.jobs.transforms",
    "embed_mentions": "group_appeal_spark.jobs.transforms",
    "cluster_mentions": "group_appeal_spark.jobs.transforms",
    "assign_clusters": "group_appeal_spark.jobs.transforms",
    "watch_progress": "group_appeal_spark.jobs.progress",
    "stream_appeals": "group_appeal_spark.jobs.pipeline.stream",
}


def __getattr__(name):
    # The notebook API imports pyspark; keep it lazy so that ``group_appeal_spark.lib`` stays
    # importable on a machine without Spark.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'group_appeal_spark' has no attribute {name!r}")
