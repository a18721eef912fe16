"""Getting the driver's model folders to the executors."""

from __future__ import annotations

import tempfile

from group_appeal_spark.lib.bundle import ModelBundle, bundle_name, stage_for_shipping


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
        # once per application: SparkContext refuses a second folder under the same name
        staged = stage_for_shipping(bundle, tempfile.mkdtemp(prefix="gas-ship-"))
        sc.addFile(str(staged), recursive=True)
        _SHIPPED[key] = staged.name
    return dataclasses.replace(bundle, shipped_name=_SHIPPED[key])


# (application id, bundle name) -> the name the staged folder was added under
_SHIPPED: dict = {}


def shipped_root(bundle: ModelBundle) -> str | None:
    """On an executor: the local folder holding the shipped models, or None when not shipped."""
    if bundle.shipped_name is None:
        return None
    from pyspark import SparkFiles

    return SparkFiles.get(bundle.shipped_name)
