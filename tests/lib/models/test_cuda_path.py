"""The CUDA path without a GPU: torch's CUDA calls are faked at the boundary only.

What is faked: ``torch.cuda.is_available`` / ``device_count`` / ``is_bf16_supported`` (what the
machine has), and ``Tensor.pin_memory`` / ``Tensor.to`` towards a CUDA device (the copies). The
models then really run on the CPU under a "cuda:N" device, so the stages' own code (device
choice, precision, batching, copies, inference mode) runs as it would on a GPU.
"""

import numpy as np
import pytest
import torch
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.inference import batching
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionEmbedder
from group_appeal_spark.lib.inference.stance import StanceClassifier
from group_appeal_spark.lib.models import devices
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.lib.models.hub import (
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)
from sentences import sentences


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine whose torch sees two CUDA devices (bf16-native unless a test says otherwise)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def copies(monkeypatch):
    """Host-to-device copies recorded and left on the CPU (``Tensor.to`` towards cuda is a no-op)."""
    seen = {"pinned": 0, "to": []}
    real_to = torch.Tensor.to

    def pin_memory(self, *args, **kwargs):
        seen["pinned"] += 1
        return self

    def to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            seen["to"].append((str(target), kwargs.get("non_blocking", False)))
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", to)
    return seen


@pytest.mark.parametrize("address, visible, expected", [
    ("1", None, 1), ("0", "", 0),
    ("3", "3", 0),               # YARN / k8s narrowed CUDA_VISIBLE_DEVICES to the assigned GPU
    ("5", "4,5", 1),
    ("GPU-aa11", "GPU-ff00,GPU-aa11", 1),  # UUIDs from the discovery script
])
def test_spark_gpu_address_becomes_torch_ordinal(address, visible, expected):
    assert devices.cuda_index(address, visible=visible, count=2) == expected


@pytest.mark.parametrize("address, visible", [("2", None), ("GPU-x", "GPU-y"), ("7", "0,1")])
def test_an_address_torch_cannot_see_is_one_line(address, visible):
    with pytest.raises(ConfigError, match=rf"Spark assigned GPU '{address}' to this task, but torch sees 2"):
        devices.cuda_index(address, visible=visible, count=2)


@pytest.mark.parametrize("device, gpus, expected", [
    ("cuda", ["1"], "cuda:1"), ("auto", ["0"], "cuda:0"), ("CUDA", ["1", "0"], "cuda:1"),
    ("cuda", [], "cuda"),           # no Spark GPUs: what torch sees
    ("cuda:0", ["1"], "cuda:0"),    # an explicit ordinal is kept
    ("cpu", ["1"], "cpu"), ("auto", [], "auto"),
])
def test_task_device_follows_the_task_gpus(two_gpus, device, gpus, expected):
    assert devices.task_device(device, gpus) == expected


def test_a_cuda_ordinal_torch_does_not_have_is_refused(two_gpus):
    assert devices.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"'cuda:2' was asked for but torch sees 2 CUDA device"):
        devices.resolve_device("cuda:2")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda_is_bf16_where_native_else_fp16(two_gpus, monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    assert devices.resolve_precision("auto", "cuda:1").value == expected
    assert devices.torch_dtype("auto", "cuda:0") is {"bf16": torch.bfloat16, "fp16": torch.float16}[expected]


def test_cuda_batches_are_bounded_by_the_cuda_token_budget():
    bundle = ModelBundle(folders={}, ids={}, inference=load_config(overrides={
        "inference.cuda_max_tokens_per_batch": 8192}).inference)
    assert bundle.batching("cuda:1") == {"detect": 8192, "stance": 8192, "embed": 8192, "max_tokens": 8192}
    assert bundle.batching("cpu") == {"detect": 32, "stance": 32, "embed": 128, "max_tokens": 1024}
    off = ModelBundle(folders={}, ids={}, inference=load_config(overrides={
        "inference.cuda_max_tokens_per_batch": None}).inference)
    assert off.batching("cuda") == off.batching("cpu")
    assert bundle.cache_key("appeals", "cuda:0") != bundle.cache_key("appeals", "cuda:1")
    assert bundle.cache_key("appeals") == bundle.cache_key("appeals", "cpu")


def test_to_device_pins_and_copies_without_blocking(copies):
    tensor = torch.ones(2, 3, dtype=torch.long)
    assert batching.to_device(tensor, torch.device("cpu")) is tensor
    batching.to_device(tensor, torch.device("cuda:1"))
    assert copies == {"pinned": 1, "to": [("cuda:1", True)]}


def _inference_mode_probe(module):
    seen = []
    module.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(torch.is_inference_mode_enabled()),
                                     with_kwargs=True)
    return seen


def test_stages_on_a_faked_gpu_copy_pinned_and_give_the_cpu_results(hub_cache, two_gpus, copies):
    texts = sentences(30, seed=2)
    det_cpu = MentionDetector.from_dirs(hub_cache[DETECTOR_ID], hub_cache[DETECTOR_TOKENIZER_ID])
    det_gpu = MentionDetector.from_dirs(hub_cache[DETECTOR_ID], hub_cache[DETECTOR_TOKENIZER_ID], device="cuda:1")
    assert det_gpu.device == torch.device("cuda:1")
    st = StanceClassifier.from_dir(hub_cache[STANCE_ID], device="cuda:0")
    emb = MentionEmbedder.from_dirs(hub_cache[EMBEDDER_ID], hub_cache[EMBEDDER_BASE_ID], device="cuda:0")
    copies["to"].clear()  # the models' own moves (Module.to): only the batches' copies count below
    copies["pinned"] = 0
    modes = _inference_mode_probe(det_gpu.model)
    found = det_gpu.detect(texts)
    assert [[(m.start, m.end) for m in ms] for ms in found] == \
        [[(m.start, m.end) for m in ms] for ms in det_cpu.detect(texts)]
    assert modes and all(modes)
    assert copies["to"] and all(dev == "cuda:1" and non_blocking for dev, non_blocking in copies["to"])
    assert copies["pinned"] == len(copies["to"])

    pairs = [(t, m.span) for t, ms in zip(texts, found) for m in ms][:20]
    cpu = StanceClassifier.from_dir(hub_cache[STANCE_ID])
    probs = lambda ss: np.array([[s.prob_positive, s.prob_negative, s.prob_neutral] for s in ss])  # noqa: E731
    assert np.abs(probs(st.classify(pairs)) - probs(cpu.classify(pairs))).max() < 1e-6
    ref = MentionEmbedder.from_dirs(hub_cache[EMBEDDER_ID], hub_cache[EMBEDDER_BASE_ID])
    assert np.abs(emb.embed(["farmers", "young people"]) - ref.embed(["farmers", "young people"])).max() < 1e-6
    assert {dev for dev, _ in copies["to"]} == {"cuda:0", "cuda:1"}
    assert all(non_blocking for _, non_blocking in copies["to"]) and copies["pinned"] == len(copies["to"])


def test_fp16_stages_load_half_weights_for_cuda(hub_cache, two_gpus, copies, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    bundle = ModelBundle.resolve(load_config(overrides={"inference.precision": "auto", "inference.device": "cuda"}))
    assert bundle.precision("cuda:1") == "fp16"
    embedder = bundle.embedder(device="cuda:1")
    assert embedder.device == torch.device("cuda:1")
    assert {p.dtype for p in embedder.module.parameters()} == {torch.float16}
    assert embedder.batch_size == bundle.inference.cuda_max_tokens_per_batch
