"""A Spark Connect client's filesystem: Python's where this machine sees a path as Spark does,
else Spark itself on the server (see ``filesystem`` for the limits)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from group_appeal_spark.jobs.session import connect_server_is_local
from group_appeal_spark.jobs.storage.files import ConnectUnsupported, FileSystem, join_path

log = logging.getLogger("group_appeal_spark")


class LocalFileSystem(FileSystem):
    """Python's filesystem, for paths this machine sees as Spark does (``translate`` maps them)."""

    def __init__(self, translate=lambda path: path):
        self._local = translate

    def exists(self, path):
        return os.path.exists(self._local(path))

    def is_used(self, path):
        local = self._local(path)
        return os.path.exists(local) and not (os.path.isdir(local) and not os.listdir(local))

    def check_writable(self, path):
        local = self._local(path)
        os.makedirs(local, exist_ok=True)
        probe = os.path.join(local, "_write_probe")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.unlink(probe)

    def read_text(self, path):
        return Path(self._local(path)).read_text(encoding="utf-8")

    def write_text(self, text, path):
        local = self._local(path)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        Path(local).write_text(text, encoding="utf-8")

    def put_file(self, local_file, dest):
        local = self._local(dest)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        shutil.copyfile(local_file, local)

    def delete(self, path):
        local = self._local(path)
        if os.path.isdir(local):
            shutil.rmtree(local)
        elif os.path.exists(local):
            os.unlink(local)

    def can_rename(self, path):
        # /Volumes and /dbfs mounts are written in place: their FUSE layers do not rename folders atomically
        return not path.startswith(("dbfs:", "/Volumes/")) and not self._local(path).startswith("/dbfs")

    def move_into_place(self, staged, path):
        self.delete(path)
        os.rename(self._local(staged), self._local(path))

    def list_names(self, folder):
        local = self._local(folder)
        if not os.path.isdir(local):
            return []
        return sorted(n for n in os.listdir(local) if os.path.isfile(os.path.join(local, n)))

    def rename(self, src, dst):
        target = self._local(dst)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        os.rename(self._local(src), target)


class SparkOnlyFileSystem(FileSystem):
    """Paths that only a Connect server's Spark reaches: everything through DataFrame reads and writes."""

    def __init__(self, spark):
        self._spark = spark

    def _files(self, path):
        # recursiveFileLookup: an output folder holds table folders, which partition discovery
        # would refuse as conflicting directory structures
        return self._spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path).select("path")

    def exists(self, path):
        try:
            self._files(path).schema  # analysis lists the path: PATH_NOT_FOUND when missing
        except Exception as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def is_used(self, path):
        try:
            return bool(self._files(path).limit(1).collect())
        except Exception as exc:
            if _not_found(exc):
                return False
            raise

    def check_writable(self, path):
        # the probe stays (nothing can be deleted), hidden from Spark's readers by its underscore
        self.write_text("probe", join_path(path, "_write_probe"))

    def read_text(self, path):
        rows = self._spark.read.text(path, wholetext=True).collect()
        return "".join(row.value for row in rows)

    def write_text(self, text, path):
        """``path`` becomes a folder holding one text part file (``read_text`` reads either form)."""
        from pyspark.sql import functions as F

        self._spark.range(1).select(F.lit(text).alias("value")).write.mode("overwrite").text(path)

    def put_file(self, local_file, dest):
        raise ConnectUnsupported(f"cannot copy {Path(local_file).name} to {dest} through Spark Connect: only "
                                 f"Spark can reach that path and it cannot upload a file; write the output "
                                 f"under /Volumes/... or run on a classic Spark session")

    def can_delete(self, path):
        return False

    def delete(self, path):
        log.warning("%s left in place: a Spark Connect session cannot delete on that filesystem", path)

    def can_rename(self, path):
        return False

    def move_into_place(self, staged, path):
        raise ConnectUnsupported(f"cannot move {staged} to {path} through Spark Connect")

    def list_names(self, folder):
        raise ConnectUnsupported(f"cannot list {folder} file by file through Spark Connect")

    def rename(self, src, dst):
        raise ConnectUnsupported(f"cannot move {src} to {dst} through Spark Connect")


class ConnectFileSystem(FileSystem):
    """A Connect session's: each path to Python's filesystem where this machine sees it as Spark
    does (:func:`client_path`), else to Spark on the server."""

    def __init__(self, spark):
        self._spark = spark
        self._spark_only = SparkOnlyFileSystem(spark)
        self._local = LocalFileSystem(lambda path: client_path(spark, path))

    def _route(self, path: str) -> FileSystem:
        return self._local if client_path(self._spark, path) is not None else self._spark_only

    def exists(self, path):
        return self._route(path).exists(path)

    def is_used(self, path):
        return self._route(path).is_used(path)

    def check_writable(self, path):
        self._route(path).check_writable(path)

    def read_text(self, path):
        return self._route(path).read_text(path)

    def write_text(self, text, path):
        self._route(path).write_text(text, path)

    def put_file(self, local_file, dest):
        self._route(dest).put_file(local_file, dest)

    def can_delete(self, path):
        return self._route(path).can_delete(path)

    def delete(self, path):
        self._route(path).delete(path)

    def can_rename(self, path):
        return self._route(path).can_rename(path)

    def move_into_place(self, staged, path):
        self._route(path).move_into_place(staged, path)

    def list_names(self, folder):
        return self._route(folder).list_names(folder)

    def rename(self, src, dst):
        self._route(dst).rename(src, dst)


def client_path(spark, path: str) -> str | None:
    """On Connect: where this machine sees ``path`` exactly as Spark does, or None.

    - ``/Volumes/...`` (or ``dbfs:/Volumes/...``) where the Unity Catalog volumes are mounted
      here (Databricks notebooks and jobs): Spark resolves the same path to the same volume.
    - ``dbfs:/x`` where the DBFS root is mounted at ``/dbfs`` (Databricks clusters): ``/dbfs/x``.
    - a plain or ``file:`` path when the Connect server is a ``local[...]`` server on this
      machine: its executors read this machine's files.
    """
    if path.startswith("dbfs:/"):
        rest = "/" + path[len("dbfs:"):].lstrip("/")
        if rest.startswith("/Volumes/") and os.path.isdir("/Volumes"):
            return rest
        return "/dbfs" + rest if os.path.isdir("/dbfs") else None
    if path.startswith("/Volumes/") and os.path.isdir("/Volumes"):
        return path
    if path.startswith("file:"):
        local = "/" + path[len("file:"):].lstrip("/")
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return None  # s3a://, abfss://, hdfs://...: only Spark can reach them
    else:
        local = path
    return local if connect_server_is_local(spark) else None


def _not_found(exc: Exception) -> bool:
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        name = condition() if condition is not None else None
    except Exception:
        name = None
    return name == "PATH_NOT_FOUND" or "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc)
