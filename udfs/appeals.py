"""Pandas UDF: documents -> their group appeals (detection + stance) or an error record."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
from group_appeal_spark.lib.inference.appeals import results_frame
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import get_or_load, set_torch_threads
from group_appeal_spark.udfs.schemas import DOCUMENT_RESULT_TYPE
from group_appeal_spark.udfs.shipping import shipped_root
from pyspark.sql.functions import pandas_udf


def make_appeals_udf(bundle: ModelBundle):
    """A UDF taking the text column and returning one result struct per document."""
    key = bundle.cache_key("appeals")

    @pandas_udf(DOCUMENT_RESULT_TYPE)
    def find_appeals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        set_torch_threads(bundle.inference.torch_threads)
        finder = get_or_load(key, lambda: bundle.appeal_finder(shipped_root(bundle)))
        for texts in batches:
            if bundle.fail_once_marker:
                _fail_once(bundle.fail_once_marker)
            frame = results_frame(finder.process(texts.tolist()))
            check_one_per_input(len(texts), len(frame), "appeals UDF")
            yield frame

    return find_appeals


def _fail_once(marker: str) -> None:
    """Raise in the first task that gets here (an injected failure; Spark must retry the task)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise RuntimeError(f"injected one-time task failure (test switch, marker {marker})")
