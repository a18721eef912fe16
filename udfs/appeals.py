"""Detection + stance on the executors: documents -> their group appeals, or an error record.

Two shapes over one body: a pandas UDF over the text column (the default), and an Arrow map over
whole rows for ``mapInArrow(..., profile=...)``, where the model stage has its own resource
profile (jobs/profiles.py). The map passes the other columns through as Arrow arrays, untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
from group_appeal_spark.lib.inference.appeals import results_frame
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import get_or_load, set_torch_threads
from group_appeal_spark.udfs.devices import device_for_task
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.arrow_map import arrow_map
from group_appeal_spark.udfs.schemas import DOCUMENT_RESULT_TYPE
from group_appeal_spark.udfs.shipping import shipped_root
from pyspark.sql.functions import pandas_udf


def _appeal_finder(bundle: ModelBundle, hooks: UdfHooks) -> Callable[[list], pd.DataFrame]:
    """In a task: load (or reuse) the models on the task's device; returns texts -> result frame."""
    set_torch_threads(bundle.inference.torch_threads)
    device = device_for_task(bundle, "appeals")  # the task's own GPU where Spark gave it one
    finder = get_or_load(bundle.cache_key("appeals", device),
                         lambda: bundle.appeal_finder(shipped_root(bundle), device=device), hooks.on_load,
                         slot=bundle.cache_key("appeals", "any device"))
    if hooks.on_task is not None:
        hooks.on_task("appeals", device)

    def find(texts: list) -> pd.DataFrame:
        if hooks.before_batch is not None:
            hooks.before_batch("appeals")
        frame = results_frame(finder.process(texts))
        check_one_per_input(len(texts), len(frame), "appeals UDF")
        return frame

    return find


def make_appeals_udf(bundle: ModelBundle, hooks: UdfHooks | None = None):
    """A UDF taking the text column and returning one result struct per document."""
    hooks = hooks or UdfHooks()

    @pandas_udf(DOCUMENT_RESULT_TYPE)
    def find_appeals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        find = _appeal_finder(bundle, hooks)
        for texts in batches:
            yield find(texts.tolist())

    return find_appeals


def make_appeals_map(bundle: ModelBundle, hooks: UdfHooks | None, text_col: str, out_col: str):
    """A ``mapInArrow`` function: each row as it came, plus ``out_col``, the result struct of its
    ``text_col`` (the same struct as :func:`make_appeals_udf`'s)."""
    hooks = hooks or UdfHooks()
    return arrow_map(lambda: _appeal_finder(bundle, hooks), text_col, out_col, DOCUMENT_RESULT_TYPE)
