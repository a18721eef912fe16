"""The coding sheet's gold cells: parsing, locating spans, and every fault reported, none dropped."""

import math

import pandas as pd
import pytest
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.validation.codes import (
    REQUIRED_COLUMNS,
    CodedSegment,
    Problem,
    locate,
    parse_has_mention,
    parse_mentions,
    read_codes,
)

SENTENCE = "Workers and farmers deserve better than the workers' bosses."


@pytest.mark.parametrize("cell, expected", [
    ("the workers|Positive ; farmers | negative", [("the workers", "positive"), ("farmers", "negative")]),
    ("  farmers|NEUTRAL;", [("farmers", "neutral")]),
    ("a|b|neutral", [("a|b", "neutral")]),  # split at the last bar
    ("", []),
    ("  ", []),
    (float("nan"), []),
    (None, []),
])
def test_parse_mentions(cell, expected):
    assert parse_mentions(cell) == expected


@pytest.mark.parametrize("cell, match", [
    ("workers", r"^mention 'workers' has no stance: write it as 'span\|stance'$"),
    (" |positive", r"^mention '\|positive' has an empty span$"),
    ("workers|happy", r"^mention 'workers\|happy': unknown stance 'happy'; expected one of: positive, negative, neutral$"),
    ("farmers|negative; workers|", r"unknown stance ''"),
])
def test_parse_mentions_errors(cell, match):
    with pytest.raises(InputError, match=match):
        parse_mentions(cell)


@pytest.mark.parametrize("cell, expected", [
    ("1", 1), ("0", 0), ("1.0", 1), ("0.0", 0), ("TRUE", 1), ("false", 0), (" Yes ", 1), ("no", 0),
])
def test_parse_has_mention(cell, expected):
    assert parse_has_mention(cell) == expected


@pytest.mark.parametrize("cell", ["2", "", "y", "0.5", float("nan")])
def test_parse_has_mention_errors(cell):
    with pytest.raises(InputError, match=r"^gold_has_mention must be 0 or 1 \(or 0.0/1.0, true/false, yes/no\); got '"):
        parse_has_mention(cell)


def test_locate_takes_the_kth_occurrence_for_the_kth_listing():
    # "workers" occurs at 44 (lower case); "Workers" at 0; "farmers" at 12
    items = [("farmers", "positive"), ("Workers", "positive"), ("workers", "negative")]
    assert locate(SENTENCE, items) == [(12, 19, "positive"), (0, 7, "positive"), (44, 51, "negative")]
    # non-overlapping, left to right: "aa" twice in "aaaa" is (0, 2) then (2, 4)
    assert locate("aaaa", [("aa", "neutral"), ("aa", "positive")]) == [(0, 2, "neutral"), (2, 4, "positive")]
    assert locate("x", []) == []


@pytest.mark.parametrize("items, match", [
    ([("teachers", "positive")], r"^span 'teachers' is not in the sentence \"Workers and farmers deserve better than the workers' bosses\.\"$"),
    ([("farmers", "positive"), ("farmers", "neutral"), ("farmers", "neutral")],
     r"^span 'farmers' is listed 3 times but occurs 1 time\(s\) in the sentence \"Workers"),
    ([("", "positive")], r"^a mention has an empty span$"),
])
def test_locate_errors(items, match):
    with pytest.raises(InputError, match=match):
        locate(SENTENCE, items)


def test_locate_quotes_only_the_start_of_a_long_sentence():
    with pytest.raises(InputError, match=r"in the sentence 'x{60}\.\.\.'$"):
        locate("x" * 100, [("y", "neutral")])


def _sheet(rows, *, blind=False):
    columns = [c for c in ("sample_id", "doc_id", "seg_idx", "stratum", "pi", "segment_text", "predicted",
                           "gold_has_mention", "gold_mentions") if not (blind and c == "predicted")]
    frame = pd.DataFrame(
        [dict(zip(("sample_id", "seg_idx", "pi", "segment_text", "gold_has_mention", "gold_mentions"), r))
         for r in rows])
    frame["doc_id"] = [f"d{i}" for i in range(len(rows))]
    frame["stratum"] = "A|1"
    frame["predicted"] = ""
    return frame[columns]


def test_read_codes_hand_made_sheet():
    frame = _sheet([
        ("s1", "0", "0.25", SENTENCE, "1", "workers|negative; Workers|Positive"),
        ("s2", "3", "1", "Nothing here.", "0", ""),
        ("s3", "1", "0.5", "Not coded yet.", "", "  "),
        ("s4", "2.0", "1.0", "The farmers.", "yes", "farmers|neutral"),
        ("s5", "1", "0.5", "Not coded either.", float("nan"), float("nan")),
    ], blind=True)
    out = read_codes(frame)
    assert out.problems == []
    assert out.uncoded == 2
    assert out.coded == [
        CodedSegment("s1", "d0", 0, "A|1", 0.25, 1, [(44, 51, "negative"), (0, 7, "positive")], SENTENCE),
        CodedSegment("s2", "d1", 3, "A|1", 1.0, 0, [], "Nothing here."),
        CodedSegment("s4", "d3", 2, "A|1", 1.0, 1, [(4, 11, "neutral")], "The farmers."),
    ]


@pytest.mark.parametrize("row, column, message", [
    (("b1", "0", "0.5", "Some text.", "maybe", ""), "gold_has_mention",
     "gold_has_mention must be 0 or 1 (or 0.0/1.0, true/false, yes/no); got 'maybe'"),
    (("b2", "0", "0.5", "The workers.", "0", "workers|positive"), "gold_has_mention",
     "gold_has_mention is 0 but gold_mentions lists 1 mention(s)"),
    (("b3", "0", "0.5", "The workers.", "1", ""), "gold_has_mention", "gold_has_mention is 1 but gold_mentions lists none"),
    (("b4", "0", "0.5", "The workers.", "1", "teachers|positive"), "gold_mentions",
     "span 'teachers' is not in the sentence 'The workers.'"),
    (("b5", "0", "0.5", "The workers.", "1", "workers|happy"), "gold_mentions",
     "mention 'workers|happy': unknown stance 'happy'; expected one of: positive, negative, neutral"),
    (("b6", "0", "0.5", "The workers.", "1", " |positive"), "gold_mentions", "mention '|positive' has an empty span"),
    (("b7", "0", "0", "The workers.", "0", ""), "pi", "pi must be a number in (0, 1]; got '0'"),
    (("b8", "0", "1.5", "The workers.", "0", ""), "pi", "pi must be a number in (0, 1]; got '1.5'"),
    (("b9", "0", "abc", "The workers.", "0", ""), "pi", "pi must be a number in (0, 1]; got 'abc'"),
    (("b10", "0", "nan", "The workers.", "0", ""), "pi", "pi must be a number in (0, 1]; got 'nan'"),
    (("b11", "1.5", "0.5", "The workers.", "0", ""), "seg_idx", "seg_idx must be a non-negative integer; got '1.5'"),
    (("b12", "", "0.5", "The workers.", "0", ""), "seg_idx", "seg_idx must be a non-negative integer; got ''"),
    (("b13", "-1", "0.5", "The workers.", "0", ""), "seg_idx", "seg_idx must be a non-negative integer; got '-1'"),
    (("", "0", "0.5", "The workers.", "0", ""), "sample_id", "row 2: sample_id is blank"),
])
def test_read_codes_reports_each_fault_and_keeps_the_row_out(row, column, message):
    good = ("g1", "0", "0.5", "The farmers.", "1", "farmers|positive")
    out = read_codes(_sheet([good, row]))
    assert [c.sample_id for c in out.coded] == ["g1"]
    assert out.problems == [Problem(row[0], column, message)]
    assert out.uncoded == 0


def test_read_codes_reports_every_fault_of_a_row_and_duplicates():
    frame = _sheet([
        ("d1", "x", "2", "The workers.", "1", ""),
        ("d1", "0", "0.5", "The workers.", "0", ""),
        ("ok", "0", "0.5", "The workers.", "0", ""),
    ])
    out = read_codes(frame)
    assert [c.sample_id for c in out.coded] == ["ok"]
    assert out.problems == [
        Problem("d1", "sample_id", "sample_id 'd1' occurs on rows [1, 2] of the sheet"),
        Problem("d1", "seg_idx", "seg_idx must be a non-negative integer; got 'x'"),
        Problem("d1", "pi", "pi must be a number in (0, 1]; got '2'"),
        Problem("d1", "gold_has_mention", "gold_has_mention is 1 but gold_mentions lists none"),
        Problem("d1", "sample_id", "sample_id 'd1' occurs on rows [1, 2] of the sheet"),
    ]


def test_read_codes_offsets_are_relative_to_the_unstripped_text():
    out = read_codes(_sheet([("s", "0", "1", "  The workers. ", "1", "workers|neutral")]))
    (seg,) = out.coded
    assert seg.mentions == [(6, 13, "neutral")] and seg.segment_text[6:13] == "workers"


def test_read_codes_handles_nan_cells_from_a_default_csv_read():
    frame = _sheet([("s", 0, 0.5, "The workers.", 1.0, "workers|positive"), ("t", 1, 0.5, "Nothing.", 0.0, math.nan)])
    out = read_codes(frame)
    assert out.problems == []
    assert [(c.seg_idx, c.has_mention, c.mentions) for c in out.coded] == [(0, 1, [(4, 11, "positive")]), (1, 0, [])]


@pytest.mark.parametrize("drop, match", [
    (["pi"], (r"^the coding sheet lacks the column\(s\) pi; it has: sample_id, doc_id, seg_idx, stratum, "
              r"segment_text, predicted, gold_has_mention, gold_mentions$")),
    (["gold_has_mention", "gold_mentions"], r"^the coding sheet lacks the column\(s\) gold_has_mention, gold_mentions;"),
    (list(REQUIRED_COLUMNS), (r"^the coding sheet lacks the column\(s\) sample_id, doc_id, seg_idx, stratum, pi, "
                              r"segment_text, gold_has_mention, gold_mentions; it has: predicted$")),
])
def test_read_codes_missing_columns(drop, match):
    frame = _sheet([("s", "0", "1", "The workers.", "0", "")]).drop(columns=drop)
    with pytest.raises(InputError, match=match):
        read_codes(frame)
