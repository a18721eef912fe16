"""A run's state in its output folder: the completion marker, the resume fingerprint, checkpoints.

- ``_SUCCESS.json``, written last by a run that finished: what readers check first.
- ``_work/fingerprint.json``: the settings an interrupted run must be resumed with.
- ``_work/<phase>-NNNNN/`` chunk folders, each finished one with a ``_DONE.json``, and
  ``_work/_<PHASE>.json`` for a finished phase: what ``--resume`` skips.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging

from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
from group_appeal_spark.jobs.storage.tables import check_output_writable, read_table
from group_appeal_spark.lib.errors import InputError

log = logging.getLogger("group_appeal_spark")

SUCCESS_MARKER = "_SUCCESS.json"


WORK = "_work"
# The checkpoint tables under _work/, whatever output.format: read back by the run with their types.
WORK_FORMAT = "parquet"


# hidden (a leading dot, as Hadoop's own .crc files): an interrupted run leaves only it and _work/
STARTED_MARKER = ".gas-started.json"


def earlier_output(spark, folder: str) -> bool:
    """Whether ``folder`` was marked as its output by a run of this package (finished or not):
    its ``_SUCCESS.json``, its ``.gas-started.json`` or its ``_work/``."""
    fs = filesystem(spark)
    return any(fs.exists(join_path(folder, name)) for name in (SUCCESS_MARKER, STARTED_MARKER, WORK))


def check_output_free(spark, path: str, mode: str, fmt: str | None = None) -> None:
    """Fail before any work unless the output may be written: new, empty, or (mode ``overwrite``)
    an earlier run's output; and writable.

    ``--overwrite`` replaces only a folder an earlier run marked as its output (see
    :func:`earlier_output`): never a folder of other
    files whose subfolders happen to share a table's name. On Spark Connect, for a path only
    Spark can reach, a folder is free when Spark lists no file in it (names starting with `_`
    or `.` do not count).
    """
    if not path:
        raise InputError("output: no output path; give --output PATH")
    if filesystem(spark).is_used(path):
        if mode == "error":
            raise InputError(f"output: {path} already exists; choose another --output or pass --overwrite")
        if not earlier_output(spark, path):
            raise InputError(f"output: {path} holds files but is not the output of an earlier run (it has no "
                             f"{SUCCESS_MARKER}, {STARTED_MARKER} or {WORK}/): --overwrite replaces only such a folder; "
                             f"choose a new "
                             f"or empty --output")
    check_output_writable(spark, path, fmt)


def mark_started(spark, folder: str) -> None:
    """Before a run writes into ``folder``: nothing there may look complete any more, and the
    folder is marked as this package's output (``.gas-started.json``, see :func:`earlier_output`).

    Removes ``_SUCCESS.json`` and ``summary.json`` of an earlier run (the latter, so the
    folder cannot pass for an output of an older version either). On Spark Connect, for a path
    only Spark reaches, nothing can be deleted: the marker is overwritten with
    ``{"complete": false}`` instead, which :func:`check_complete` refuses the same way.
    """
    fs, marker = filesystem(spark), join_path(folder, SUCCESS_MARKER)
    fs.write_text(json.dumps({"started_at": _now()}), join_path(folder, STARTED_MARKER))
    if fs.can_delete(folder):
        fs.delete(marker)
        fs.delete(join_path(folder, "summary.json"))
        return
    fs.write_text(json.dumps({"complete": False, "started_at": _now()}), marker)


def mark_complete(spark, folder: str, job: str, tables, **extra) -> None:
    """Write ``<folder>/_SUCCESS.json``: the run's last write, after every table and summary.json."""
    from group_appeal_spark import __version__

    info = {"complete": True, "job": job, "tables": sorted(tables), "finished_at": _now(),
            "group_appeal_spark": __version__, **extra}
    fs = filesystem(spark)
    fs.write_text(json.dumps(info, indent=2, default=str), join_path(folder, SUCCESS_MARKER))
    if fs.can_delete(folder):  # the complete marker says it all now
        fs.delete(join_path(folder, STARTED_MARKER))


def update_marker(spark, folder: str, *, add=(), remove=(), catalog_tables=None) -> None:
    """Add or remove tables in a complete ``_SUCCESS.json`` (cluster into its own input folder).

    ``catalog_tables`` (``{table: catalog table}``, see ``catalog.publish``) are recorded over
    the marker's; a removed table's record goes with it (its catalog table no longer matches).
    """
    info = read_marker(spark, folder)
    if info and info.get("complete") is True:
        tables = (set(info.get("tables", ())) - set(remove)) | set(add)
        published = {k: v for k, v in (info.get("catalog_tables") or {}).items() if k not in set(remove)}
        info.update(tables=sorted(tables), catalog_tables={**published, **(catalog_tables or {})},
                    updated_at=_now())
        filesystem(spark).write_text(json.dumps(info, indent=2, default=str), join_path(folder, SUCCESS_MARKER))


def read_marker(spark, folder: str) -> dict | None:
    """The content of ``<folder>/_SUCCESS.json``, ``{"complete": False}`` if unreadable, or None."""
    fs, marker = filesystem(spark), join_path(folder, SUCCESS_MARKER)
    if not fs.exists(marker):
        return None
    try:
        info = json.loads(fs.read_text(marker))
    except ValueError:  # cut short while being written
        return {"complete": False}
    return info if isinstance(info, dict) else {"complete": False}


def check_complete(spark, folder: str, *, needs=(), made_by: str = "detect/run") -> dict | None:
    """Refuse to read ``folder`` unless the run that wrote it finished; returns its marker.

    A finished run's last write is ``_SUCCESS.json`` with ``"complete": true``. An output
    without it is accepted only where it has a ``summary.json`` (written last by versions before
    the marker existed; a warning says completeness cannot be checked); anything else, an
    interrupted or running job's output, raises one clear ``InputError``. ``needs``: tables that
    must be there (a missing one is named).
    """
    fs = filesystem(spark)
    if not fs.exists(folder):
        raise InputError(f"{folder} does not exist; run `group-appeal-spark {made_by.split('/')[0]}` first, "
                         f"or give the right --input")
    rerun = "rerun it with --resume"
    info = read_marker(spark, folder)
    if info is None:
        if not fs.exists(join_path(folder, "summary.json")):
            raise InputError(f"{folder} is not a complete output of {made_by} (interrupted or still running?): "
                             f"it has neither {SUCCESS_MARKER} nor summary.json; {rerun}")
        log.warning("%s has no %s (written by an older version): accepted because it has a summary.json, "
                    "but whether every table is complete cannot be checked", folder, SUCCESS_MARKER)
    elif info.get("complete") is not True:
        raise InputError(f"{folder} is not a complete output of {made_by} (interrupted or still running?): "
                         f"its {SUCCESS_MARKER} says the run did not finish; {rerun}")
    missing = [t for t in needs if not fs.exists(join_path(folder, t))]
    if missing:
        raise InputError(f"{folder} has no {', '.join(missing)} table; it is not an output of {made_by}, "
                         f"or give the right --input")
    return info


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")



def check_resumable(spark, work: str, expected: dict, resume: bool) -> None:
    """With ``resume``: refuse a ``_work/`` folder made with other settings; else record ``expected``."""
    fs, path = filesystem(spark), join_path(work, "fingerprint.json")
    if resume and fs.exists(path):
        found = json.loads(fs.read_text(path))
        changed = sorted(k for k in expected if found.get(k) != expected[k])
        if changed:
            raise InputError(f"--resume: {work} was made with other settings ({', '.join(changed)} differ); "
                             f"resume with the same settings, or start again with --overwrite")
    else:
        fs.write_text(json.dumps(expected, indent=2), path)


def phase_done(spark, work: str, phase: str) -> dict | None:
    """What a finished phase of an interrupted run recorded in ``_work/_<PHASE>.json``, or None."""
    fs, marker = filesystem(spark), join_path(work, f"_{phase.upper()}.json")
    return json.loads(fs.read_text(marker)) if fs.exists(marker) else None


def phase_finished(spark, work: str, phase: str, record: dict) -> None:
    filesystem(spark).write_text(json.dumps(record), join_path(work, f"_{phase.upper()}.json"))


def chunk_folder(work: str, prefix: str, chunk: int) -> str:
    return join_path(work, f"{prefix}-{chunk:05d}")


def run_chunks(spark, work: str, prefix: str, n: int, run_chunk, *, resume: bool,
               stage: str) -> tuple[list[dict], int]:
    """Run ``run_chunk(i, folder)`` for each chunk ``i`` of ``n``, each checkpointed; returns (records, skipped).

    ``run_chunk`` writes its tables under ``folder`` (``_work/<prefix>-NNNNN/``) and returns a
    JSON-able record, kept in the folder's ``_DONE.json``, which marks the chunk finished.
    With ``resume`` a chunk that has one is skipped and its record read back.
    """
    fs, records, skipped = filesystem(spark), [], 0
    for chunk in range(n):
        folder = chunk_folder(work, prefix, chunk)
        marker = join_path(folder, "_DONE.json")
        if resume and fs.exists(marker):
            records.append(json.loads(fs.read_text(marker)))
            skipped += 1
            log.info("%s: chunk %d/%d done by an earlier run; skipped", stage, chunk + 1, n)
            continue
        record = run_chunk(chunk, folder)
        fs.write_text(json.dumps(record), marker)
        records.append(record)
        log.info("%s: chunk %d/%d: %s", stage, chunk + 1, n, record)
    return records, skipped


def union_chunks(spark, work: str, prefix: str, n: int, table: str):
    """The ``table`` of every chunk folder ``<prefix>-NNNNN`` (in :data:`WORK_FORMAT`), as one DataFrame."""
    parts = [read_table(spark, join_path(chunk_folder(work, prefix, c), table), WORK_FORMAT) for c in range(n)]
    return functools.reduce(lambda a, b: a.unionByName(b), parts)
