"""An output made from an earlier run's folder (``cluster``, ``assign``): a new folder, or that folder.

Into a new folder: refused where it holds anything (unless ``--overwrite``), marked started,
then complete with its own ``_SUCCESS.json``. Into the input folder itself: its marker stops
vouching for the tables being replaced, and vouches for them again once they are written; the
job's summary is then ``<job>_summary.json`` beside the earlier run's ``summary.json``.
"""

from __future__ import annotations

from group_appeal_spark.jobs import catalog
from group_appeal_spark.jobs.metadata import write_summary
from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.lib.config import UNTYPED_FORMATS
from group_appeal_spark.lib.errors import InputError


def into_input(config) -> bool:
    """Whether the job writes into its own input folder."""
    return config.input.path.rstrip("/") == (config.output.path or "").rstrip("/")


def check_source(spark, config) -> str:
    """The input is a finished run's output (an interrupted or running detect/run must not be used
    as if it were whole) in a typed format; returns that format.

    Its ``_SUCCESS.json`` records the format its tables were written in (an older one does
    not: then ``output.format`` is taken). CSV and JSON tables cannot be read back with their
    types (embeddings, counts), so they are refused here rather than after the work.
    """
    info = run_state.check_complete(spark, config.input.path, needs=("mention_embeddings",)) or {}
    fmt = info.get("format") or config.output.format
    if fmt in UNTYPED_FORMATS:
        raise InputError(f"input: {config.input.path} was written as {fmt}, whose tables lose their column types "
                         f"(the embeddings among them); run detect or run again with --output-format parquet (or "
                         f"delta, orc) to cluster or assign its mentions")
    return fmt


def open_output(spark, config, tables) -> None:
    """After every check of the input: the output may take ``tables``; then its markers change."""
    catalog.check_targets(spark, config, tables, replace=catalog.replacing(config))
    if into_input(config):
        # the input's marker stops vouching for these tables while they are replaced
        run_state.update_marker(spark, config.input.path, remove=tables)
    else:
        run_state.check_output_free(spark, config.output.path, config.output.mode, config.output.format)
        run_state.mark_started(spark, config.output.path)


def close_output(spark, config, job: str, counts: dict, timer, *, others=(), **extra) -> dict:
    """Publish the tables written (``counts["tables"]``), write the summary and the marker; returns the summary.

    ``others``: the job's tables it did not write this time, dropped from the catalog prefix.
    """
    written = counts.pop("tables")
    published = catalog.publish(spark, config, written, replace=catalog.replacing(config), timer=timer,
                                others=others)
    same = into_input(config)
    summary = write_summary(spark, config, counts, timer, published=published,
                            name=f"{job}_summary.json" if same else "summary.json",
                            source=config.input.path, job=job, **extra)
    if same:
        run_state.update_marker(spark, config.output.path, add=written, catalog_tables=published)
    else:
        run_state.mark_complete(spark, config.output.path, job, written, source=config.input.path,
                                format=config.output.format, catalog_tables=published)
    return summary
