"""The three stages against outputs recorded on transformers 5.x (tests/data/recorded_outputs.json).

On 5.x the ``reference`` tests prove the stages agree with group-appeal-detector 0.3.0, and this
file proves the recording is current. On 4.57, where the reference package cannot be installed
(it needs transformers>=5.5), this file is what shows that the stages still give the same
results. Re-record with ``.venv/bin/python tests/record_outputs.py`` (on 5.x).
"""

import json

import numpy as np
import pytest
from group_appeal_spark.lib import models
from record_outputs import FIXTURE, compute_outputs, fingerprint

RERECORD = "re-record with `python tests/record_outputs.py` on transformers 5.x if the change is intended"


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def current(hub_cache):
    def model_dir(repo_id):
        return models.resolve_model_dir(models.ModelSource("test", repo_id))

    return compute_outputs(model_dir)


def test_tiny_models_are_the_recorded_ones(hub_cache, recorded):
    """Byte-identical weights and tokenizer files; configs agree on every key both versions write."""
    now = fingerprint({rid: models.resolve_model_dir(models.ModelSource("test", rid)) for rid in recorded["models"]})
    assert sorted(now) == sorted(recorded["models"])
    for repo_id, was in recorded["models"].items():
        assert now[repo_id]["files_sha256"] == was["files_sha256"], f"{repo_id}: weights or tokenizer files changed; {RERECORD}"
        # transformers writes other defaults into config.json on 4.x (e.g. position_embedding_type)
        # than on 5.x (e.g. is_decoder, tie_word_embeddings): only the keys both write must agree.
        config = now[repo_id]["config"]
        shared = sorted(set(config) & set(was["config"]))
        assert {k: config[k] for k in shared} == {k: was["config"][k] for k in shared}, repo_id
        assert {"hidden_size", "num_hidden_layers"} <= set(shared) or not config


def test_detection_matches_recording(recorded, current):
    spans = [[tuple(m[:3]) for m in ms] for ms in current["detection"]]
    expected = [[tuple(m[:3]) for m in ms] for ms in recorded["detection"]]
    assert sum(map(len, expected)) > 300
    for i, (got, want) in enumerate(zip(spans, expected)):
        assert got == want, f"text {i}: {RERECORD}"
    assert len(spans) == len(expected)
    scores = [m[3] for ms in current["detection"] for m in ms]
    assert scores == pytest.approx([m[3] for ms in recorded["detection"] for m in ms], abs=1e-5)


def test_stance_matches_recording(recorded, current):
    assert len(current["stance"]) == len(recorded["stance"]) == 300
    assert [s[0] for s in current["stance"]] == [s[0] for s in recorded["stance"]], RERECORD
    np.testing.assert_allclose([s[1:] for s in current["stance"]], [s[1:] for s in recorded["stance"]], atol=1e-5)


def test_embeddings_match_recording(recorded, current):
    assert current["embedded_spans"] == recorded["embedded_spans"]
    got, want = np.array(current["embeddings"]), np.array(recorded["embeddings"])
    assert got.shape == want.shape == (len(recorded["embedded_spans"]), 128)
    np.testing.assert_allclose(got, want, atol=2e-5, err_msg=RERECORD)


def test_recording_was_made_on_transformers_5(recorded):
    assert int(recorded["recorded_with"]["transformers"].split(".")[0]) >= 5
