"""Pandas UDF: the text field of raw JSON lines, parsed in Python to keep bad values visible."""

from __future__ import annotations

import pandas as pd
from group_appeal_spark.lib.json_text import json_line_text
from pyspark.sql.functions import pandas_udf

JSON_TEXT_TYPE = "text string, error string"


def make_json_text_udf(field: str):
    """A UDF taking raw JSON lines and returning ``struct<text, error>`` per line."""

    @pandas_udf(JSON_TEXT_TYPE)
    def json_text(lines: pd.Series) -> pd.DataFrame:
        parsed = [json_line_text(line, field) for line in lines]
        return pd.DataFrame(parsed, columns=["text", "error"], dtype="object")

    return json_text
