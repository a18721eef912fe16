"""Getting the driver's model folders to the executors."""

from __future__ import annotations

import tempfile

from group_appeal_spark.lib.models.bundle import (
    ModelBundle,
    bundle_name,
    rebuild_shipped,
    stage_for_shipping,
)

# Host names of a Connect server on this machine (``sc://localhost:15002``...).
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM on this side)."""
    # By class, not pyspark.sql.utils.is_remote(): that reads a process-wide flag, and importing
    # pyspark.sql.connect to test isinstance needs the client's gRPC packages.
    return type(spark).__module__.startswith("pyspark.sql.connect")


def connect_server_is_local(spark) -> bool:
    """Whether a Connect session's server runs on this machine with a ``local[...]`` master.

    Then the server's executors see this machine's files under the same paths. A server reached
    through a tunnel on localhost looks local too; give ``models.ship: files`` there.
    """
    try:
        if spark.client.host not in _LOOPBACK:
            return False
        return str(spark.conf.get("spark.master", "") or "").startswith("local")
    except Exception:  # a server that hides spark.master (serverless): not ours, so not local
        return False


# Folders that every node of a Databricks cluster mounts under the same path.
SHARED_STORAGE_PREFIXES = ("/Volumes/", "/dbfs/", "dbfs:/")


def on_shared_storage(folder) -> bool:
    """Whether a model folder is on storage that every executor reads under the same path."""
    return str(folder).startswith(SHARED_STORAGE_PREFIXES)


def ship_models(spark, bundle: ModelBundle, mode: str) -> ModelBundle:
    """Make the bundle's folders reachable from every executor; returns the bundle to capture.

    ``path``: executors read the driver's folders (local mode, or a filesystem every node
    mounts). ``files``: the folders are staged once and shipped file by file, so each executor
    fetches one copy to its local disk and all its Python workers memory-map the same files:
    ``SparkContext.addFile`` on a classic session; on Spark Connect, where the client has no
    SparkContext, ``spark.addArtifacts(..., file=True)`` uploads them to the server (once per
    Connect session: artifacts belong to the session), and executors find them with
    ``SparkFiles.get`` in the session's own files folder. ``auto``: ``path`` when every model
    folder is on storage every node mounts (Databricks ``/Volumes/...`` and ``/dbfs/...``, see
    :func:`on_shared_storage`) or for a ``local[...]`` master (on Connect: a ``local[...]``
    server on this machine, see :func:`connect_server_is_local`), else ``files``.
    """
    import dataclasses

    connect = is_connect(spark)
    if mode == "auto":
        if all(on_shared_storage(folder) for folder in bundle.folders.values()):
            mode = "path"  # copying gigabytes through every executor's local disk buys nothing
        else:
            local = connect_server_is_local(spark) if connect else spark.sparkContext.master.startswith("local")
            mode = "path" if local else "files"
    if mode == "path":
        return bundle
    owner = spark.session_id if connect else spark.sparkContext.applicationId
    key = (owner, bundle_name(bundle))
    if key not in _SHIPPED:
        # once per application (Connect: per session): SparkContext refuses a second file under
        # the same name. Files one by one: a cluster master refuses a local directory
        # (UNSUPPORTED_ADD_FILE), and a Connect artifact is a file.
        staged, manifest = stage_for_shipping(bundle, tempfile.mkdtemp(prefix="gas-ship-"))
        paths = [str(staged / flat) for _, _, flat in manifest]
        if connect:
            spark.addArtifacts(*paths, file=True)
        else:
            for path in paths:
                spark.sparkContext.addFile(path)
        _SHIPPED[key] = manifest
    return dataclasses.replace(bundle, shipped_name=key[1], shipped_files=_SHIPPED[key])


# (application or Connect session id, bundle name) -> the manifest of the files added under that name
_SHIPPED: dict = {}


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
