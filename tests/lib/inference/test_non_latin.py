"""Non-Latin scripts (issue 17.8): a mention's span and key are its text, never U+FFFD, never empty.

The detector's byte-level BPE tokens can cut a character of Arabic, Chinese or an emoji in two;
decoded alone, such a token group gives U+FFFD. The offsets are right either way, so where the
decoding is not the text, the text itself is the span.
"""

import numpy as np
import pytest
from group_appeal_spark.lib import models
from group_appeal_spark.lib.inference.appeals import AppealFinder
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.inference.embed import MentionKeyer
from group_appeal_spark.lib.inference.stance import StanceClassifier

TEXTS = [
    "المزارعون في الريف يستحقون دعما أفضل من الحكومة، والممرضات كذلك.",
    "农民和工人应该得到政府更好的支持。年轻人需要住房。",
    "Nurses 👩‍⚕️ and farmers 🚜 deserve better pay 💪🏽 now.",
    "Учителя и врачи заслуживают большего уважения.",
    "Ärzte, Pflegekräfte und Bäuerinnen verdienen mehr.",
    "日本の若者は将来に不安を感じている。高齢者も同じだ。",
]


@pytest.fixture(scope="module")
def finder(hub_cache):
    dirs = hub_cache
    detector = MentionDetector.from_dirs(dirs[models.DETECTOR_ID], dirs[models.DETECTOR_TOKENIZER_ID])
    return AppealFinder(detector, StanceClassifier.from_dir(dirs[models.STANCE_ID]),
                        MentionKeyer.from_dir(dirs[models.EMBEDDER_ID]), segmentation="none")


def test_every_span_is_its_text_and_nothing_is_empty(finder):
    results = finder.process(TEXTS)
    appeals = [(text, a) for text, r in zip(TEXTS, results) for a in r.appeals]
    assert len(appeals) >= 10  # the tiny detector finds mentions in every script here
    for text, a in appeals:
        original = text[a.start:a.end]
        assert original.strip(), (text, a)
        assert a.span.strip() == original.strip(), (a.span, original)
        assert "\ufffd" not in a.span and "\ufffd" not in a.mention_key


def test_the_detector_alone_drops_token_groups_that_cover_no_character(finder):
    detector = finder.detector
    for text, found in zip(TEXTS, detector.detect(TEXTS)):
        assert all(m.end > m.start and text[m.start:m.end].strip() for m in found)
        assert all(np.isfinite(m.score) for m in found)


def test_latin_spans_keep_the_decoding_of_the_reference(finder):
    """Where the decoding is the text (all of the reference corpus), the span is unchanged."""
    text = "Farmers and young people deserve better."
    for m in finder.detector.detect([text])[0]:
        decoded = m.span
        assert decoded.strip() == text[m.start:m.end].strip()
