"""The model stages as ``mapInArrow`` (the shape a resource profile needs) give exactly the pandas
UDFs' tables: every column of mentions, errors, documents, segments and embeddings.

Spark refuses a resource profile in ``local[N]``, so here the map runs without one
(``model_profile`` patched to None); tests/jobs/test_gpu_cluster.py runs it with a profile on a
standalone cluster. The corpus has documents without any mention, a null text, an empty text
and carried columns of types that a pandas round trip could change (date, timestamp, decimal,
struct, array).
"""

import datetime as dt
import decimal

import pandas as pd
import pytest
from group_appeal_spark.jobs.transforms import appeals as transforms
from group_appeal_spark.lib import models
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.testing.tiny_models import corpus
from pyspark.sql import types as T

pytestmark = pytest.mark.spark

SCHEMA = T.StructType([
    T.StructField("id", T.StringType()), T.StructField("text", T.StringType()),
    T.StructField("day", T.DateType()), T.StructField("at", T.TimestampType()),
    T.StructField("amount", T.DecimalType(12, 3)),
    T.StructField("meta", T.StructType([T.StructField("party", T.StringType()), T.StructField("seat", T.IntegerType())])),
    T.StructField("tags", T.ArrayType(T.StringType())),
])
CARRIED = ["day", "at", "amount", "meta", "tags"]


@pytest.fixture(scope="module")
def overrides(sparse_repos):
    """Tiny models that leave most sentences without a mention."""
    return {**{f"models.{role}.local_dir": str(sparse_repos[repo]) for role, repo in models.MODEL_ROLES.items()},
            "input.carry_cols": CARRIED, "output.segment_text": True}


@pytest.fixture(scope="module")
def docs(spark):
    texts = corpus()[:36] + [None, "", "   "]
    rows = [(f"d{i}", t, dt.date(2020, 1, 1 + i % 28), dt.datetime(2021, 3, 4, 5, 6, i % 60),
             decimal.Decimal(f"{i}.125"), (f"P{i % 3}", i), [f"t{i}"] if i % 2 else None)
            for i, t in enumerate(texts)]
    return spark.createDataFrame(rows, SCHEMA)


def _tables(docs, config) -> dict[str, pd.DataFrame]:
    result = transforms.detect_appeals(docs, config)
    try:
        tables = {"mentions": result.mentions, "errors": result.errors, "documents": result.documents,
                  "segments": result.segments,
                  "embeddings": transforms.embed_mentions(result.mentions, config)}
        out = {}
        for name, frame in tables.items():
            pdf = frame.toPandas()
            if "embedding" in pdf.columns:
                pdf["embedding"] = pdf["embedding"].map(list)
            keys = [c for c in ("doc_id", "seg_idx", "start", "end", "mention_key") if c in pdf.columns]
            out[name] = pdf.sort_values(keys).reset_index(drop=True)
        return out
    finally:
        result.release()


def test_the_arrow_map_path_gives_the_pandas_udf_tables(docs, overrides, monkeypatch):
    plain = _tables(docs, load_config(overrides=overrides))
    assert len(plain["mentions"]) >= 5 and (plain["documents"]["n_mentions"] == 0).sum() >= 3
    assert plain["errors"]["doc_id"].tolist() == ["d36", "d37", "d38"]  # null, empty and blank texts

    monkeypatch.setattr(transforms, "model_profile", lambda inference: None)  # local[N] takes no profile
    monkeypatch.setattr(transforms, "check_profile", lambda spark, inference: None)  # which it would refuse
    made = []
    for name in ("make_appeals_map", "make_embed_map"):
        real = getattr(transforms, name)
        monkeypatch.setattr(transforms, name, lambda *a, real=real, name=name: made.append(name) or real(*a))
    mapped = _tables(docs, load_config(overrides={**overrides, "inference.task_cpus": 1}))
    assert made == ["make_appeals_map", "make_embed_map"]  # the map path ran
    for name, frame in plain.items():
        assert list(mapped[name].columns) == list(frame.columns), name
        pd.testing.assert_frame_equal(mapped[name], frame, check_exact=True, obj=name)


def test_a_notebook_asking_a_profile_of_a_local_session_gets_one_line(docs, overrides):
    from group_appeal_spark.lib.errors import ConfigError

    with pytest.raises(ConfigError, match="stage-level scheduling needs a cluster manager"):
        transforms.detect_appeals(docs, load_config(overrides={**overrides, "inference.task_cpus": 1}))
