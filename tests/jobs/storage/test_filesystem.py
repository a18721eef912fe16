"""jobs/storage: the filesystem interface on a classic session, Python's local route, and the Connect router.

The Spark-only route of a Connect client runs in tests/jobs/test_connect.py (it needs a Connect server).
"""

import json

import pytest
from group_appeal_spark.jobs.storage import connect_files
from group_appeal_spark.jobs.storage.connect_files import ConnectFileSystem, LocalFileSystem, SparkOnlyFileSystem
from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.hadoop_files import HadoopFileSystem


def _exercise(fs, work) -> dict:
    """Every operation of the interface on ``work`` (a local folder), and what each one gave."""
    (work / "empty").mkdir()
    (work / "src").mkdir()
    (work / "src" / "part-0").write_text("table")
    local_file = work / "local.txt"
    local_file.write_text("plot bytes")
    text = json.dumps({"a": 1, "b": "ü\nx"}, indent=2)
    base = str(work)
    found = {
        "exists_missing": fs.exists(join_path(base, "missing")),
        "exists_empty": fs.exists(join_path(base, "empty")),
        "used_missing": fs.is_used(join_path(base, "missing")),
        "used_empty": fs.is_used(join_path(base, "empty")),
        "used_folder": fs.is_used(join_path(base, "src")),
    }
    fs.check_writable(join_path(base, "out"))
    found["writable_left"] = sorted(p.name for p in (work / "out").iterdir())
    fs.write_text(text, join_path(base, "out", "deep", "note.json"))
    found["round_trip"] = fs.read_text(join_path(base, "out", "deep", "note.json")) == text
    fs.write_text("second", join_path(base, "out", "deep", "note.json"))
    found["replaced"] = fs.read_text(join_path(base, "out", "deep", "note.json"))
    fs.put_file(local_file, join_path(base, "out", "plots", "copy.txt"))
    found["put_file"] = (work / "out" / "plots" / "copy.txt").read_text()
    (work / "dst").mkdir()
    (work / "dst" / "old").write_text("old table")
    found["can_rename"] = fs.can_rename(join_path(base, "dst"))
    fs.move_into_place(join_path(base, "src"), join_path(base, "dst"))
    found["moved"] = sorted(p.name for p in (work / "dst").iterdir())
    found["source_gone"] = not (work / "src").exists()
    found["can_delete"] = fs.can_delete(base)
    fs.delete(join_path(base, "out"))
    fs.delete(join_path(base, "never-there"))
    found["deleted"] = not (work / "out").exists()
    return found


EXPECTED = {
    "exists_missing": False, "exists_empty": True, "used_missing": False, "used_empty": False, "used_folder": True,
    "writable_left": [], "round_trip": True, "replaced": "second", "put_file": "plot bytes", "can_rename": True,
    "moved": ["part-0"], "source_gone": True, "can_delete": True, "deleted": True,
}


@pytest.mark.spark
def test_a_classic_session_gets_hadoops_filesystem(spark, tmp_path):
    fs = filesystem(spark)
    assert isinstance(fs, HadoopFileSystem)
    assert _exercise(fs, tmp_path) == EXPECTED


@pytest.mark.spark
def test_hadoops_filesystem_takes_file_uris(spark, tmp_path):
    fs = filesystem(spark)
    fs.write_text("x", "file://" + str(tmp_path / "a" / "b.txt"))
    assert (tmp_path / "a" / "b.txt").read_text() == "x" and fs.exists("file://" + str(tmp_path / "a"))


def test_pythons_local_route(tmp_path):
    assert _exercise(LocalFileSystem(), tmp_path) == EXPECTED


def test_the_local_route_translates_paths(tmp_path):
    """``dbfs:/x`` is ``/dbfs/x`` on a Databricks driver: the route works on the translated path."""
    fs = LocalFileSystem(lambda path: path.replace("dbfs:/", str(tmp_path) + "/"))
    fs.write_text("hello", "dbfs:/a/b.txt")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello" and fs.read_text("dbfs:/a/b.txt") == "hello"
    # mounts whose FUSE layer cannot rename a folder atomically are written in place
    assert not fs.can_rename("dbfs:/a") and not LocalFileSystem().can_rename("/Volumes/main/x/out")


class _FakeConnect:
    """What ConnectFileSystem asks of a Connect session: the server's host and master."""

    def __init__(self, host: str, master: str):
        self.client = type("Client", (), {"host": host})()
        self._master = master
        self.conf = self

    def get(self, key, default=None):
        return self._master if key == "spark.master" else default


@pytest.mark.parametrize("host, master, path, route", [
    ("localhost", "local[2]", "/data/out", LocalFileSystem),         # a local server sees this machine's files
    ("localhost", "local[2]", "file:/data/out", LocalFileSystem),
    ("localhost", "local[2]", "hdfs:///out", SparkOnlyFileSystem),    # only Spark reaches a Hadoop URI
    ("cluster.example", "spark://m:7077", "/data/out", SparkOnlyFileSystem),
    ("localhost", "spark://m:7077", "/data/out", SparkOnlyFileSystem),
    ("cluster.example", "yarn", "s3a://bucket/out", SparkOnlyFileSystem),
])
def test_the_connect_router_picks_a_route_per_path(host, master, path, route):
    fs = ConnectFileSystem(_FakeConnect(host, master))
    assert type(fs._route(path)) is route


def test_the_connect_router_sends_local_paths_to_python(tmp_path, monkeypatch):
    monkeypatch.setattr(connect_files, "connect_server_is_local", lambda spark: True)
    assert _exercise(ConnectFileSystem(_FakeConnect("localhost", "local[2]")), tmp_path) == EXPECTED
