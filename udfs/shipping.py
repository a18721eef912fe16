"""Getting the driver's model folders to the executors."""

from __future__ import annotations

import tempfile

from group_appeal_spark.lib.models.bundle import (
    ModelBundle,
    bundle_name,
    rebuild_shipped,
    stage_for_shipping,
)


def ship_models(spark, bundle: ModelBundle, mode: str) -> ModelBundle:
    """Make the bundle's folders reachable from every executor; returns the bundle to capture.

    ``path``: executors read the driver's folders (local mode, or a filesystem every node
    mounts). ``files``: the folders are staged once and added with ``SparkContext.addFile``, so
    each executor fetches one copy to its local disk and all its Python workers memory-map the
    same files. ``auto``: ``path`` for a ``local[...]`` master, else ``files``.
    """
    import dataclasses

    sc = spark.sparkContext
    if mode == "auto":
        mode = "path" if sc.master.startswith("local") else "files"
    if mode == "path":
        return bundle
    key = (sc.applicationId, bundle_name(bundle))
    if key not in _SHIPPED:
        # once per application: SparkContext refuses a second file under the same name. Files
        # one by one: a cluster master refuses a local directory (UNSUPPORTED_ADD_FILE).
        staged, manifest = stage_for_shipping(bundle, tempfile.mkdtemp(prefix="gas-ship-"))
        for _, _, flat in manifest:
            sc.addFile(str(staged / flat))
        _SHIPPED[key] = manifest
    return dataclasses.replace(bundle, shipped_name=key[1], shipped_files=_SHIPPED[key])


# (application id, bundle name) -> the manifest of the files added under that name
_SHIPPED: dict = {}


def shipped_root(bundle: ModelBundle) -> str | None:
    """On an executor: the local folder holding the shipped models, or None when not shipped."""
    if bundle.shipped_name is None:
        return None
    from pyspark import SparkFiles

    return str(rebuild_shipped(SparkFiles.getRootDirectory(), bundle.shipped_name, bundle.shipped_files,
                               SparkFiles.get))
