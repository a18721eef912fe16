"""The model stages' resource profile (jobs/profiles.py): the keys, the profile, the driver's check."""

import logging
import types

import pytest
from group_appeal_spark.jobs.profiles import check_profile, model_profile, wants_profile
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError


class _Conf:
    def __init__(self, values):
        self.values = values

    def get(self, key, default=None):
        return self.values.get(key, default)


def _session(**conf):
    """Only what the check reads: the session's settings (classic or Connect alike)."""
    return types.SimpleNamespace(conf=_Conf({"spark.master": "spark://cluster:7077", **conf}))


def _inference(**keys):
    return load_config(overrides={f"inference.{k}": v for k, v in keys.items()}).inference


@pytest.mark.parametrize("keys, message", [
    ({"task_gpus": 0, "device": "cuda"}, "a fraction up to 1"),
    ({"task_gpus": 1.5, "device": "cuda"}, "or a whole number"),
    ({"task_gpus": True, "device": "cuda"}, "True must be a number"),
    ({"task_gpus": 1}, "inference.device is 'cpu': the models would not use them"),
    ({"task_cpus": 0}, "inference.task_cpus: 0 must be a positive integer"),
    ({"task_cpus": 1.5}, "inference.task_cpus"),
])
def test_bad_values_stop_at_the_config_check(keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _inference(**keys)


def test_no_key_no_profile():
    inference = _inference()
    assert not wants_profile(inference) and model_profile(inference) is None
    check_profile(_session(**{"spark.master": "local[2]"}), inference)  # nothing asked: nothing checked


def test_the_profile_asks_task_resources_only():
    profile = model_profile(_inference(task_gpus=0.5, task_cpus=4, device="cuda"))
    assert profile.executorResources == {}  # a task profile: runs on the executors the application has
    requests = profile.taskResources
    assert requests["cpus"].amount == 4 and requests["gpu"].amount == 0.5
    only_cpus = model_profile(_inference(task_cpus=2))
    assert set(only_cpus.taskResources) == {"cpus"}


@pytest.mark.parametrize("conf, keys, message", [
    ({"spark.master": "local[4]"}, {"task_cpus": 2}, "master 'local[4]' runs every task in one process"),
    ({}, {"task_gpus": 1, "device": "cuda"}, "the executors announce none (spark.executor.resource.gpu.amount"),
    ({"spark.executor.resource.gpu.amount": "1"}, {"task_gpus": 2, "device": "cuda"}, "each executor has 1"),
    ({"spark.executor.cores": "4"}, {"task_cpus": 8}, "each executor has 4 (spark.executor.cores)"),
])
def test_a_profile_the_cluster_cannot_schedule_stops_on_the_driver(conf, keys, message):
    with pytest.raises(ConfigError) as info:
        check_profile(_session(**conf), _inference(**keys))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_schedulable_profile_passes_and_default_task_gpus_warn(caplog):
    inference = _inference(task_gpus=1, task_cpus=4, device="cuda")
    good = {"spark.executor.resource.gpu.amount": "2", "spark.executor.cores": "8"}
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        check_profile(_session(**good), inference)
        check_profile(_session(**{"spark.master": "local-cluster[2,1,1024]"}, **good), inference)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        check_profile(_session(**good, **{"spark.task.resource.gpu.amount": "1"}), inference)
    assert "every task of the default profile" in caplog.text
