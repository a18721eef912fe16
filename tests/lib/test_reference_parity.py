"""Differential tests: the core stages against group-appeal-detector 0.3.0 on the same tiny weights.

The batch-size, order and duplicate invariance of each stage needs no reference package: it is in
test_stage_invariance.py.
"""

import numpy as np
import pytest
from group_appeal_spark.lib import models
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionEmbedder, MentionKeyer
from group_appeal_spark.lib.inference.stance import StanceClassifier
from reference_differences import mentions_as_ours
from sentences import sentences

pytestmark = pytest.mark.reference

SENTENCES = sentences(240)


def _dir(repo_id):
    return models.resolve_model_dir(models.ModelSource("test", repo_id))


@pytest.fixture(scope="module")
def ours(hub_cache):
    detector = MentionDetector.from_dirs(_dir(models.DETECTOR_ID), _dir(models.DETECTOR_TOKENIZER_ID), batch_size=16)
    stance = StanceClassifier.from_dir(_dir(models.STANCE_ID), batch_size=8)
    embedder = MentionEmbedder.from_dirs(_dir(models.EMBEDDER_ID), _dir(models.EMBEDDER_BASE_ID), batch_size=16)
    return detector, stance, embedder


@pytest.fixture(scope="module")
def reference(hub_cache):
    ref = pytest.importorskip(
        "group_appeal_detector",
        reason="group-appeal-detector 0.3.0 is not installed (it needs transformers>=5.5); "
        "test_recorded_outputs.py covers this line",
    )
    return ref.GroupAppealDetector(device="cpu")


@pytest.fixture(scope="module")
def ref_mentions(reference):
    return reference.detect_mentions_batch(SENTENCES, batch_size=8)


@pytest.fixture(scope="module")
def our_mentions(ours):
    return ours[0].detect(SENTENCES)


def test_detection_matches_reference(ref_mentions, our_mentions):
    expected = [mentions_as_ours(text, [(m["span"], m["start"], m["end"]) for m in ms])
                for text, ms in zip(SENTENCES, ref_mentions)]
    got = [[(m.span, m.start, m.end) for m in ms] for ms in our_mentions]
    assert sum(len(ms) for ms in expected) > 100, "the tiny detector should find plenty of mentions"
    assert got == expected


def test_stance_matches_reference(reference, ours, ref_mentions):
    pairs = [(text, m["span"]) for text, ms in zip(SENTENCES, ref_mentions) for m in ms][:300]
    expected = reference.classify_stance_batch(pairs, batch_size=8)
    got = ours[1].classify(pairs)
    assert [g.stance for g in got] == [e["predicted_stance"] for e in expected]
    for g, e in zip(got, expected):
        probs = e["stance_probs"]
        assert g.prob_positive == pytest.approx(probs["positive"], abs=1e-5)
        assert g.prob_negative == pytest.approx(probs["negative"], abs=1e-5)
        assert g.prob_neutral == pytest.approx(probs["neutral"], abs=1e-5)


def test_embedding_matches_reference(hub_cache, ours, ref_mentions):
    from group_appeal_detector import GroupMentionClusterer

    spans = sorted({m["span"] for ms in ref_mentions for m in ms})[:200]
    clusterer = GroupMentionClusterer(spans, device="cpu")
    expected = clusterer.embed().numpy()
    got = ours[2].embed(spans)
    assert got.shape == expected.shape == (len(spans), 128)
    cosine = (got * expected).sum(axis=1)
    assert cosine.min() >= 0.9999


def test_embedding_keeps_mask_for_long_mentions(ours):
    """The reference loses the mask of a long mention and returns fewer vectors; we cut the mention."""
    long = "people " * 60
    embedder = ours[2]
    out = embedder.embed(["farmers", long, "nurses"])
    assert out.shape == (3, 128)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    inputs = embedder.preprocess(["farmers", long])
    assert inputs.truncated.tolist() == [False, True]
    assert len(inputs.rows[1]) == embedder.max_length
    # the short mentions' vectors do not depend on the long one being in the batch
    assert np.allclose(out[[0, 2]], embedder.embed(["farmers", "nurses"]), atol=1e-6)


def test_keys_give_same_embedding(ours):
    embedder = ours[2]
    keyer = MentionKeyer(embedder.tokenizer)
    variants = [" Café  Owners", "cafe owners", "CAFÉ OWNERS "]
    assert len({keyer.key(v) for v in variants}) == 1
    vecs = embedder.embed(variants + [keyer.key(variants[0])])
    assert np.allclose(vecs, vecs[0], atol=1e-6)
