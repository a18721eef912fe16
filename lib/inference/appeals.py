"""Documents in, group appeals out: segmentation, detection and stance for a batch of documents.

This is what the detection UDF runs on each Arrow batch, and what a single machine can call
directly. A document that cannot be processed becomes an error record; it never takes the
batch down and never disappears.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence

from group_appeal_spark.lib.choices import STANCES, SegmentationMode
from group_appeal_spark.lib.inference.batching import check_one_per_input
from group_appeal_spark.lib.inference.segment import check_text, segment_document

log = logging.getLogger(__name__)

# Stage names used in error records.
STAGE_INPUT = "input"
STAGE_DETECT = "detect"


@dataclasses.dataclass(frozen=True)
class AppealRecord:
    """One mention of a group in a document, with the author's stance toward it.

    The single definition of an appeal's fields: the Spark struct of the detection UDF
    (``udfs/schemas.py``) and the mentions table's columns are derived from it. Fields added
    after the first release go at the end, so that positional readers (CSV) keep working.
    """

    seg_idx: int
    span: str
    start: int  # character offset into the original document
    end: int
    stance: str
    prob_positive: float
    prob_negative: float
    prob_neutral: float
    mention_key: str
    score: float  # the detector's confidence: mean chosen-label probability of the span's tokens
    seg_start: int  # the segment holding the mention: document[seg_start:seg_end]
    seg_end: int


@dataclasses.dataclass(frozen=True)
class SegmentRecord:
    """One segment handed to the models, with or without a mention: a row of ``segments/``.

    The denominator of the per-sentence measures (share of sentences with a group appeal);
    the segments table's columns are derived from it. Counts are of this segment's appeals.
    """

    seg_idx: int
    seg_start: int  # document[seg_start:seg_end] is the segment
    seg_end: int
    n_tokens: int  # the detector's tokens of the segment (special tokens not counted)
    n_mentions: int
    n_positive: int
    n_negative: int
    n_neutral: int


@dataclasses.dataclass
class DocumentResult:
    """What became of one input document: its appeals, or why it has none.

    The detection UDF's result struct is derived from these fields (``udfs/schemas.py``);
    ``segments`` came last, after the first release.
    """

    appeals: list[AppealRecord]
    n_segments: int = 0
    error: str | None = None
    error_stage: str | None = None
    segments: list[SegmentRecord] = dataclasses.field(default_factory=list)


class AppealFinder:
    """Runs segmentation, detection and stance over batches of documents.

    Parameters
    ----------
    detector : MentionDetector
    stance : StanceClassifier
    keyer : MentionKeyer
        Gives each mention its dedupe key for the embedding stage.
    segmentation : {"sentence", "none"}
        ``sentence`` feeds each sentence to the models (and uses it as the stance premise);
        ``none`` feeds the whole, untouched text, as the reference does.
    max_segment_chars : int
        Longest segment handed to the models at once, in both modes (a longer sentence or
        text is cut at whitespace).
    """

    def __init__(self, detector, stance, keyer, *, segmentation="sentence", max_segment_chars: int = 20_000):
        self.detector = detector
        self.stance = stance
        self.keyer = keyer
        self.segmentation = SegmentationMode.parse(segmentation)
        self.max_segment_chars = max_segment_chars

    def segments(self, text: str) -> list[tuple[int, int, str]]:
        """``(seg_idx, start, text)`` of each segment of a valid document."""
        # trim=False: in mode none a text that fits stays untouched, so that its tokens (a
        # leading space changes RoBERTa's) match the reference's
        segments = segment_document(text, self.segmentation, max_chars=self.max_segment_chars, trim=False)
        return [(s.index, s.start, s.text) for s in segments]

    def process(self, texts: Sequence) -> list[DocumentResult]:
        """Find the appeals of each document.

        Parameters
        ----------
        texts : sequence, shape (n,)
            Document texts; anything that is not a usable string gets an error record.

        Returns
        -------
        list of DocumentResult, length n, in input order
        """
        results: list[DocumentResult | None] = [None] * len(texts)
        valid = []
        for i, text in enumerate(texts):
            reason = check_text(text)
            if reason is None:
                valid.append(i)
            else:
                results[i] = DocumentResult([], 0, reason, STAGE_INPUT)
        if valid:
            try:
                for i, res in zip(valid, self._process_valid([texts[i] for i in valid])):
                    results[i] = res
            except Exception as exc:  # one bad document must not cost the others: isolate it
                log.warning("batch of %d documents failed (%s: %s); retrying one by one",
                            len(valid), type(exc).__name__, exc)
                for i in valid:
                    try:
                        results[i] = self._process_valid([texts[i]])[0]
                    except Exception as doc_exc:
                        log.warning("document failed on its own", exc_info=True)
                        results[i] = DocumentResult([], 0, detect_failure(texts[i], doc_exc), STAGE_DETECT)
        check_one_per_input(len(texts), len(results), "appeals")
        return results

    def _process_valid(self, texts: Sequence[str]) -> list[DocumentResult]:
        per_doc = [self.segments(t) for t in texts]
        flat = [(d, seg) for d, segs in enumerate(per_doc) for seg in segs]
        mentions, n_tokens = self.detector.detect_counted([seg[2] for _, seg in flat])
        pairs = [(seg[2], m.span) for (_, seg), ms in zip(flat, mentions) for m in ms]
        stances = iter(self.stance.classify(pairs))
        keys = iter(self.keyer.keys([span for _, span in pairs]))
        results = [DocumentResult([], len(segs)) for segs in per_doc]
        for (d, (seg_idx, seg_start, seg_text)), ms, tokens in zip(flat, mentions, n_tokens):
            # segments are exact slices of the document (segment_document's contract)
            seg_end = seg_start + len(seg_text)
            found = []
            for m in ms:
                s = next(stances)
                found.append(AppealRecord(
                    seg_idx, m.span, seg_start + m.start, seg_start + m.end, s.stance,
                    s.prob_positive, s.prob_negative, s.prob_neutral, next(keys),
                    m.score, seg_start, seg_end))
            results[d].appeals.extend(found)
            by_stance = collections.Counter(a.stance for a in found)
            results[d].segments.append(SegmentRecord(seg_idx, seg_start, seg_end, tokens, len(found),
                                                     *(by_stance[s] for s in STANCES)))
        return results


def detect_failure(text: str, exc: BaseException) -> str:
    """The error record of a valid document that the models failed on, alone in its batch.

    Says what was tried, on what, and what to do, beside the exception itself: a bare
    ``IndexError`` tells a researcher nothing.
    """
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no message"
    return (f"the models failed on this document alone ({len(text):,} characters) after its batch failed: "
            f"{type(exc).__name__}: {detail}. The other documents of the batch were processed; rerun this "
            f"document with --log-level DEBUG and report the traceback if it persists")


def results_frame(results: Sequence[DocumentResult]):
    """One row per document: ``appeals`` (list of dicts), ``n_segments``, ``error``, ``error_stage``,
    ``segments`` (list of dicts).

    The Arrow-friendly shape the detection UDF returns: a list of structs and nullable strings.
    """
    import pandas as pd

    return pd.DataFrame({
        "appeals": [[dataclasses.asdict(a) for a in r.appeals] for r in results],
        "n_segments": pd.array([r.n_segments for r in results], dtype="int32"),
        "error": pd.array([r.error for r in results], dtype="object"),
        "error_stage": pd.array([r.error_stage for r in results], dtype="object"),
        "segments": [[dataclasses.asdict(s) for s in r.segments] for r in results],
    })
