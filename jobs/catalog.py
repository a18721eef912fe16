"""Catalog tables: documents read from a table (``--input-table``), outputs published as tables.

``--output-table-prefix P`` publishes every table a job wrote to its ``--output`` folder as the
catalog table ``P + name`` (``main.appeals.hansard_`` -> ``main.appeals.hansard_mentions``), with
``DataFrameWriter.saveAsTable`` in ``output.format``. The folder stays the source of truth (the
summary, markers, plots and ``_work/`` of ``--resume`` live there): tables are published from
its complete tables, after they are written, and each published table's row count is checked
against its source. Everything here goes through the session's catalog API, so it works the same
on classic and Spark Connect sessions (Databricks: Unity Catalog three-part names).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re

from group_appeal_spark.jobs.storage import run_state
from group_appeal_spark.jobs.storage.filesystem import filesystem, first_line, join_path
from group_appeal_spark.jobs.storage.tables import read_table
from group_appeal_spark.lib.config import InputConfig
from group_appeal_spark.lib.errors import GroupAppealSparkError, InputError
from group_appeal_spark.lib.table_names import TablePrefix, display_name, parse_table, spark_name

log = logging.getLogger("group_appeal_spark")


def _table_exists(spark, parts, what: str) -> bool:
    try:
        return bool(spark.catalog.tableExists(spark_name(parts)))
    except Exception as exc:  # e.g. a catalog that does not exist, or no permission
        raise InputError(f"{what}: cannot look up table {display_name(parts)}: {first_line(exc)[:300]}") from None


def check_input_table(spark, cfg: InputConfig) -> None:
    """Fail in one line, before any model runs, when ``input.table`` names no table or view."""
    if not cfg.table:
        return
    if not _table_exists(spark, parse_table(cfg.table), "input"):
        raise InputError(f"input: table {cfg.table} does not exist (--input-table / input.table); check its "
                         f"catalog and schema, or give --input PATH")


def read_input_table(spark, cfg: InputConfig):
    """The documents of the catalog table ``input.table``; ``input.options`` are reader options
    (e.g. Delta's ``versionAsOf``)."""
    check_input_table(spark, cfg)
    reader = spark.read.options(**{k: str(v) for k, v in cfg.options.items()})
    try:
        return reader.table(spark_name(parse_table(cfg.table)))
    except Exception as exc:
        raise InputError(f"input: cannot read table {cfg.table}: {first_line(exc)[:300]}") from exc


def _prefix(config) -> TablePrefix | None:
    text = config.output.table_prefix
    return TablePrefix.parse(text) if text else None


def replacing(config, resume: bool = False) -> bool:
    """Whether existing catalog tables may be replaced: ``--overwrite``, or a resumed run (which
    publishes again what an interrupted attempt may have published)."""
    return bool(resume) or config.output.mode == "overwrite"


# Spark's built-in session catalog (Hive metastore or in-memory) takes word characters only in
# schema and table names (SessionCatalog.validateName), and refuses others only when it creates
# the table, after the data is written: checked here, before any work.
_SESSION_CATALOG_NAME = re.compile(r"[A-Za-z0-9_]+")


def _check_session_catalog_names(spark, prefix: TablePrefix, tables, given: str) -> None:
    parts = prefix.parts(tables[0]) if tables else ()
    if len(parts) == 3 and parts[0].lower() != "spark_catalog":
        return  # another catalog (Unity Catalog, Iceberg...) has rules of its own
    if len(parts) < 3:
        try:
            current = spark.catalog.currentCatalog()
        except Exception:  # an old or odd catalog API: assume the session catalog
            current = "spark_catalog"
        if str(current).lower() != "spark_catalog":
            return
    names = [*prefix.namespace[-1:], *(prefix.parts(t)[-1] for t in tables)] if len(parts) else []
    bad = [n for n in names if not _SESSION_CATALOG_NAME.fullmatch(n)]
    if bad:
        raise InputError(f"output: --output-table-prefix {given}: Spark's session catalog takes only ASCII "
                         f"letters, digits and _ in schema and table names, not {bad[0]!r}; choose another prefix")


def check_targets(spark, config, tables, *, replace: bool) -> None:
    """Before any work: the prefix's schema exists, and none of ``tables`` is there unless ``replace``.

    ``tables``: every table the job may write (``aggregates`` included where it may be skipped).
    Also refuses a prefix under which the job would replace its own ``input.table``.
    """
    prefix = _prefix(config)
    if prefix is None:
        return
    given = config.output.table_prefix
    _check_session_catalog_names(spark, prefix, tables, given)
    if prefix.namespace:
        where = display_name(prefix.namespace)
        try:
            exists = bool(spark.catalog.databaseExists(spark_name(prefix.namespace)))
        except Exception as exc:
            raise InputError(f"output: cannot look up schema {where} of --output-table-prefix {given}: "
                             f"{first_line(exc)[:300]}") from None
        if not exists:
            raise InputError(f"output: schema {where} of --output-table-prefix {given} does not exist; create it "
                             f"first (CREATE SCHEMA {where}) or give another prefix")
    if config.input.table:
        source = tuple(p.lower() for p in parse_table(config.input.table))
        clash = [prefix.name(t) for t in tables if tuple(p.lower() for p in prefix.parts(t)) == source]
        if clash:
            raise InputError(f"output: --output-table-prefix {given} would replace the input table "
                             f"{config.input.table}; choose another prefix")
    if replace:
        return
    existing = [prefix.name(t) for t in tables if _table_exists(spark, prefix.parts(t), "output")]
    if existing:
        raise InputError(f"output: catalog table(s) {', '.join(existing)} already exist; choose another "
                         f"--output-table-prefix, or pass --overwrite to replace them")


def publish(spark, config, tables, *, replace: bool, timer=None, others=()) -> dict[str, str]:
    """Publish the output folder's ``tables`` as catalog tables; returns ``{table: catalog table}``.

    Each is read from ``<output>/<table>`` (complete: call this after the job wrote it) and
    saved with ``saveAsTable`` in ``output.format``, replacing an existing table only where
    ``replace`` (Delta: its schema too). A table whose row count then differs from its source
    fails the job. With ``replace``, a table of ``others`` (the job's tables it did not write
    this time, such as a skipped ``aggregates``) left under the prefix by an earlier run is
    dropped, so the prefix never mixes two runs. Nothing (``{}``) without ``output.table_prefix``.
    """
    prefix = _prefix(config)
    if prefix is None:
        return {}
    out, fmt = config.output.path, config.output.format
    published = {}
    with timer.stage("publish") if timer is not None else contextlib.nullcontext():
        for table in tables:
            path, name = join_path(out, table), prefix.name(table)
            source = read_table(spark, path, fmt)
            # "error", not its alias "errorifexists": the Spark Connect client knows only the short name
            writer = source.write.format(fmt).mode("overwrite" if replace else "error")
            if replace and fmt.lower() == "delta":
                writer = writer.option("overwriteSchema", "true")  # a new carried column is no failure
            try:
                writer.saveAsTable(prefix.spark_name(table))
            except Exception as exc:
                # the usual cause on Databricks; not where the table appeared since the check before the run
                hint = "" if fmt.lower() == "delta" or "ALREADY_EXISTS" in str(exc) else \
                    " (Unity Catalog managed tables are Delta: --output-format delta)"
                raise GroupAppealSparkError(f"output: could not publish {path} as table {name}: "
                                            f"{first_line(exc)[:300]}{hint}") from exc
            expected, got = source.count(), _table_rows(spark, prefix.spark_name(table))
            if got != expected:
                raise GroupAppealSparkError(f"output: published table {name} has {got:,} rows but {path} has "
                                            f"{expected:,}; the table is incomplete: run again with --overwrite")
            published[table] = name
            log.info("publish: %s -> table %s (%s rows)", table, name, f"{got:,}")
        if replace:
            for table in others:
                if table not in published and _table_exists(spark, prefix.parts(table), "output"):
                    log.info("publish: dropping table %s, left by an earlier run: this run wrote no %s",
                             prefix.name(table), table)
                    spark.sql(f"DROP TABLE IF EXISTS {prefix.spark_name(table)}")
    return published


def _table_rows(spark, name: str) -> int:
    """Rows of the catalog table ``name``, read back as any reader of it will."""
    return spark.table(name).count()


def publish_finished(spark, config, info: dict) -> None:
    """``--resume`` on a complete output: publish its tables where the prefix asked for is not yet
    what its ``_SUCCESS.json`` records, then record them in summary.json and the marker."""
    prefix = _prefix(config)
    if prefix is None:
        return
    tables = list(info.get("tables") or ())
    if info.get("catalog_tables") == {t: prefix.name(t) for t in tables}:
        return
    out = config.output.path
    published = publish(spark, config, tables, replace=True)
    fs, summary_path = filesystem(spark), join_path(out, "summary.json")
    if fs.exists(summary_path):
        summary = json.loads(fs.read_text(summary_path))
        summary["catalog_tables"] = published
        fs.write_text(json.dumps(summary, indent=2, default=str), summary_path)
    run_state.update_marker(spark, out, catalog_tables=published)
