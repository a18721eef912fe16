"""From a dictionary CSV to training terms: reading, wildcard stems, duplicates, the split."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.inference.embed import MentionKeyer

__all__ = ["TrainingTerms", "prepare_terms", "read_training_dictionary"]

logger = logging.getLogger(__name__)


def read_training_dictionary(path) -> pd.DataFrame:
    """Read a dictionary CSV (categories as columns, terms as cells) as strings.

    Raises
    ------
    InputError
        If the file is missing or unreadable; the message names the path.
    """
    from group_appeal_spark.lib.clustering.dictionary import read_dictionary

    try:
        return read_dictionary(path)
    except InputError:
        raise
    except ValueError as exc:  # DictionaryError is a ValueError, not a package error
        raise InputError(str(exc)) from exc


@dataclasses.dataclass
class TrainingTerms:
    """The usable terms of a dictionary, split into training and validation terms.

    Attributes
    ----------
    categories : list of str
        Categories used, in column order.
    train : dict of str -> list of str
        Training terms per category (at least two each).
    validation : dict of str -> list of str
        Held-out terms per category (may be empty for a category).
    skipped_terms : list of dict
        ``{"category", "term", "reason"}`` for every cell not used.
    skipped_categories : list of dict
        ``{"category", "reason"}`` for every column not used.
    wildcard_terms : list of dict
        ``{"category", "term", "used_as"}`` for every wildcard term kept as its stem.
    """

    categories: list[str]
    train: dict[str, list[str]]
    validation: dict[str, list[str]]
    skipped_terms: list[dict]
    skipped_categories: list[dict]
    wildcard_terms: list[dict]

    def flat(self, split: str) -> tuple[list[str], np.ndarray]:
        """Terms of ``split`` (``"train"`` or ``"validation"``) and their category indices, shape (n,)."""
        groups = self.train if split == "train" else self.validation
        terms, labels = [], []
        for index, category in enumerate(self.categories):
            terms += groups[category]
            labels += [index] * len(groups[category])
        return terms, np.asarray(labels, dtype=np.int64)

    def counts(self) -> dict:
        n_train = sum(len(v) for v in self.train.values())
        n_val = sum(len(v) for v in self.validation.values())
        return {
            "categories_used": len(self.categories),
            "categories_skipped": len(self.skipped_categories),
            "validation_categories": sum(1 for v in self.validation.values() if v),
            "train_terms": n_train,
            "validation_terms": n_val,
            "wildcard_terms_kept": len(self.wildcard_terms),
            "terms_skipped": len(self.skipped_terms),
        }


def _wildcard_stem(term: str, tokenizer) -> tuple[str | None, str]:
    """The term with its ``*`` removed, or None and the reason it cannot be used."""
    words = []
    for token in term.split():
        if "*" not in token:
            words.append(token)
            continue
        stem = token.replace("*", "")
        if not stem:
            return None, "wildcard '*' stands for any word"
        if not (stem.isalpha() and len(stem) >= 3):
            return None, f"wildcard stem {stem!r} is not a word of at least 3 letters"
        pieces = tokenizer.tokenize(stem)
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_token:
            return None, f"wildcard stem {stem!r} is not a whole word of the tokenizer's vocabulary"
        words.append(stem)
    return " ".join(words), ""


def prepare_terms(dictionary: pd.DataFrame, tokenizer, *, validation_fraction: float, seed: int) -> TrainingTerms:
    """Clean a dictionary's terms and split them per category.

    Parameters
    ----------
    dictionary : pandas.DataFrame
        Shape (n_terms_max, n_categories): columns are categories, cells terms or missing.
    tokenizer : transformers tokenizer
        The encoder's tokenizer: it decides which wildcard stems are whole words and which
        terms are duplicates (its normaliser lower-cases and strips accents when uncased).
    validation_fraction : float
        Share of each category's terms held out.
    seed : int
        Seeds the split.

    Returns
    -------
    TrainingTerms

    Raises
    ------
    InputError
        If fewer than two categories have at least two training terms.
    """
    # The dedupe key of the pipeline: terms that it would embed as one are one term here.
    key = MentionKeyer(tokenizer).key
    rng = np.random.default_rng([seed, 0])
    owner: dict[str, str] = {}
    skipped_terms, skipped_categories, wildcards = [], [], []
    usable: dict[str, list[str]] = {}
    for position, category in enumerate(dictionary.columns):
        category = str(category)
        terms = []
        for cell in dictionary.iloc[:, position]:
            if not isinstance(cell, str) or not cell.strip():
                continue
            term = " ".join(cell.split())
            if "*" in term:
                stem, reason = _wildcard_stem(term, tokenizer)
                if stem is None:
                    skipped_terms.append({"category": category, "term": term, "reason": reason})
                    continue
                wildcards.append({"category": category, "term": term, "used_as": stem})
                term = stem
            k = key(term)
            if k in owner:
                if owner[k] != category:
                    skipped_terms.append(
                        {"category": category, "term": term, "reason": f"already a term of category {owner[k]!r}"}
                    )
                continue  # a repeat inside one category adds nothing
            owner[k] = category
            terms.append(term)
        usable[category] = terms

    categories, train, validation = [], {}, {}
    for category, terms in usable.items():
        n_val = min(int(round(validation_fraction * len(terms))), len(terms) - 2)
        if len(terms) - max(n_val, 0) < 2:
            reason = f"{len(terms)} usable term(s); a category needs at least 2 to give positives"
            logger.warning("skipping category %r: %s", category, reason)
            skipped_categories.append({"category": category, "reason": reason})
            continue
        held = set(rng.permutation(len(terms))[: max(n_val, 0)].tolist()) if n_val > 0 else set()
        categories.append(category)
        # File order inside each split, so that the split alone depends on the seed.
        train[category] = [t for i, t in enumerate(terms) if i not in held]
        validation[category] = [t for i, t in enumerate(terms) if i in held]
    if len(categories) < 2:
        raise InputError(
            f"the dictionary has {len(categories)} usable categor{'y' if len(categories) == 1 else 'ies'} "
            f"({', '.join(map(repr, categories)) or 'none'}); training needs at least 2 categories with at "
            f"least 2 terms each (skipped: {[c['category'] for c in skipped_categories]})"
        )
    if skipped_terms:
        logger.warning("skipped %d dictionary term(s); see the training report", len(skipped_terms))
    return TrainingTerms(categories, train, validation, skipped_terms, skipped_categories, wildcards)

