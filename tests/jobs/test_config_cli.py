"""Configuration and command line: every key documented, every bad value named, every job has --help."""

import dataclasses
import re

import pytest
import yaml
from group_appeal_spark.jobs import cli
from group_appeal_spark.lib.choices import Device
from group_appeal_spark.lib.config import (
    CHOICE_KEYS,
    JobConfig,
    default_yaml_text,
    load_config,
    parse_override,
)
from group_appeal_spark.lib.errors import ConfigError


def _keys(obj, prefix=""):
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            yield from _keys(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}"


def _yaml_keys(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value and key != "options":
            yield from _yaml_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_defaults_yaml_documents_exactly_the_config_keys():
    assert sorted(_yaml_keys(yaml.safe_load(default_yaml_text()))) == sorted(_keys(JobConfig()))


def test_every_default_key_has_a_comment():
    """A key is documented by a comment on its line or on the lines just above it."""
    previous = ""
    for line in default_yaml_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.endswith(":"):
            if stripped.split(":")[0] not in ("repo_id", "revision", "local_dir"):  # documented per block
                assert "#" in line or previous.startswith("#"), f"undocumented key line: {line!r}"
        previous = stripped


@pytest.mark.parametrize("overrides, match", [
    ({"clustering.kmax": 3}, r"clustering.kmax: unknown key; valid keys here: .*k_max"),
    ({"inference.device": "tpu"}, r"inference.device: invalid value 'tpu'"),
    ({"inference.precision": "int4"}, r"inference.precision: invalid value 'int4'"),
    ({"inference.stance_batch_size": 0}, r"inference.stance_batch_size: 0 must be a positive integer"),
    ({"inference.stance_batch_size": "many"}, r"inference.stance_batch_size: 'many' must be an integer"),
    ({"clustering.k_min": 5, "clustering.k_max": 3}, r"clustering.k_max: 3 must not be below clustering.k_min"),
    ({"clustering.k_min": 1}, r"clustering.k_min: 1 must be at least 2"),
    ({"clustering.metric": "nmi"}, r"clustering.dictionary: the 'nmi' metric needs a dictionary"),
    ({"segmentation.mode": "paragraph"}, r"segmentation.mode: invalid value 'paragraph'"),
    ({"output.mode": "append"}, r"output.mode: invalid value 'append'"),
    ({"models.offline": "maybe"}, r"models.offline: 'maybe' must be true or false"),
    ({"input.chunks": -1}, r"input.chunks: -1 must be a positive integer"),
    ({"models": 3}, r"models: expected a mapping"),
])
def test_bad_values_name_key_and_value(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_file_then_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("clustering:\n  k_max: 12\ninput:\n  carry_cols: [party, date]\n")
    config = load_config(path, {"clustering.k_min": 3})
    assert (config.clustering.k_min, config.clustering.k_max) == (3, 12)
    assert config.input.carry_cols == ["party", "date"]
    assert config.clustering.metric == "silhouette"


@pytest.mark.parametrize("text, expected", [
    ("clustering.k_max=20", ("clustering.k_max", 20)),
    ("models.offline=true", ("models.offline", True)),
    ("input.carry_cols=[party, date]", ("input.carry_cols", ["party", "date"])),
    ("models.stance.revision=abc123", ("models.stance.revision", "abc123")),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_needs_key_and_value():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("clustering.k_max")


def test_models_dir_and_local_dir_precedence(tmp_path):
    config = load_config(overrides={"models.models_dir": str(tmp_path),
                                    "models.stance.local_dir": "/elsewhere/stance"})
    sources = config.model_sources()
    assert sources["stance"].local_dir == "/elsewhere/stance"
    assert sources["detector"].local_dir == str(tmp_path / "maxwlnd--roberta_group_mention_detector")
    assert sources["detector_tokenizer"].local_dir == str(tmp_path / "roberta-base")


@pytest.mark.parametrize("job, flags", [
    ("run", ["--input", "--output", "--carry-cols", "--segmentation", "--tiny-models", "--resume", "--k-max"]),
    ("detect", ["--input", "--output", "--id-col", "--chunks", "--models-dir"]),
    ("cluster", ["--input", "--output", "--metric", "--dictionary", "--n-clusters"]),
    ("fetch-models", ["--out", "--overwrite"]),
    ("train-embedder", ["--dictionary", "--out", "--base-model", "--epochs", "--seed"]),
])
def test_every_job_has_help(job, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([job, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out, f"{job} --help does not mention {flag}"


def test_cli_unknown_job(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown job 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--output", "--out"])
def test_fetch_models_takes_output_and_its_former_name_out(flag, tmp_path):
    from group_appeal_spark.jobs import fetch_models

    args = fetch_models.build_parser().parse_args([flag, str(tmp_path / "models")])
    assert args.output == str(tmp_path / "models")


def _differences(ours, documented, prefix=""):
    """Dotted keys whose value differs between two nested mappings, with both values."""
    for key in sorted(set(ours) | set(documented)):
        a, b = ours.get(key, "<missing>"), documented.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("options", "spark"):
            yield from _differences(a, b, f"{prefix}{key}.")
        elif a != b or type(a) is not type(b):
            yield f"{prefix}{key}: dataclass {a!r} != defaults.yaml {b!r}"


def test_dataclass_defaults_equal_defaults_yaml_values():
    """The YAML is the documented default; a config built without it must give the same values."""
    documented = yaml.safe_load(default_yaml_text())
    assert list(_differences(dataclasses.asdict(JobConfig()), documented)) == []
    assert dataclasses.asdict(load_config()) == documented


@pytest.mark.parametrize("key, choice", sorted(CHOICE_KEYS.items()))
def test_every_choice_key_is_validated_at_load(key, choice):
    valid = ", ".join(repr(v) for v in choice.values())
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: invalid value 'jsnol'; expected one of: "
                                          rf"{re.escape(valid)}$"):
        load_config(overrides={key: "jsnol"})


@pytest.mark.parametrize("value", ["jsnol", "xml", "parquet.gz", "", 3])
def test_bad_input_format_fails_at_load(value):
    with pytest.raises(ConfigError, match=rf"input.format: invalid value {re.escape(repr(str(value)))}; "
                                          r"expected one of: 'parquet', 'csv', 'json', 'text', 'delta', 'orc', 'avro'"):
        load_config(overrides={"input.format": value})


@pytest.mark.parametrize("key, given, stored", [
    ("input.format", " JSON ", "json"),
    ("segmentation.mode", "None", "none"),
    ("clustering.backend", "Spark", "spark"),
    ("inference.precision", "BF16", "bf16"),
])
def test_choices_are_stored_as_their_plain_value(key, given, stored):
    section, name = key.split(".")
    value = getattr(getattr(load_config(overrides={key: given}), section), name)
    assert value == stored and type(value) is str


def test_defaults_yaml_names_every_valid_choice():
    """Each choice key's comment (on its line or just above) lists every valid value."""
    lines = default_yaml_text().splitlines()
    for key, choice in {**CHOICE_KEYS, "inference.device": Device}.items():
        section, name = key.split(".")
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
        at = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(f"{name}:"))
        above = at
        while above > start + 1 and lines[above - 1].strip().startswith("#"):
            above -= 1
        documented = "\n".join(lines[above:at + 1])
        for value in choice.values():
            assert re.search(rf"\b{re.escape(value)}\b", documented), f"{key}: {value!r} not documented"


def test_console_entry_point_fails_a_failed_job_with_an_exception(tmp_path, capsys):
    """Databricks' python_wheel_task ignores a return value: a failed job must raise SystemExit."""
    from importlib.metadata import entry_points

    from group_appeal_spark.jobs import cli

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("group-appeal-spark") == "group_appeal_spark.jobs.cli:console_main"
    with pytest.raises(SystemExit) as failed:
        cli.console_main(["run", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"),
                          "--models-dir", str(tmp_path / "no-models")])
    assert failed.value.code == 2 and "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as unknown:
        cli.console_main(["frobnicate"])
    assert unknown.value.code == 2
    assert cli.console_main(["--version"]) is None  # success: returns, no exception


def test_model_roles_are_defined_once():
    from group_appeal_spark.lib.models.hub import MODEL_ROLES

    config = load_config()
    assert list(config.model_sources()) == list(MODEL_ROLES)
    assert {role: getattr(config.models, role).repo_id for role in MODEL_ROLES} == dict(MODEL_ROLES)


def test_tiny_models_are_built_once_so_a_smoke_run_can_resume():
    """--tiny-models --resume must find the same model folders: their ids include file times."""
    from pathlib import Path

    from group_appeal_spark.testing.smoke import tiny_model_overrides
    from group_appeal_spark.lib.models.bundle import folder_id

    first, second = tiny_model_overrides(), tiny_model_overrides()
    assert first == second and len(first) == 5
    assert all(Path(folder, "config.json").is_file() or any(Path(folder).iterdir()) for folder in first.values())
    assert [folder_id(Path(f)) for f in first.values()] == [folder_id(Path(f)) for f in second.values()]


@pytest.mark.parametrize("override", ["spark.task.cpus", "spark.spark.task.cpus"])
def test_spark_settings_given_with_set_keep_their_dotted_names(override):
    # Spark's keys hold dots: --set splits them, the config joins them back
    assert load_config(overrides={override: 2}).spark == {"spark.task.cpus": "2"}


def test_spark_settings_from_yaml_and_set_merge(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("spark:\n  spark.sql.shuffle.partitions: 64\n  spark.python.worker.reuse: true\n")
    got = load_config(path, {"spark.executor.memory": "8g"}).spark
    assert got == {"spark.sql.shuffle.partitions": "64", "spark.python.worker.reuse": "true",
                   "spark.executor.memory": "8g"}
    with pytest.raises(ConfigError, match="spark"):
        load_config(overrides={"spark.task.cpus": None})
