"""precision int8: dynamic quantisation of the Linear layers, CPU only, close to fp32."""

import numpy as np
import pytest
import torch
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionEmbedder
from group_appeal_spark.lib.inference.stance import StanceClassifier
from group_appeal_spark.lib.models import devices
from group_appeal_spark.lib.models.hub import (
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)
from sentences import sentences


def _quantised_linears(model) -> int:
    return sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in model.modules())


def _plain_linears(model) -> int:
    return sum(type(m) is torch.nn.Linear for m in model.modules())


def test_config_takes_int8_and_auto_never_picks_it():
    assert load_config(overrides={"inference.precision": "int8"}).inference.precision == "int8"
    assert devices.resolve_precision("int8", "cpu").value == "int8"
    assert devices.torch_dtype("int8") is torch.float32  # loaded in fp32, then quantised
    assert devices.resolve_precision("auto", "cpu").value in ("fp32", "bf16")


def test_int8_is_cpu_only(monkeypatch):
    monkeypatch.setattr(devices, "resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(ConfigError, match="int8 .*CPU only"):
        devices.finish_precision(torch.nn.Sequential(torch.nn.Linear(4, 4)), "int8", "cuda")


def test_other_precisions_leave_the_model_alone():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    for precision in ("fp32", "bf16", "fp16"):
        assert devices.finish_precision(model, precision, "cpu") is model
        assert _plain_linears(model) == 1


def test_int8_stages_quantise_every_linear_and_stay_close_to_fp32(hub_cache):
    texts = sentences(12, seed=5)
    det32 = MentionDetector.from_dirs(hub_cache[DETECTOR_ID], hub_cache[DETECTOR_TOKENIZER_ID], precision="fp32")
    det8 = MentionDetector.from_dirs(hub_cache[DETECTOR_ID], hub_cache[DETECTOR_TOKENIZER_ID], precision="int8")
    assert _plain_linears(det8.model) == 0 and _quantised_linears(det8.model) > 0
    found32, found8 = det32.detect(texts), det8.detect(texts)
    assert len(found8) == len(texts)
    spans32 = {(i, m.start, m.end) for i, ms in enumerate(found32) for m in ms}
    spans8 = {(i, m.start, m.end) for i, ms in enumerate(found8) for m in ms}
    assert len(spans32 & spans8) >= 0.8 * len(spans32)

    pairs = [(t, m.span) for t, ms in zip(texts, found32) for m in ms][:20]
    assert pairs, "the tiny detector finds mentions in these sentences"
    st32 = StanceClassifier.from_dir(hub_cache[STANCE_ID], precision="fp32").classify(pairs)
    st8 = StanceClassifier.from_dir(hub_cache[STANCE_ID], precision="int8")
    assert _plain_linears(st8.model) == 0
    got = st8.classify(pairs)
    assert len(got) == len(pairs)
    diff = max(abs(getattr(a, f) - getattr(b, f)) for a, b in zip(st32, got)
               for f in ("prob_positive", "prob_negative", "prob_neutral"))
    assert diff < 0.05

    mentions = ["farmers", "young people", "the working families of this country"]
    e32 = np.asarray(MentionEmbedder.from_dirs(hub_cache[EMBEDDER_ID], hub_cache[EMBEDDER_BASE_ID],
                                               precision="fp32").embed(mentions))
    emb8 = MentionEmbedder.from_dirs(hub_cache[EMBEDDER_ID], hub_cache[EMBEDDER_BASE_ID], precision="int8")
    assert _plain_linears(emb8.module) == 0
    e8 = np.asarray(emb8.embed(mentions))
    assert e8.shape == e32.shape and e8.dtype == np.float32
    assert np.allclose(np.linalg.norm(e8, axis=1), 1.0, atol=1e-5)
    assert (e8 * e32).sum(axis=1).min() > 0.98


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_int8_on_a_gpu_device_is_refused_when_the_config_loads(device):
    with pytest.raises(ConfigError, match="int8 .*CPU only"):
        load_config(overrides={"inference.precision": "int8", "inference.device": device})
