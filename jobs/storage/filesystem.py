"""One filesystem interface for the jobs' small files and folder moves, chosen by the session.

- A classic session reaches the JVM: Hadoop's ``FileSystem`` serves every path Spark reads
  (local, HDFS, DBFS, S3...).
- A Spark Connect client has no JVM. Where this machine sees a path as Spark does
  (:func:`client_path`: a ``local[...]`` server here, ``/Volumes/...``, ``dbfs:/`` with
  ``/dbfs`` mounted) Python's own filesystem serves it. Any other path only Spark reaches,
  through DataFrame reads and writes on the server, with these limits: names starting with
  ``_`` or ``.`` are hidden from Spark's readers, a small text file is written as a folder
  holding one part file, nothing can be deleted, and a local file cannot be copied there
  (:class:`ConnectUnsupported`).

Every caller asks :func:`filesystem` and uses the interface of :class:`FileSystem`.
"""

from __future__ import annotations

from group_appeal_spark.jobs.session import is_connect
from group_appeal_spark.jobs.storage.connect_files import ConnectFileSystem, client_path
from group_appeal_spark.jobs.storage.files import ConnectUnsupported, FileSystem, first_line, join_path
from group_appeal_spark.jobs.storage.hadoop_files import HadoopFileSystem

__all__ = ["ConnectUnsupported", "FileSystem", "client_path", "filesystem", "first_line", "join_path"]


def filesystem(spark) -> FileSystem:
    """The filesystem of ``spark``'s kind: :class:`HadoopFileSystem` or :class:`ConnectFileSystem`."""
    return ConnectFileSystem(spark) if is_connect(spark) else HadoopFileSystem(spark)

