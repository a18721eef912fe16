"""The memory-mapped safetensors loader: same outputs as from_pretrained, file never written."""

import json
import shutil
import struct

import numpy as np
import pytest
import torch
from group_appeal_spark.lib import models
from group_appeal_spark.lib.errors import ModelLoadError
from group_appeal_spark.lib.models.loaders import load_embedder_module
from group_appeal_spark.lib.models.weights import load_safetensors, read_header
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

CLASSIFIERS = [
    (models.DETECTOR_ID, AutoModelForTokenClassification, models.load_token_classifier),
    (models.STANCE_ID, AutoModelForSequenceClassification, models.load_sequence_classifier),
]


def _inputs(model):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, min(200, model.config.vocab_size), (4, 19), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["stored", "bf16"])
@pytest.mark.parametrize("repo_id, auto_class, load", CLASSIFIERS, ids=["detector", "stance"])
def test_mmap_model_matches_from_pretrained(hub_cache, repo_id, auto_class, load, dtype):
    folder = hub_cache[repo_id]
    expected = auto_class.from_pretrained(str(folder), use_safetensors=True, dtype=dtype).eval()
    got = load(folder, dtype=dtype)
    assert set(got.state_dict()) == set(expected.state_dict())
    for key, value in expected.state_dict().items():
        assert torch.equal(got.state_dict()[key], value), key
    inputs = _inputs(expected)
    with torch.inference_mode():
        assert torch.equal(got(**inputs).logits, expected(**inputs).logits)


def test_mmap_embedder_matches_plain_load(hub_cache):
    from safetensors.torch import load_file

    weights = hub_cache[models.EMBEDDER_ID] / "model.safetensors"
    module = load_embedder_module(hub_cache[models.EMBEDDER_ID], hub_cache[models.EMBEDDER_BASE_ID])
    plain = load_file(str(weights))
    state = module.state_dict()
    assert set(plain) <= set(state)
    for key, value in plain.items():
        assert torch.equal(state[key], value), key
    # the non-persistent buffers are real tensors, not left on the meta device
    assert all(b.device.type == "cpu" for b in module.buffers())
    assert module.encoder.embeddings.position_ids[0, :5].tolist() == [0, 1, 2, 3, 4]


def test_stored_dtype_tensors_are_views_into_one_mapping(hub_cache):
    path = hub_cache[models.STANCE_ID] / "model.safetensors"
    tensors = load_safetensors(path)
    pointers = {t.untyped_storage().data_ptr() for t in tensors.values()}
    assert len(pointers) == 1, "every tensor should view the same file mapping"


def test_in_place_write_does_not_change_the_file(hub_cache, tmp_path):
    src = hub_cache[models.DETECTOR_ID] / "model.safetensors"
    path = tmp_path / "model.safetensors"
    shutil.copyfile(src, path)
    before = path.read_bytes()
    tensors = load_safetensors(path)
    name, tensor = next((k, v) for k, v in tensors.items() if v.is_floating_point() and v.numel() > 100)
    with torch.no_grad():
        tensor.add_(1.0)
    assert path.read_bytes() == before
    # another load of the same file (another worker) sees the stored values, not ours
    again = load_safetensors(path)[name]
    assert torch.equal(again + 1.0, tensor)
    # the same through a loaded model's parameter
    model = models.load_token_classifier(hub_cache[models.DETECTOR_ID])
    with torch.no_grad():
        model.classifier.weight.mul_(0)
    assert (hub_cache[models.DETECTOR_ID] / "model.safetensors").read_bytes() == src.read_bytes()


def test_bf16_casts_into_new_tensors(hub_cache):
    path = hub_cache[models.STANCE_ID] / "model.safetensors"
    stored = load_safetensors(path)
    cast = load_safetensors(path, dtype=torch.bfloat16)
    mapping = next(iter(stored.values())).untyped_storage().data_ptr()
    for key, value in cast.items():
        if stored[key].is_floating_point():
            assert value.dtype == torch.bfloat16
            assert value.untyped_storage().data_ptr() != mapping
            assert torch.equal(value, stored[key].to(torch.bfloat16))
        else:
            assert value.dtype == stored[key].dtype
    # the stored tensors are untouched by the cast
    assert all(v.dtype == torch.float32 for v in stored.values() if v.is_floating_point())


def _header_bytes(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


def _corrupt_files(src):
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + n])
    name = next(k for k in header if k != "__metadata__")
    bad_dtype = dict(header)
    bad_dtype[name] = {**header[name], "dtype": "F99"}
    bad_range = dict(header)
    begin, end = header[name]["data_offsets"]
    bad_range[name] = {**header[name], "data_offsets": [begin, end + 4]}
    return {
        "empty": (b"", "shorter than the 8-byte header length"),
        "truncated": (data[: len(data) // 2], "truncated safetensors file"),
        "header_length": (struct.pack("<Q", 10**12) + data[8:], "header length"),
        "not_json": (struct.pack("<Q", 4) + b"{{{{" + data[8:], "corrupt safetensors header"),
        "dtype": (_header_bytes(bad_dtype) + data[8 + n:], "dtype 'F99'"),
        "byte_range": (_header_bytes(bad_range) + data[8 + n:], "byte range"),
    }


@pytest.mark.parametrize("case", ["empty", "truncated", "header_length", "not_json", "dtype", "byte_range"])
def test_corrupt_file_raises_model_load_error_naming_it(hub_cache, tmp_path, case):
    src = hub_cache[models.DETECTOR_ID]
    content, message = _corrupt_files(src / "model.safetensors")[case]
    folder = tmp_path / "detector"
    shutil.copytree(src, folder)
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as info:
        read_header(folder / "model.safetensors")
    assert str(folder / "model.safetensors") in str(info.value)
    with pytest.raises(ModelLoadError, match=r"detector: cannot load the model from .*model\.safetensors"):
        models.load_token_classifier(folder)


def test_truncated_embedder_checkpoint_names_the_file(hub_cache, tmp_path):
    folder = tmp_path / "embedder"
    shutil.copytree(hub_cache[models.EMBEDDER_ID], folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match=r"embedder: .*model\.safetensors.*truncated"):
        load_embedder_module(folder, hub_cache[models.EMBEDDER_BASE_ID])


def test_weights_that_do_not_fit_the_config_are_refused(hub_cache, tmp_path):
    folder = tmp_path / "detector"
    shutil.copytree(hub_cache[models.DETECTOR_ID], folder)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 64
    config["intermediate_size"] = 128
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="shape"):
        models.load_token_classifier(folder)


def test_loaded_tensors_hold_the_stored_values(hub_cache):
    from safetensors.numpy import load_file

    path = hub_cache[models.STANCE_ID] / "model.safetensors"
    expected = load_file(str(path))
    got = load_safetensors(path)
    assert list(got) == sorted(got) or set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key].numpy(), value)
