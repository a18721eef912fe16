"""What makes a stream's micro-batches land exactly once: staged tables, renames, batch markers.

A micro-batch writes each of its tables to ``<output>/_stream/staging/<batch>/<table>/``, then
moves every part file into ``<output>/<table>/`` under a name that carries the batch id
(``part-b00000012-00003.parquet``), then writes ``<output>/_stream/batches/<batch>.json``. A batch
whose marker exists is committed: replayed after a crash (Structured Streaming replays the last
batch whose commit it had not recorded), it is skipped. A batch without its marker is undone
first: its staging folder and any of its part files already moved are deleted, then it runs
again. A table in Delta format is appended instead with Delta's own idempotent writes
(``txnAppId``, ``txnVersion``), which skip a batch version already written.
"""

from __future__ import annotations

import json
import re

from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.tables import write_table
from group_appeal_spark.lib.errors import InputError

STREAM = "_stream"
STATE = "state.json"
_PART = re.compile(r"part-b(\d{8})-\d{5}")


def _name(batch_id: int, n: int, source_name: str) -> str:
    """A moved part file's name: the batch id, its index, the extension Spark gave it (``.snappy.parquet``)."""
    dot = source_name.find(".")
    return f"part-b{batch_id:08d}-{n:05d}{source_name[dot:] if dot >= 0 else ''}"


class BatchCommitter:
    """Stages, commits and undoes the tables of one micro-batch of the stream into ``output``."""

    def __init__(self, spark, output: str, fmt: str, app_id: str):
        self.spark, self.output, self.fmt, self.app_id = spark, output, fmt, app_id
        self.fs = filesystem(spark)

    def marker(self, batch_id: int) -> str:
        return join_path(self.output, STREAM, "batches", f"{batch_id:08d}.json")

    def staging(self, batch_id: int, table: str = "") -> str:
        return join_path(self.output, STREAM, "staging", f"{batch_id:08d}", *([table] if table else []))

    def committed(self, batch_id: int) -> dict | None:
        """The batch's marker (what it recorded), or None where it never committed."""
        path = self.marker(batch_id)
        return json.loads(self.fs.read_text(path)) if self.fs.exists(path) else None

    def undo(self, batch_id: int, tables) -> int:
        """Remove what an interrupted attempt of the batch left: staged tables and moved part files."""
        self.fs.delete(self.staging(batch_id))
        removed = 0
        for table in tables:
            folder = join_path(self.output, table)
            for name in self.fs.list_names(folder):
                found = _PART.match(name)
                if found and int(found.group(1)) == batch_id:
                    self.fs.delete(join_path(folder, name))
                    removed += 1
        return removed

    def stage(self, batch_id: int, table: str, df) -> None:
        """Write one of the batch's tables: to its staging folder, or (Delta) straight into the table."""
        if self.fmt == "delta":
            df.write.format("delta").mode("append").option("txnAppId", self.app_id) \
                .option("txnVersion", batch_id).save(join_path(self.output, table))
            return
        write_table(df, self.staging(batch_id, table), self.fmt, "overwrite")

    def commit(self, batch_id: int, tables, record: dict) -> None:
        """Move the staged part files into their tables, then write the marker (the commit point)."""
        if self.fmt != "delta":
            for table in tables:
                staged = self.staging(batch_id, table)
                parts = [n for n in self.fs.list_names(staged) if n.startswith("part-")]
                for i, name in enumerate(parts):
                    self.fs.rename(join_path(staged, name), join_path(self.output, table, _name(batch_id, i, name)))
        self.fs.write_text(json.dumps({"batch_id": batch_id, **record}, default=str) + "\n", self.marker(batch_id))
        self.fs.delete(self.staging(batch_id))


def read_state(spark, output: str) -> dict:
    """The stream's cumulative accounts (``_stream/state.json``), or {} before its first batch."""
    fs, path = filesystem(spark), join_path(output, STREAM, STATE)
    return json.loads(fs.read_text(path)) if fs.exists(path) else {}


def write_state(spark, output: str, state: dict) -> None:
    filesystem(spark).write_text(json.dumps(state, indent=2, default=str) + "\n", join_path(output, STREAM, STATE))


def recover_tables(spark, output: str, tables) -> list[str]:
    """Put back a table whose rewrite (a refresh) was stopped between removing the old folder and
    moving the new one into place: the new one is whole (Spark's ``_SUCCESS`` in it). Returns them."""
    fs, recovered = filesystem(spark), []
    for table in tables:
        path, staged = join_path(output, table), join_path(output, f"_writing-{table}")
        if not fs.exists(path) and fs.exists(join_path(staged, "_SUCCESS")):
            fs.move_into_place(staged, path)
            recovered.append(table)
    return recovered


def check_rename(spark, output: str) -> None:
    """The stream's commits need file renames in ``output``: refuse a path where there are none."""
    fs = filesystem(spark)
    if not fs.can_rename(join_path(output, "documents")):
        raise InputError(f"output: {output} cannot take a stream's commits (no file renames there: a DBFS or "
                         f"/Volumes mount, or a path only a Spark Connect server reaches); use --output-format "
                         f"delta there, or a local, HDFS or object-store path on a classic session")
