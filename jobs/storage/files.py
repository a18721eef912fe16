"""The filesystem interface the jobs use for small files and folder moves (see ``filesystem``)."""

from __future__ import annotations

from pathlib import Path

from group_appeal_spark.lib.errors import GroupAppealSparkError


class ConnectUnsupported(GroupAppealSparkError):
    """A filesystem operation that a Spark Connect session cannot do for that path."""


def join_path(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def first_line(exc: Exception) -> str:
    """An exception's first line (Spark's messages run to pages), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class FileSystem:
    """What the jobs do to files besides reading and writing tables; see the module docstring.

    Paths are strings as the user gave them (``/data/out``, ``hdfs:///out``, ``dbfs:/out``).
    """

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (a missing one is False; other errors, such as no permission, raise)."""
        raise NotImplementedError

    def is_used(self, path: str) -> bool:
        """Whether ``path`` is a file, or a folder with anything in it."""
        raise NotImplementedError

    def check_writable(self, path: str) -> None:
        """Create the folder ``path`` and a probe file in it; raise where that fails."""
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        raise NotImplementedError

    def write_text(self, text: str, path: str) -> None:
        """Write a small UTF-8 text file (summary.json, markers), replacing it."""
        raise NotImplementedError

    def put_file(self, local_file: str | Path, dest: str) -> None:
        """Copy a file of this machine to ``dest`` (plots)."""
        raise NotImplementedError

    def can_delete(self, path: str) -> bool:
        return True

    def delete(self, path: str) -> None:
        """Remove a file or a folder (recursively); nothing when it is not there."""
        raise NotImplementedError

    def can_rename(self, path: str) -> bool:
        """Whether a finished table can be moved onto ``path`` (:meth:`move_into_place`)."""
        return True

    def move_into_place(self, staged: str, path: str) -> None:
        """Replace ``path`` by ``staged`` (a finished table folder)."""
        raise NotImplementedError

    def list_names(self, folder: str) -> list[str]:
        """The names of the files directly in ``folder`` (none when it is missing), sorted."""
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        """Move the file ``src`` to ``dst`` (its folder made where missing); ``dst`` must not exist."""
        raise NotImplementedError

