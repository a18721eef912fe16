"""The job parameters: one typed, validated configuration read once per job.

Defaults live in ``conf/defaults.yaml`` (every key documented there); a user file and then
``--set key=value`` / command-line flags override them. Any unknown key or invalid value raises
:class:`ConfigError` naming the dotted key and the value.
"""

from __future__ import annotations

import dataclasses
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from group_appeal_spark.lib.choices import (
    Backend,
    ClusterBackend,
    Device,
    DuplicateIds,
    InputFormat,
    Metric,
    OutputFormat,
    Precision,
    SegmentationMode,
    ShipMode,
    WriteMode,
)
from group_appeal_spark.lib.errors import ConfigError, InputError
from group_appeal_spark.lib.models.hub import (
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    MODEL_ROLES,
    STANCE_ID,
    ModelSource,
    models_dir_source,
)
from group_appeal_spark.lib.table_names import TablePrefix, parse_table

# Every key with a fixed set of values (inference.device, which may carry a ":N" index, aside),
# and the string enum of lib/choices.py that holds them.
CHOICE_KEYS = {
    "models.ship": ShipMode,
    "inference.precision": Precision,
    "inference.backend": Backend,
    "input.format": InputFormat,
    "input.duplicate_ids": DuplicateIds,
    "segmentation.mode": SegmentationMode,
    "clustering.metric": Metric,
    "clustering.backend": ClusterBackend,
    "output.mode": WriteMode,
    "output.format": OutputFormat,
}

# Output formats whose tables, read back, lose column types (a CSV has no arrays and no ints):
# not a source for catalog tables.
UNTYPED_FORMATS = ("csv", "json", "text")


@dataclasses.dataclass
class ModelRef:
    repo_id: str
    revision: str | None = None
    local_dir: str | None = None


@dataclasses.dataclass
class ModelsConfig:
    models_dir: str | None = None
    cache_dir: str | None = None
    offline: bool = False
    ship: str = "auto"
    detector: ModelRef = dataclasses.field(default_factory=lambda: ModelRef(DETECTOR_ID))
    detector_tokenizer: ModelRef = dataclasses.field(default_factory=lambda: ModelRef(DETECTOR_TOKENIZER_ID))
    stance: ModelRef = dataclasses.field(default_factory=lambda: ModelRef(STANCE_ID))
    embedder: ModelRef = dataclasses.field(default_factory=lambda: ModelRef(EMBEDDER_ID))
    embedder_config: ModelRef = dataclasses.field(default_factory=lambda: ModelRef(EMBEDDER_BASE_ID))


@dataclasses.dataclass
class InferenceConfig:
    device: str = "cpu"
    precision: str = "fp32"
    detect_batch_size: int = 32
    stance_batch_size: int = 32
    embed_batch_size: int = 128
    max_tokens_per_batch: int | None = 1024
    cuda_max_tokens_per_batch: int | None = 16384
    backend: str = "torch"
    memory_check: bool = True
    window_stride: int = 128
    torch_threads: int | None = None
    partitions: int | None = None
    sort_by_length: bool = False
    task_gpus: float | None = None  # the model stages' own resource profile (jobs/profiles.py)
    task_cpus: int | None = None


@dataclasses.dataclass
class InputConfig:
    path: str | None = None
    table: str | None = None
    format: str = "parquet"
    text_col: str = "text"
    id_col: str = "id"
    duplicate_ids: str = "keep"
    carry_cols: list[str] = dataclasses.field(default_factory=list)
    chunks: int = 1
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    schema: str | None = None  # the stream's input columns, a DDL string (checked by Spark at start)

    @property
    def carried(self) -> list[str]:
        """The carried columns that reach the outputs: ``carry_cols`` less the text and id columns
        (the text is not copied; the id is every output's ``doc_id``)."""
        return [c for c in self.carry_cols if c not in (self.text_col, self.id_col)]


@dataclasses.dataclass
class SegmentationConfig:
    mode: str = "sentence"
    max_segment_chars: int = 20_000


@dataclasses.dataclass
class ClusteringConfig:
    k_min: int = 2
    k_max: int = 30
    n_clusters: int | None = None
    metric: str = "silhouette"
    dictionary: str | None = None
    random_state: int = 42
    silhouette_exact_max: int = 10_000
    silhouette_sample_size: int = 10_000
    backend: str = "driver"
    spark_above: int = 1_000_000


@dataclasses.dataclass
class OutputConfig:
    path: str | None = None
    format: str = "parquet"
    mode: str = "error"
    plots: bool = True
    progress_seconds: int = 30
    segment_text: bool = False
    group_by: list[str] | None = None
    complete_panel: bool = False
    table_prefix: str | None = None


@dataclasses.dataclass
class TrackingConfig:
    mlflow: bool = False
    experiment: str | None = None
    register_model: str | None = None


@dataclasses.dataclass
class JobConfig:
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    segmentation: SegmentationConfig = dataclasses.field(default_factory=SegmentationConfig)
    clustering: ClusteringConfig = dataclasses.field(default_factory=ClusteringConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    spark: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> "JobConfig":
        """Check every value and normalise each choice to its value (``"Parquet"`` ->
        ``"parquet"``); returns self. Raises ConfigError naming the key and value."""
        inf, clu, seg = self.inference, self.clustering, self.segmentation
        self.spark = _spark_settings(self.spark)
        Device.parse(str(inf.device).split(":", 1)[0], key="inference.device")
        for key, choice in CHOICE_KEYS.items():
            section, name = key.split(".")
            part = getattr(self, section)
            setattr(part, name, choice.parse(getattr(part, name), key=key).value)
        _positive("clustering.spark_above", clu.spark_above)
        for key in ("detect_batch_size", "stance_batch_size", "embed_batch_size"):
            _positive(f"inference.{key}", getattr(inf, key))
        if inf.max_tokens_per_batch is not None:
            _positive("inference.max_tokens_per_batch", inf.max_tokens_per_batch)
        if inf.cuda_max_tokens_per_batch is not None:
            _positive("inference.cuda_max_tokens_per_batch", inf.cuda_max_tokens_per_batch)
        if not isinstance(inf.memory_check, bool):
            raise ConfigError(f"inference.memory_check: {inf.memory_check!r} must be true or false")
        if inf.backend == "onnx" and str(inf.device).split(":", 1)[0].lower() in ("cuda", "mps"):
            raise ConfigError(f"inference.backend: onnx runs on the CPU (ONNX Runtime's CPU provider), not on "
                              f"inference.device {inf.device!r}; use backend torch there")
        if inf.backend == "onnx" and inf.precision in ("bf16", "fp16"):
            raise ConfigError(f"inference.backend: onnx runs fp32 or int8 (inference.precision), not "
                              f"{inf.precision!r}; use backend torch for {inf.precision}")
        if inf.torch_threads is not None:
            _positive("inference.torch_threads", inf.torch_threads)
        if inf.partitions is not None:
            _positive("inference.partitions", inf.partitions)
        if inf.task_cpus is not None:
            _positive("inference.task_cpus", inf.task_cpus)
        if inf.task_gpus is not None and (inf.task_gpus <= 0 or (inf.task_gpus > 1 and inf.task_gpus % 1)):
            raise ConfigError(f"inference.task_gpus: {inf.task_gpus!r} must be a number of GPUs per model task: a "
                              f"fraction up to 1 (0.5 = two tasks share a GPU) or a whole number, or null")
        if inf.task_gpus is not None and str(inf.device).split(":", 1)[0].lower() in ("cpu", "mps"):
            raise ConfigError(f"inference.task_gpus: {inf.task_gpus!r} GPU(s) per model task, but inference.device is "
                              f"{inf.device!r}: the models would not use them; use --device cuda (or auto)")
        if inf.precision == "int8" and str(inf.device).split(":", 1)[0].lower() in ("cuda", "mps"):
            raise ConfigError(f"inference.precision: int8 (dynamic quantisation) runs on the CPU only, not on "
                              f"inference.device {inf.device!r}; use bf16 or fp16 there, or device cpu")
        if inf.window_stride < 0 or inf.window_stride > 256:
            raise ConfigError(f"inference.window_stride: {inf.window_stride!r} must be between 0 and 256 tokens")
        _positive("segmentation.max_segment_chars", seg.max_segment_chars)
        _positive("input.chunks", self.input.chunks)
        if not isinstance(self.output.progress_seconds, (int, float)) or isinstance(self.output.progress_seconds, bool) \
                or self.output.progress_seconds < 0:
            raise ConfigError(f"output.progress_seconds: {self.output.progress_seconds!r} must be a number of seconds "
                              f">= 0 (0 = never)")
        _positive("clustering.silhouette_exact_max", clu.silhouette_exact_max)
        _positive("clustering.silhouette_sample_size", clu.silhouette_sample_size)
        if clu.k_min < 2:
            raise ConfigError(f"clustering.k_min: {clu.k_min!r} must be at least 2")
        if clu.k_max < clu.k_min:
            raise ConfigError(f"clustering.k_max: {clu.k_max!r} must not be below clustering.k_min ({clu.k_min})")
        if clu.n_clusters is not None:
            _positive("clustering.n_clusters", clu.n_clusters)
        if clu.metric == Metric.NMI and not clu.dictionary:
            raise ConfigError("clustering.dictionary: the 'nmi' metric needs a dictionary CSV (columns = categories)")
        if not self.input.text_col:
            raise ConfigError("input.text_col: must name a column")
        if clu.random_state is not None and not (isinstance(clu.random_state, int) and not isinstance(
                clu.random_state, bool) and 0 <= clu.random_state < 2**32):
            raise ConfigError(f"clustering.random_state: {clu.random_state!r} must be a seed from 0 to 2**32 - 1, "
                              f"or null")
        self._check_columns()
        self._check_group_by()
        self._check_tables()
        for key in ("experiment", "register_model"):
            name = getattr(self.tracking, key)
            if name is not None and not name.strip():
                raise ConfigError(f"tracking.{key}: {name!r} must be a name (or null)")
        return self

    def _check_columns(self) -> None:
        """Column names Spark resolves as they are, each carried column once and not the text or id column."""
        inp = self.input
        named = [("input.text_col", inp.text_col), ("input.id_col", inp.id_col)]
        named += [("input.carry_cols", c) for c in inp.carry_cols]
        named += [("output.group_by", c) for c in self.output.group_by or ()]
        for key, name in named:
            if not isinstance(name, str) or not name.strip() or "." in name or "`" in name:
                raise ConfigError(f"{key}: {name!r} is not a usable column name (a non-empty name without '.' or "
                                  f"'`'; Spark would read 'a.b' as field b of a struct a): rename the column in the "
                                  f"input, e.g. with withColumnRenamed or in a SELECT")
        for key, names in (("input.carry_cols", inp.carry_cols), ("output.group_by", self.output.group_by or ())):
            repeated = sorted({c for c in names if list(names).count(c) > 1})
            if repeated:
                raise ConfigError(f"{key}: {', '.join(map(repr, repeated))} given more than once")
        for role, column in (("text column (input.text_col); the segment_text output holds the sentences",
                              inp.text_col),
                             ("id column (input.id_col); every output row has it as doc_id", inp.id_col)):
            if column in inp.carry_cols:
                raise ConfigError(f"input.carry_cols: {column!r} is the {role}; carry other columns")

    def _check_group_by(self) -> None:
        """output.group_by must name carried columns (checkable only where input.carry_cols is set:
        ``cluster`` learns them from its input's documents/ table and checks there)."""
        if self.input.carried:
            group_columns(self.output.group_by, self.input.carried)

    def _check_tables(self) -> None:
        """input.table and output.table_prefix are catalog names; published tables need a typed format."""
        if self.input.table is not None:
            parse_table(self.input.table, "input.table")
            if self.input.path:
                raise InputError(f"input: give --input PATH or --input-table NAME, not both (got --input "
                                 f"{self.input.path} and --input-table {self.input.table}; input.path / input.table)")
        if self.output.table_prefix is not None:
            TablePrefix.parse(self.output.table_prefix, "output.table_prefix")
            if str(self.output.format).lower() in UNTYPED_FORMATS:
                raise ConfigError(f"output.table_prefix: catalog tables are published from the output's tables, and "
                                  f"output.format {self.output.format!r} does not keep their column types; use "
                                  f"parquet, delta or orc (--output-format)")

    def model_sources(self) -> dict[str, ModelSource]:
        """The five model sources, by role: a ``models_dir`` wins over hub ids, a ``local_dir`` over both."""
        out = {}
        for role in MODEL_ROLES:
            ref: ModelRef = getattr(self.models, role)
            label = role.replace("_", " ")
            if ref.local_dir:
                out[role] = ModelSource(label, ref.repo_id, ref.revision, ref.local_dir)
            elif self.models.models_dir:
                out[role] = models_dir_source(self.models.models_dir, label, ref.repo_id, ref.revision)
            else:
                out[role] = ModelSource(label, ref.repo_id, ref.revision)
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _positive(key: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}: {value!r} must be a positive integer")


def default_yaml_text() -> str:
    """The text of the packaged ``conf/defaults.yaml``."""
    return resources.files("group_appeal_spark.conf").joinpath("defaults.yaml").read_text(encoding="utf-8")


def _read_yaml(text: str, origin: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(text)  # safe_load: a config file never constructs Python objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of keys at the top, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Build the validated configuration: packaged defaults, then ``path``, then ``overrides``.

    Parameters
    ----------
    path : path, optional
        A YAML file with any subset of the keys of ``conf/defaults.yaml``.
    overrides : dict, optional
        Dotted keys (``"clustering.k_max"``) to values; strings are parsed as YAML scalars.
    """
    config = _apply(JobConfig(), _read_yaml(default_yaml_text(), "conf/defaults.yaml"), "")
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"--config: file {file} does not exist")
        config = _apply(config, _read_yaml(file.read_text(encoding="utf-8"), str(file)), "")
    for key, value in (overrides or {}).items():
        config = _apply(config, _nest(key, value), "")
    return config.validate()


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", parsed value)``; the value is read as a YAML scalar."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: expected KEY=VALUE (e.g. clustering.k_max=20), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _spark_settings(tree: dict, prefix: str = "") -> dict[str, str]:
    """The ``spark`` section as Spark settings: nested keys joined by dots, each named ``spark.*``.

    Spark's own keys hold dots, so ``--set spark.task.cpus=2`` arrives nested
    (``{"task": {"cpus": 2}}``); it and ``--set spark.spark.task.cpus=2`` both give
    ``spark.task.cpus``, as does the YAML key ``spark.task.cpus`` under ``spark:``.
    """
    if not isinstance(tree, dict):
        raise ConfigError(f"spark: {tree!r} must be a mapping of Spark settings (e.g. spark.task.cpus: 2)")
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_spark_settings(value, name))
            continue
        if value is None or isinstance(value, (list, tuple)):
            raise ConfigError(f"spark.{name}: {value!r} must be a single value")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        flat[name] = text
    if not prefix:
        flat = {k if k.startswith("spark.") else f"spark.{k}": v for k, v in flat.items()}
    return flat


def _nest(dotted: str, value) -> dict:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _apply(obj, data: dict, prefix: str):
    """Return a copy of dataclass ``obj`` with ``data`` merged in, type-checked key by key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"{dotted}: unknown key; valid keys here: {valid}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _apply(current, value, f"{dotted}.")
        elif dotted == "spark":  # Spark settings add up, key by key, over defaults, file and --set
            changes[key] = {**_spark_settings(current), **_spark_settings(value)}
        elif dotted == "input.options":  # reader options too: --set input.options.header=true adds one
            changes[key] = {**current, **_coerce(dotted, value, hints[key])}
        else:
            changes[key] = _coerce(dotted, value, hints[key])
    return dataclasses.replace(obj, **changes)


def _coerce(key: str, value, hint):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {value!r} must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {value!r} must be an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: {value!r} must be a number")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: {value!r} must be a string")
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{key}: {value!r} must be a list of strings")
    if origin is dict:
        if isinstance(value, dict):
            # --set input.options.cloudFiles.format=json nests by the dots: a reader option's name keeps them
            return dict(_flat_keys(value))
        raise ConfigError(f"{key}: {value!r} must be a mapping")
    if hint is typing.Any:
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")


def _flat_keys(tree: dict, prefix: str = ""):
    """(dotted key, value) of a nested mapping's leaves."""
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def group_columns(group_by: list[str] | None, carried: list[str]) -> list[str]:
    """The columns aggregates/ groups by: ``group_by``, or every carried column when it is null or empty.

    Raises InputError naming a column of ``group_by`` that is not carried.
    """
    if not group_by:
        return list(carried)
    missing = [c for c in group_by if c not in carried]
    if missing:
        which = f"the carried columns are {list(carried)}" if carried else "this run carries no columns"
        raise InputError(f"output.group_by (--group-by): {missing} not carried; {which} "
                         f"(input.carry_cols / --carry-cols)")
    return list(group_by)


def as_job_config(config) -> JobConfig:
    """``config`` as a validated JobConfig: a JobConfig as it is, a dict of dotted overrides or None loaded."""
    return config if isinstance(config, JobConfig) else load_config(overrides=config or {})

