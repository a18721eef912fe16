"""Pandas UDF: documents -> their group appeals (detection + stance) or an error record."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from group_appeal_spark.lib.inference.appeals import results_frame
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import get_or_load, set_torch_threads
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import DOCUMENT_RESULT_TYPE
from group_appeal_spark.udfs.shipping import shipped_root
from pyspark.sql.functions import pandas_udf


def make_appeals_udf(bundle: ModelBundle, hooks: UdfHooks | None = None):
    """A UDF taking the text column and returning one result struct per document."""
    key = bundle.cache_key("appeals")
    hooks = hooks or UdfHooks()

    @pandas_udf(DOCUMENT_RESULT_TYPE)
    def find_appeals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        set_torch_threads(bundle.inference.torch_threads)
        finder = get_or_load(key, lambda: bundle.appeal_finder(shipped_root(bundle)), hooks.on_load)
        for texts in batches:
            if hooks.before_batch is not None:
                hooks.before_batch("appeals")
            frame = results_frame(finder.process(texts.tolist()))
            check_one_per_input(len(texts), len(frame), "appeals UDF")
            yield frame

    return find_appeals
