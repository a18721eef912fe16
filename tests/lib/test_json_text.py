"""Direct tests of lib/json_text.py: what ``json_line_text`` makes of one raw JSON line.

The storage job reads JSON lines as text and parses the text field here (udfs/json_text.py),
so that a number, an object, a bad escape or a lone surrogate in the text field is reported
instead of being turned into JSON text or replacement characters by Spark's JSON reader. A
line that is not valid UTF-8 reaches this function as ``None`` (the job nulls it first).
"""

import pytest
from group_appeal_spark.lib.json_text import json_line_text

# line -> (text, error), with field "text"
USABLE = [
    ('{"text": "We support farmers."}', "We support farmers."),
    # other fields, before or after, do not matter
    ('{"id": 7, "party": "Lab", "text": "Nurses.", "extra": [1, {"a": null}]}', "Nurses."),
    # JSON escapes are decoded; raw non-ASCII is kept
    ('{"text": "caf\\u00e9 \\"owners\\"\\n\\ttoo\\\\"}', 'café "owners"\n\ttoo\\'),
    ('{"text": "Café, Île-de-France, Müller 🙂"}', "Café, Île-de-France, Müller 🙂"),
    # a surrogate pair written as escapes is one character
    ('{"text": "\\ud83d\\ude00 matter"}', "\U0001f600 matter"),
    # the text is returned untouched: no trimming of blanks around it
    ('{"text": "  young people  "}', "  young people  "),
    # a NUL character is a character like any other
    ('{"text": "a\\u0000b"}', "a\x00b"),
    # blanks around the JSON value are allowed
    ('  {"text": "x"}  ', "x"),
    # a duplicated key: the last value wins (Python's json)
    ('{"text": "first", "text": "second"}', "second"),
    # a null or odd value in another field is not our business
    ('{"text": "ok", "id": null, "party": NaN}', "ok"),
]

# line -> error, with field "text"
UNUSABLE = [
    # null and missing are told apart
    ('{"id": 1, "text": null}', "missing text (null)"),
    ('{"id": 1}', "missing text field 'text'"),
    ('{}', "missing text field 'text'"),
    # keys are case-sensitive and not searched in nested objects
    ('{"Text": "a", "TEXT": "b"}', "missing text field 'text'"),
    ('{"meta": {"text": "a"}}', "missing text field 'text'"),
    # not a string: Spark's reader would have made these the string "12345", "{...}", ...
    ('{"text": 12345}', "not a string: int"),
    ('{"text": 1.5}', "not a string: float"),
    ('{"text": -0.0}', "not a string: float"),
    ('{"text": 1e400}', "not a string: float"),  # overflows to inf
    ('{"text": Infinity}', "not a string: float"),
    ('{"text": -Infinity}', "not a string: float"),
    # Python's json reads the non-standard NaN token as float('nan'), which check_text calls missing
    ('{"text": NaN}', "missing text (NaN)"),
    ('{"text": true}', "not a string: bool"),
    ('{"text": false}', "not a string: bool"),
    ('{"text": {"a": [1, 2]}}', "not a string: dict"),
    ('{"text": ["x"]}', "not a string: list"),
    ('{"text": []}', "not a string: list"),
    # strings that hold no text
    ('{"text": ""}', "empty text"),
    ('{"text": "   \\t\\n "}', "whitespace-only text"),
    ('{"text": "\\u200b\\ufeff\\u2060"}', "whitespace-only text"),
    ('{"text": "\\u3000\\u00a0"}', "whitespace-only text"),
    # lone surrogates: valid JSON escapes, but not encodable as UTF-8
    ('{"text": "bad \\ud800 surrogate"}', "contains lone surrogate characters"),
    ('{"text": "\\udc00x"}', "contains lone surrogate characters"),
    ('{"text": "\\ude00\\ud83d"}', "contains lone surrogate characters"),  # a pair in the wrong order
    ('{"text": "ok \\ud83d"}', "contains lone surrogate characters"),  # a high surrogate at the end
    # bad escapes and other malformed lines: the parser's reason and the 1-based column
    ('{"text": "bad \\x escape"}', "malformed JSON line: Invalid \\escape at column 15"),
    ('{"text": "\\u12"}', "malformed JSON line: Invalid \\uXXXX escape at column 12"),
    ('{"text": "\\uZZZZ"}', "malformed JSON line: Invalid \\uXXXX escape at column 12"),
    ("{'text': 'a'}", "malformed JSON line: Expecting property name enclosed in double quotes at column 2"),
    ('{"text": "a",}', "malformed JSON line: Expecting property name enclosed in double quotes at column 14"),
    ('{"text" "a"}', "malformed JSON line: Expecting ':' delimiter at column 9"),
    ('{"text": }', "malformed JSON line: Expecting value at column 10"),
    ('{"text": "a"', "malformed JSON line: Expecting ',' delimiter at column 13"),
    ('{"text": "a"} x', "malformed JSON line: Extra data at column 15"),
    ('{"text": "a"}{"text": "b"}', "malformed JSON line: Extra data at column 14"),
    ('', "malformed JSON line: Expecting value at column 1"),
    ('   ', "malformed JSON line: Expecting value at column 4"),
    ('text', "malformed JSON line: Expecting value at column 1"),
    # a byte order mark before the object
    ('\ufeff{"text": "a"}', "malformed JSON line: Unexpected UTF-8 BOM (decode using utf-8-sig) at column 1"),
    # valid JSON that is not an object
    ('[1, 2, 3]', "JSON line is not an object: list"),
    ('"We support farmers."', "JSON line is not an object: str"),
    ('3', "JSON line is not an object: int"),
    ('2.5', "JSON line is not an object: float"),
    ('true', "JSON line is not an object: bool"),
    ('null', "JSON line is not an object: NoneType"),
    # a line that was not valid UTF-8 (nulled by the job before the UDF)
    (None, "invalid UTF-8 in line"),
]


@pytest.mark.parametrize(("line", "text"), USABLE)
def test_usable_text_is_returned(line, text):
    assert json_line_text(line, "text") == (text, None)


@pytest.mark.parametrize(("line", "error"), UNUSABLE)
def test_unusable_line_says_why(line, error):
    assert json_line_text(line, "text") == (None, error)


def test_field_name_is_the_one_asked_for():
    line = '{"text": "in text", "body": "in body", "n": 3, "empty": "", "nothing": null}'
    assert json_line_text(line, "body") == ("in body", None)
    assert json_line_text(line, "text") == ("in text", None)
    assert json_line_text(line, "n") == (None, "not a string: int")
    assert json_line_text(line, "empty") == (None, "empty text")
    assert json_line_text(line, "nothing") == (None, "missing text (null)")
    assert json_line_text(line, "speech") == (None, "missing text field 'speech'")
    # the name is quoted as Python's repr: a quote in it stays readable
    assert json_line_text("{}", "it's") == (None, "missing text field \"it's\"")
    # a dotted name is one key, not a path into nested objects
    assert json_line_text('{"a": {"b": "x"}, "a.b": "y"}', "a.b") == ("y", None)


def test_invalid_utf8_reason_wins_over_any_field():
    assert json_line_text(None, "text") == (None, "invalid UTF-8 in line")
    assert json_line_text(None, "body") == (None, "invalid UTF-8 in line")


def test_a_line_of_every_kind_gives_text_or_error_never_both():
    for line, _ in USABLE + UNUSABLE:
        text, error = json_line_text(line, "text")
        assert (text is None) != (error is None), line
        assert error is None or isinstance(error, str)


def test_lines_of_the_hostile_corpus():
    """The lines test_reliability.py runs through Spark, checked here without Spark."""
    expected = {
        b'{"id": "b1", "party": "P", "text": null}': (None, "missing text (null)"),
        b'{"id": "b2", "party": "P"}': (None, "missing text field 'text'"),
        b'{"id": "b3", "party": "P", "text": ""}': (None, "empty text"),
        b'{"id": "b4", "party": "P", "text": "   \\t\\n "}': (None, "whitespace-only text"),
        b'{"id": "b5", "party": "P", "text": "\\u200b\\ufeff"}': (None, "whitespace-only text"),
        b'{"id": "b6", "party": "P", "text": 12345}': (None, "not a string: int"),
        b'{"id": "b7", "party": "P", "text": {"a": [1, 2]}}': (None, "not a string: dict"),
        b'{"id": "b8", "party": "P", "text": ["x"]}': (None, "not a string: list"),
        b'{"id": "b9", "party": "P", "text": "bad \\ud800 surrogate"}': (None, "contains lone surrogate characters"),
        b'[1, 2, 3]': (None, "JSON line is not an object: list"),
        b'{"party": "P", "text": "We support nurses."}': ("We support nurses.", None),
    }
    got = {line: json_line_text(line.decode("utf-8"), "text") for line in expected}
    assert got == expected
    # the unterminated string: where it starts (the exact wording is pinned by the xfail below)
    text, error = json_line_text('{"id": "b11", "party": "P", "text": "unterminated', "text")
    assert text is None
    assert error.startswith("malformed JSON line: Unterminated string starting at")
    assert error.endswith(" column 37")  # the opening quote of "unterminated


@pytest.mark.xfail(strict=True, reason="bug: the parser's message already ends in 'at', so the reason "
                                       "reads 'at at column N'")
@pytest.mark.parametrize("line", ['{"text": "unterminated', '{"text": "a\tb"}'])
def test_malformed_reason_does_not_say_at_twice(line):
    text, error = json_line_text(line, "text")
    assert text is None and error.startswith("malformed JSON line: ")
    assert " at at " not in error


@pytest.mark.xfail(strict=True, raises=RecursionError,
                   reason="bug: a deeply nested value anywhere in the line raises RecursionError "
                          "(not a ValueError), which kills the UDF's task instead of reporting the line")
def test_deeply_nested_line_is_reported_not_raised():
    line = '{"text": "We support farmers.", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    text, error = json_line_text(line, "text")
    assert (text is None) != (error is None)
