"""On an executor: where the models the driver shipped (``jobs/executors.py`` ``ship_models``) are."""

from __future__ import annotations

from group_appeal_spark.lib.models.bundle import ModelBundle, rebuild_shipped


def shipped_root(bundle: ModelBundle) -> str | None:
    """On an executor: the local folder holding the shipped models, or None when not shipped.

    ``SparkFiles`` points at the application's files folder, or for a Spark Connect session at
    that session's artifact folder; either way the files keep their flat shipped names.
    """
    if bundle.shipped_name is None:
        return None
    from pyspark import SparkFiles

    return str(rebuild_shipped(SparkFiles.getRootDirectory(), bundle.shipped_name, bundle.shipped_files,
                               SparkFiles.get))
