"""The driver's device and memory checks, the devices summary.json records, the per-device cache."""

import logging
import types

import pytest
from group_appeal_spark.jobs import memory
from group_appeal_spark.jobs.devices import devices_used
from group_appeal_spark.jobs.transforms.appeals import detect_appeals, embed_mentions
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.lib.models.memory import WORKER_OVERHEAD, worker_need
from group_appeal_spark.udfs import cache
from sentences import sentences


class _Conf:
    def __init__(self, values):
        self.values = values

    def get(self, key, default=None):
        return self.values.get(key, default)


def _cluster(**conf):
    """A stand-in for a classic session on a cluster master: only what the check reads."""
    return types.SimpleNamespace(conf=_Conf({k.replace("_", "."): v for k, v in conf.items()}),
                                 sparkContext=types.SimpleNamespace(master="spark://cluster:7077"))


@pytest.fixture(scope="module")
def bundle(hub_cache):
    return ModelBundle.resolve(load_config())


@pytest.mark.parametrize("text, expected", [("512m", 512), ("4g", 4096), ("2048", 2048), ("1.5g", 1536),
                                            ("512MiB", 512), (None, None)])
def test_spark_sizes(text, expected):
    assert memory.size_mib(text) == expected


def test_need_counts_shared_weights_once_and_private_copies_per_worker(bundle):
    fp32, bf16 = worker_need(bundle.folders, "fp32"), worker_need(bundle.folders, "bf16")
    assert fp32.private == 0 and bf16.private == fp32.mapped // 2 and fp32.overhead == WORKER_OVERHEAD
    assert fp32.workers(4) == fp32.mapped + 4 * WORKER_OVERHEAD
    assert bf16.one_worker > fp32.one_worker


def test_a_pyspark_memory_too_small_for_one_worker_stops_with_the_setting(bundle):
    config = load_config()
    spark = _cluster(**{"spark_executor_pyspark_memory": "1g", "spark_executor_cores": "4"})
    with pytest.raises(ConfigError, match=r"^spark.executor.pyspark.memory: 1024 MiB over 4 executor core\(s\) leaves "
                                          r"256 MiB per Python worker, .* raise spark.executor.pyspark.memory to at "
                                          r"least [\d,]+m"):
        memory.check_memory(spark, config, bundle)
    enough = memory.check_memory(_cluster(spark_executor_pyspark_memory="8g", spark_executor_cores="4"), config,
                                 bundle)
    assert enough["setting"] == "spark.executor.pyspark.memory" and enough["limit_mib"] == 2048


def test_a_small_executor_overhead_warns_with_the_setting(bundle, caplog):
    spark = _cluster(spark_executor_memory="2g", spark_executor_cores="4")  # overhead 384 MiB, 4 workers
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        found = memory.check_memory(spark, load_config(), bundle)
    assert found["need_mib"] > found["limit_mib"] == 384
    assert "raise spark.executor.memoryOverhead" in caplog.text and "4 model-running Python worker" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        memory.check_memory(_cluster(spark_executor_memoryOverhead="4g"), load_config(), bundle)
    assert not caplog.text


def test_memory_check_can_be_switched_off_and_skips_local_executors(bundle):
    off = load_config(overrides={"inference.memory_check": False})
    tiny = _cluster(spark_executor_pyspark_memory="16m")
    assert memory.check_memory(tiny, off, bundle) is None
    local = types.SimpleNamespace(conf=_Conf({"spark.executor.pyspark.memory": "16m"}),
                                  sparkContext=types.SimpleNamespace(master="local[2]"))
    assert memory.check_memory(local, load_config(), bundle) is None


def test_cache_keeps_one_device_per_stage(monkeypatch):
    monkeypatch.setattr(cache, "_MODELS", {})
    monkeypatch.setattr(cache, "_SLOTS", {})
    loads = []
    first = cache.get_or_load("k-cuda0", lambda: loads.append("cuda:0") or "model on cuda:0", slot="appeals")
    assert cache.get_or_load("k-cuda0", lambda: loads.append("again"), slot="appeals") == first
    second = cache.get_or_load("k-cuda1", lambda: loads.append("cuda:1") or "model on cuda:1", slot="appeals")
    assert second == "model on cuda:1" and loads == ["cuda:0", "cuda:1"]
    assert "k-cuda0" not in cache._MODELS  # the other GPU's copy is dropped, not kept beside it
    cache.get_or_load("other-stage", lambda: "embedder", slot="embed")
    assert set(cache._MODELS) == {"k-cuda1", "other-stage"}


@pytest.mark.spark
def test_summary_devices_come_from_the_tasks(spark, hub_cache):
    config = load_config(overrides={"inference.partitions": 2})
    docs = spark.createDataFrame(list(enumerate(sentences(30, seed=4))), "id long, text string")
    result = detect_appeals(docs, config)
    assert result.mentions.count() > 0
    assert len(embed_mentions(result.mentions, config).select("embedding").collect()) > 0  # count() skips the UDF
    result.release()
    found = devices_used(spark)
    assert found["recorded"] is True
    assert found["by_stage"] == {"appeals": ["cpu"], "embed": ["cpu"]}


@pytest.mark.spark
def test_cuda_where_the_executors_see_no_gpu_stops_with_one_line(spark):
    from group_appeal_spark.jobs.devices import check_cluster_gpus

    with pytest.raises(ConfigError, match=r"^inference.device: 'cuda', but torch on the executors \(.*\) sees no "
                                          r"CUDA GPU: .*docs/gpu.md$"):
        check_cluster_gpus(spark, "cuda")  # the probe tasks run torch on the (local) executors
