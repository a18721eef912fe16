"""What the executors need before any model work: this package on their Python path, checked.

Spark puts only ``.zip``, ``.egg`` and ``.jar`` files of ``--py-files`` on the executors' Python
path, and nothing of a checkout or of the driver's site-packages reaches them at all. So the
driver ships the code it runs itself: a wheel it imports from is shipped again under a ``.zip``
name; a checkout or an installed package folder is zipped once per application in the wheel's
own layout. A cheap probe task then imports the package on the executors and fails the job in
seconds, with one line naming the fix, where they still cannot import it, run another version,
or lack a dependency.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import zipfile

from group_appeal_spark.lib.errors import GroupAppealSparkError
from group_appeal_spark.udfs.shipping import connect_server_is_local, is_connect

log = logging.getLogger("group_appeal_spark")

# The subpackages a checkout keeps at its top level; the wheel maps each to group_appeal_spark.<name>.
SUBPACKAGES = ("lib", "udfs", "jobs", "conf")
# What the executors import besides pyspark (the model stages, Arrow batches, clustering helpers).
EXECUTOR_DEPENDENCIES = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow",
                         "yaml")

HOW_TO_SHIP = ("install group-appeal-spark on every node, or give spark-submit --py-files "
               "dist/group_appeal_spark-<version>-py3-none-any.whl (README: 'On a cluster with spark-submit')")


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
    archive = _archive_holding(group_appeal_spark.__file__)
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


def package_root() -> str:
    """The folder ``group_appeal_spark`` is imported from (a checkout's or site-packages')."""
    import group_appeal_spark

    return os.path.dirname(os.path.abspath(group_appeal_spark.__file__))


def package_files() -> list[tuple[str, str]]:
    """(file on disk, name in the archive) of every file of the package, in the wheel's layout.

    The package folder whole (in an installed copy it holds every subpackage), then each of
    :data:`SUBPACKAGES` that lives elsewhere (a checkout's top-level folders, an editable
    install's mapping) under ``group_appeal_spark/<name>/``. Compiled files are left out.
    """
    root = package_root()
    tops = [(root, "group_appeal_spark")]
    for name in SUBPACKAGES:
        spec = importlib.util.find_spec(f"group_appeal_spark.{name}")
        for location in (spec.submodule_search_locations or []) if spec else []:
            location = os.path.abspath(location)
            if not (location + os.sep).startswith(root + os.sep):
                tops.append((location, f"group_appeal_spark/{name}"))
    files = []
    for top, prefix in tops:
        for folder, subfolders, names in os.walk(top):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__" and not d.startswith("."))
            for name in sorted(names):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(folder, name)
                files.append((path, prefix + "/" + os.path.relpath(path, top).replace(os.sep, "/")))
    return files


def zip_package(folder: str) -> str:
    """Write the package as a zip archive into ``folder``; returns its path.

    The name holds the version and a digest of the contents (``group_appeal_spark-0.1.0-<12 hex>.zip``),
    so two different trees never reach the executors under one name. Entries carry a fixed
    timestamp: the same tree gives the same bytes.
    """
    from group_appeal_spark import __version__

    files = package_files()
    digest = hashlib.sha256()
    for path, arcname in files:
        digest.update(arcname.encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    path = os.path.join(folder, f"group_appeal_spark-{__version__}-{digest.hexdigest()[:12]}.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, arcname in files:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(source, "rb") as f:
                archive.writestr(info, f.read())
    return path


def _archive_holding(path: str) -> str | None:
    """The archive file (a wheel, a zip) that a module path points into, or None."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(len(parts) - 1, 1, -1):
        candidate = os.sep.join(parts[:i])
        if os.path.isfile(candidate):
            return candidate
    return None


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
        from importlib import util
        import socket
        import sys as _sys

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
                f"spark-submit --archives (README: 'On a cluster with spark-submit')")
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
