"""Social group dictionaries: reading the CSV and matching mentions to its categories.

A dictionary is a CSV file whose columns are categories (``women``, ``working class``...) and
whose cells are terms. :class:`CategoryMatcher` turns it into one regular expression with the
same matching rules as ``group-appeal-detector`` 0.3.0, so that a mention gets the category the
reference would give it, and fixes the cases where the reference crashes or matches everything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
from group_appeal_spark.lib.errors import InputError

__all__ = ["CategoryMatcher", "DictionaryError", "read_dictionary", "term_to_regex"]


class DictionaryError(InputError):
    """A dictionary file or frame that cannot be used; the message names the source.

    An :class:`~group_appeal_spark.lib.errors.InputError`, hence also a ``ValueError``.
    """


def read_dictionary(path: str | os.PathLike) -> pd.DataFrame:
    """Read a social group dictionary from a CSV file.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file whose header row holds the category names and whose cells hold the terms.
        Any path ``pandas.read_csv`` understands works (local or, with fsspec, remote).

    Returns
    -------
    pandas.DataFrame
        Shape ``(n_terms_max, n_categories)``: one column per category in file order, every
        cell a ``str`` term or missing (``NaN``) where the cell was empty. Nothing is parsed as a
        number or as ``NA``: a term such as ``NA`` or ``null`` stays a term.

    Raises
    ------
    DictionaryError
        If the file does not exist, has no columns, has two columns with the same name
        (ignoring surrounding whitespace), or has a column without a name that holds terms.
        The message names the path.
    """
    try:
        # header=None: pandas would silently rename a duplicated header to "name.1".
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",  # a BOM from a spreadsheet export must not enter a name
            skip_blank_lines=True,
        )
    except FileNotFoundError as exc:
        raise DictionaryError(f"dictionary file not found: {path}") from exc
    except pd.errors.EmptyDataError as exc:
        raise DictionaryError(f"dictionary file {path} has no columns (it is empty)") from exc
    except pd.errors.ParserError as exc:
        raise DictionaryError(f"dictionary file {path} is not a readable CSV: {exc}") from exc
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise DictionaryError(f"dictionary file {path} has no columns")

    header = raw.iloc[0].tolist()
    body = raw.iloc[1:].reset_index(drop=True)
    keep = []
    for position, name in enumerate(header):
        if pd.isna(name) or not str(name).strip():
            # A trailing comma in a spreadsheet export adds an unnamed, empty column.
            if body.iloc[:, position].notna().any():
                raise DictionaryError(
                    f"dictionary file {path}: column {position + 1} has terms but no "
                    f"category name in the header row"
                )
            continue
        keep.append(position)
    if not keep:
        raise DictionaryError(f"dictionary file {path} has no named columns")

    names = [str(header[position]) for position in keep]
    duplicates = _duplicated_names(names)
    if duplicates:
        raise DictionaryError(
            f"dictionary file {path} has duplicated category names: {duplicates}; "
            f"every column must name a different category"
        )
    dictionary = body.iloc[:, keep].copy()
    dictionary.columns = names
    return dictionary


def _duplicated_names(names: list[str]) -> list[str]:
    """Names that equal an earlier name once surrounding whitespace is ignored."""
    seen: set[str] = set()
    duplicates = []
    for name in names:
        key = name.strip()
        if key in seen:
            duplicates.append(name)
        seen.add(key)
    return duplicates


def term_to_regex(term: str) -> str | None:
    """Translate one dictionary term into the reference's regular expression.

    Parameters
    ----------
    term : str
        Whitespace-separated tokens. ``*`` alone matches one word, ``*word`` a word ending in
        ``word``, ``word*`` a word starting with ``word``; every other token is literal.

    Returns
    -------
    str or None
        The pattern (tokens joined by ``\\s+`` and wrapped in ``\\b``), or ``None`` for a term
        without tokens: the reference would turn it into ``\\b\\b``, which matches any mention
        with a word character in it.
    """
    tokens = term.split()
    if not tokens:
        return None
    parts = []
    for token in tokens:
        # The branch order is the reference's: "*x*" is a suffix wildcard with a literal "*".
        if token == "*":
            parts.append(r"\w+")
        elif token.startswith("*") and len(token) > 1:
            parts.append(r"\w*" + re.escape(token[1:]))
        elif token.endswith("*") and len(token) > 1:
            parts.append(re.escape(token[:-1]) + r"\w*")
        else:
            parts.append(re.escape(token))
    return r"\b" + r"\s+".join(parts) + r"\b"


class CategoryMatcher:
    """Assign a mention to the first dictionary category whose term it contains.

    Parameters
    ----------
    dictionary : pandas.DataFrame
        Shape ``(n_terms_max, n_categories)``, as returned by :func:`read_dictionary`: columns
        are categories in priority order, cells are terms. Missing and blank cells are skipped;
        a cell that is not a string is used as ``str(cell)``. A category without terms never
        matches.

    Attributes
    ----------
    categories : list of str
        Category names in column order, including those without terms.
    pattern : re.Pattern or None
        The combined, case-insensitive expression; ``None`` when no category has a term.

    Raises
    ------
    DictionaryError
        If ``dictionary`` is not a DataFrame or two columns have the same name.

    Notes
    -----
    The semantics are those of the reference's ``_create_category_regex`` and
    ``_match_dictionary``: all categories form one alternation in column order and the
    mention is *searched*, so the leftmost match in the mention wins, and at the same position
    the category that comes first. Unlike the reference, groups are named by column index, so
    names such as ``"Black people"`` and ``"black-people"`` or ``"1950s"`` cannot clash or
    make an invalid group name.

    Examples
    --------
    >>> import pandas as pd
    >>> matcher = CategoryMatcher(pd.DataFrame({"women": ["wom*"], "workers": ["work*"]}))
    >>> matcher.match_many(["working women", "Women who work", "farmers", None])
    ['workers', 'women', None, None]
    """

    def __init__(self, dictionary: pd.DataFrame) -> None:
        if not isinstance(dictionary, pd.DataFrame):
            raise DictionaryError(
                f"dictionary must be a pandas DataFrame (categories as columns); "
                f"got {type(dictionary).__name__}"
            )
        self.categories = [str(name) for name in dictionary.columns]
        duplicates = _duplicated_names(self.categories)
        if duplicates:
            raise DictionaryError(f"dictionary has duplicated category names: {duplicates}")

        # Group i+1 of the pattern is the i-th category that has terms; lastindex finds it.
        self._group_category: list[str] = []
        alternatives = []
        for position, name in enumerate(self.categories):
            terms = [
                regex
                for cell in dictionary.iloc[:, position]
                if (regex := _cell_regex(cell)) is not None
            ]
            if terms:
                self._group_category.append(name)
                alternatives.append("(" + "|".join(terms) + ")")
        self.pattern = (
            re.compile("|".join(alternatives), flags=re.IGNORECASE) if alternatives else None
        )

    def match(self, text: Any) -> str | None:
        """Category of one mention.

        Parameters
        ----------
        text : str
            The mention. Anything else (``None``, ``NaN``, numbers) gives ``None``.

        Returns
        -------
        str or None
            The matching category's name, or ``None`` when no term occurs in ``text``.
        """
        if self.pattern is None or not isinstance(text, str):
            return None
        found = self.pattern.search(text)
        if found is None:
            return None
        return self._group_category[found.lastindex - 1]

    def match_many(self, texts: Iterable[Any]) -> list[str | None]:
        """Categories of many mentions.

        Parameters
        ----------
        texts : iterable of str
            Shape ``(n,)``. Non-string entries give ``None``.

        Returns
        -------
        list of (str or None)
            Shape ``(n,)``, in the order of ``texts``.
        """
        return [self.match(text) for text in texts]

    def __repr__(self) -> str:
        return f"CategoryMatcher(categories={self.categories!r})"


def _cell_regex(cell: Any) -> str | None:
    """Regex of one dictionary cell, or None for a missing or blank cell."""
    if isinstance(cell, str):
        return term_to_regex(cell)
    if cell is None or (pd.api.types.is_scalar(cell) and pd.isna(cell)):
        return None
    return term_to_regex(str(cell))
