"""inference.backend onnx: exports with dynamic axes, cached by content hash, parity with torch fp32.

Parity is checked at every sequence length each model accepts (1..512 tokens for the two
classifiers, 1..32 for the embedder's prompts) on the graph itself, then through the stages on
the differential corpus (tests/sentences.py): identical spans and labels, probabilities within
1e-4. int8 (ONNX Runtime dynamic quantisation) is measured, not required to match.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from group_appeal_spark.lib.config import load_config  # noqa: E402
from group_appeal_spark.lib.errors import ConfigError  # noqa: E402
from group_appeal_spark.lib.inference.detect import MentionDetector, softmax  # noqa: E402
from group_appeal_spark.lib.inference.embed import MAX_LENGTH, MentionEmbedder  # noqa: E402
from group_appeal_spark.lib.inference.stance import StanceClassifier  # noqa: E402
from group_appeal_spark.lib.models import onnx as onnx_backend  # noqa: E402
from group_appeal_spark.lib.models.bundle import ModelBundle  # noqa: E402
from group_appeal_spark.lib.models.hub import (  # noqa: E402
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)
from sentences import sentences  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def folders(hub_cache):
    return {"detector": hub_cache[DETECTOR_ID], "detector_tokenizer": hub_cache[DETECTOR_TOKENIZER_ID],
            "stance": hub_cache[STANCE_ID], "embedder": hub_cache[EMBEDDER_ID],
            "embedder_config": hub_cache[EMBEDDER_BASE_ID]}


@pytest.fixture(scope="module")
def exports(folders):
    return onnx_backend.ensure_exports(folders, "fp32")


def _rows(length: int, vocab: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two rows: one of ``length`` tokens, one shorter and padded (the mask decides)."""
    ids = rng.integers(5, vocab, size=(2, length)).astype(np.int64)
    mask = np.ones((2, length), dtype=np.int64)
    mask[1, max(1, length // 2):] = 0
    return ids, mask


@pytest.mark.parametrize("stage", ["detector", "stance"])
def test_classifier_graphs_match_torch_at_every_length(stage, folders, exports):
    from group_appeal_spark.lib.models import loaders

    model = (loaders.load_token_classifier if stage == "detector" else loaders.load_sequence_classifier)(
        folders[stage])
    graph = onnx_backend.OnnxModel(exports[f"{stage}_onnx"], model.config)
    positions = int(model.config.max_position_embeddings)
    if model.config.model_type == "roberta":
        positions -= int(model.config.pad_token_id) + 1  # positions start after padding_idx
    rng = np.random.default_rng(0)
    worst = 0.0
    for length in range(1, positions + 1):
        ids, mask = _rows(length, int(model.config.vocab_size), rng)
        with torch.inference_mode():
            ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        got = graph(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        assert got.shape == ref.shape, length
        keep = mask.astype(bool) if stage == "detector" else slice(None)
        diff = np.abs(softmax(got) - softmax(ref))[keep].max()
        worst = max(worst, float(diff))
        assert diff <= TOLERANCE, f"{stage}: length {length}: max prob difference {diff}"
    assert positions >= 500 and worst <= TOLERANCE


def test_embedder_graph_matches_torch_at_every_prompt_length(folders, exports):
    torch_stage = MentionEmbedder.from_dirs(folders["embedder"], folders["embedder_config"])
    onnx_stage = MentionEmbedder.from_dirs(folders["embedder"], folders["embedder_config"],
                                           onnx_dir=exports["embedder_onnx"])
    words = " ".join(["farmers"] * MAX_LENGTH)
    mentions = [" ".join(words.split()[:n]) for n in range(1, MAX_LENGTH)]  # every prompt length to 32
    lengths = {len(r) for r in torch_stage.preprocess(mentions).rows}
    assert max(lengths) == MAX_LENGTH and len(lengths) > 20
    a, b = torch_stage.embed(mentions), onnx_stage.embed(mentions)
    assert a.shape == b.shape and np.abs(a - b).max() <= TOLERANCE


def test_stages_on_onnx_give_the_torch_results_on_the_differential_corpus(folders, exports):
    texts = sentences(240)
    det_t = MentionDetector.from_dirs(folders["detector"], folders["detector_tokenizer"])
    det_o = MentionDetector.from_dirs(folders["detector"], folders["detector_tokenizer"],
                                      onnx_dir=exports["detector_onnx"])
    found_t, found_o = det_t.detect(texts), det_o.detect(texts)
    spans_t = [[(m.span, m.start, m.end) for m in ms] for ms in found_t]
    assert spans_t == [[(m.span, m.start, m.end) for m in ms] for ms in found_o]
    assert sum(map(len, spans_t)) > 50
    scores = np.array([m.score for ms in found_t for m in ms]) - np.array([m.score for ms in found_o for m in ms])
    assert np.abs(scores).max() <= TOLERANCE

    pairs = [(t, m.span) for t, ms in zip(texts, found_t) for m in ms]
    st_t = StanceClassifier.from_dir(folders["stance"]).classify(pairs)
    st_o = StanceClassifier.from_dir(folders["stance"], onnx_dir=exports["stance_onnx"]).classify(pairs)
    assert [s.stance for s in st_t] == [s.stance for s in st_o]
    probs = lambda ss: np.array([[s.prob_positive, s.prob_negative, s.prob_neutral] for s in ss])  # noqa: E731
    assert np.abs(probs(st_t) - probs(st_o)).max() <= TOLERANCE


def test_int8_export_agrees_with_fp32_as_documented(folders):
    int8 = onnx_backend.ensure_exports(folders, "int8")
    assert all(folder.endswith("-int8") for folder in int8.values())
    texts = sentences(120, seed=3)
    det_t = MentionDetector.from_dirs(folders["detector"], folders["detector_tokenizer"])
    det_8 = MentionDetector.from_dirs(folders["detector"], folders["detector_tokenizer"],
                                      onnx_dir=int8["detector_onnx"])
    spans = lambda found: {(i, m.start, m.end) for i, ms in enumerate(found) for m in ms}  # noqa: E731
    s_t, s_8 = spans(det_t.detect(texts)), spans(det_8.detect(texts))
    assert len(s_t & s_8) >= 0.8 * len(s_t)  # docs/gpu.md: int8 moves spans, as torch's int8 does


def test_exports_are_cached_by_content_hash(folders, exports):
    again = onnx_backend.ensure_exports(folders, "fp32")
    assert again == exports
    for role, folder in exports.items():
        meta = json.loads((Path(folder) / "export.json").read_text())
        assert meta["opset"] == onnx_backend.OPSET and meta["stage"] == role.removesuffix("_onnx")
        assert os.path.basename(folder).split("-")[1].split("+")[0] == meta["content_sha256"][:16]


def test_bundle_ships_the_exports_and_runs_them(hub_cache, exports):
    config = load_config(overrides={"inference.backend": "onnx"})
    bundle = ModelBundle.resolve(config)
    assert {r: bundle.folders[r] for r in exports} == exports
    assert set(bundle.backend("cpu")) == {"detector", "stance", "embedder"}
    assert bundle.backend("cuda:0") == {}  # GPUs run torch
    provenance = bundle.provenance(config.model_sources())
    assert provenance["stance_onnx"]["source"] == "onnx export"
    torch_bundle = ModelBundle.resolve(load_config())
    assert not set(torch_bundle.folders) & set(exports)
    assert torch_bundle.cache_key("appeals") != bundle.cache_key("appeals")
    texts = sentences(20, seed=11)
    a = torch_bundle.appeal_finder().process(texts)
    finder = bundle.appeal_finder()
    assert isinstance(finder.detector.model, onnx_backend.OnnxModel)
    assert isinstance(finder.stance.model, onnx_backend.OnnxModel)
    assert isinstance(bundle.embedder().module, onnx_backend.OnnxEmbedder)
    b = finder.process(texts)
    assert [[(x.start, x.end, x.stance) for x in r.appeals] for r in a] == \
        [[(x.start, x.end, x.stance) for x in r.appeals] for r in b]


def test_auto_takes_onnx_only_where_measured_faster_on_this_cpu(exports):
    folders = {stage: exports[role] for stage, role in onnx_backend.ONNX_ROLES.items()}
    assert set(onnx_backend.choose_backend(folders, "fp32").values()) == {"torch"}  # nothing measured
    here = onnx_backend.cpu_id()
    onnx_backend.record_measurement(folders["stance"], {"torch_fp32": 3.0, "torch_bf16": 9.0, "onnx": 7.0})
    onnx_backend.record_measurement(folders["detector"], {"torch_fp32": 3.0, "onnx": 7.0}, cpu="another CPU")
    try:
        assert onnx_backend.choose_backend(folders, "fp32") == {"detector": "torch", "stance": "onnx",
                                                                 "embedder": "torch"}
        assert onnx_backend.choose_backend(folders, "bf16")["stance"] == "torch"  # bf16 measured faster
        assert onnx_backend.choose_backend(folders, "fp32", cpu="another CPU")["detector"] == "onnx"
        assert here in json.loads((Path(folders["stance"]) / onnx_backend.MEASUREMENTS).read_text())
    finally:
        for folder in folders.values():
            path = Path(folder) / onnx_backend.MEASUREMENTS
            if path.exists():
                path.unlink()


@pytest.mark.parametrize("overrides, match", [
    ({"inference.backend": "onnx", "inference.device": "cuda"}, "inference.backend: onnx runs on the CPU"),
    ({"inference.backend": "onnx", "inference.precision": "bf16"}, "inference.backend: onnx runs fp32 or int8"),
    ({"inference.backend": "gpu"}, "inference.backend: invalid value 'gpu'"),
])
def test_bad_backend_settings_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_missing_onnxruntime_is_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name in ("onnxruntime", "onnx"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ConfigError, match=r"inference.backend: onnx needs onnxruntime.*\[onnx\]"):
        onnx_backend.require_onnx()
