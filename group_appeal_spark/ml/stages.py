"""The models' half as Spark ML Transformers: ``AppealDetector`` and ``MentionEmbedder``.

Both run the notebook API's own transforms (:func:`detect_appeals`, :func:`embed_mentions`), so
their values are those of the jobs. They hold settings only: the models are resolved from the
settings when a stage transforms, and a saved stage is its Params (``DefaultParamsWritable``).
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from group_appeal_spark.jobs.transforms.appeals import (
    MENTION_COLUMNS,
    detect_appeals,
    embed_mentions,
)
from group_appeal_spark.jobs.transforms.columns import DOC_ID
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.ml.params import (
    ConfigParam,
    HasConfig,
    column_param,
    with_config_params,
)

MODEL_PARAMS = (
    ConfigParam("modelsDir", "models.models_dir", "folder written by `fetch-models`: every model from it"),
    ConfigParam("offline", "models.offline", "never contact the hub"),
    ConfigParam("device", "inference.device", "cpu | cuda | cuda:N | mps | auto"),
    ConfigParam("precision", "inference.precision", "fp32 | auto | bf16 | fp16 | int8"),
    ConfigParam("maxTokensPerBatch", "inference.max_tokens_per_batch", "cap on padded tokens per forward pass"),
    ConfigParam("torchThreads", "inference.torch_threads", "torch threads per task; null = spark.task.cpus"),
    ConfigParam("partitions", "inference.partitions", "Spark tasks the rows are spread over for the models"),
)

# the output columns AppealDetector adds
APPEALS, ERROR, ERROR_STAGE = "appeals", "error", "error_stage"


def _column(name: str):
    return F.col(f"`{name}`")  # quoted: a name with a dot is a column, not a struct field


@with_config_params(
    *MODEL_PARAMS,
    ConfigParam("textCol", "input.text_col", "column with the document text"),
    ConfigParam("idCol", "input.id_col", "document id column; absent: a stable doc_id column is added"),
    ConfigParam("duplicateIds", "input.duplicate_ids", "keep | error | first: rows sharing an id"),
    ConfigParam("segmentation", "segmentation.mode", "sentence | none: what one model input is"),
    ConfigParam("maxSegmentChars", "segmentation.max_segment_chars", "a longer segment is cut at whitespace"),
    ConfigParam("windowStride", "inference.window_stride", "tokens shared by neighbouring windows"),
    ConfigParam("detectBatchSize", "inference.detect_batch_size", "texts per detector forward pass"),
    ConfigParam("stanceBatchSize", "inference.stance_batch_size", "pairs per stance forward pass"),
    ConfigParam("sortByLength", "inference.sort_by_length", "order each task's documents by length"),
    ConfigParam("segmentText", "output.segment_text", "give each mention its segment_text"),
)
class AppealDetector(Transformer, HasConfig, DefaultParamsReadable, DefaultParamsWritable):
    """Documents in; every input column kept, plus the document's mentions and its error.

    Output columns: ``outputCol`` (default ``appeals``: an array of mention structs with the
    fields of the mentions table, ``seg_idx`` ... ``seg_end``, and ``segment_text`` with
    ``segmentText``), ``errorCol`` (``error``: why the row was not processed, or null) and
    ``errorStageCol`` (``error_stage``: ``input``, ``segment``, ``detect`` ...). Exploded, the
    array gives exactly ``detect_appeals(...).mentions``; the rows with an error are its
    ``errors``. Without the id column a ``doc_id`` column is added, made as ``detect_appeals``
    makes it. Rows come back spread over the model tasks (``partitions``), not in input order.
    """

    outputCol = column_param("outputCol", "the column of mention structs")
    errorCol = column_param("errorCol", "the column of the row's error (null = processed)")
    errorStageCol = column_param("errorStageCol", "the column of the stage the error came from")

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._setDefault(outputCol=APPEALS, errorCol=ERROR, errorStageCol=ERROR_STAGE)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs):
        """Set any of the Params by name (checked together)."""
        return self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        config = self.job_config()
        text, id_col = config.input.text_col, config.input.id_col
        outputs = [self.getOrDefault(p) for p in (self.outputCol, self.errorCol, self.errorStageCol)]
        has_id = id_col in dataset.columns
        taken = [c for c in outputs + ([] if has_id else [DOC_ID]) if c in dataset.columns]
        if taken:
            raise InputError(f"AppealDetector: the input already has column(s) {taken}, which this stage adds; "
                             f"rename them or set outputCol / errorCol / errorStageCol")
        # every other column travels as a carried column under a plain name (any name Spark allows),
        # in the input's order: ids made from the content, and input.duplicate_ids=first, order
        # rows by all their columns as detect_appeals does; the text's copy, last, changes no order
        alias = {c: c if c in (text, id_col) else f"__carry{i}" for i, c in enumerate(dataset.columns)}
        carried = {a: c for c, a in alias.items() if a != c}
        extra = []
        if text in dataset.columns:
            carried["__carry_text"] = text
            extra = [_column(text).alias("__carry_text")]
        renamed = dataset.select(*[_column(c).alias(alias[c]) for c in dataset.columns], *extra)
        stage_config = load_config(self.getConfigFile(),
                                   {**self.config_overrides(), "input.carry_cols": list(carried)})
        result = detect_appeals(renamed, stage_config)
        # the stage's output is one lazy projection of the model results: no cache left behind
        result.release()
        # each input column back under its own name (the id is doc_id), in the input's order
        by_name = {c: F.col(a).alias(c) for a, c in carried.items()}
        if has_id:
            by_name[id_col] = F.col(DOC_ID).alias(id_col)
        return result.cached.select(*[by_name[c] for c in dataset.columns], *([] if has_id else [F.col(DOC_ID)]),
                           F.col("r.appeals").alias(outputs[0]), F.col("r.error").alias(outputs[1]),
                           F.col("r.error_stage").alias(outputs[2]))


@with_config_params(
    *MODEL_PARAMS,
    ConfigParam("embedBatchSize", "inference.embed_batch_size", "mentions per embedding forward pass"),
)
class MentionEmbedder(Transformer, HasConfig, DefaultParamsReadable, DefaultParamsWritable):
    """Mentions in, one row per distinct mention out: ``mention_key``, ``mention``, ``count``, ``embedding``.

    The input is either :class:`AppealDetector`'s output (its ``inputCol`` array of mention
    structs, exploded) or a mentions table (``mention_key`` and ``span`` columns, as
    ``detect_appeals`` gives and ``mentions/`` holds). The values are ``embed_mentions``'.
    """

    inputCol = column_param("inputCol", "the column of mention structs, where the input is AppealDetector's")

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._setDefault(inputCol=APPEALS)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs):
        """Set any of the Params by name (checked together)."""
        return self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return embed_mentions(mentions_of(dataset, self.getOrDefault(self.inputCol)), self.job_config())


def mentions_of(dataset: DataFrame, column: str) -> DataFrame:
    """The mentions (``mention_key``, ``span``) of an AppealDetector output or of a mentions table."""
    if column in dataset.columns and isinstance(dataset.schema[column].dataType, ArrayType):
        return dataset.select(F.explode(_column(column)).alias("a")).select("a.mention_key", "a.span")
    if {"mention_key", "span"} <= set(dataset.columns):
        return dataset
    raise InputError(f"MentionEmbedder: expected AppealDetector's output (an array column {column!r}) or a mentions "
                     f"table (mention_key, span: {', '.join(MENTION_COLUMNS)}); the input has {dataset.columns}")
