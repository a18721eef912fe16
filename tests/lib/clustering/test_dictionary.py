"""Dictionary reading and category matching, differential against group-appeal-detector 0.3.0."""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering.dictionary import (
    CategoryMatcher,
    DictionaryError,
    read_dictionary,
    term_to_regex,
)
from group_appeal_spark.lib.errors import InputError

# Every kind of term: literal words, "*" alone, "*suffix", "prefix*", several tokens, regex
# metacharacters, and terms that overlap across categories ("mothers" is matched by
# "mother*" in an earlier column; "working families" by "work*" and "famil*").
DICTIONARY = {
    "women": ["women", "mother*", "* mums", "girls", "wom*n"],
    "working class": ["work*", "*workers", "manual labour*", "blue collar"],
    "Black people": ["black *", "african caribbean", "*ethnic minorities"],
    "3rd age": ["pension*", "older people", "* elderly", "senior citizens"],
    "young people": ["young *", "youth*", "students", "children"],
    "families": ["famil*", "hard-working families", "parents", "mothers"],
    "patients": ["nhs patients", "patients", "*care users"],
    "U.S. citizens": ["u.s. citizens", "americans", "(ex-)servicemen", "c++ developers"],
}

# Words that hit, nearly hit or miss the terms above.
VOCABULARY = [
    "women", "Women", "WOMEN", "womenfolk", "woman", "mothers", "grandmothers", "motherhood",
    "single", "mums", "girls", "workers", "working", "workshop", "networkers", "steelworkers",
    "manual", "labourers", "labour", "blue", "collar", "black", "Black", "blackbirds",
    "african", "caribbean", "ethnic", "minorities", "pensioners", "pension", "older", "people",
    "the", "elderly", "senior", "citizens", "young", "youthful", "youth", "students",
    "children", "families", "family", "Families'", "hard-working", "parents", "nhs",
    "patients", "healthcare", "users", "u.s.", "U.S.", "americans", "(ex-)servicemen",
    "servicemen", "c++", "developers", "farmers", "of", "and", "all", "naïve", "café",
    "1950s", "our", "British", "carers",
]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", "-", ", ", "/", "'s "]

HANDWRITTEN = [
    "", " ", "women", "Women", "WOMEN", "women,", "(women)", "women's rights", "womenfolk",
    "working women", "women who work", "working-class women", "hard-working families",
    "hard-working   families", "working families", "families of workers", "mothers",
    "grandmothers", "single mums", "mums", "black cab drivers", "Black\tBritish people",
    "blackbirds", "ethnic minorities", "Ethnicminorities", "pensioners", "the elderly",
    "elderly", "older people", "young people", "young", "youthful voters", "NHS patients",
    "patients", "social care users", "healthcare users", "U.S. citizens", "u.s.citizens",
    "Americans", "(ex-)servicemen", "ex-servicemen", "c++ developers", "farmers",
    "naïve students", "café owners", "1950s children", "wom*n", "women and children",
    "children and women",
]


def _mentions(count, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        words = [VOCABULARY[i] for i in rng.integers(0, len(VOCABULARY), rng.integers(1, 6))]
        case = rng.integers(0, 4)
        if case == 1:
            words = [w.upper() for w in words]
        elif case == 2:
            words = [w.title() for w in words]
        text = words[0]
        for word in words[1:]:
            text += SEPARATORS[rng.integers(0, len(SEPARATORS))] + word
        out.append(text)
    return out


MENTIONS = HANDWRITTEN + _mentions(400)


def _frame(columns):
    # Columns of different lengths, padded with NaN as read_dictionary pads short columns.
    return pd.DataFrame({name: pd.Series(terms, dtype=object) for name, terms in columns.items()})


@pytest.fixture(scope="module")
def reference():
    return pytest.importorskip("group_appeal_detector.clustering")


@pytest.mark.reference
def test_categories_match_reference_on_many_mentions(reference):
    frame = _frame(DICTIONARY)
    regex, lookup = reference._create_category_regex(frame)
    expected = [reference._match_dictionary(regex, lookup, text)[1] for text in MENTIONS]

    got = CategoryMatcher(frame).match_many(MENTIONS)

    assert got == expected
    # The comparison is only worth something if the mentions exercise the dictionary.
    assert len(MENTIONS) >= 300
    assert sum(category is not None for category in got) > 150
    assert sum(category is None for category in got) > 30
    assert set(got) - {None} == set(DICTIONARY)


@pytest.mark.reference
def test_terms_translate_to_the_reference_regex(reference):
    for column, terms in DICTIONARY.items():
        regex, _ = reference._create_category_regex(_frame({"c": terms}))
        ours = "|".join(term_to_regex(term) for term in terms)
        assert regex.pattern == f"(?P<c>{ours})", column


@pytest.mark.reference
def test_clashing_category_names_break_the_reference_not_us(reference):
    # "black people" and "black-people" both normalise to the group name black_people; "1"
    # becomes cat_1, which is also the next column's name.
    frame = _frame({"black people": ["black *"], "black-people": ["afro*"], "1": ["one"],
                    "cat_1": ["two"]})
    with pytest.raises(re.error):
        reference._create_category_regex(frame)

    matcher = CategoryMatcher(frame)
    assert matcher.match_many(["Black voters", "Afro-Caribbean", "one", "two", "three"]) == [
        "black people", "black-people", "1", "cat_1", None]


@pytest.mark.reference
def test_blank_term_matches_everything_in_the_reference_but_is_skipped_here(reference):
    frame = _frame({"blank": ["   "], "farmers": ["farm*"]})
    regex, lookup = reference._create_category_regex(frame)
    assert reference._match_dictionary(regex, lookup, "nurses") == (True, "blank")

    matcher = CategoryMatcher(frame)
    assert matcher.match_many(["nurses", "farmers"]) == [None, "farmers"]


def test_leftmost_match_wins_then_column_order():
    matcher = CategoryMatcher(_frame({"women": ["women"], "workers": ["work*"],
                                      "working women": ["working women"]}))
    # "working" starts before "women", so workers wins over the earlier column women; at the
    # same position "work*" comes before the longer "working women" term.
    assert matcher.match("working women") == "workers"
    assert matcher.match("women workers") == "women"
    assert matcher.match("WORKING") == "workers"


def test_wildcards():
    matcher = CategoryMatcher(_frame({"a": ["* mums"], "b": ["*workers"], "c": ["labour*"]}))
    assert matcher.match_many(
        ["single mums", "mums", "steelworkers", "workers", "labourers", "belabour", "labour"]
    ) == ["a", None, "b", "b", "c", None, "c"]


def test_odd_cells_are_used_or_skipped():
    frame = pd.DataFrame({
        "years": [1950, np.nan, None, "  "],
        "farmers": ["farm*", "", pd.NA, None],
        "empty": [None, np.nan, "", " "],
    }, dtype=object)
    matcher = CategoryMatcher(frame)
    assert matcher.categories == ["years", "farmers", "empty"]
    assert matcher.match_many(["born 1950", "farmers", "1950s", "", "anything"]) == [
        "years", "farmers", None, None, None]


def test_dictionary_without_terms_matches_nothing():
    matcher = CategoryMatcher(_frame({"a": [None], "b": ["  "]}))
    assert matcher.pattern is None
    assert matcher.match_many(["a", "b", ""]) == [None, None, None]
    assert CategoryMatcher(pd.DataFrame()).match("anything") is None


@pytest.mark.parametrize("text", [None, np.nan, 3, b"women", ["women"]])
def test_non_string_text_gives_none(text):
    assert CategoryMatcher(_frame({"women": ["women"]})).match(text) is None


def test_order_and_batching_do_not_change_matches():
    matcher = CategoryMatcher(_frame(DICTIONARY))
    forward = matcher.match_many(MENTIONS)
    assert matcher.match_many(reversed(MENTIONS)) == forward[::-1]
    assert [matcher.match(text) for text in MENTIONS] == forward
    halves = matcher.match_many(MENTIONS[:100]) + matcher.match_many(iter(MENTIONS[100:]))
    assert halves == forward


def test_matcher_survives_pickling():
    # Spark ships the matcher to executors by pickling it.
    matcher = CategoryMatcher(_frame(DICTIONARY))
    clone = pickle.loads(pickle.dumps(matcher))
    assert clone.match_many(MENTIONS) == matcher.match_many(MENTIONS)


def test_read_dictionary_keeps_terms_as_strings(tmp_path):
    path = tmp_path / "dictionary.csv"
    path.write_text(
        "\ufeffwomen,working class,years\n"
        'women,work*,1950\n'
        'NA,"blue, collar",\n'
        'null,,007\n'
        'mother*,\n',
        encoding="utf-8",
    )
    frame = read_dictionary(path)
    assert list(frame.columns) == ["women", "working class", "years"]
    assert frame["women"].tolist() == ["women", "NA", "null", "mother*"]
    assert frame["working class"].iloc[:2].tolist() == ["work*", "blue, collar"]
    assert frame["working class"].iloc[2:].isna().all()
    assert frame["years"].iloc[0] == "1950" and frame["years"].iloc[2] == "007"
    assert pd.isna(frame["years"].iloc[1])

    matcher = CategoryMatcher(frame)
    assert matcher.match_many(["NA voters", "blue, collar", "agent 007", "workers"]) == [
        "women", "working class", "years", "working class"]


def test_read_dictionary_drops_an_empty_unnamed_column(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("women,men,\nwomen,men,\nmothers,,\n")
    assert list(read_dictionary(path).columns) == ["women", "men"]


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "dictionary file not found: .*missing.csv"),
        ("", "has no columns"),
        ("\n\n", "has no columns"),
        ("women,men,women\na,b,c\n", r"duplicated category names: \['women'\]"),
        ("women, men,men\na,b,c\n", r"duplicated category names: \['men'\]"),
        ("women,,men\na,b,c\n", "column 2 has terms but no category name"),
        (",\n,\n", "has no named columns"),
        ('women,men\n"a,b\n', "not a readable CSV"),
    ],
)
def test_read_dictionary_refuses_bad_files(tmp_path, content, match):
    path = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(DictionaryError, match=match) as caught:
        read_dictionary(path)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InputError)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "dictionary, match",
    [
        ({"women": ["women"]}, "must be a pandas DataFrame .*got dict"),
        (pd.DataFrame([["a", "b"]], columns=["women", "women"]), "duplicated category names"),
        (pd.DataFrame([["a", "b"]], columns=["women", "women "]), "duplicated category names"),
    ],
)
def test_matcher_refuses_bad_dictionaries(dictionary, match):
    with pytest.raises(DictionaryError, match=match):
        CategoryMatcher(dictionary)
