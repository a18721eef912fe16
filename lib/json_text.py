"""Checks of raw input records that Spark's readers would otherwise hide or mangle."""

from __future__ import annotations

import json

from group_appeal_spark.lib.inference.segment import check_text


def json_line_text(line, field: str) -> tuple[str | None, str | None]:
    """The text field of one JSON line, or why there is none.

    Spark's JSON reader turns a number or a nested object in a string column into its JSON
    text, and loses lone surrogates; parsing the line here keeps the difference visible.

    Returns
    -------
    (text, error)
        ``text`` when the field holds a usable string, else ``error`` says why.
    """
    if line is None:
        return None, "invalid UTF-8 in line"
    try:
        record = json.loads(line)
    except ValueError as exc:
        return None, f"malformed JSON line: {exc.msg} at column {exc.colno}"
    if not isinstance(record, dict):
        return None, f"JSON line is not an object: {type(record).__name__}"
    value = record.get(field)
    reason = check_text(value)
    if reason is not None:
        if value is None and field not in record:
            return None, f"missing text field {field!r}"
        return None, reason
    return value, None
