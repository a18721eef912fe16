"""What the executors need before any model work: this package and the models, shipped; a probe.

Spark puts only ``.zip``, ``.egg`` and ``.jar`` files of ``--py-files`` on the executors' Python
path, and nothing of a checkout or of the driver's site-packages reaches them at all. So the
driver ships the code it runs itself: a wheel it imports from is shipped again under a ``.zip``
name; a checkout or an installed package folder is zipped once per application in the wheel's
own layout. A cheap probe task then imports the package on the executors and fails the job in
seconds, with one line naming the fix, where they still cannot import it, run another version,
or lack a dependency. The model folders the driver resolved are shipped file by file
(:func:`ship_models`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile

from group_appeal_spark.jobs.package_archive import (
    archive_holding,
    package_root,
    zip_package,
)
from group_appeal_spark.jobs.session import connect_server_is_local, is_connect
from group_appeal_spark.lib.errors import GroupAppealSparkError
from group_appeal_spark.lib.models.bundle import (
    ModelBundle,
    bundle_name,
    stage_for_shipping,
)

log = logging.getLogger("group_appeal_spark")

# What the executors import besides pyspark (the model stages, Arrow batches, clustering helpers).
EXECUTOR_DEPENDENCIES = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow",
                         "yaml")

HOW_TO_SHIP = ("install group-appeal-spark on every node, or give spark-submit --py-files "
               "dist/group_appeal_spark-<version>-py3-none-any.whl (docs/deploying.md: 'On a cluster with spark-submit')")


class ExecutorSetupError(GroupAppealSparkError):
    """The executors cannot run this package's tasks; the message says what is missing and the fix."""


def executors_are_local(spark) -> bool:
    """Whether the executors run on this machine beside the driver (a ``local[...]`` master)."""
    if is_connect(spark):
        return connect_server_is_local(spark)
    return spark.sparkContext.master.startswith("local")


def prepare_executors(spark) -> str | None:
    """Ship this package to the executors where they may lack it, then probe them on a cluster.

    Shipped: a wheel or zip the driver imports from (any master: a job file alone on disk has
    nothing else); a checkout whose job file put it on the path (any master: local workers do
    not see it either); an installed or editable package folder on a non-local master. The
    probe runs where the executors are not this machine's.

    Returns
    -------
    str or None
        The archive name the package was shipped under, or None when nothing was shipped.
    """
    import group_appeal_spark

    local = executors_are_local(spark)
    archive = archive_holding(group_appeal_spark.__file__)
    shipped = None
    if archive is not None or not local or "_bootstrap" in sys.modules:
        try:
            shipped = ship_own_package(spark, archive)
        except Exception as exc:  # e.g. a shared cluster that refuses addPyFile: the probe decides
            log.warning("could not ship this package to the executors (%s: %s); they need their own copy",
                        type(exc).__name__, exc)
    if shipped:
        log.info("shipping this package to the executors as %s (%s)", shipped,
                 "the wheel it runs from" if archive else "zipped from " + package_root())
    if not local:
        probe_executors(spark, group_appeal_spark.__version__)
    return shipped


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
    connect = is_connect(spark)
    if mode == "auto":
        if all(on_shared_storage(folder) for folder in bundle.folders.values()):
            mode = "path"  # copying gigabytes through every executor's local disk buys nothing
        else:
            mode = "path" if executors_are_local(spark) else "files"
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


def ship_own_package(spark, archive: str | None = None) -> str:
    """Ship the package the driver imports to the executors, once per application (Connect: session).

    ``archive``: the wheel or zip the driver imports from, shipped as a copy under a ``.zip``
    name; None zips the package folder (checkout or installed) as :func:`zip_package` does.
    """
    connect = is_connect(spark)
    source = archive or package_root()
    key = (spark.session_id if connect else spark.sparkContext.applicationId, source)
    if key not in _SHIPPED_PACKAGES:
        folder = tempfile.mkdtemp(prefix="gas-package-")
        if archive is not None:
            name = os.path.splitext(os.path.basename(archive))[0] + ".zip"
            path = os.path.join(folder, name)
            shutil.copyfile(archive, path)
        else:
            path = zip_package(folder)
            name = os.path.basename(path)
        if connect:
            spark.addArtifacts(path, pyfile=True)
        else:
            spark.sparkContext.addPyFile(path)
        _SHIPPED_PACKAGES[key] = name
    return _SHIPPED_PACKAGES[key]


# (application or session id, archive or package folder) -> the name the package was shipped under
_SHIPPED_PACKAGES: dict = {}


def probe_executors(spark, version: str, tasks: int | None = None) -> list[dict]:
    """Import the package and find its dependencies on the executors; one line and the fix if not.

    One tiny task per task slot (``tasks``; default the session's parallelism, at most 64), so
    each executor is likely asked. The task function is a closure, pickled by value: it runs
    even where the package is missing, and says so instead of failing to unpickle.

    Raises
    ------
    ExecutorSetupError
        When an executor cannot import ``group_appeal_spark``, imports another ``version``, lacks
        a dependency, or cannot run a Python task at all.
    """
    import pandas as pd

    dependencies = EXECUTOR_DEPENDENCIES

    def _findable(util, name):
        try:
            return util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    def probe(batches):
        import importlib
        import socket
        import sys as _sys
        from importlib import util

        import pandas as _pd

        for _ in batches:
            try:
                package = importlib.import_module("group_appeal_spark")
                found, where, problem = getattr(package, "__version__", "?"), package.__file__, ""
            except Exception as exc:  # ModuleNotFoundError, or an error inside the package
                found, where, problem = "", "", f"{type(exc).__name__}: {exc}"
            missing = ",".join(d for d in dependencies if not _findable(util, d))
            yield _pd.DataFrame({"host": [socket.gethostname()], "python": [_sys.executable], "version": [found],
                                 "file": [where], "problem": [problem], "missing": [missing]})

    if tasks is None:
        tasks = _parallelism(spark)
    schema = "host string, python string, version string, file string, problem string, missing string"
    try:
        rows = spark.range(0, tasks, 1, tasks).mapInPandas(probe, schema).distinct().collect()
    except Exception as exc:
        raise ExecutorSetupError(f"the executors could not run a Python task of this job: "
                                 f"{_python_error(exc)}; {HOW_TO_SHIP}") from None
    found = pd.DataFrame([r.asDict() for r in rows])
    for row in found.itertuples():
        if row.problem:
            raise ExecutorSetupError(f"the executors cannot import group_appeal_spark ({row.problem}; "
                                     f"{row.python} on {row.host}): {HOW_TO_SHIP}")
        if row.missing:
            raise ExecutorSetupError(
                f"the executors' Python ({row.python} on {row.host}) lacks {row.missing.replace(',', ', ')}: "
                f"install the package's dependencies on every node, or ship a packed environment with "
                f"spark-submit --archives (docs/deploying.md: 'On a cluster with spark-submit')")
        if row.version != version:
            raise ExecutorSetupError(
                f"the executors run group_appeal_spark {row.version} from {row.file} ({row.host}), the driver "
                f"{version}: remove or upgrade that copy, or {HOW_TO_SHIP}")
    return found.to_dict("records")


def _parallelism(spark) -> int:
    try:
        slots = spark.sparkContext.defaultParallelism
    except Exception:  # Spark Connect: no SparkContext on the client
        slots = int(spark.conf.get("spark.default.parallelism", "2") or 2)
    return max(1, min(int(slots), 64))


def _python_error(exc: Exception) -> str:
    """The last Python error line of a failed Spark job (e.g. ``ModuleNotFoundError: ...``), else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    python = [line for line in lines if line.split(":", 1)[0].endswith(("Error", "Exception"))
              and not line.startswith(("org.apache", "py4j", "pyspark.errors", "An error occurred"))]
    return (python or lines or [type(exc).__name__])[-1][:500]
