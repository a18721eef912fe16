"""This package as one archive for the executors' Python path: the wheel it runs from, or a zip of its folders.

A checkout or an installed package folder is zipped in the wheel's own layout
(``group_appeal_spark/lib/...``), so the executors import exactly what the driver runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile

# The subpackages a checkout keeps at its top level; the wheel maps each to group_appeal_spark.<name>.
SUBPACKAGES = ("lib", "udfs", "jobs", "conf")


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


def archive_holding(path: str) -> str | None:
    """The archive file (a wheel, a zip) that a module path points into, or None."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(len(parts) - 1, 1, -1):
        candidate = os.sep.join(parts[:i])
        if os.path.isfile(candidate):
            return candidate
    return None

