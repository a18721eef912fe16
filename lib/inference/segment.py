"""Split documents into segments that keep exact character offsets.

The mention detector was trained on single House of Commons sentences, and one 512-token
window crashes the reference package on a long speech. Every document is therefore cut into
segments (sentences by default) before detection; a mention's ``start``/``end`` are then
``segment.start + offset``, so each segment must know exactly where it sits in the original
string.

Everything here is pure standard library and linear in the length of the text.

Whitespace
----------
"Blank" characters are everything ``str.isspace`` accepts plus the invisible U+200B ZERO
WIDTH SPACE, U+2060 WORD JOINER and U+FEFF (byte order mark), which text exported from word
processors and web pages carries between words and at the start of a file. The joiners
U+200C/U+200D are not blank: they belong to Persian and Indic words and to emoji sequences.
Segments never begin or end with a blank character (except the untouched whole text that mode
``none`` keeps with ``trim=False``), and a piece that holds only blanks is dropped.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from group_appeal_spark.lib.choices import SegmentationMode

__all__ = [
    "BLANK_CHARS",
    "Segment",
    "SegmentationMode",
    "check_text",
    "segment_document",
    "split_sentences",
]

# Every character for which str.isspace() is true (a test checks this list against all of
# Unicode), plus the zero-width characters that are invisible but not "space" to Python.
_ISSPACE_CHARS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ZERO_WIDTH_CHARS = "\u200b\u2060\ufeff"
BLANK_CHARS: str = _ISSPACE_CHARS + _ZERO_WIDTH_CHARS
"""Characters trimmed from segment edges and ignored by :func:`check_text`."""

_BLANK_CLASS = "[" + re.escape(BLANK_CHARS) + "]"
_NON_BLANK = re.compile("[^" + re.escape(BLANK_CHARS) + "]")

# Terminal punctuation of Latin-script text and the closing quotes/brackets that may follow
# it; a boundary needs a blank (or the end of the text) after them, so "3.5", "example.com"
# and "U.K.-based" never split.
_TERMINALS = ".!?\u2026\u203d"  # . ! ? … ‽
# German quotes close with “ ‘ and «, ‹ (»Ja.«): as closers they only matter when glued to
# the punctuation, where they never open a quote.
# " ' ) ] } ’ ” » › “ ‘ « ‹
_CLOSERS = "\"')]}\u2019\u201d\u00bb\u203a\u201c\u2018\u00ab\u2039"
# CJK full stops end a sentence with no space after them.
_CJK_TERMINALS = "\u3002\uff01\uff1f\uff61"  # 。 ！ ？ ｡
# 」 』 ” ’ ） 】 〕 》 〉 " ' )
_CJK_CLOSERS = "\u300d\u300f\u201d\u2019\uff09\u3011\u3015\u300b\u3009\"')"

# Line breaks as str.splitlines() knows them; \r\n counts as one, and a run is one match.
_LINE_BREAK = r"(?:\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])+"
# A paragraph break: a line break, optional horizontal blanks, another line break. The form
# feed and U+2029 PARAGRAPH SEPARATOR are paragraph breaks on their own.
_PARAGRAPH_BREAK = (
    r"(?:\r\n|[\n\r\x0b\x1c\x1d\x1e\x85\u2028])"
    r"[^\S\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*"
    r"(?:\r\n|[\n\r\x0b\x1c\x1d\x1e\x85\u2028])|[\x0c\u2029]"
)


def _boundary_pattern(line_break: str) -> re.Pattern[str]:
    # The lookbehind makes a run of terminals match only from its first character: without
    # it, a long run such as "!!!!...x" is retried from every position and the scan turns
    # quadratic (possessive quantifiers would do the same, but need Python 3.11).
    return re.compile(
        f"(?<![{re.escape(_TERMINALS)}])"
        f"(?P<term>[{re.escape(_TERMINALS)}]+)[{re.escape(_CLOSERS)}]*"
        f"(?={_BLANK_CLASS}|\\Z)"
        f"|[{re.escape(_CJK_TERMINALS)}]+[{re.escape(_CJK_CLOSERS)}]*"
        f"|(?P<nl>{line_break})"
    )


_BOUNDARY_LINES = _boundary_pattern(_LINE_BREAK)
_BOUNDARY_PARAGRAPHS = _boundary_pattern(_PARAGRAPH_BREAK)

# Abbreviations after which a period does not end the sentence (compared in lower case).
# Titles come before a name; the rest are Latin and English/German/French short forms that
# are rarely sentence-final in parliamentary speech.
_ABBREVIATIONS = frozenset(
    {
        # titles and forms of address
        "mr", "mrs", "ms", "messrs", "dr", "prof", "st", "hon", "rt", "sen", "rep", "gov",
        "gen", "col", "capt", "lt", "sgt", "cmdr", "adm", "rev", "fr", "sr", "mme", "mlle",
        "hr", "hrn",
        # Latin and general short forms
        "etc", "vs", "cf", "viz", "al", "approx", "ca", "esp", "incl", "dept",
        "bzw", "usw", "ggf", "vgl", "sog", "inkl", "evtl",
    }
)  # fmt: skip
# Abbreviations that only hold before a number ("No. 10", "Art. 5", "p. 12"): "No." is also
# a sentence on its own in a debate.
_NUMERIC_ABBREVIATIONS = frozenset(
    {"no", "nos", "nr", "art", "arts", "p", "pp", "vol", "sec", "ch", "para", "fig", "cl"}
)
# Dotted initialisms ("U.K.", "e.g.", "i.e.", "z.B.") seen without their final period.
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_LAST_TOKEN = re.compile(f"[^{re.escape(BLANK_CHARS)}]*\\Z")
_OPENERS = "\"'([{\u2018\u201c\u00ab\u2039"
# Longest token looked at when deciding whether a period follows an abbreviation; bounding it
# keeps the scan linear whatever the text.
_MAX_ABBREVIATION_LEN = 16

# Back-tracking to the last blank of a window finds where to cut an over-long sentence.
_UP_TO_LAST_BLANK = re.compile(f".*{_BLANK_CLASS}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a document, with its place in the original string.

    Attributes
    ----------
    index : int
        Position of the segment in the document, ``0 .. n - 1``.
    start, end : int
        Character offsets into the original document; ``document[start:end] == text``.
    text : str
        The segment's text; it never starts or ends with a blank character, except with
        ``segment_document(..., trim=False)`` in mode ``none``.
    """

    index: int
    start: int
    end: int
    text: str


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` past blank characters at both edges (may become empty)."""
    piece = text[start:end]
    stripped = piece.lstrip(BLANK_CHARS)
    start += len(piece) - len(stripped)
    return start, start + len(stripped.rstrip(BLANK_CHARS))


def _is_abbreviation(text: str, dot: int, after: int) -> bool:
    """Whether the period at ``text[dot]`` closes an abbreviation rather than a sentence."""
    window = text[max(0, dot - _MAX_ABBREVIATION_LEN) : dot]
    token = _LAST_TOKEN.search(window).group()
    # A token that fills the whole window may be the tail of a longer word.
    if len(token) == len(window) and dot > _MAX_ABBREVIATION_LEN:
        return False
    token = token.lstrip(_OPENERS)
    if not token:
        return False
    lowered = token.lower()
    if lowered in _ABBREVIATIONS:
        return True
    if lowered in _NUMERIC_ABBREVIATIONS:
        match = _NON_BLANK.search(text, after, after + 64)
        return match is not None and match.group().isdigit()
    # A single capital is an initial ("J. Smith"), except the pronoun "I".
    if len(token) == 1 and token.isalpha() and token.isupper() and token != "I":
        return True
    return _INITIALISM.fullmatch(token) is not None


def split_sentences(text: str, *, split_lines: bool = True) -> list[tuple[int, int]]:
    """Find sentence spans in a text, as offsets into it.

    A sentence ends after ``.``, ``!``, ``?``, ``…`` or ``‽`` (or a run of them, such as
    ``?!`` or ``...``), optionally followed by closing quotes or brackets, when a blank
    character or the end of the text follows; after the CJK full stops ``。！？`` with nothing
    needed after them; and at line breaks. A period does not end a sentence after a common
    abbreviation (``Mr.``, ``Dr.``, ``hon.``, ``etc.``, ``e.g.``, ``U.K.``, ``No. 10``), a
    single capital initial (``J. Smith``) or inside a number (``3.5``).

    Parameters
    ----------
    text : str
        The document.
    split_lines : bool, default True
        Split at every line break: posts and transcripts put one statement per line, often
        without final punctuation. With ``False`` only paragraph breaks (a line break, optional
        spaces, another line break) split, for hard-wrapped text such as OCR'd archives.

    Returns
    -------
    list of tuple of (int, int)
        ``(start, end)`` per sentence, in order, non-overlapping, each non-empty and trimmed
        of blank characters, covering every non-blank character of ``text`` exactly once.
    """
    pattern = _BOUNDARY_LINES if split_lines else _BOUNDARY_PARAGRAPHS
    spans: list[tuple[int, int]] = []
    piece_start = 0
    for match in pattern.finditer(text):
        term = match.group("term")
        if term == "." and _is_abbreviation(text, match.start(), match.end()):
            continue
        # A line break belongs to neither side; other boundaries end the sentence they close.
        cut = match.start() if match.group("nl") is not None else match.end()
        if cut > piece_start:
            start, end = _trim(text, piece_start, cut)
            if start < end:
                spans.append((start, end))
        piece_start = match.end()
    start, end = _trim(text, piece_start, len(text))
    if start < end:
        spans.append((start, end))
    return spans


def _hard_cut(text: str, start: int, limit: int) -> int:
    """Move a cut at ``limit`` back so that it does not separate a base character from the
    combining marks or joiners that follow it, if that can be done within a few characters."""
    cut = limit
    for _ in range(32):
        if cut - 1 <= start:
            break
        char, previous = text[cut], text[cut - 1]
        if not (
            unicodedata.combining(char)
            or char in "\u200d\ufe0e\ufe0f"
            or previous == "\u200d"
        ):
            return cut
        cut -= 1
    return limit


def _bound_length(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a trimmed span into trimmed spans of at most ``max_chars`` characters."""
    spans = []
    while end - start > max_chars:
        limit = start + max_chars
        # A blank at `limit` itself is fine: the piece before it is exactly max_chars long.
        match = _UP_TO_LAST_BLANK.match(text, start, limit + 1)
        if match is not None:
            cut = match.end() - 1
            piece_start, piece_end = _trim(text, start, cut)
            next_start = cut
        else:
            cut = _hard_cut(text, start, limit)
            piece_start, piece_end = start, cut
            next_start = cut
        if piece_start < piece_end:
            spans.append((piece_start, piece_end))
        start, end = _trim(text, next_start, end)
    if start < end:
        spans.append((start, end))
    return spans


def segment_document(
    text: str,
    mode: str | SegmentationMode = SegmentationMode.SENTENCE,
    *,
    max_chars: int | None = 20_000,
    split_lines: bool = True,
    trim: bool = True,
) -> list[Segment]:
    """Split a document into segments for mention detection.

    Parameters
    ----------
    text : str
        The document. A text that is empty or only blank gives no segments; use
        :func:`check_text` first to report such rows.
    mode : str or SegmentationMode, default "sentence"
        ``"sentence"``: one segment per sentence (see :func:`split_sentences`). ``"none"``:
        the whole text as one segment.
    max_chars : int or None, default 20000
        Longest segment in characters, in both modes. A longer sentence (or whole text) is cut
        at the last blank character before the limit, or exactly at the limit when it has
        none. This only bounds the work per segment; token windows for the model are made
        later. ``None`` lifts the bound.
    split_lines : bool, default True
        Passed to :func:`split_sentences`; ignored in mode ``"none"``.
    trim : bool, default True
        Mode ``"none"`` only. ``False`` keeps a text of at most ``max_chars`` characters
        untouched, blanks at its edges included, as one segment at offset 0: that is the
        string the reference feeds the detector, and RoBERTa's tokens change with a leading
        space. A longer text is still cut into trimmed pieces. Ignored in mode ``"sentence"``.

    Returns
    -------
    list of Segment
        In document order, indices ``0 .. n - 1``, non-overlapping, with
        ``text[s.start:s.end] == s.text``; together they cover every non-blank character of
        ``text`` exactly once. Only the untouched segment of ``trim=False`` may begin or end
        with a blank character.

    Raises
    ------
    TypeError
        If ``text`` is not a string or ``max_chars`` not an integer.
    ValueError
        If ``max_chars`` is below 1, or (as :class:`ConfigError`) ``mode`` is unknown.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    mode = SegmentationMode.parse(mode)
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int):
            raise TypeError(f"max_chars must be an int or None, got {max_chars!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")

    if mode is SegmentationMode.SENTENCE:
        spans = split_sentences(text, split_lines=split_lines)
    else:
        start, end = _trim(text, 0, len(text))
        if start == end:
            spans = []
        elif not trim and (max_chars is None or len(text) <= max_chars):
            spans = [(0, len(text))]
        else:
            spans = [(start, end)]

    if max_chars is not None:
        spans = [
            piece
            for start, end in spans
            for piece in (
                [(start, end)]
                if end - start <= max_chars
                else _bound_length(text, start, end, max_chars)
            )
        ]
    return [Segment(i, start, end, text[start:end]) for i, (start, end) in enumerate(spans)]


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: object) -> str | None:
    """Say why a value cannot be segmented, or nothing when it can.

    Parameters
    ----------
    value : object
        A cell of the text column.

    Returns
    -------
    str or None
        ``None`` for a usable text; otherwise a short, stable reason: ``"missing text (null)"``,
        ``"missing text (NaN)"``, ``"missing text (NA)"``, ``"not a string: <type>"``,
        ``"empty text"``, ``"whitespace-only text"`` (blank characters only, zero-width ones
        included) or ``"contains lone surrogate characters"`` (such a string cannot be
        encoded as UTF-8, so Arrow and the tokenizer would fail on it).
    """
    if value is None:
        return "missing text (null)"
    if isinstance(value, float) and math.isnan(value):
        return "missing text (NaN)"
    # pandas.NA and NaT without importing pandas: lib stays free of heavy imports here.
    if type(value).__name__ in {"NAType", "NaTType"}:
        return "missing text (NA)"
    if not isinstance(value, str):
        return f"not a string: {type(value).__name__}"
    if not value:
        return "empty text"
    if _SURROGATE.search(value) is not None:
        return "contains lone surrogate characters"
    if not value.strip(BLANK_CHARS):
        return "whitespace-only text"
    return None
