"""One gate for every setting: a bad value of any config key stops the job on the driver, before
any model runs, with one line and exit code 2, and leaves nothing in --output (issue 17).

Also the output folder's own rules: never the input or inside it, and --overwrite only over a
folder an earlier run marked as its output.
"""

import json
from pathlib import Path

import pytest
import yaml
from paths import ROOT

pytestmark = pytest.mark.spark

ROLES = ("detector", "detector_tokenizer", "stance", "embedder", "embedder_config")
# every leaf key of conf/defaults.yaml -> a bad value (YAML text, as --set reads it)
BAD = {
    "models.models_dir": "/nonexistent/models", "models.cache_dir": "/nonexistent/hub-cache",
    "models.offline": "maybe", "models.ship": "sometimes",
    **{f"models.{role}.repo_id": "nobody/no-such-model" for role in ROLES},
    **{f"models.{role}.revision": "0" * 40 for role in ROLES},
    **{f"models.{role}.local_dir": "/nonexistent/model" for role in ROLES},
    "inference.device": "tpu", "inference.precision": "int4", "inference.detect_batch_size": "0",
    "inference.stance_batch_size": "-1", "inference.embed_batch_size": "0", "inference.max_tokens_per_batch": "0",
    "inference.window_stride": "999", "inference.torch_threads": "0", "inference.partitions": "0",
    "inference.sort_by_length": "maybe", "inference.task_gpus": "1.5", "inference.task_cpus": "0",
    "inference.cuda_max_tokens_per_batch": "0", "inference.backend": "tensorrt", "inference.memory_check": "maybe",
    "input.path": "/nonexistent/documents", "input.table": "main..docs", "input.format": "xml",
    "input.text_col": "''", "input.id_col": "a.b", "input.duplicate_ids": "last", "input.carry_cols": "[party, party]",
    "input.chunks": "0", "input.options": "not-a-mapping", "input.schema": "'id STRING,, text'",
    "segmentation.mode": "paragraph", "segmentation.max_segment_chars": "0",
    "clustering.k_min": "1", "clustering.k_max": "1", "clustering.n_clusters": "0", "clustering.metric": "nmi",
    "clustering.dictionary": "/nonexistent/dictionary.csv", "clustering.random_state": "-1",
    "clustering.silhouette_exact_max": "0", "clustering.silhouette_sample_size": "0",
    "clustering.backend": "gpu", "clustering.spark_above": "0",
    "output.path": None,  # the input's own folder (set in the test)
    "output.format": "xml", "output.mode": "append", "output.plots": "maybe", "output.progress_seconds": "-1",
    "output.segment_text": "maybe", "output.complete_panel": "maybe", "output.group_by": "[party, party]", "output.table_prefix": "main appeals",
    "tracking.mlflow": "maybe", "tracking.experiment": "''", "tracking.register_model": "' '",
    "spark": "not-a-mapping",
}


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("options",):
            keys |= _leaf_keys(value, name + ".")
        else:
            keys.add(name)
    return keys


def test_every_config_key_has_a_bad_value_here():
    defaults = yaml.safe_load((ROOT / "conf" / "defaults.yaml").read_text(encoding="utf-8"))
    assert set(BAD) == _leaf_keys(defaults)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate-corpus")
    rows = [{"id": f"d{i}", "party": "A", "text": "Farmers deserve better. Nurses are heroes."} for i in range(3)]
    (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "docs.jsonl"


@pytest.fixture()
def no_models(monkeypatch):
    """Any model work fails the test: the gate must stop the job before it."""
    from group_appeal_spark.jobs.pipeline import detect

    def refuse(*args, **kwargs):
        raise AssertionError("a model stage was reached")

    monkeypatch.setattr(detect, "detect_appeals", refuse)
    monkeypatch.setattr(detect, "embed_mentions", refuse)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("key", sorted(BAD))
def test_a_bad_value_stops_the_job_before_any_model_work(key, corpus, tmp_path, hub_cache, spark, no_models, capsys):
    from group_appeal_spark.jobs import run as run_job

    out = tmp_path / "out"
    flags = {"input.path": ("--input", str(corpus)), "input.format": ("--input-format", "json"),
             "input.carry_cols": ("--carry-cols", "party"), "output.path": ("--output", str(out))}
    bad = str(corpus.parent) if key == "output.path" else BAD[key]  # the input's own folder
    # a flag wins over --set: the key's own flag is left out
    args = [arg for k, pair in flags.items() if k != key for arg in pair] + ["--set", f"{key}={bad}"]
    code = run_job.main([*args, "--master", "local[2]"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("run: error:")]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert _files(out) == [], _files(out)
    assert _files(corpus.parent) == ["docs.jsonl"]


def test_cuda_without_a_gpu_stops_on_the_driver(corpus, tmp_path, hub_cache, spark, no_models, capsys):
    import torch
    from group_appeal_spark.jobs import run as run_job

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    assert run_job.main(["--input", str(corpus), "--input-format", "json", "--output", str(out), "--device", "cuda",
                         "--master", "local[2]"]) == 2
    assert "torch sees no CUDA GPU on this machine" in capsys.readouterr().err and _files(out) == []


def test_the_output_may_not_be_the_input_or_inside_it(corpus, tmp_path, capsys):
    from group_appeal_spark.jobs import run as run_job

    base = ["--input", str(corpus.parent), "--input-format", "json", "--master", "local[2]", "--overwrite"]
    before = _files(corpus.parent)
    for out, says in ((corpus.parent, "is, or lies inside, the input"),
                      (corpus.parent / "out", "is, or lies inside, the input"),
                      (corpus.parent.parent, "lies inside --output")):
        assert run_job.main([*base, "--output", str(out)]) == 2
        assert says in capsys.readouterr().err
    assert _files(corpus.parent) == before


def test_overwrite_replaces_only_an_earlier_runs_output(corpus, tmp_path, capsys):
    """A folder of the user's whose subfolders share table names is not an output: refused, untouched."""
    from group_appeal_spark.jobs import run as run_job

    home = tmp_path / "home"
    for name in ("Documents", "mentions", "errors", "_work_notes"):
        (home / name).mkdir(parents=True)
        (home / name / "keep.txt").write_text("mine")
    before = _files(home)
    code = run_job.main(["--input", str(corpus), "--input-format", "json", "--output", str(home), "--overwrite",
                         "--master", "local[2]"])
    assert code == 2
    assert "is not the output of an earlier run" in capsys.readouterr().err
    assert _files(home) == before


def test_a_clean_error_leaves_nothing_so_the_corrected_run_needs_no_overwrite(corpus, tmp_path, hub_cache, spark,
                                                                             no_models, capsys):
    from group_appeal_spark.jobs import run as run_job

    out = tmp_path / "out"
    args = ["--input", str(corpus), "--input-format", "json", "--output", str(out), "--master", "local[2]"]
    assert run_job.main([*args, "--carry-cols", "nonexistent"]) == 2
    assert "column(s) 'nonexistent' not found" in capsys.readouterr().err
    assert _files(out) == []
    # the corrected command is not refused as "already exists": it reaches the models
    with pytest.raises(AssertionError, match="a model stage was reached"):
        run_job.main([*args, "--carry-cols", "party"])


@pytest.mark.parametrize("damage", ["pickle only", "truncated", "garbage"])
def test_a_broken_model_folder_is_one_line_before_spark_starts(damage, hub_cache, tmp_path, corpus, capsys):
    import shutil

    from group_appeal_spark.jobs import run as run_job
    from group_appeal_spark.lib.models.hub import DETECTOR_ID

    folder = tmp_path / "detector"
    shutil.copytree(hub_cache[DETECTOR_ID], folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    if damage == "pickle only":
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        weights.write_bytes(b"\x00" * 64)
    code = run_job.main(["--input", str(corpus), "--input-format", "json", "--output", str(tmp_path / "out"),
                         "--set", f"models.detector.local_dir={folder}", "--master", "local[2]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("run: error:")][0]
    assert ("no *.safetensors weights" if damage == "pickle only" else "safetensors") in line
    # before the session: the output folder (made by the checks after it starts) was never made
    assert not (tmp_path / "out").exists()
