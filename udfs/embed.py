"""Pandas UDF: mention keys -> 128-float embeddings."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.cache import get_or_load, set_torch_threads
from group_appeal_spark.udfs.devices import device_for_task
from group_appeal_spark.udfs.hooks import UdfHooks
from group_appeal_spark.udfs.schemas import EMBEDDING_TYPE
from group_appeal_spark.udfs.shipping import shipped_root
from pyspark.sql.functions import pandas_udf


def make_embed_udf(bundle: ModelBundle, hooks: UdfHooks | None = None):
    """A UDF taking the mention key column and returning each key's embedding."""
    hooks = hooks or UdfHooks()

    @pandas_udf(EMBEDDING_TYPE)
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        set_torch_threads(bundle.inference.torch_threads)
        device = device_for_task(bundle, "embed")  # the task's own GPU where Spark gave it one
        embedder = get_or_load(bundle.cache_key("embed", device),
                               lambda: bundle.embedder(shipped_root(bundle), device=device), hooks.on_load,
                               slot=bundle.cache_key("embed", "any device"))
        if hooks.on_task is not None:
            hooks.on_task("embed", device)
        for keys in batches:
            if hooks.before_batch is not None:
                hooks.before_batch("embed")
            vectors = embedder.embed(keys.tolist())
            check_one_per_input(len(keys), len(vectors), "embedding UDF")
            yield pd.Series(list(vectors))

    return embed
