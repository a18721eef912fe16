"""Empty is a result: batches, segments and documents without any mention are never errors.

With real models most sentences mention no group, so an Arrow batch (or the last rows of a
partition) without a single mention is common. These tests use a tiny detector calibrated to
leave most short sentences without a mention, and check every stage on zero inputs, then the
document-level finder on seeded random mixes against one-document-at-a-time processing.
"""

import random

import numpy as np
import pytest
from group_appeal_spark.lib import models
from group_appeal_spark.lib.inference.appeals import AppealFinder
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionEmbedder, MentionKeyer
from group_appeal_spark.lib.inference.stance import StanceClassifier

from group_appeal_spark.testing.tiny_models import corpus


@pytest.fixture(scope="module")
def stages(sparse_repos):
    r = sparse_repos
    detector = MentionDetector.from_dirs(r[models.DETECTOR_ID], r[models.DETECTOR_TOKENIZER_ID])
    stance = StanceClassifier.from_dir(r[models.STANCE_ID])
    embedder = MentionEmbedder.from_dirs(r[models.EMBEDDER_ID], r[models.EMBEDDER_BASE_ID])
    keyer = MentionKeyer.from_dir(r[models.EMBEDDER_ID])
    return detector, stance, embedder, keyer


@pytest.fixture(scope="module")
def split_corpus(stages):
    """Sentences of the built-in corpus with and without a mention by the sparse detector."""
    detector, stance, _, keyer = stages
    texts = corpus()[:240]
    whole = detector.detect(texts)
    by_sentence = AppealFinder(detector, stance, keyer, segmentation="sentence").process(texts)
    with_m = [t for t, m, s in zip(texts, whole, by_sentence) if m and s.appeals]
    without = [t for t, m, s in zip(texts, whole, by_sentence) if not m and not s.appeals]
    assert len(with_m) >= 40 and len(without) >= 40, (len(with_m), len(without))
    return with_m, without


def test_every_stage_takes_zero_inputs(stages):
    detector, stance, embedder, keyer = stages
    assert detector.detect([]) == []
    assert stance.classify([]) == []
    vectors = embedder.embed([])
    assert vectors.shape == (0, 128) and vectors.dtype == np.float32
    assert keyer.keys([]) == []


@pytest.mark.parametrize("segmentation", ["sentence", "none"])
def test_documents_without_mentions_are_results(stages, split_corpus, segmentation):
    detector, stance, _, keyer = stages
    finder = AppealFinder(detector, stance, keyer, segmentation=segmentation)
    without = split_corpus[1][:10]
    results = finder.process(without)
    assert [r.error for r in results] == [None] * 10
    assert all(r.appeals == [] and r.n_segments >= 1 for r in results)
    assert finder.process([]) == []
    # a batch whose only valid documents have no mention, beside invalid ones
    mixed = finder.process([None, without[0], "", "   "])
    assert [r.error_stage for r in mixed] == ["input", None, "input", "input"]


def _doc(rng, with_m, without):
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(without)
    if roll < 0.7:
        return rng.choice(with_m)
    if roll < 0.8:  # several sentences, some with mentions
        return " ".join(rng.choice(with_m + without) for _ in range(rng.randint(2, 6)))
    if roll < 0.9:
        return rng.choice(["", " ", "\n\t ", None, "\u200b"])  # invalid: input errors
    if roll < 0.95:  # huge: many sentences, or one long run-on text past the detector's window
        return " ".join(rng.choice(without) for _ in range(rng.randint(30, 50)))
    return " ".join(rng.choice(with_m + without).rstrip(".") for _ in range(25))


def _signature(result):
    return (result.n_segments, result.error, result.error_stage,
            [(a.seg_idx, a.span, a.start, a.end, a.mention_key) for a in result.appeals],
            [(a.prob_positive, a.prob_negative, a.prob_neutral) for a in result.appeals],
            [a.stance for a in result.appeals])


@pytest.mark.parametrize("segmentation", ["sentence", "none"])
def test_random_mixes_are_independent_of_batching(stages, split_corpus, segmentation):
    """Seeded property test: one result per input, no error for a valid text, batching changes nothing."""
    detector, stance, _, keyer = stages
    with_m, without = split_corpus
    rng = random.Random(20261129)
    alone_cache = {}

    def alone(text):
        # the oracle: the document processed on its own, in a batch of one
        if text not in alone_cache:
            finder = AppealFinder(detector, stance, keyer, segmentation=segmentation)
            alone_cache[text] = _signature(finder.process([text])[0])
        return alone_cache[text]

    for trial in range(8):
        docs = [_doc(rng, with_m, without) for _ in range(rng.randint(1, 40))]
        batched = AppealFinder(
            MentionDetector(detector.model, detector.tokenizer, batch_size=rng.choice([2, 7, 32]),
                            max_tokens=rng.choice([None, 256, 1024])),
            StanceClassifier(stance.model, stance.tokenizer, batch_size=rng.choice([3, 32]),
                             max_tokens=rng.choice([None, 1024])),
            keyer, segmentation=segmentation)
        # Arrow batch sizes: the documents arrive in random slices
        results, start = [], 0
        while start < len(docs):
            size = rng.randint(1, 16)
            results += batched.process(docs[start:start + size])
            start += size
        assert len(results) == len(docs)
        for doc, got in zip(docs, results):
            valid = isinstance(doc, str) and doc.strip() and doc != "\u200b"
            if valid:
                assert got.error is None, (trial, doc[:80], got.error)
            else:
                assert got.error_stage == "input" and got.appeals == []
            want = alone(doc) if isinstance(doc, str) else _signature(got)
            assert got_sig_equal(_signature(got), want), (trial, doc[:80] if doc else doc)


def got_sig_equal(a, b):
    """Equal results; padding to another batch's length moves probabilities by ~1e-7, so a stance
    may differ only where the random tiny model's top two classes are that close."""
    if a[:4] != b[:4] or not all(np.allclose(x, y, atol=1e-5) for x, y in zip(a[4], b[4])):
        return False
    for probs, s_a, s_b in zip(a[4], a[5], b[5]):
        top = sorted(probs, reverse=True)
        if s_a != s_b and top[0] - top[1] > 1e-5:
            return False
    return True


def test_a_document_the_models_fail_on_gets_an_actionable_reason(stages, split_corpus):
    detector, stance, _, keyer = stages

    class Exploding:
        """A stance stage that fails on one premise, as a model bug would."""

        def classify(self, pairs):
            if any("EXPLODE" in text for text, _ in pairs):
                raise IndexError("list index out of range")
            return stance.classify(pairs)

    finder = AppealFinder(detector, Exploding(), keyer, segmentation="none")
    bad = split_corpus[0][0] + " EXPLODE"
    assert detector.detect([bad])[0], "the test needs a mention in the failing document"
    results = finder.process([split_corpus[1][0], bad, split_corpus[0][1]])
    assert [r.error for r in results][0::2] == [None, None]
    assert results[1].error_stage == "detect"
    assert "IndexError: list index out of range" in results[1].error
    assert "failed on this document alone" in results[1].error and "other documents" in results[1].error


@pytest.mark.spark
def test_run_job_on_sentences_mostly_without_mentions(spark, sparse_repos, split_corpus, tmp_path):
    """The reported case: a plain-text input of short sentences, most without a group mention.

    Arrow batches hold 16 rows in the test session, so the first batches have no mention at all.
    """
    import pandas as pd
    from group_appeal_spark.jobs import run as run_job

    with_m, without = split_corpus
    lines = without[:30] + with_m[:6]
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sets = [f"--set=models.{role}.local_dir={sparse_repos[repo]}" for role, repo in models.MODEL_ROLES.items()]
    out = tmp_path / "out"
    code = run_job.main(["--input", str(tmp_path / "docs.txt"), "--input-format", "text", "--output", str(out),
                         "--k-min", "2", "--k-max", "3", "--master", "local[2]", *sets])
    assert code == 0
    errors = pd.read_parquet(out / "errors")
    assert errors.empty, errors.to_dict("records")
    summary = __import__("json").loads((out / "summary.json").read_text())
    assert summary["input_rows"] == len(lines) == summary["documents_ok"]
    mentions = pd.read_parquet(out / "mentions")
    assert summary["mentions"] == len(mentions) > 0
    assert mentions["doc_id"].nunique() == 6  # the six lines with a mention, each found
