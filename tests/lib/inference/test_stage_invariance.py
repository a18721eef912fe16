"""Every stage gives the same results whatever the batch size, the input order and duplicates.

Needs no reference package: the inputs come from our own stages on the tiny models, run twice,
once on the offline hub cache (a detector that finds a mention in nearly every sentence) and once
on the sparse models (a detector that leaves most sentences without one, so that batches
without a single mention are part of the check).
"""

import numpy as np
import pytest
from group_appeal_spark.lib import models
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionEmbedder
from group_appeal_spark.lib.inference.stance import StanceClassifier
from sentences import sentences

SENTENCES = sentences(240)


def _hub_dir(repo_id):
    return models.resolve_model_dir(models.ModelSource("test", repo_id))


def _stages(dirs):
    """The three stages with the batch sizes test_reference_parity.py uses."""
    detector = MentionDetector.from_dirs(dirs[models.DETECTOR_ID], dirs[models.DETECTOR_TOKENIZER_ID], batch_size=16)
    stance = StanceClassifier.from_dir(dirs[models.STANCE_ID], batch_size=8)
    embedder = MentionEmbedder.from_dirs(dirs[models.EMBEDDER_ID], dirs[models.EMBEDDER_BASE_ID], batch_size=16)
    return detector, stance, embedder


@pytest.fixture(scope="module", params=["hub", "sparse"])
def model_set(request):
    return request.param


@pytest.fixture(scope="module")
def ours(request, model_set):
    """(detector, stance, embedder) on the hub-cache models, or on the sparse ones."""
    if model_set == "hub":
        request.getfixturevalue("hub_cache")
        ids = (models.DETECTOR_ID, models.DETECTOR_TOKENIZER_ID, models.STANCE_ID, models.EMBEDDER_ID,
               models.EMBEDDER_BASE_ID)
        return _stages({repo_id: _hub_dir(repo_id) for repo_id in ids})
    return _stages(request.getfixturevalue("sparse_repos"))


@pytest.fixture(scope="module")
def our_mentions(model_set, ours):
    mentions = ours[0].detect(SENTENCES)
    n_mentions = sum(len(ms) for ms in mentions)
    n_without = sum(1 for ms in mentions if not ms)
    # what each model set is here for: plenty of mentions, or many sentences without one
    if model_set == "hub":
        assert n_mentions > 100, n_mentions
    else:
        assert n_without >= 100 and n_mentions >= 60, (n_without, n_mentions)
    return mentions


def test_detection_independent_of_batch_size_and_order(ours, our_mentions):
    detector = ours[0]
    order = np.random.default_rng(1).permutation(len(SENTENCES))
    old = detector.batch_size
    try:
        detector.batch_size = 3
        shuffled = detector.detect([SENTENCES[i] for i in order])
    finally:
        detector.batch_size = old
    back = [None] * len(SENTENCES)
    for pos, i in enumerate(order):
        back[i] = shuffled[pos]
    assert [[(m.span, m.start, m.end) for m in ms] for ms in back] == \
        [[(m.span, m.start, m.end) for m in ms] for ms in our_mentions]


def test_stance_independent_of_batch_size_order_and_duplicates(ours, our_mentions):
    # the pairs the reference-based version took from the reference's mentions, which
    # test_detection_matches_reference checks are ours exactly
    pairs = [(text, m.span) for text, ms in zip(SENTENCES, our_mentions) for m in ms][:60]
    assert len(pairs) == 60
    stance = ours[1]
    first = stance.classify(pairs)
    twice = pairs[::-1] + pairs
    old = stance.batch_size
    try:
        stance.batch_size = 1
        again = stance.classify(twice)
    finally:
        stance.batch_size = old
    second = again[len(pairs):]
    assert [a.stance for a in second] == [f.stance for f in first]
    for a, f in zip(second, first):
        assert (a.prob_positive, a.prob_negative, a.prob_neutral) == pytest.approx(
            (f.prob_positive, f.prob_negative, f.prob_neutral), abs=1e-5)
    # identical pairs are computed once, so both copies carry the very same numbers
    assert again[: len(pairs)][::-1] == second


def test_embedding_independent_of_batch_size_and_order(ours):
    spans = ["farmers", "young people", "the unemployed", "Café owners", "nurses", "pensioners", "x"]
    embedder = ours[2]
    base = embedder.embed(spans)
    old = embedder.batch_size
    try:
        embedder.batch_size = 2
        rev = embedder.embed(spans[::-1])[::-1]
    finally:
        embedder.batch_size = old
    assert np.allclose(base, rev, atol=1e-6)
