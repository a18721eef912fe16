"""Pandas UDF: documents -> their group appeals (detection + stance) or an error record."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from group_appeal_spark.lib.inference.appeals import results_frame
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import get_or_load, set_torch_threads
from group_appeal_spark.udfs.devices import device_for_task
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import DOCUMENT_RESULT_TYPE
from group_appeal_spark.udfs.shipping import shipped_root
from pyspark.sql.functions import pandas_udf


def make_appeals_udf(bundle: ModelBundle, hooks: UdfHooks | None = None):
    """A UDF taking the text column and returning one result struct per document."""
    hooks = hooks or UdfHooks()

    @pandas_udf(DOCUMENT_RESULT_TYPE)
    def find_appeals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        set_torch_threads(bundle.inference.torch_threads)
        device = device_for_task(bundle, "appeals")  # the task's own GPU where Spark gave it one
        finder = get_or_load(bundle.cache_key("appeals", device),
                             lambda: bundle.appeal_finder(shipped_root(bundle), device=device), hooks.on_load,
                             slot=bundle.cache_key("appeals", "any device"))
        if hooks.on_task is not None:
            hooks.on_task("appeals", device)
        for texts in batches:
            if hooks.before_batch is not None:
                hooks.before_batch("appeals")
            frame = results_frame(finder.process(texts.tolist()))
            check_one_per_input(len(texts), len(frame), "appeals UDF")
            yield frame

    return find_appeals
