"""Every fixed set of choices of the package, defined once as a string enum.

A config value is converted once, at load, with :meth:`parse`; the error names the key, the bad
value and every valid one. The members are ``str``, so code further down may compare them with
plain strings (``mode == "none"``), and the config keeps the plain ``.value``.
"""

from __future__ import annotations

import enum
import re

from group_appeal_spark.lib.errors import ConfigError

__all__ = [
    "STANCES",
    "Allocation",
    "Backend",
    "ClusterBackend",
    "Device",
    "DuplicateIds",
    "InputFormat",
    "Metric",
    "NegativeMining",
    "OutputFormat",
    "Precision",
    "SegmentationMode",
    "ShipMode",
    "WriteMode",
]


# The stance classes, in the order of the models' hypotheses (ties go to the first).
STANCES = ("positive", "negative", "neutral")


class _Choice(str, enum.Enum):
    """A string enum whose ``parse`` accepts the enum or its value, case-insensitively."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The valid values, in definition order."""
        return tuple(member.value for member in cls)

    @classmethod
    def parse(cls, value, *, key: str | None = None):
        """Convert a value to a member, once, at the edge.

        Parameters
        ----------
        value : str or member
            The member or its value, in any case and with optional surrounding blanks.
        key : str, optional
            The dotted config key the value came from; the error names it.

        Returns
        -------
        member of ``cls``

        Raises
        ------
        ConfigError
            If ``value`` names no member: ``"<key>: invalid value 'x'; expected one of: ..."``,
            or ``"invalid <choice name> 'x'; expected one of: ..."`` without a key.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        valid = ", ".join(map(repr, cls.values()))
        if key:
            raise ConfigError(f"{key}: invalid value {value!r}; expected one of: {valid}")
        # "SegmentationMode" -> "segmentation mode"
        what = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()
        raise ConfigError(f"invalid {what} {value!r}; expected one of: {valid}")


class Device(_Choice):
    """Where inference runs (``inference.device``, without a ``:N`` index); ``auto`` picks cuda,
    then mps, then cpu."""

    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"
    AUTO = "auto"


class Precision(_Choice):
    """Weights and activations precision (``inference.precision``); ``fp32`` gives the reference's
    numbers; ``auto`` is bf16 where the device runs it natively, else fp16 on CUDA and fp32
    elsewhere, decided where the models run; ``int8`` is dynamic int8 quantisation of the Linear layers (CPU only)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    AUTO = "auto"


class Backend(_Choice):
    """What runs the three models on a CPU (``inference.backend``); on a GPU always torch."""

    TORCH = "torch"
    ONNX = "onnx"  # ONNX Runtime on the exports the driver made (the onnx extra)
    AUTO = "auto"  # onnx only for the stages a recorded measurement of this CPU says are faster


class SegmentationMode(_Choice):
    """How a document is split before mention detection (``segmentation.mode``).

    Attributes
    ----------
    SENTENCE
        One segment per sentence or line (the default; the detector was trained on single
        sentences).
    NONE
        The whole document as one segment, as the reference feeds it; cut at blanks only when
        it is longer than ``segmentation.max_segment_chars``.
    """

    SENTENCE = "sentence"
    NONE = "none"


class Metric(_Choice):
    """The score of the k search (``clustering.metric``); ``nmi`` needs a dictionary."""

    SILHOUETTE = "silhouette"
    NMI = "nmi"


class ClusterBackend(_Choice):
    """Where k-means runs (``clustering.backend``); ``auto`` is ``spark`` above
    ``clustering.spark_above`` distinct mentions."""

    DRIVER = "driver"
    SPARK = "spark"
    AUTO = "auto"


class InputFormat(_Choice):
    """How the documents are read (``input.format``); each value is also the Spark source's name."""

    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"  # JSON lines
    TEXT = "text"  # one document a line
    DELTA = "delta"
    ORC = "orc"
    AVRO = "avro"
    # Databricks Auto Loader: the stream job only (it lists new files; cloudFiles.format in
    # input.options says how each file is read)
    CLOUD_FILES = "cloudfiles"


class OutputFormat(_Choice):
    """How the output tables are written (``output.format``); each value is also the Spark source's name.

    ``delta`` and ``avro`` need their Spark packages; the jobs try one write before any work.
    """

    PARQUET = "parquet"
    DELTA = "delta"
    ORC = "orc"
    AVRO = "avro"
    JSON = "json"  # JSON lines
    CSV = "csv"  # with a header; arrays and structs as JSON text


class WriteMode(_Choice):
    """What a job does with an existing output (``output.mode``)."""

    ERROR = "error"
    OVERWRITE = "overwrite"


class ShipMode(_Choice):
    """How executors get the model files the driver resolved (``models.ship``)."""

    AUTO = "auto"
    FILES = "files"
    PATH = "path"


class NegativeMining(_Choice):
    """How the negative of a triplet is picked among the batch's other-category embeddings
    (``train-embedder --negative-mining``)."""

    BATCH_HARD = "batch_hard"
    BATCH_SEMI_HARD = "batch_semi_hard"


class Allocation(_Choice):
    """How a validation sample of ``n`` segments is spread over the strata
    (:func:`group_appeal_spark.lib.validation.sampling.allocate`).

    Attributes
    ----------
    PROPORTIONAL
        Each stratum gets its share of the population (largest-remainder rounding).
    EQUAL
        Every non-empty stratum gets the same number, as far as its size allows.
    """

    PROPORTIONAL = "proportional"
    EQUAL = "equal"


class DuplicateIds(_Choice):
    """What happens to rows that share a document id (``input.duplicate_ids``).

    Attributes
    ----------
    KEEP
        Every row is processed (the default).
    ERROR
        The job stops before any model work, naming how many ids repeat and a few of them.
    FIRST
        One row per id is processed (the first by the order of all its columns); each other
        one is reported in ``errors/`` with stage ``input``.
    """

    KEEP = "keep"
    ERROR = "error"
    FIRST = "first"
