"""The column names the tables share, and the column rules the transforms and readers apply."""

from __future__ import annotations

from group_appeal_spark.lib.choices import STANCES
from pyspark.sql import functions as F

DOC_ID = "doc_id"
# A reader's per-row verdict (malformed line, text that is not a string...); null = fine.
INPUT_ERROR = "__input_error"
# the documents table after doc_id and the carried columns (columns added after the first
# release go at the end, so that positional readers of CSV outputs keep working)
DOCUMENT_COLUMNS = ("n_segments", "n_mentions", *(f"n_{s}" for s in STANCES), "error", "n_segments_with_mentions")
# the segments table after doc_id and the carried columns (then segment_text with output.segment_text)
SEGMENT_COLUMNS = ("seg_idx", "seg_start", "seg_end", "n_tokens", "n_mentions", *(f"n_{s}" for s in STANCES))


def valid_utf8(column):
    """True where a string column holds valid UTF-8 (text files may carry any bytes).

    Such a value must never reach a Python UDF: Arrow refuses to decode it and the task dies.
    Spark 4 tests it directly; on Spark 3.5, decoding replaces invalid sequences, so the round
    trip differs exactly for invalid text.
    """
    if hasattr(F, "is_valid_utf8"):
        return F.is_valid_utf8(column)
    return F.decode(column.cast("binary"), "UTF-8") == column
