"""precision: auto and the emulated-bf16 warning (hardware mocked), and what summary.json records."""

import json
import logging
import re
import sys

import pytest
import torch
from group_appeal_spark.lib import models
from group_appeal_spark.lib.choices import Precision
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.models import bundle as bundle_mod
from group_appeal_spark.lib.models import devices
from group_appeal_spark.lib.models.hub import ModelSource, snapshot_commit

AVX2_ONLY = (frozenset({"avx", "avx2", "fma3", "f16c"}), "test")
AVX512_NO_BF16 = (frozenset({"avx2", "avx512_f", "avx512_bw", "avx512_vnni"}), "test")
AVX512_BF16 = (frozenset({"avx2", "avx512_f", "avx512_bf16"}), "test")
SAPPHIRE_RAPIDS = (frozenset({"avx2", "avx512_f", "amx_tile", "amx_bf16", "avx512_bf16"}), "test")
GRAVITON3 = (frozenset({"asimd", "sve", "bf16", "i8mm"}), "test")


@pytest.fixture
def cpu(monkeypatch):
    """Set this process's CPU: ``cpu(flags, capability)``; forgets the warnings already given."""
    monkeypatch.setattr(devices, "_warned", set())

    def set_cpu(flags, capability):
        monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)

    return set_cpu


@pytest.mark.parametrize("flags, capability, native, seen", [
    (AVX2_ONLY, "AVX2", False, []),
    (AVX512_NO_BF16, "AVX512", False, []),
    (AVX512_BF16, "AVX512", True, ["avx512_bf16"]),
    (SAPPHIRE_RAPIDS, "AVX512", True, ["avx512_bf16", "amx_bf16"]),
    (GRAVITON3, "SVE256", True, ["bf16"]),
], ids=["avx2", "avx512-no-bf16", "avx512-bf16", "amx", "arm-bf16"])
def test_cpu_capability_and_auto_follow_the_cpu(cpu, flags, capability, native, seen):
    cpu(flags, capability)
    facts = devices.cpu_capability()
    assert facts["torch_cpu_capability"] == capability
    assert facts["bf16_native"] is native and facts["bf16_flags_seen"] == seen
    assert facts["flags_source"] == "test"
    assert devices.resolve_precision("auto", "cpu") is (Precision.BF16 if native else Precision.FP32)
    assert devices.torch_dtype("auto") is (torch.bfloat16 if native else torch.float32)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "FP32"])
def test_fixed_precisions_are_kept_whatever_the_cpu(cpu, precision):
    cpu(AVX2_ONLY, "AVX2")
    assert devices.resolve_precision(precision, "cpu").value == precision.lower()


def test_explicit_bf16_on_avx2_warns_once_per_process(cpu, caplog):
    cpu(AVX2_ONLY, "AVX2")
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        for _ in range(3):  # three stages built in one Python worker
            assert devices.resolve_precision("bf16", "cpu") is Precision.BF16
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "AVX2" in message and "emulated" in message and "SLOWER than fp32" in message
    assert "fp32 or auto" in message


@pytest.mark.parametrize("precision, flags", [("bf16", AVX512_BF16), ("auto", AVX2_ONLY), ("fp32", AVX2_ONLY)])
def test_no_warning_where_bf16_is_native_or_not_asked(cpu, caplog, precision, flags):
    cpu(flags, "AVX512")
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        devices.resolve_precision(precision, "cpu")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_stage_build_resolves_auto_and_warns_for_bf16(cpu, caplog, hub_cache):
    """The bundle resolves precision where it builds the stages: an executor's own CPU decides."""
    config = load_config(None, {"models.offline": True, "inference.precision": "auto"})
    bundle = bundle_mod.ModelBundle.resolve(config)
    cpu(AVX512_BF16, "AVX512")
    embedder = bundle.embedder()
    assert next(embedder.module.parameters()).dtype is torch.bfloat16
    cpu(AVX2_ONLY, "AVX2")
    assert next(bundle.embedder().module.parameters()).dtype is torch.float32
    bf16 = bundle_mod.ModelBundle.resolve(load_config(None, {"models.offline": True, "inference.precision": "bf16"}))
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        bf16.embedder()
        bf16.embedder()
    assert sum("emulated" in r.getMessage() for r in caplog.records) == 1


def test_precision_auto_is_a_config_choice():
    assert load_config(None, {"inference.precision": "AUTO"}).inference.precision == "auto"
    with pytest.raises(ConfigError, match="inference.precision: invalid value 'int4'; expected one of: .*'auto'"):
        load_config(None, {"inference.precision": "int4"})


def test_cpu_capability_of_this_machine():
    facts = devices.cpu_capability()
    print("\nthis machine:", json.dumps(facts))
    assert facts["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["torch_cpu_capability"] in {"DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2", "AVX512", "SVE256",
                                             "SVE128"}
    assert facts["flags_source"] in {"torch.cpu.get_capabilities", "/proc/cpuinfo", "none"}
    assert set(facts["bf16_flags_seen"]) <= set(devices.BF16_CPU_FLAGS)
    assert facts["bf16_native"] is bool(facts["bf16_flags_seen"])
    assert facts["torch_version"] == torch.__version__ and facts["torch_threads"] == torch.get_num_threads()
    if sys.platform == "linux" and facts["flags_source"] == "torch.cpu.get_capabilities":
        # torch's cpuinfo and the kernel agree on the bf16 flags
        text = open("/proc/cpuinfo", encoding="utf-8").read()
        kernel = set(re.findall(r"^(?:flags|Features)\s*:(.*)$", text, re.M)[0].split())
        assert {"avx512_bf16", "amx_bf16"} & kernel == {"avx512_bf16", "amx_bf16"} & set(facts["bf16_flags_seen"])
    expected = Precision.BF16 if facts["bf16_native"] else Precision.FP32
    assert devices.resolve_precision("auto", "cpu") is expected


# --- provenance ----------------------------------------------------------------------------------


def test_snapshot_commit_reads_the_hub_cache_layout(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "models--org--some-model" / "snapshots" / sha
    assert snapshot_commit(folder) == ("org/some-model", sha)
    assert snapshot_commit(tmp_path / "org--some-model") is None
    assert snapshot_commit(tmp_path / "x" / "snapshots" / sha) is None


def test_content_hash_sees_bytes_not_mtimes(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "_WHOLE_FILE_MAX", 64)  # make "weights" large with tiny files
    monkeypatch.setattr(bundle_mod, "_SAMPLE", 8)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    weights = bytearray(range(200))
    (folder / "model.safetensors").write_bytes(bytes(weights))
    first = bundle_mod.content_hash(folder)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    import os

    os.utime(folder / "config.json", (1, 1))
    (folder / ".cache").mkdir()
    (folder / ".cache" / "download.lock").write_text("timestamp")
    assert bundle_mod.content_hash(folder) == first, "mtimes and hidden files do not count"
    (folder / "config.json").write_text('{"a": 2}')
    assert bundle_mod.content_hash(folder) != first
    (folder / "config.json").write_text('{"a": 1}')
    weights[100] ^= 1  # in the middle sample (96..104)
    (folder / "model.safetensors").write_bytes(bytes(weights))
    assert bundle_mod.content_hash(folder) != first


def test_provenance_of_hub_and_local_folders(hub_cache, tmp_path):
    snapshot = hub_cache[models.EMBEDDER_ID]
    hub = bundle_mod.model_provenance(ModelSource("embedder", models.EMBEDDER_ID), snapshot)
    assert hub == {"source": "hub", "repo_id": models.EMBEDDER_ID, "revision": None,
                   "commit": snapshot.name, "folder": str(snapshot)}
    local = bundle_mod.model_provenance(ModelSource("embedder", models.EMBEDDER_ID, local_dir=str(tmp_path)),
                                        tmp_path)
    assert local["source"] == "local" and len(local["content_sha256"]) == 64
    assert "commit" not in local and local["content_hash_method"].startswith("sampled-sha256-v1")


def test_provenance_of_a_fetch_models_folder_takes_the_manifest_commit(hub_cache, tmp_path):
    import shutil

    snapshot = hub_cache[models.STANCE_ID]
    target = tmp_path / models.repo_folder_name(models.STANCE_ID)
    shutil.copytree(snapshot, target)
    (tmp_path / "manifest.json").write_text(json.dumps({"stance": {
        "repo_id": models.STANCE_ID, "revision": None, "commit": snapshot.name, "folder": target.name, "files": []}}))
    out = bundle_mod.model_provenance(models.models_dir_source(tmp_path, "stance", models.STANCE_ID), target)
    assert out["source"] == "local" and out["commit"] == snapshot.name and out["repo_id"] == models.STANCE_ID
    assert out["content_sha256"] == bundle_mod.content_hash(snapshot), "a copy hashes as its original"


# --- summary.json ----------------------------------------------------------------------------------


def _check_common_metadata(summary, spark, precision):
    import group_appeal_spark
    import pyspark
    import transformers

    versions = summary["versions"]
    assert versions["group_appeal_spark"] == group_appeal_spark.__version__
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["transformers"] == transformers.__version__ and versions["pyspark"] == pyspark.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert summary["spark"]["master"].startswith("local")
    assert summary["spark"]["app_id"] == spark.sparkContext.applicationId
    assert summary["spark"]["version"] == spark.version
    prec = summary["precision"]
    assert prec["asked"] == precision and prec["resolved_on"] == "driver"
    assert prec["used"] == devices.resolve_precision(precision, "cpu", warn=False).value
    assert prec["driver_cpu"] == devices.cpu_capability() | {"torch_threads": prec["driver_cpu"]["torch_threads"]}


@pytest.mark.spark
def test_detect_and_cluster_summaries_record_provenance(spark, hub_cache, tmp_path):
    from group_appeal_spark.jobs import cluster as cluster_job
    from group_appeal_spark.jobs import detect as detect_job
    from sentences import sentences

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(sentences(6, seed=3))))
    out = tmp_path / "detect"
    assert detect_job.main(["--input", str(docs), "--input-format", "json", "--output", str(out),
                            "--master", "local[2]", "--precision", "auto"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == set(models.MODEL_ROLES)
    for role, repo_id in models.MODEL_ROLES.items():
        entry = summary["models"][role]
        assert entry["source"] == "hub" and entry["repo_id"] == repo_id
        assert entry["commit"] == hub_cache[repo_id].name, role  # the snapshot folder's name
    _check_common_metadata(summary, spark, "auto")

    clustered = tmp_path / "cluster"
    assert cluster_job.main(["--input", str(out), "--output", str(clustered), "--k-min", "2", "--k-max", "3",
                             "--master", "local[2]"]) == 0
    summary = json.loads((clustered / "summary.json").read_text())
    assert "models" not in summary
    _check_common_metadata(summary, spark, "fp32")
