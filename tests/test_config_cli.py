"""Configuration and command line: every key documented, every bad value named, every job has --help."""

import dataclasses

import pytest
import yaml
from group_appeal_spark.jobs import cli
from group_appeal_spark.lib.config import (
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
