"""Catalog table names: ``[catalog.][schema.]name`` identifiers, parsed, checked and quoted.

Pure string handling, no Spark: the configuration checks ``input.table`` and
``output.table_prefix`` with it, and the jobs build from it the names they hand Spark. A part is
either plain (letters, digits, ``_``) or quoted in backquotes, as in Spark SQL
(```my-catalog`.appeals.t``; a backquote inside a quoted part is doubled).
"""

from __future__ import annotations

import dataclasses
import re

from group_appeal_spark.lib.errors import ConfigError

_PLAIN = re.compile(r"[A-Za-z0-9_]+")
_QUOTED = re.compile(r"`((?:[^`]|``)+)`")
_FORM = "[catalog.][schema.]"


def _parts(text: str, key: str, example: str, *, empty_last: bool) -> tuple[str, ...]:
    """The unquoted parts of ``text``; ``empty_last`` accepts a final empty part (``schema.``)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{key}: {text!r} must be a table name; {example}")
    parts, pos = [], 0
    while True:
        if empty_last and parts and pos == len(text):
            parts.append("")
            break
        quoted = _QUOTED.match(text, pos)
        plain = None if quoted else _PLAIN.match(text, pos)
        if quoted:
            parts.append(quoted.group(1).replace("``", "`"))
            pos = quoted.end()
        elif plain and not plain.group().isdigit():  # all digits would parse as a number
            parts.append(plain.group())
            pos = plain.end()
        else:
            where = f"at {text[pos:]!r}" if pos < len(text) else "at its end"
            raise ConfigError(f"{key}: {text!r} is not a valid name {where}: each dot-separated part "
                              f"is letters, digits and _ (not digits only), or any text in backquotes; {example}")
        if pos == len(text):
            break
        if text[pos] != ".":
            raise ConfigError(f"{key}: {text!r} is not a valid name at {text[pos:]!r}: parts are separated by "
                              f"dots; {example}")
        pos += 1
    if len(parts) > 3:
        raise ConfigError(f"{key}: {text!r} has {len(parts)} dot-separated parts, at most 3 are allowed; {example}")
    return tuple(parts)


def spark_name(parts) -> str:
    """The name as Spark parses it: every part in backquotes (reserved words and odd characters are safe)."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in parts)


def display_name(parts) -> str:
    """The name as a person writes it: plain parts as they are, the others in backquotes."""
    return ".".join(p if _PLAIN.fullmatch(p) and not p.isdigit() else "`" + p.replace("`", "``") + "`"
                    for p in parts)


def parse_table(text: str, key: str = "input.table") -> tuple[str, ...]:
    """The parts of a table name of 1 to 3 identifiers (``main.corpora.hansard``).

    Raises
    ------
    ConfigError
        Naming ``key`` and the value, when it is not such a name.
    """
    return _parts(text, key, f"expected {_FORM}table, e.g. main.corpora.hansard", empty_last=False)


@dataclasses.dataclass(frozen=True)
class TablePrefix:
    """Where a job publishes its tables: ``namespace`` (catalog and schema, 0 to 2 parts) and
    ``prefix``, put before each table's name (``hansard_`` -> ``hansard_mentions``; may be empty)."""

    namespace: tuple[str, ...]
    prefix: str

    @classmethod
    def parse(cls, text: str, key: str = "output.table_prefix") -> "TablePrefix":
        """``[catalog.][schema.]prefix``; a trailing dot (``main.appeals.``) means no prefix.

        Raises
        ------
        ConfigError
            Naming ``key`` and the value, when it is not such a name.
        """
        parts = _parts(text, key, f"expected {_FORM}prefix, e.g. main.appeals.hansard_ (tables "
                       f"main.appeals.hansard_mentions, ...) or main.appeals. (tables main.appeals.mentions, ...)",
                       empty_last=True)
        return cls(parts[:-1], parts[-1])

    def parts(self, table: str) -> tuple[str, ...]:
        """The parts of the catalog table that holds the output table ``table``."""
        return (*self.namespace, self.prefix + table)

    def name(self, table: str) -> str:
        """The catalog table's name as a person writes it (what summary.json records)."""
        return display_name(self.parts(table))

    def spark_name(self, table: str) -> str:
        """The catalog table's name as handed to Spark."""
        return spark_name(self.parts(table))
