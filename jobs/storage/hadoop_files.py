"""A classic session's filesystem: Hadoop's ``FileSystem`` through the JVM."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from group_appeal_spark.jobs.storage.files import FileSystem, join_path
from group_appeal_spark.lib.errors import GroupAppealSparkError


class HadoopFileSystem(FileSystem):
    """A classic session's: Hadoop's FileSystem through the JVM (renames are atomic on HDFS and
    local disks, a copy on object stores such as S3, where the run marker is the guarantee)."""

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str):
        hpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return hpath, hpath.getFileSystem(self._conf)

    def exists(self, path):
        hpath, fs = self._fs(path)
        return bool(fs.exists(hpath))

    def is_used(self, path):
        hpath, fs = self._fs(path)
        if not fs.exists(hpath):
            return False
        return not (fs.isDirectory(hpath) and len(fs.listStatus(hpath)) == 0)

    def check_writable(self, path):
        hpath, fs = self._fs(path)
        probe, _ = self._fs(join_path(path, "_write_probe"))
        fs.mkdirs(hpath)
        fs.create(probe, True).close()
        fs.delete(probe, False)

    def read_text(self, path):
        hpath, fs = self._fs(path)
        stream = fs.open(hpath)
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def write_text(self, text, path):
        with tempfile.NamedTemporaryFile("w", suffix=os.path.splitext(path)[1], delete=False,
                                         encoding="utf-8") as fh:
            fh.write(text)
        try:
            self.put_file(fh.name, path)
        finally:
            os.unlink(fh.name)

    def put_file(self, local_file, dest):
        hpath, fs = self._fs(dest)
        fs.mkdirs(hpath.getParent())
        source = self._jvm.org.apache.hadoop.fs.Path(str(Path(local_file).resolve()))
        fs.copyFromLocalFile(False, True, source, hpath)

    def delete(self, path):
        hpath, fs = self._fs(path)
        if fs.exists(hpath):
            fs.delete(hpath, True)

    def move_into_place(self, staged, path):
        src, fs = self._fs(staged)
        dst, _ = self._fs(path)
        if fs.exists(dst):
            fs.delete(dst, True)
        fs.mkdirs(dst.getParent())
        # rename onto a missing path: onto an existing folder it would move the table inside it
        if not fs.rename(src, dst):
            raise GroupAppealSparkError(f"output: could not move the finished table {staged} to {path}")

    def list_names(self, folder):
        hpath, fs = self._fs(folder)
        if not fs.exists(hpath):
            return []
        return sorted(str(st.getPath().getName()) for st in fs.listStatus(hpath) if st.isFile())

    def rename(self, src, dst):
        s, fs = self._fs(src)
        d, _ = self._fs(dst)
        fs.mkdirs(d.getParent())
        if not fs.rename(s, d):
            raise GroupAppealSparkError(f"output: could not move {src} to {dst}")
