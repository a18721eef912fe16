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
from group_appeal_spark.udfs.cache import task_model
from group_appeal_spark.udfs.arrow_map import arrow_map
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import DOCUMENT_RESULT_TYPE
from pyspark.sql.functions import pandas_udf


def _appeal_finder(bundle: ModelBundle, hooks: UdfHooks) -> Callable[[list], pd.DataFrame]:
    """In a task: load (or reuse) the models on the task's device; returns texts -> result frame."""
    finder = task_model(bundle, hooks, "appeals", lambda root, device: bundle.appeal_finder(root, device=device))

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
