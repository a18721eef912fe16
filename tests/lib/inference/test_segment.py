"""Tests for lib/segment.py: sentence spans, offsets into the original text, text checks."""

from __future__ import annotations

import math
import random
import sys
import time

import pytest
from group_appeal_spark.lib.inference.segment import (
    BLANK_CHARS,
    Segment,
    SegmentationMode,
    check_text,
    segment_document,
    split_sentences,
)

# --------------------------------------------------------------------------------------
# Hand-written sentence spans
# --------------------------------------------------------------------------------------

SENTENCE_CASES = [
    ("Hello world. This is a test.", [(0, 12), (13, 28)]),
    # titles
    ("Mr. Smith met Mrs. Jones and Dr. Who.", [(0, 37)]),
    ("Ms. Lee and Prof. Xu visited St. Albans. Then they left.", [(0, 40), (41, 56)]),
    # Hansard forms of address, capitalised or not
    ("The Rt. Hon. Member spoke. The hon. Lady agreed.", [(0, 26), (27, 48)]),
    # Latin and dotted abbreviations
    ("Cuts, e.g. to nurses, i.e. to the NHS, etc. are bad. Us vs. them.", [(0, 52), (53, 65)]),
    ("The U.K. and the U.S. agree. Fine.", [(0, 28), (29, 34)]),
    ("Überall gilt z.B. das Gesetz. Das ist gut.", [(0, 29), (30, 42)]),
    # initials, but the pronoun "I" ends a sentence
    ("J. Smith and A. B. Jones voted. So did I. Yes.", [(0, 31), (32, 41), (42, 46)]),
    # decimals
    ("Growth was 3.5 per cent. Inflation 2.1.", [(0, 24), (25, 39)]),
    # runs of terminals and the ellipsis character
    (
        "Wait... what? Really?! Yes!!! Fine\u2026 ok.",
        [(0, 7), (8, 13), (14, 22), (23, 29), (30, 35), (36, 39)],
    ),
    # closing quotes and brackets stay with their sentence
    ('He said, "We will win." Then he sat down.', [(0, 23), (24, 41)]),
    ("(This is aside.) And this 'quoted.' Next.", [(0, 16), (17, 35), (36, 41)]),
    ("\u201cIs it?\u201d she asked.", [(0, 8), (9, 19)]),
    ("\u00bbJa.\u00ab Gut.", [(0, 5), (6, 10)]),
    ("\u201eJa.\u201c Gut.", [(0, 5), (6, 10)]),
    ("\u00abOui.\u00bb Bon.", [(0, 6), (7, 11)]),
    # "No." is an abbreviation only before a number
    ("We met at No. 10 today. No. That is wrong.", [(0, 23), (24, 27), (28, 42)]),
    ("See p. 12 and Art. 5 GG. Done.", [(0, 24), (25, 30)]),
    # no final punctuation
    ("No final punctuation here", [(0, 25)]),
    ("First. second without stop", [(0, 6), (7, 26)]),
    # a period needs a blank after it
    ("Visit example.com today.Really.", [(0, 31)]),
    # line breaks: every newline splits, \r\n is one break, paragraph breaks too
    (
        "line one\nline two\r\nline three\n\n  paragraph two.  ",
        [(0, 8), (9, 17), (19, 29), (33, 47)],
    ),
    ("a\rb\u2028c\u2029d\x0ce\x85f", [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]),
    ("Mr.\nSmith", [(0, 3), (4, 9)]),
    # CJK full stops need no space, closing brackets stay attached
    (
        "\u6211\u4eec\u8d62\u4e86\u3002\u771f\u7684\u5417\uff1f\u662f\u7684\uff01"
        "\u300c\u597d\u3002\u300d\u7ed3\u675f",
        [(0, 5), (5, 9), (9, 12), (12, 16), (16, 18)],
    ),
    ("\u3053\u3093\u306b\u3061\u306f\u3002 Hello.", [(0, 6), (7, 13)]),
    # other scripts with Latin punctuation
    (
        "\u041f\u0440\u0438\u0432\u0435\u0442. \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
        [(0, 7), (8, 17)],
    ),
    # surrounding and zero-width blanks are trimmed
    ("\ufeff  Hello.\u200b World. \t", [(3, 9), (11, 17)]),
    ("  \t  ", []),
    ("\u200b\ufeff\u2060", []),
    ("", []),
    ("...", [(0, 3)]),
    (". . .", [(0, 1), (2, 3), (4, 5)]),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCE_CASES)
def test_split_sentences_exact_spans(text, expected):
    assert split_sentences(text) == expected


def test_split_lines_false_splits_only_paragraphs():
    text = "a hard-wrapped\nline of text.\r\n \r\nNext para\nstill it. New one.\x0cpage"
    spans = split_sentences(text, split_lines=False)
    assert [text[s:e] for s, e in spans] == [
        "a hard-wrapped\nline of text.",
        "Next para\nstill it.",
        "New one.",
        "page",
    ]
    assert spans == [(0, 28), (33, 52), (53, 61), (62, 66)]


def test_segment_document_builds_segments_with_offsets():
    text = "  Mr. Brown spoke.  Working families suffer!\nYes "
    assert segment_document(text) == [
        Segment(0, 2, 18, "Mr. Brown spoke."),
        Segment(1, 20, 44, "Working families suffer!"),
        Segment(2, 45, 48, "Yes"),
    ]


def test_segment_document_accepts_enum_and_any_case():
    text = "One. Two."
    assert segment_document(text, SegmentationMode.SENTENCE) == segment_document(text, " Sentence ")


def test_mode_none_is_whole_text_trimmed():
    text = "\n  One. Two!\nThree  \t"
    assert segment_document(text, "none") == [Segment(0, 3, 18, "One. Two!\nThree")]
    assert segment_document(text, SegmentationMode.NONE) == segment_document(text, "NONE")
    assert segment_document(" \u200b ", "none") == []


# --------------------------------------------------------------------------------------
# max_chars
# --------------------------------------------------------------------------------------


def test_long_sentence_is_cut_at_last_blank_before_limit():
    text = "aaaa bbb cc dddddd"
    # limit 8: "aaaa bbb" fits exactly (the blank at 8 is the cut), then "cc" + "dddddd"
    assert [(s.start, s.end) for s in segment_document(text, max_chars=8)] == [
        (0, 8),
        (9, 11),
        (12, 18),
    ]
    assert [(s.start, s.end) for s in segment_document(text, max_chars=7)] == [
        (0, 4),
        (5, 11),
        (12, 18),
    ]


def test_long_sentence_without_blanks_is_hard_cut():
    text = "x" * 25
    assert [(s.start, s.end) for s in segment_document(text, max_chars=10)] == [
        (0, 10),
        (10, 20),
        (20, 25),
    ]


def test_hard_cut_keeps_combining_marks_with_their_base():
    text = "abcde\u0301fgh"  # é as e + COMBINING ACUTE ACCENT at index 5
    spans = [(s.start, s.end) for s in segment_document(text, max_chars=5)]
    assert spans == [(0, 4), (4, 9)]


def test_max_chars_applies_in_mode_none_and_can_be_lifted():
    text = "word " * 10_000
    segments = segment_document(text, "none", max_chars=1000)
    assert len(segments) > 1
    assert max(len(s.text) for s in segments) <= 1000
    assert segment_document(text, "none", max_chars=None) == [
        Segment(0, 0, len(text) - 1, text.strip())
    ]


def test_hundred_thousand_chars_without_punctuation():
    rng = random.Random(7)
    words = ("".join(rng.choices("abcdefg", k=rng.randint(1, 12))) for _ in range(15_000))
    text = " ".join(words)
    text = text[:100_000]
    segments = segment_document(text, max_chars=20_000)
    assert len(segments) >= 5
    assert all(len(s.text) <= 20_000 for s in segments)
    _assert_invariants(text, segments, max_chars=20_000)


@pytest.mark.parametrize(
    ("max_chars", "error", "match"),
    [
        (0, ValueError, "max_chars must be at least 1, got 0"),
        (-5, ValueError, "max_chars must be at least 1, got -5"),
        (2.5, TypeError, r"max_chars must be an int or None, got 2\.5"),
        (True, TypeError, "max_chars must be an int or None, got True"),
        ("100", TypeError, "max_chars must be an int or None, got '100'"),
    ],
)
def test_bad_max_chars(max_chars, error, match):
    with pytest.raises(error, match=match):
        segment_document("Text.", max_chars=max_chars)


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), (3, "int"), (b"x", "bytes")])
def test_segment_document_rejects_non_strings(value, type_name):
    with pytest.raises(TypeError, match=f"text must be a string, got {type_name}"):
        segment_document(value)


# --------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sentence", SegmentationMode.SENTENCE),
        ("SENTENCE", SegmentationMode.SENTENCE),
        (" Sentence\n", SegmentationMode.SENTENCE),
        ("none", SegmentationMode.NONE),
        ("None", SegmentationMode.NONE),
        (SegmentationMode.NONE, SegmentationMode.NONE),
    ],
)
def test_mode_parse(value, expected):
    assert SegmentationMode.parse(value) is expected


@pytest.mark.parametrize("value", ["sentences", "", "paragraph", None, 1, ["none"]])
def test_mode_parse_errors_list_valid_values(value):
    expected = r"invalid segmentation mode .*expected one of: 'sentence', 'none'"
    with pytest.raises(ValueError, match=expected):
        SegmentationMode.parse(value)


def test_segment_document_bad_mode():
    with pytest.raises(ValueError, match=r"invalid segmentation mode 'words'"):
        segment_document("Text.", "words")


# --------------------------------------------------------------------------------------
# check_text
# --------------------------------------------------------------------------------------


class _FakeNA:
    """Stands in for pandas.NA, which check_text recognises by type name."""


_FakeNA.__name__ = "NAType"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing text (null)"),
        (float("nan"), "missing text (NaN)"),
        (math.nan, "missing text (NaN)"),
        (_FakeNA(), "missing text (NA)"),
        (5, "not a string: int"),
        (2.5, "not a string: float"),
        (True, "not a string: bool"),
        ({"text": "x"}, "not a string: dict"),
        (["x"], "not a string: list"),
        (b"text", "not a string: bytes"),
        ("", "empty text"),
        (" ", "whitespace-only text"),
        ("\t\r\n \u00a0\u3000", "whitespace-only text"),
        ("\u200b", "whitespace-only text"),
        ("\ufeff \u200b\u2060", "whitespace-only text"),
        ("\ud800", "contains lone surrogate characters"),
        ("fine text \udfff here", "contains lone surrogate characters"),
        ("Hello.", None),
        ("  x  ", None),
        ("\U0001f600", None),
        ("\u6211", None),
        ("e\u0301", None),
    ],
)
def test_check_text(value, reason):
    assert check_text(value) == reason


def test_check_text_accepts_str_subclasses():
    class Text(str):
        pass

    assert check_text(Text("ok")) is None


# --------------------------------------------------------------------------------------
# Randomised property tests (seeded, no hypothesis)
# --------------------------------------------------------------------------------------

_PIECES = [
    # Latin words and abbreviation bait
    "word", "The", "Mr", "Dr", "No", "e.g", "U.K", "J", "I", "hon", "3", "3.5", "etc", "vs",
    "caf\u00e9", "cafe\u0301", "na\u00efve", "\u00dcber",
    # punctuation and quotes
    ".", ".", ".", "!", "?", "?!", "...", "\u2026", "\u203d", ",", ";", ":", "-", '"', "'",
    "(", ")", "[", "]", "\u201c", "\u201d", "\u2018", "\u2019", "\u00ab", "\u00bb",
    # CJK and other scripts
    "\u6211\u4eec", "\u3002", "\uff01", "\uff1f", "\u300c", "\u300d", "\u3053\u3093",
    "\u041f\u0440\u0438", "\u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\u05e9\u05dc\u05d5\u05dd",
    # emoji, including ZWJ sequences and variation selectors
    "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u2764\ufe0f",
    "\U0001f44d\U0001f3fd",
    # combining marks alone, joiners
    "\u0301", "\u0308", "\u200d", "\u200c",
    # blanks of every kind
    " ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028",
    "\u2029", "\x0c", "\x0b", "\x85", "\u200b", "\ufeff", "\u2060", "\u202f",
]  # fmt: skip


def _random_text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 5, 20, 60, 200])
    if rng.random() < 0.1:
        # raw random code points, surrogates excluded
        chars = []
        for _ in range(n):
            cp = rng.randrange(0x110000)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x20
            chars.append(chr(cp))
        return "".join(chars)
    return "".join(rng.choice(_PIECES) for _ in range(n))


def _assert_spans(text: str, spans: list[tuple[int, int]], max_chars: int | None) -> None:
    blank = set(BLANK_CHARS)
    covered = [False] * len(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text), (text, spans)
        piece = text[start:end]
        assert piece[0] not in blank and piece[-1] not in blank, (text, spans)
        if max_chars is not None:
            assert end - start <= max_chars, (text, spans)
        for i in range(start, end):
            covered[i] = True
        previous_end = end
    # every non-blank character lies in exactly one span (spans do not overlap, see above)
    for i, char in enumerate(text):
        if char not in blank:
            assert covered[i], (text, spans, i)


def _assert_invariants(text: str, segments: list[Segment], max_chars: int | None) -> None:
    assert [s.index for s in segments] == list(range(len(segments)))
    for s in segments:
        assert text[s.start : s.end] == s.text
    _assert_spans(text, [(s.start, s.end) for s in segments], max_chars)


def test_random_texts_keep_offsets_and_cover_everything():
    rng = random.Random(20240601)
    for _ in range(3000):
        text = _random_text(rng)
        split_lines = rng.random() < 0.8
        _assert_spans(text, split_sentences(text, split_lines=split_lines), None)
        max_chars = rng.choice([None, 1, 2, 3, 7, 15, 40, 20_000])
        for mode in ("sentence", "none"):
            segments = segment_document(text, mode, max_chars=max_chars, split_lines=split_lines)
            _assert_invariants(text, segments, max_chars)


def test_random_texts_mode_none_without_limit_is_one_trimmed_segment():
    rng = random.Random(99)
    for _ in range(500):
        text = _random_text(rng)
        segments = segment_document(text, "none", max_chars=None)
        stripped = text.strip(BLANK_CHARS)
        assert [s.text for s in segments] == ([stripped] if stripped else [])


def test_random_texts_max_chars_only_subdivides_sentences():
    # Cutting long sentences never moves a sentence boundary: every piece lies inside one
    # sentence of the unbounded split.
    rng = random.Random(5)
    for _ in range(500):
        text = _random_text(rng)
        sentences = split_sentences(text)
        for s in segment_document(text, max_chars=rng.randint(1, 30)):
            assert any(a <= s.start and s.end <= b for a, b in sentences), (text, s)


def test_blank_chars_are_isspace_plus_zero_width():
    isspace = {chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isspace()}
    assert set(BLANK_CHARS) == isspace | {"\u200b", "\u2060", "\ufeff"}


# --------------------------------------------------------------------------------------
# Scale (measured, reported, not asserted on time)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            (
                "The hon. Member for York said that working families, e.g. nurses, pay 3.5% "
                'more! Is that fair? "No," he said. Mr. J. Smith disagreed...\n'
            )
            * 8000,
            id="prose",
        ),
        pytest.param("word " * 200_000, id="no-punctuation"),
        pytest.param("x" * 1_000_000, id="no-blanks"),
        pytest.param("!" * 999_999 + "x", id="terminal-run"),
        pytest.param("\n" * 1_000_000, id="newlines"),
    ],
)
def test_million_characters_is_fast(text, capsys):
    started = time.perf_counter()
    segments = segment_document(text)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n{len(text):,} chars -> {len(segments):,} segments in {elapsed:.3f} s")
    assert all(len(s.text) <= 20_000 for s in segments)
    assert sum(len(s.text) for s in segments) <= len(text)


# --------------------------------------------------------------------------------------
# Mode "none" with trim=False: the untouched text, bounded like a sentence
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["We support farmers.", " We support farmers.\n", "\u200bOne. Two!\nThree  \t"])
def test_mode_none_untrimmed_short_text_is_the_untouched_text_at_offset_zero(text):
    # what AppealFinder fed the detector before "none" went through segment_document
    assert segment_document(text, "none", max_chars=20_000, trim=False) == [Segment(0, 0, len(text), text)]
    assert segment_document(text, "none", max_chars=None, trim=False) == [Segment(0, 0, len(text), text)]


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        # longer than max_chars: trimmed pieces cut at the last blank before the limit
        ("  aaaa bbb cc dddddd ", 8, [Segment(0, 2, 10, "aaaa bbb"), Segment(1, 11, 13, "cc"),
                                     Segment(2, 14, 20, "dddddd")]),
        ("  aaaa bbb cc dddddd ", 20, [Segment(0, 2, 20, "aaaa bbb cc dddddd")]),
        # exactly max_chars long: still untouched
        ("  aaaa bbb cc dddddd ", 21, [Segment(0, 0, 21, "  aaaa bbb cc dddddd ")]),
        # no blank inside: cut exactly at the limit
        ("x" * 25, 10, [Segment(0, 0, 10, "x" * 10), Segment(1, 10, 20, "x" * 10), Segment(2, 20, 25, "x" * 5)]),
    ],
)
def test_mode_none_untrimmed_long_text_is_bounded_with_exact_offsets(text, max_chars, expected):
    segments = segment_document(text, "none", max_chars=max_chars, trim=False)
    assert segments == expected
    assert all(text[s.start : s.end] == s.text and len(s.text) <= max_chars for s in segments)


def test_mode_none_cuts_a_long_text_as_sentence_mode_cuts_a_long_sentence():
    text = " ".join(f"word{i}" for i in range(3000))  # one "sentence": no terminal, no line break
    for max_chars in (7, 37, 1000):
        assert segment_document(text, "none", max_chars=max_chars, trim=False) == segment_document(
            text, "sentence", max_chars=max_chars
        )


def test_mode_none_untrimmed_blank_text_gives_no_segment():
    assert segment_document(" \u200b\n ", "none", trim=False) == []


def test_trim_is_ignored_in_sentence_mode():
    text = "  Mr. Brown spoke.  Working families suffer!\nYes "
    assert segment_document(text, trim=False) == segment_document(text)


def test_random_texts_mode_none_untrimmed_keep_offsets_and_bound():
    rng = random.Random(7)
    for _ in range(1000):
        text = _random_text(rng)
        max_chars = rng.choice([None, 1, 3, 15, 40, 20_000])
        segments = segment_document(text, "none", max_chars=max_chars, trim=False)
        assert [s.index for s in segments] == list(range(len(segments)))
        assert all(text[s.start : s.end] == s.text for s in segments)
        if max_chars is None or len(text) <= max_chars:
            assert segments == ([Segment(0, 0, len(text), text)] if text.strip(BLANK_CHARS) else [])
        else:
            assert segments == segment_document(text, "none", max_chars=max_chars)
