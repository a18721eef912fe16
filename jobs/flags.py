"""The jobs' command-line flags, defined once in tables: each row makes the argparse flag and,
where it sets a config key, the flag -> key mapping :func:`config_from_args` applies."""

from __future__ import annotations

import argparse
import dataclasses

from group_appeal_spark.lib.config import load_config, parse_override
from group_appeal_spark.lib.errors import InputError

OUTPUTS_EPILOG = "Output tables and columns: docs/outputs.md. Every config key: conf/defaults.yaml."


@dataclasses.dataclass(frozen=True)
class Flag:
    """One flag: its name, help, the config key it sets (named at the end of the help), argparse options."""

    name: str
    help: str
    key: str | None = None
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.options.get("dest", self.name.lstrip("-").replace("-", "_"))

    def add_to(self, parser) -> None:
        text = f"{self.help} ({self.key})" if self.key else self.help
        parser.add_argument(self.name, help=text, **self.options)


def _connect_url(value: str) -> str:
    """An ``sc://`` URL (argparse type of ``--remote``)."""
    if not value.startswith("sc://"):
        raise argparse.ArgumentTypeError(f"expected a Spark Connect URL sc://HOST[:PORT][/;param=value...], got {value!r}")
    return value


INPUT_FLAGS = ("input and output", (
    Flag("--input", "documents: a file or folder; or give --input-table", "input.path"),
    Flag("--input-table", "documents: a catalog table or view, [catalog.][schema.]table, read with spark.table "
         "instead of --input", "input.table", {"metavar": "NAME"}),
    Flag("--output", "output folder", "output.path"),
    Flag("--input-format", "parquet | csv | json (JSON lines) | text (one document a line) | delta ...",
         "input.format"),
    Flag("--text-col", "column with the document text (default text)", "input.text_col"),
    Flag("--id-col", "document id column (default id; stable ids are generated when absent)", "input.id_col"),
    Flag("--carry-cols", "comma-separated input columns copied to every output row, e.g. party,date",
         "input.carry_cols"),
    Flag("--segmentation", "sentence (default) | none: what one model input is", "segmentation.mode"),
    Flag("--chunks", "process the documents in N chunks, each checkpointed", "input.chunks", {"type": int}),
    Flag("--resume", "continue an interrupted run into the same --output: finished chunks are skipped",
         options={"action": "store_true"}),
))
MODEL_FLAGS = ("models and inference", (
    Flag("--models-dir", "folder written by `fetch-models`: read every model from it, never the hub",
         "models.models_dir"),
    Flag("--offline", "never contact the hub; use the hub cache or local folders only", "models.offline",
         {"action": "store_true", "default": None}),
    Flag("--embedder-dir", "a custom embedder folder (e.g. from `train-embedder`); sets "
         "models.embedder.local_dir and models.embedder_config.local_dir"),
    Flag("--device", "cpu | cuda | cuda:N | mps | auto", "inference.device"),
    Flag("--precision", "fp32 (identical to the reference) | auto (bf16 where the hardware has it, else fp32; fp16 "
         "on CUDA) | "
         "bf16 | fp16 | int8 (CPU: dynamic int8 quantisation)", "inference.precision"),
    Flag("--tiny-models", "OFFLINE SMOKE TEST ONLY: build tiny random-weight models of the real architectures "
         "and use them; exercises the whole pipeline, outputs are meaningless", options={"action": "store_true"}),
))
CLUSTER_FLAGS = ("clustering", (
    Flag("--k-min", "smallest k of the search", "clustering.k_min", {"type": int}),
    Flag("--k-max", "largest k of the search, inclusive", "clustering.k_max", {"type": int}),
    Flag("--n-clusters", "a fixed k; skips the search", "clustering.n_clusters", {"type": int}),
    Flag("--metric", "silhouette | nmi", "clustering.metric"),
    Flag("--dictionary", "category dictionary CSV: the nmi metric, and each mention's category",
         "clustering.dictionary"),
    Flag("--group-by", "comma-separated carried columns aggregates/ groups by, e.g. party,date; default all "
         "carried columns", "output.group_by"),
))
RUN_OUTPUT_FLAGS = (None, (
    Flag("--input", "output folder of `detect` or `run` (holds mention_embeddings/)", "input.path"),
    Flag("--output", "output folder (may be the same as --input with --overwrite)", "output.path"),
))
COMMON_FLAGS = (None, (
    Flag("--config", "YAML file overriding conf/defaults.yaml (any subset of its keys)"),
    Flag("--set", "override one config key, e.g. --set inference.stance_batch_size=64 (repeatable)",
         options={"action": "append", "default": [], "metavar": "KEY=VALUE"}),
    Flag("--output-format", "parquet (default) | delta | orc | json | csv ...", "output.format"),
    Flag("--output-table-prefix", "also publish every table written as the catalog table PREFIX<name>, e.g. "
         "main.appeals.hansard_ -> main.appeals.hansard_mentions, ... (saveAsTable in --output-format); --output "
         "is still required", "output.table_prefix", {"metavar": "PREFIX"}),
    Flag("--overwrite", "replace an existing output; default is to refuse", "output.mode=overwrite",
         {"action": "store_true", "default": None}),
    Flag("--mlflow", "log the job to MLflow (the mlflow extra): config, counts, k search, artifacts; a tracking "
         "failure is one warning", "tracking.mlflow", {"action": "store_true", "default": None}),
    Flag("--log-level", "DEBUG | INFO | WARNING (default INFO)", options={"default": "INFO"}),
))
# Stored as the master: build_session takes an sc:// master as a Connect server, so every job
# that hands args.master to it runs on Connect without code of its own.
TARGET_FLAGS = (
    Flag("--master", "Spark master when not launched by spark-submit or inside an existing session (default "
         "local[*]); spark-submit's --master wins"),
    Flag("--remote", "run on a Spark Connect server (Databricks serverless or shared clusters, "
         "start-connect-server.sh) instead of a JVM of this process; default $SPARK_REMOTE",
         options={"dest": "master", "type": _connect_url, "metavar": "sc://HOST:PORT"}),
)
TABLES = (INPUT_FLAGS, MODEL_FLAGS, CLUSTER_FLAGS, RUN_OUTPUT_FLAGS, COMMON_FLAGS)


def add_flags(parser: argparse.ArgumentParser, table) -> None:
    """Add one table's flags (in an argument group where it has a title); the common table brings
    the mutually exclusive ``--master`` / ``--remote``."""
    title, flags = table
    group = parser.add_argument_group(title) if title else parser
    for flag in flags:
        flag.add_to(group)
    if table is COMMON_FLAGS:
        target = parser.add_mutually_exclusive_group()
        for flag in TARGET_FLAGS:
            flag.add_to(target)


def job_parser(job: str, doc: str, *tables, extra=()) -> argparse.ArgumentParser:
    """A job's flag parser: its name, the first paragraph of its docstring, the flag ``tables``,
    then ``extra`` flags of the job's own."""
    parser = argparse.ArgumentParser(prog=f"group-appeal-spark {job}", description=doc.split("\n\n")[0],
                                     epilog=OUTPUTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    for table in tables:
        add_flags(parser, table)
    for flag in extra:
        flag.add_to(parser)
    return parser


def tool_parser(job: str, doc: str, extra) -> argparse.ArgumentParser:
    """The parser of a job that reads a run's output and takes no model or table settings
    (``sample``, ``validate``): its own ``extra`` flags, then --set, --log-level, --master/--remote."""
    parser = job_parser(job, doc, extra=extra)
    for name in ("--set", "--log-level"):
        next(f for f in COMMON_FLAGS[1] if f.name == name).add_to(parser)
    target = parser.add_mutually_exclusive_group()
    for flag in TARGET_FLAGS:
        flag.add_to(target)
    return parser


def tool_config(args: argparse.Namespace):
    """Such a job's configuration: only --set (Spark settings, output.progress_seconds...)."""
    return load_config(None, dict(parse_override(s) for s in args.set))


def flag_keys() -> dict[str, str]:
    """dest -> dotted config key (or ``key=value``) of every flag that sets one."""
    return {flag.dest: flag.key for _, flags in TABLES for flag in flags if flag.key}


def config_from_args(args: argparse.Namespace):
    """The validated configuration: defaults, then --config, then --set, then the flags."""
    from group_appeal_spark.testing.smoke import tiny_model_overrides

    overrides = dict(parse_override(s) for s in args.set)
    for dest, key in flag_keys().items():
        value = getattr(args, dest, None)
        if value is None or value is False:
            continue
        if "=" in key:  # a switch that sets a fixed value
            key, value = key.split("=", 1)
        overrides[key] = value
    if getattr(args, "embedder_dir", None):
        overrides["models.embedder.local_dir"] = args.embedder_dir
        overrides["models.embedder_config.local_dir"] = args.embedder_dir
    if getattr(args, "tiny_models", False):
        overrides.update(tiny_model_overrides())
    return load_config(args.config, overrides)


def config_from_run_output(args: argparse.Namespace):
    """The config of a job that starts from a ``detect``/``run`` output folder given as ``--input``."""
    config = config_from_args(args)
    if not config.input.path:
        raise InputError("input: give --input, the output folder of `detect` or `run`")
    return config
