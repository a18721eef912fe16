"""The built-in training corpus: House-of-Commons-style sentences about social groups.

The word lists and templates it is generated from are the ``data/*.txt`` files of this
package (one entry a line, ``#`` starts a comment line), read with ``importlib.resources`` so
that they are found in a wheel as in a checkout.
"""

from __future__ import annotations

import functools
import importlib.resources
import random

__all__ = ["corpus"]


@functools.lru_cache(maxsize=None)
def _entries(name):
    """The entries of ``data/<name>.txt`` in file order, as a tuple."""
    text = importlib.resources.files(__package__).joinpath("data", f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line and not line.startswith("#"))


def corpus():
    """Return the built-in training corpus, a fixed list of English sentences.

    Returns
    -------
    list of str
        About 3,600 sentences in the style of UK parliamentary speech, many mentioning
        social groups. Generated from fixed word lists with a fixed ``random.Random``
        seed, so the list is identical on every call and machine.
    """
    groups, clauses, policies = _entries("groups"), _entries("clauses"), _entries("policies")
    verbs_pos, verbs_neg, openers = _entries("verbs_positive"), _entries("verbs_negative"), _entries("openers")
    templates, places, topics = _entries("templates"), _entries("places"), _entries("topics")
    adjectives = _entries("adjectives")

    rng = random.Random(20240501)
    out = list(_entries("sentences"))
    for i in range(2000):
        g, g2 = rng.sample(groups, 2)
        clause = rng.choice(clauses).format(
            g=g, g2=g2, p=rng.choice(policies), vp=rng.choice(verbs_pos), vn=rng.choice(verbs_neg),
        )
        opener = rng.choice(openers)
        sentence = f"{opener} {clause}."
        if i % 3 == 0:
            sentence = sentence[0].upper() + sentence[1:]
        elif i % 3 == 1:
            sentence = clause[0].upper() + clause[1:] + "."
        out.append(sentence)
    for i in range(1500):
        sentence = rng.choice(templates).format(
            place=rng.choice(places), t=rng.choice(topics), adj=rng.choice(adjectives), g=rng.choice(groups),
        )
        out.append(sentence[0].upper() + sentence[1:])
    out.extend(g[0].upper() + g[1:] + "." for g in groups)
    return out
