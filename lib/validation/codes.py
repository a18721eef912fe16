"""The coding sheet's gold cells: which segments were coded, and their mentions with a stance.

The sheet has one row per sampled segment, with the columns :data:`SHEET_COLUMNS`
(``predicted`` only where the sheet was not made ``--blind``). A coder fills two cells:

- ``gold_has_mention``: ``1`` if the segment mentions a social group, else ``0`` (``0.0`` /
  ``1.0``, ``true`` / ``false`` and ``yes`` / ``no`` are read too, in any case);
- ``gold_mentions``: ``span|stance; span|stance``, each span typed as it appears in the
  sentence and each stance one of :data:`~group_appeal_spark.lib.choices.STANCES` (any case,
  blanks around it ignored). A span listed twice means its first and second occurrence.

:func:`read_codes` turns the sheet into :class:`CodedSegment` rows with segment-relative
character offsets; every row it cannot use is reported as a :class:`Problem`, never dropped
silently. Rows whose two gold cells are both blank are not coded yet and only counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from group_appeal_spark.lib.choices import STANCES
from group_appeal_spark.lib.errors import InputError

__all__ = [
    "GOLD_COLUMNS",
    "REQUIRED_COLUMNS",
    "SHEET_COLUMNS",
    "CodedSegment",
    "CodesResult",
    "Problem",
    "locate",
    "parse_has_mention",
    "parse_mentions",
    "read_codes",
]

#: Every column of the coding sheet, in order.
SHEET_COLUMNS = (
    "sample_id", "doc_id", "seg_idx", "stratum", "pi", "segment_text", "predicted",
    "gold_has_mention", "gold_mentions",
)
#: The columns :func:`read_codes` needs (``predicted`` is absent from a ``--blind`` sheet).
REQUIRED_COLUMNS = tuple(c for c in SHEET_COLUMNS if c != "predicted")
#: The two cells a coder fills.
GOLD_COLUMNS = ("gold_has_mention", "gold_mentions")

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}
_QUOTE_CHARS = 60


@dataclass(frozen=True)
class CodedSegment:
    """One coded segment of the sheet.

    Attributes
    ----------
    sample_id, doc_id : str
    seg_idx : int
        The segment's index in its document.
    stratum : str
        The stratum as written in the sheet.
    pi : float
        Its inclusion probability, in ``(0, 1]``.
    has_mention : int
        The gold 0/1.
    mentions : list of (int, int, str)
        Shape ``(n_mentions,)``: ``(start, end, stance)``, offsets relative to the segment
        text, in the order the coder listed them.
    segment_text : str
    """

    sample_id: str
    doc_id: str
    seg_idx: int
    stratum: str
    pi: float
    has_mention: int
    mentions: list = field(default_factory=list)
    segment_text: str = ""


@dataclass(frozen=True)
class Problem:
    """A sheet row that could not be used: its ``sample_id``, the column at fault and why."""

    sample_id: str
    column: str
    message: str


@dataclass
class CodesResult:
    """What :func:`read_codes` made of a sheet.

    Attributes
    ----------
    coded : list of CodedSegment
        The usable coded rows, in sheet order.
    uncoded : int
        Rows whose two gold cells are both blank (not coded yet).
    problems : list of Problem
        One per fault; a row with any fault is not in ``coded``.
    """

    coded: list
    uncoded: int
    problems: list


def _raw(value) -> str:
    """A sheet cell as a string, unstripped; NaN and None are blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _cell(value) -> str:
    """A sheet cell as a stripped string; NaN and None are blank."""
    return _raw(value).strip()


def _quote(text: str) -> str:
    """The start of a sentence, for a message."""
    return repr(text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "...")


def parse_has_mention(cell) -> int:
    """Read a ``gold_has_mention`` cell.

    Parameters
    ----------
    cell : str
        ``0``/``1``, ``0.0``/``1.0``, ``true``/``false`` or ``yes``/``no``, any case.

    Returns
    -------
    int
        0 or 1.

    Raises
    ------
    InputError
        If the cell is anything else (a blank included).
    """
    text = _cell(cell).lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise InputError(f"gold_has_mention must be 0 or 1 (or 0.0/1.0, true/false, yes/no); got {_cell(cell)!r}")


def parse_mentions(cell) -> list:
    """Read a ``gold_mentions`` cell.

    Parameters
    ----------
    cell : str
        ``span|stance; span|stance``; blank (or NaN) for none. Items are split at ``;`` and
        each at its last ``|``; blanks around spans and stances are ignored, empty items
        (a trailing ``;``) are skipped. A span cannot contain ``;``.

    Returns
    -------
    list of (str, str)
        Shape ``(n_items,)``: ``(span, stance)``, the stance lower-cased, in listing order.

    Raises
    ------
    InputError
        If an item has no ``|stance``, its span is empty, or its stance is not one of
        :data:`~group_appeal_spark.lib.choices.STANCES`.

    Examples
    --------
    >>> parse_mentions("the workers|Positive ; farmers | negative")
    [('the workers', 'positive'), ('farmers', 'negative')]
    """
    items = []
    for raw in _cell(cell).split(";"):
        item = raw.strip()
        if not item:
            continue
        if "|" not in item:
            raise InputError(f"mention {item!r} has no stance: write it as 'span|stance'")
        span, stance = (part.strip() for part in item.rsplit("|", 1))
        if not span:
            raise InputError(f"mention {item!r} has an empty span")
        if stance.lower() not in STANCES:
            raise InputError(
                f"mention {item!r}: unknown stance {stance!r}; expected one of: {', '.join(STANCES)}"
            )
        items.append((span, stance.lower()))
    return items


def locate(segment_text: str, items) -> list:
    """Find each listed span in its segment.

    Parameters
    ----------
    segment_text : str
        The segment (sentence) the spans were typed from.
    items : sequence of (str, str)
        Shape ``(n_items,)``: ``(span, stance)`` as :func:`parse_mentions` returns them.

    Returns
    -------
    list of (int, int, str)
        Shape ``(n_items,)``: ``(start, end, stance)`` with ``segment_text[start:end] == span``,
        in listing order. The k-th listing of the same span text is its k-th occurrence,
        searching left to right without overlap; the match is exact (case and blanks).

    Raises
    ------
    InputError
        If a span does not occur in the segment, or is listed more often than it occurs.

    Examples
    --------
    >>> locate("workers and more workers", [("workers", "positive"), ("workers", "neutral")])
    [(0, 7, 'positive'), (17, 24, 'neutral')]
    """
    text = _raw(segment_text)
    next_from: dict = {}
    listed: dict = {}
    out = []
    for span, stance in items:
        if not span:
            raise InputError("a mention has an empty span")
        listed[span] = listed.get(span, 0) + 1
        start = text.find(span, next_from.get(span, 0))
        if start < 0:
            if listed[span] == 1:
                raise InputError(f"span {span!r} is not in the sentence {_quote(text)}")
            occurs = listed[span] - 1
            raise InputError(
                f"span {span!r} is listed {sum(1 for s, _ in items if s == span)} times but occurs "
                f"{occurs} time(s) in the sentence {_quote(text)}"
            )
        next_from[span] = start + len(span)
        out.append((start, start + len(span), stance))
    return out


def read_codes(frame: pd.DataFrame) -> CodesResult:
    """Read the gold cells of a filled-in coding sheet.

    Parameters
    ----------
    frame : pandas.DataFrame
        Shape ``(n_rows, >=8)``: the sheet, read as strings (``dtype=str,
        keep_default_na=False``; NaN cells are taken as blank anyway), with at least the
        columns :data:`REQUIRED_COLUMNS`.

    Returns
    -------
    CodesResult
        ``coded``: the rows with both gold cells filled and no fault; ``uncoded``: the number
        of rows whose two gold cells are both blank; ``problems``: every fault of the other
        rows (a row may have several): a ``gold_has_mention`` that is not 0/1, 0 with mentions
        listed or 1 with none, a span not in its sentence or listed more often than it occurs,
        an unknown stance, an empty span, a ``pi`` that is not a number in ``(0, 1]``, a
        ``seg_idx`` that is not a non-negative integer, a blank ``sample_id`` or ``doc_id``,
        and a ``sample_id`` that occurs on more than one row.

    Raises
    ------
    InputError
        If a required column is missing; the message names every missing one.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"the coding sheet lacks the column(s) {', '.join(missing)}; it has: {', '.join(map(str, frame.columns))}"
        )
    rows = frame[list(REQUIRED_COLUMNS)].to_dict("records")
    ids = [_cell(row["sample_id"]) for row in rows]
    seen: dict = {}
    for i, sample_id in enumerate(ids):
        if sample_id:
            seen.setdefault(sample_id, []).append(i + 1)
    coded, problems, uncoded = [], [], 0
    for i, row in enumerate(rows):
        cells = {c: _cell(row[c]) for c in REQUIRED_COLUMNS}
        text = _raw(row["segment_text"])  # offsets are relative to the unstripped text
        if not cells["gold_has_mention"] and not cells["gold_mentions"]:
            uncoded += 1
            continue
        sample_id = cells["sample_id"]
        found: list = []

        def problem(column, message, sample_id=sample_id, row_no=i + 1, found=found):
            found.append(Problem(sample_id, column, message if sample_id else f"row {row_no}: {message}"))

        if not sample_id:
            problem("sample_id", "sample_id is blank")
        elif len(seen[sample_id]) > 1:
            problem("sample_id", f"sample_id {sample_id!r} occurs on rows {seen[sample_id]} of the sheet")
        if not cells["doc_id"]:
            problem("doc_id", "doc_id is blank")
        seg_idx = None
        try:
            value = float(cells["seg_idx"])
            if not (math.isfinite(value) and value == int(value) and value >= 0):
                raise ValueError
            seg_idx = int(value)
        except ValueError:
            problem("seg_idx", f"seg_idx must be a non-negative integer; got {cells['seg_idx']!r}")
        pi = None
        try:
            pi = float(cells["pi"])
            if not (math.isfinite(pi) and 0 < pi <= 1):
                raise ValueError
        except ValueError:
            problem("pi", f"pi must be a number in (0, 1]; got {cells['pi']!r}")
        has = None
        try:
            has = parse_has_mention(cells["gold_has_mention"])
        except InputError as err:
            problem("gold_has_mention", str(err))
        mentions = None
        try:
            mentions = locate(text, parse_mentions(cells["gold_mentions"]))
        except InputError as err:
            problem("gold_mentions", str(err))
        if has == 0 and mentions:
            problem("gold_has_mention", f"gold_has_mention is 0 but gold_mentions lists {len(mentions)} mention(s)")
        if has == 1 and mentions == []:
            problem("gold_has_mention", "gold_has_mention is 1 but gold_mentions lists none")
        if found:
            problems.extend(found)
            continue
        coded.append(CodedSegment(
            sample_id=sample_id, doc_id=cells["doc_id"], seg_idx=seg_idx, stratum=cells["stratum"],
            pi=pi, has_mention=has, mentions=mentions, segment_text=text,
        ))
    return CodesResult(coded=coded, uncoded=uncoded, problems=problems)
