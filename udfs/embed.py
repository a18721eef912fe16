"""Embedding on the executors: mention keys -> 128-float embeddings.

As udfs/appeals.py: a pandas UDF over the key column, and an Arrow map over whole rows for a
model stage with its own resource profile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import task_model
from group_appeal_spark.udfs.arrow_map import arrow_map
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import EMBEDDING_TYPE
from pyspark.sql.functions import pandas_udf


def _mention_embedder(bundle: ModelBundle, hooks: UdfHooks) -> Callable[[list], pd.Series]:
    """In a task: load (or reuse) the embedder on the task's device; returns keys -> vectors."""
    embedder = task_model(bundle, hooks, "embed", lambda root, device: bundle.embedder(root, device=device))

    def embed(keys: list) -> pd.Series:
        if hooks.before_batch is not None:
            hooks.before_batch("embed")
        vectors = embedder.embed(keys)
        check_one_per_input(len(keys), len(vectors), "embedding UDF")
        return pd.Series(list(vectors))

    return embed


def make_embed_udf(bundle: ModelBundle, hooks: UdfHooks | None = None):
    """A UDF taking the mention key column and returning each key's embedding."""
    hooks = hooks or UdfHooks()

    @pandas_udf(EMBEDDING_TYPE)
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        run = _mention_embedder(bundle, hooks)
        for keys in batches:
            yield run(keys.tolist())

    return embed


def make_embed_map(bundle: ModelBundle, hooks: UdfHooks | None, key_col: str, out_col: str):
    """A ``mapInArrow`` function: each row as it came, plus ``out_col``, its ``key_col``'s embedding."""
    hooks = hooks or UdfHooks()
    return arrow_map(lambda: _mention_embedder(bundle, hooks), key_col, out_col, EMBEDDING_TYPE)
